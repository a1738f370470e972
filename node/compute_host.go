package node

import (
	"context"
	"crypto/ed25519"
	"log/slog"
	"slices"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/trinity-net/trinity/p2p"
)

// ComputeHostConfig is the network side of a compute provider or client.
type ComputeHostConfig struct {
	Genesis     *Genesis
	DataDir     string   // identity.key and blobs/
	ListenAddrs []string // default: TCP and QUIC on port 4001
	Bootstrap   []string // default: the genesis's
	MDNS        bool
	DHTMode     p2p.DHTMode
	Key         crypto.PrivKey // default: DataDir/identity.key
}

// NewComputeHost starts a p2p node for the compute market of a network:
// the genesis's network ID, TopicCapacity joined. It returns the node and
// its identity as an Ed25519 key (for records, attestations and proofs).
func NewComputeHost(ctx context.Context, c ComputeHostConfig, log *slog.Logger) (*p2p.Node, ed25519.PrivateKey, error) {
	id, err := c.Genesis.ID()
	if err != nil {
		return nil, nil, err
	}
	key := c.Key
	if key == nil {
		if key, err = p2p.LoadOrCreateIdentity(c.DataDir); err != nil {
			return nil, nil, err
		}
	}
	priv, err := ed25519Key(key)
	if err != nil {
		return nil, nil, err
	}
	pc := p2p.Config{NetworkID: id, DataDir: c.DataDir, ListenAddrs: c.ListenAddrs, Bootstrap: c.Bootstrap,
		MDNS: c.MDNS, DHTMode: c.DHTMode, ExtraTopics: []p2p.Topic{TopicCapacity}}
	if pc.Bootstrap == nil {
		pc.Bootstrap = slices.Clone(c.Genesis.Bootstrap)
	}
	n, err := p2p.New(ctx, pc, p2p.WithLogger(log), p2p.WithIdentity(key))
	if err != nil {
		return nil, nil, err
	}
	return n, priv, nil
}
