package p2p

import (
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// ConnInfo is how this node is connected to a peer, for status pages.
type ConnInfo struct {
	Peer      peer.ID
	Relayed   bool          // every open connection goes through a relay (/p2p-circuit)
	Upgraded  bool          // a direct connection is open beside a relayed one: a hole punch (DCUtR) made it
	Transport string        // "tcp", "quic-v1", ...; of the first direct connection, else "relay"
	Latency   time.Duration // the peerstore's moving average; 0 when not measured yet
	Relay     bool          // the peer offers the relay service
}

// Conns describes the connected peers, ordered by peer ID.
func (n *Node) Conns() []ConnInfo {
	h := n.host
	ps := h.Network().Peers()
	slices.Sort(ps)
	out := make([]ConnInfo, 0, len(ps))
	for _, p := range ps {
		ci := ConnInfo{Peer: p, Relayed: true, Transport: "relay", Latency: h.Peerstore().LatencyEWMA(p)}
		anyRelayed := false
		for _, c := range h.Network().ConnsToPeer(p) {
			switch {
			case isRelayed(c):
				anyRelayed = true
			case ci.Relayed:
				ci.Relayed, ci.Transport = false, transportOf(c.RemoteMultiaddr())
			}
		}
		ci.Upgraded = !ci.Relayed && anyRelayed
		if ok, _ := h.Peerstore().SupportsProtocols(p, relayHopProtocol); len(ok) > 0 {
			ci.Relay = true
		}
		out = append(out, ci)
	}
	return out
}

func isRelayed(c network.Conn) bool {
	if c.Stat().Limited {
		return true
	}
	_, err := c.RemoteMultiaddr().ValueForProtocol(ma.P_CIRCUIT)
	return err == nil
}

// transportOf names the transport of a direct multiaddr (its last protocol
// among the known transports).
func transportOf(a ma.Multiaddr) string {
	name := "unknown"
	for _, p := range a.Protocols() {
		switch p.Code {
		case ma.P_TCP, ma.P_QUIC_V1, ma.P_WEBTRANSPORT, ma.P_WEBRTC_DIRECT, ma.P_WS, ma.P_WSS:
			name = p.Name
		}
	}
	return name
}
