package p2p

import (
	"context"
	"fmt"
	"sync/atomic"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Reachability is the node's reachability as AutoNAT observes it.
type Reachability int32

const (
	ReachabilityUnknown Reachability = iota
	ReachabilityPublic
	ReachabilityPrivate
)

func (r Reachability) String() string {
	switch r {
	case ReachabilityPublic:
		return "public"
	case ReachabilityPrivate:
		return "private"
	}
	return "unknown"
}

// relayHopProtocol is circuit relay v2's server protocol.
const relayHopProtocol = "/libp2p/circuit/relay/0.2.0/hop"

// natOptions: AutoNAT service for others, hole punching (DCUtR), relay v2
// client with static relays or relays found among connected peers, and the
// relay service on nodes that offer it.
func (n *Node) natOptions() []libp2p.Option {
	opts := []libp2p.Option{libp2p.EnableHolePunching(), libp2p.EnableRelay()}
	if n.cfg.ForceReachability != ReachabilityPrivate {
		// A node that declares itself private cannot dial back for others;
		// go-libp2p would also build the dial-back swarm and never close it.
		opts = append(opts, libp2p.EnableNATService())
	}
	if n.cfg.NATPortMap {
		opts = append(opts, libp2p.NATPortMap())
	}
	if n.cfg.RelayService {
		opts = append(opts, libp2p.EnableRelayService())
	}
	switch n.cfg.ForceReachability {
	case ReachabilityPublic:
		opts = append(opts, libp2p.ForceReachabilityPublic())
	case ReachabilityPrivate:
		opts = append(opts, libp2p.ForceReachabilityPrivate())
	}
	if len(n.staticRelay) > 0 {
		opts = append(opts, libp2p.EnableAutoRelayWithStaticRelays(n.staticRelay))
	} else {
		opts = append(opts, libp2p.EnableAutoRelayWithPeerSource(n.relayCandidates))
	}
	return opts
}

// relayHost is set once the host exists; autorelay may ask for candidates
// from its own goroutine before New has stored n.host.
type relayHost = atomic.Pointer[host.Host]

// relayCandidates offers connected peers that speak the relay hop protocol.
func (n *Node) relayCandidates(ctx context.Context, num int) <-chan peer.AddrInfo {
	out := make(chan peer.AddrInfo, num)
	defer close(out)
	hp := n.hostRef.Load()
	if hp == nil {
		return out
	}
	h := *hp
	for _, p := range h.Network().Peers() {
		if len(out) == num || ctx.Err() != nil {
			break
		}
		if ok, _ := h.Peerstore().SupportsProtocols(p, relayHopProtocol); len(ok) == 0 {
			continue
		}
		out <- peer.AddrInfo{ID: p, Addrs: h.Peerstore().Addrs(p)}
	}
	return out
}

// watchReachability follows AutoNAT's verdicts.
func (n *Node) watchReachability() error {
	h := n.host
	n.hostRef.Store(&h)
	n.reach.Store(int32(n.cfg.ForceReachability))
	sub, err := n.host.EventBus().Subscribe(new(event.EvtLocalReachabilityChanged))
	if err != nil {
		return fmt.Errorf("p2p: subscribing to reachability events: %w", err)
	}
	n.spawn(func() {
		defer sub.Close()
		for {
			select {
			case <-n.ctx.Done():
				return
			case ev, ok := <-sub.Out():
				if !ok {
					return
				}
				r := ReachabilityUnknown
				switch ev.(event.EvtLocalReachabilityChanged).Reachability {
				case network.ReachabilityPublic:
					r = ReachabilityPublic
				case network.ReachabilityPrivate:
					r = ReachabilityPrivate
				}
				if old := Reachability(n.reach.Swap(int32(r))); old != r {
					n.log.Info("reachability changed", "from", old, "to", r)
				}
			}
		}
	})
	return nil
}

// Reachability returns the node's reachability as last observed.
func (n *Node) Reachability() Reachability { return Reachability(n.reach.Load()) }
