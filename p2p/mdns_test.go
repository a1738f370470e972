package p2p

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
)

// TestMDNSDiscovery: two nodes with mDNS on and no bootstrap peers find
// each other on the LAN. Skipped where no interface carries multicast.
func TestMDNSDiscovery(t *testing.T) {
	if !haveMulticast() {
		t.Skip("no up, non-loopback interface with multicast: mDNS cannot run here")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	mk := func() *Node {
		c := testConfig(t)
		c.ListenAddrs = []string{"/ip4/0.0.0.0/tcp/0"}
		c.MDNS = true
		return newTestNode(t, c)
	}
	a, b := mk(), mk()
	waitFor(ctx, t, "mDNS discovery", func() bool {
		return a.Connectedness(b.ID()) == network.Connected
	})
}

func haveMulticast() bool {
	ifs, err := net.Interfaces()
	if err != nil {
		return false
	}
	for _, i := range ifs {
		if i.Flags&net.FlagUp != 0 && i.Flags&net.FlagMulticast != 0 && i.Flags&net.FlagLoopback == 0 {
			return true
		}
	}
	return false
}
