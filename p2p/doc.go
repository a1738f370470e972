// Package p2p is trinity's network layer on libp2p. It moves signed
// messages and content-addressed blobs between peers and knows nothing of
// models, rounds or scores beyond the opaque bytes it is handed.
//
// Contract:
//   - A Node is built by New(ctx, Config, ...Option) and released by Close,
//     after which none of its goroutines remain.
//   - Every gossip message is an Envelope {version, network ID, topic, round,
//     sender, timestamp, payload, signature} signed with the node's Ed25519
//     identity. Before a message is delivered or forwarded, its size, encoding,
//     network ID, topic, sender, signature, round window and timestamp are
//     checked, then any validator the consumer registered for the topic.
//     Peers that send invalid messages lose gossipsub score and are graylisted.
//   - Blobs are keyed by CIDv1 (raw codec, sha2-256). Put stores a blob on disk
//     atomically and provides it on the network's private DHT; Get returns
//     bytes only after their hash matches the CID, whichever peer served them.
//   - Connections: TCP and QUIC, TLS preferred to Noise. A QUIC connection
//     silent for 10 s is dropped (keep-alives every 5 s). When a peer
//     connects while an older direct connection to it is open, both are
//     pinged; if the new one answers and the old one does not (the peer was
//     killed and restarted), all connections to the peer are closed and it
//     is redialed once gossipsub has let it go, so that its subscriptions
//     are learnt again.
//   - Behind NAT: AutoNAT reports reachability, circuit relay v2 reaches a
//     private peer, DCUtR upgrades a relayed connection to a direct one
//     (TestNATHolePunch, build tag netns).
//   - Request/response (HandleRequests, Request): one length-prefixed request
//     and one response per stream on /trinity/<network>/req/<name>/1.0.0,
//     bounded on both sides (request and response sizes, a deadline covering
//     the whole exchange, concurrent requests per protocol and per peer); a peer's refusal
//     comes back as a *RemoteError, anything malformed as an error.
//   - Well-known keys (ProvideKey, FindKeyProviders): a key names the set of
//     peers that provide it on the DHT (provider records expire; callers
//     re-announce); what each offers is asked of the peer itself.
//   - Networks are isolated by the network ID: protocol IDs, gossip topics and
//     the DHT protocol prefix all carry it, and no public IPFS peers are used.
package p2p
