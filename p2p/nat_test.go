package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	ma "github.com/multiformats/go-multiaddr"
)

// Hole punching needs every outbound connection to leave from the
// listening port: the address a peer observes for us is only of use if
// dialing it reaches that port. A connection dialed before the host
// listened (the DHT used to dial its bootstrap peers from inside
// libp2p.New) leaves from a fresh port and stays for the node's life. Only
// connections to the bootstrap node are checked: two other nodes may dial
// each other at once, and a TCP dial whose address pair the other's
// connection already holds goes out from a fresh port by design.
func TestDialsLeaveFromListenPort(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	nodes := newCluster(t, 4, nil)
	waitFor(ctx, t, "every node connected to the bootstrap node", func() bool {
		for _, n := range nodes[1:] {
			if n.Connectedness(nodes[0].ID()) != network.Connected {
				return false
			}
		}
		return true
	})
	for i, n := range nodes {
		listen := map[int]string{}
		for _, a := range n.host.Network().ListenAddresses() {
			if p, proto := portOf(a); p != "" {
				listen[proto] = p
			}
		}
		for _, c := range n.host.Network().ConnsToPeer(nodes[0].ID()) {
			if c.Stat().Direction != network.DirOutbound {
				continue
			}
			p, proto := portOf(c.LocalMultiaddr())
			if p == "" {
				continue
			}
			if p != listen[proto] {
				t.Errorf("node %d dialed %s from %s, not from its listening port %s", i, c.RemoteMultiaddr(), c.LocalMultiaddr(), listen[proto])
			}
		}
	}
}

// portOf returns a TCP or UDP multiaddr's port and protocol code.
func portOf(a ma.Multiaddr) (string, int) {
	for _, proto := range []int{ma.P_TCP, ma.P_UDP} {
		if p, err := a.ValueForProtocol(proto); err == nil {
			return p, proto
		}
	}
	return "", 0
}
