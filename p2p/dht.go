package p2p

import (
	"context"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	dht "github.com/libp2p/go-libp2p-kad-dht"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Provide timing. Provider records live 48 h in kad-dht; blobs matter for a
// few rounds, so a daily reprovide is ample.
const (
	provideRetryEvery = 2 * time.Second
	reprovideEvery    = 22 * time.Hour
	provideTimeout    = time.Minute
)

// newDHT builds the network's private Kademlia DHT: its own protocol prefix,
// only the configured bootstrap peers (never the public IPFS ones), no value
// records (trinity stores only provider records).
func (n *Node) newDHT(h host.Host) (*dht.IpfsDHT, error) {
	mode := dht.ModeAutoServer
	switch n.cfg.DHTMode {
	case DHTServer:
		mode = dht.ModeServer
	case DHTClient:
		mode = dht.ModeClient
	}
	d, err := dht.New(h,
		dht.Mode(mode),
		dht.ProtocolPrefix(n.cfg.NetworkID.protocolPrefix()),
		dht.DisableValues(),
		dht.BootstrapPeersFunc(n.dhtBootstrapPeers),
	)
	if err != nil {
		return nil, fmt.Errorf("p2p: starting DHT: %w", err)
	}
	return d, nil
}

// dhtBootstrapPeers gives the DHT the bootstrap peers once the host
// listens, and none before. libp2p.New builds the DHT before the swarm
// listens, and the DHT dials its bootstrap peers at once: such a dial finds
// no listening socket to reuse and leaves from a fresh port, and the
// connection, kept for the node's life, shows the remote peer an address
// behind our NAT that nobody can punch a hole to (see docs/network.md, NAT
// traversal). startDiscovery dials them once the host listens.
func (n *Node) dhtBootstrapPeers() []peer.AddrInfo {
	if !n.listening.Load() {
		return nil
	}
	return n.bootstrap
}

// provide announces c on the DHT. With an empty routing table there is
// nobody to tell: c is queued for the provide loop instead.
func (n *Node) provide(ctx context.Context, c cid.Cid) error {
	if n.dht.RoutingTable().Size() == 0 {
		n.provMu.Lock()
		n.unprovided[c] = true
		n.provMu.Unlock()
		return nil
	}
	if err := n.dht.Provide(ctx, c, true); err != nil {
		n.provMu.Lock()
		n.unprovided[c] = true
		n.provMu.Unlock()
		return fmt.Errorf("p2p: providing %s: %w", c, err)
	}
	return nil
}

// provideAsync provides c in the background, bounded by the node's life.
func (n *Node) provideAsync(c cid.Cid) {
	n.spawn(func() {
		ctx, cancel := context.WithTimeout(n.ctx, provideTimeout)
		defer cancel()
		if err := n.provide(ctx, c); err != nil && n.ctx.Err() == nil {
			n.log.Debug("providing fetched blob", "cid", c, "err", err)
		}
	})
}

// provideLoop retries blobs that could not be provided and reprovides every
// stored blob once a day.
func (n *Node) provideLoop() {
	retry := time.NewTicker(provideRetryEvery)
	defer retry.Stop()
	re := time.NewTicker(reprovideEvery)
	defer re.Stop()
	for {
		var todo []cid.Cid
		select {
		case <-n.ctx.Done():
			return
		case <-retry.C:
			if n.dht.RoutingTable().Size() == 0 {
				continue
			}
			n.provMu.Lock()
			for c := range n.unprovided {
				todo = append(todo, c)
			}
			clear(n.unprovided)
			n.provMu.Unlock()
		case <-re.C:
			for _, i := range n.store.List() {
				todo = append(todo, i.CID)
			}
		}
		for _, c := range todo {
			if !n.store.Has(c) {
				continue
			}
			ctx, cancel := context.WithTimeout(n.ctx, provideTimeout)
			err := n.provide(ctx, c)
			cancel()
			if n.ctx.Err() != nil {
				return
			}
			if err != nil {
				n.log.Debug("reproviding", "cid", c, "err", err)
			}
		}
	}
}

// spawn runs f on a goroutine that Close waits for; after Close it does
// nothing.
func (n *Node) spawn(f func()) {
	n.goMu.Lock()
	defer n.goMu.Unlock()
	if n.closed {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}
