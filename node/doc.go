// Package node composes the pillars of trinity into the roles a peer plays:
// the trainer's inner loop (compute + optimizer), and, on top of p2p and
// verify, the network roles (trainer, validator, bootstrap/relay) and the
// round protocol they follow.
//
// Data flows one way: cmd/trinity calls node, and node calls compute,
// optimizer, p2p and verify; none of those imports node.
//
// # Contract
//
//   - A network is its Genesis; the genesis hash is the network ID, and a
//     genesis that fails Validate (which names the bad field) is refused.
//   - Time is cut into rounds from the genesis start (Clock). In round r
//     trainers announce compressed pseudo-gradients computed from the state
//     theta_r, validators score them with package verify and publish scores,
//     and the lead validator publishes a signed Manifest; every peer applies
//     it with optimizer's deterministic aggregation and checks that its state
//     hash equals the manifest's result. Nobody waits for a late peer.
//   - Manifests chain by the CID of the previous manifest's envelope and name
//     the latest checkpoint, so a peer that is behind (late join, restart,
//     divergence) walks the chain back to its own state or the checkpoint and
//     replays forward, checking every hash.
//   - Forks (two manifests on one parent) are settled by one deterministic
//     fork choice that depends only on the manifests: a manifest is applied
//     only when it descends from the head; otherwise the longer branch after
//     the fork point wins, then the branch whose first manifest is for the
//     earlier round, then the lower validator rank, then the lower CID. A
//     peer switches to a winning branch by replaying it (a reorg) and drops
//     a losing manifest, so a stale validator's manifest never rolls back
//     the rounds the network applied meanwhile. A validator that is behind
//     or whose loop stalled publishes only after every validator in step,
//     and not at all when both: it catches up instead.
//   - A node counts every byte of its libp2p streams, in total, by class
//     (gossip, blobs, DHT) and per round (Status, EventTraffic).
//   - One goroutine per Node owns the round state; gossip readers and jobs
//     report to it by posting closures. Compute runs one job at a time.
//   - Everything persisted in the data directory (state, trainer state,
//     scores, blobs) is written atomically, so a node killed at any point
//     restarts from a consistent state and catches up.
//   - The wire payloads (messages.go) are versioned JSON decoded strictly.
//   - Validators defend the round (defence.go, consensus.go): each scores
//     every contribution with package verify, runs the round screens
//     (equivocation, copies, norm outliers, the score bar), keeps each
//     trainer's standing (misses decay it; failures ban), and publishes its
//     score vector at ScoreAt. The composer of the manifest waits (at most a
//     quarter of the fallback step past ManifestAt) for every validator's
//     vector and admits a contribution when the stake-weighted median of
//     the validators' votes on it is positive (validators holding a stake
//     majority passed it) and it holds and checked the blob itself. The
//     manifest embeds the signed vectors, and every peer re-runs the rule
//     on them (manifest_choice.go), so one dishonest validator of three
//     cannot steer the choice even when it composes: it can only omit.
//     Aggregation clips every norm to the manifest's median on every peer.
//   - Adversary modes (adversary.go, Config.Adversary) make a peer misbehave
//     on purpose for tests and experiments; an honest node has none.
//   - StatusHandler serves /status, /metrics and, unless WithDashboard(false),
//     the dashboard (/, /static/, /api/status; docs/dashboard.md): embedded,
//     self-contained, bounded in size whatever the network's age and size,
//     never exposing the identity key or the data directory, and answering
//     bad queries with a 4xx. Its data is collected on the loop goroutine.
//   - The genesis fixes the round's stage. In pre-training (above) trainers
//     contribute pseudo-gradients; in the RL stage (Genesis.Stage "rl",
//     rl_stage.go) rollout peers contribute GRAIL-proved rollout batches on
//     the rollout topic, validators check them with package rl, the manifest
//     lists the accepted ones, and every peer applies the same GRPO update:
//     the same manifests, chain, checkpoints and catch-up carry both.
//   - A genesis with params.replay adds proof of training work: trainers
//     commit to every inner step's state in their announcements and answer
//     validators' challenges; a failed or unanswered challenge zeroes the
//     trainer's score and keeps it out of manifests, identically on every
//     validator (replay_*.go).
//   - The compute market (compute_*.go) runs beside the round protocol on
//     its own host (NewComputeHost): a ComputeProvider publishes a signed
//     capacity record (gossip topic "capacity", DHT key CapacityKey, and on
//     request), answers attestation challenges and runs leased jobs; a
//     ComputeClient discovers and rates providers (attest.Book, counting its
//     own and the genesis validators' attestations), attests them over the
//     p2p request service, and returns a job's result only after verifying
//     it: GRAIL for generation, bit-exact replay of randomly chosen steps
//     for training. A node built WithComputeAttestation (validators) attests
//     the providers it finds periodically. See docs/compute.md.
//
// See docs/network.md for the protocol in full and its measured costs.
package node
