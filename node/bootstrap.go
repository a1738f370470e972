package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
)

// BootstrapConfig configures a bootstrap and relay node: a p2p peer that
// serves the DHT, relays for peers behind NAT and helps gossip meshes form.
// It holds no model.
type BootstrapConfig struct {
	Genesis     *Genesis
	DataDir     string
	ListenAddrs []string
	Key         crypto.PrivKey // nil: DataDir/identity.key
	Logger      *slog.Logger
}

// Bootstrap is a running bootstrap node.
type Bootstrap struct {
	p2p   *p2p.Node
	netID p2p.NetworkID
	gen   *Genesis
}

// NewBootstrap starts a bootstrap node.
func NewBootstrap(ctx context.Context, cfg BootstrapConfig) (*Bootstrap, error) {
	if cfg.Genesis == nil {
		return nil, fmt.Errorf("node: bootstrap needs the genesis (for the network ID)")
	}
	if err := cfg.Genesis.Validate(); err != nil {
		return nil, err
	}
	id, err := cfg.Genesis.ID()
	if err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	key := cfg.Key
	if key == nil {
		if key, err = p2p.LoadOrCreateIdentity(cfg.DataDir); err != nil {
			return nil, err
		}
	}
	self, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("node: bootstrap identity: %w", err)
	}
	// The genesis lists this node among the bootstrap peers; it dials the
	// others only.
	var others []string
	for _, a := range cfg.Genesis.Bootstrap {
		if !strings.HasSuffix(a, "/p2p/"+self.String()) {
			others = append(others, a)
		}
	}
	n, err := p2p.New(ctx, p2p.Config{NetworkID: id, DataDir: cfg.DataDir, ListenAddrs: cfg.ListenAddrs,
		Bootstrap: others, DHTMode: p2p.DHTServer, RelayService: true}, p2p.WithLogger(log), p2p.WithIdentity(key))
	if err != nil {
		return nil, err
	}
	return &Bootstrap{p2p: n, netID: id, gen: cfg.Genesis}, nil
}

// P2P is the underlying node.
func (b *Bootstrap) P2P() *p2p.Node { return b.p2p }

// Status reports the bootstrap node's peers.
func (b *Bootstrap) Status() Status {
	s := bootstrapStatus(b.p2p, b.netID, b.gen)
	s.Traffic = b.p2p.Traffic()
	s.BytesIn, s.BytesOut = s.Traffic.In, s.Traffic.Out
	return s
}

// Close stops the node.
func (b *Bootstrap) Close() error { return b.p2p.Close() }
