package p2p

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/discovery/mdns"
)

const (
	dialTimeout        = 15 * time.Second
	rebootstrapEvery   = 30 * time.Second
	maxMDNSDialsAtOnce = 8
)

// startDiscovery connects to the bootstrap peers and keeps the node
// connected: whenever it has no peers left it dials them again. It also
// starts mDNS when configured.
func (n *Node) startDiscovery(_ context.Context) error {
	if n.cfg.MDNS {
		svc := mdns.NewMdnsService(n.host, n.cfg.NetworkID.mdnsService(), &mdnsNotifee{n: n, sem: make(chan struct{}, maxMDNSDialsAtOnce)})
		if err := svc.Start(); err != nil {
			return fmt.Errorf("p2p: starting mDNS: %w", err)
		}
		n.mdns = svc
	}
	n.spawn(n.bootstrapLoop)
	return nil
}

func (n *Node) bootstrapLoop() {
	n.connectBootstrap()
	t := time.NewTicker(rebootstrapEvery)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
			if len(n.host.Network().Peers()) == 0 {
				n.connectBootstrap()
			}
		}
	}
}

// connectBootstrap dials every bootstrap peer at once, then refreshes the
// DHT's routing table through them.
func (n *Node) connectBootstrap() {
	if len(n.bootstrap) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, ai := range n.bootstrap {
		if ai.ID == n.host.ID() {
			continue
		}
		wg.Add(1)
		go func(ai peer.AddrInfo) {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
			defer cancel()
			if err := n.host.Connect(ctx, ai); err != nil && n.ctx.Err() == nil {
				n.log.Info("bootstrap peer unreachable", "bootstrap", ai.ID, "err", err)
			}
		}(ai)
	}
	wg.Wait()
	if n.ctx.Err() == nil {
		if err := n.dht.Bootstrap(n.ctx); err != nil {
			n.log.Debug("DHT bootstrap", "err", err)
		}
	}
}

// mdnsNotifee dials peers found on the LAN, a bounded number at a time.
type mdnsNotifee struct {
	n   *Node
	sem chan struct{}
}

func (m *mdnsNotifee) HandlePeerFound(ai peer.AddrInfo) {
	n := m.n
	if ai.ID == n.host.ID() || len(n.host.Network().ConnsToPeer(ai.ID)) > 0 {
		return
	}
	select {
	case m.sem <- struct{}{}:
	default:
		return // a burst of announcements; the next one will retry
	}
	n.spawn(func() {
		defer func() { <-m.sem }()
		ctx, cancel := context.WithTimeout(n.ctx, dialTimeout)
		defer cancel()
		if err := n.host.Connect(ctx, ai); err != nil && n.ctx.Err() == nil {
			n.log.Debug("mDNS peer unreachable", "found", ai.ID, "err", err)
		}
	})
}
