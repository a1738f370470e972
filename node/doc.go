// Package node composes the pillars of trinity into the roles a peer plays:
// the trainer's inner loop (compute + optimizer), and, on top of p2p and
// verify, the network roles (trainer, validator, bootstrap/relay).
//
// Data flows one way: cmd/trinity calls node, and node calls compute,
// optimizer, p2p and verify; none of those imports node.
package node
