package p2p

import (
	"context"
	"testing"
	"time"

	ma "github.com/multiformats/go-multiaddr"
)

// TestConnsDirect: two directly connected nodes list each other as direct,
// over the transport they dialled, and a relay node is marked as one.
func TestConnsDirect(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rc := testConfig(t)
	rc.RelayService = true
	rc.ForceReachability = ReachabilityPublic
	relay := newTestNode(t, rc)
	a := newTestNode(t, testConfig(t))
	connect(ctx, t, a, relay)
	waitFor(ctx, t, "the relay's protocols", func() bool {
		cs := a.Conns()
		return len(cs) == 1 && cs[0].Relay
	})
	cs := a.Conns()
	if c := cs[0]; c.Peer != relay.ID() || c.Relayed || (c.Transport != "tcp" && c.Transport != "quic-v1") {
		t.Fatalf("conns %+v: want the relay, direct, over tcp or quic-v1", cs)
	}
	if cs := relay.Conns(); len(cs) != 1 || cs[0].Peer != a.ID() || cs[0].Relay {
		t.Fatalf("relay's conns %+v: want a, not a relay", cs)
	}
}

func TestTransportOf(t *testing.T) {
	for addr, want := range map[string]string{
		"/ip4/1.2.3.4/tcp/4001":                  "tcp",
		"/ip4/1.2.3.4/udp/4001/quic-v1":          "quic-v1",
		"/ip6/::1/udp/4001/quic-v1/webtransport": "webtransport",
		"/dns4/example.com/tcp/443/wss":          "wss",
		"/ip4/1.2.3.4/udp/4001/webrtc-direct":    "webrtc-direct",
		"/ip4/1.2.3.4":                           "unknown",
	} {
		m, err := ma.NewMultiaddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := transportOf(m); got != want {
			t.Errorf("transportOf(%s) = %q, want %q", addr, got, want)
		}
	}
}
