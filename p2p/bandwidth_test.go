package p2p

import (
	"context"
	"testing"
	"time"
)

// TestTraffic checks that gossip and blob bytes show up in the traffic
// counters of both ends, in their classes and in the totals.
func TestTraffic(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newTestNode(t, testConfig(t))
	b := newTestNode(t, testConfig(t))
	connect(ctx, t, b, a)
	for _, n := range []*Node{a, b} {
		s, err := n.Subscribe(TopicScore)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Cancel()
	}
	sub, err := b.Subscribe(TopicManifest)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	waitFor(ctx, t, "topic peers", func() bool { return len(a.TopicPeers(TopicManifest)) > 0 })

	const gossip, blob = 20 << 10, 512 << 10
	a0, b0 := a.Traffic(), b.Traffic()
	if err := a.Publish(ctx, TopicManifest, 1, randomBytes(t, gossip)); err != nil {
		t.Fatal(err)
	}
	if _, err := sub.Next(ctx); err != nil {
		t.Fatal(err)
	}
	c, err := a.Put(ctx, randomBytes(t, blob))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, c, FromPeers(a.ID())); err != nil {
		t.Fatal(err)
	}
	a1, b1 := a.Traffic(), b.Traffic()
	for _, x := range []struct {
		what      string
		got, want int64
	}{
		{"gossip out (sender)", a1.GossipOut - a0.GossipOut, gossip},
		{"gossip in (receiver)", b1.GossipIn - b0.GossipIn, gossip},
		{"blob out (server)", a1.BlobOut - a0.BlobOut, blob},
		{"blob in (fetcher)", b1.BlobIn - b0.BlobIn, blob},
		{"all out (sender)", a1.Out - a0.Out, gossip + blob},
		{"all in (receiver)", b1.In - b0.In, gossip + blob},
	} {
		// Envelopes, framing and protocol messages add some, never much.
		if x.got < x.want || x.got > 2*x.want+64<<10 {
			t.Errorf("%s: %d bytes, want %d plus overhead", x.what, x.got, x.want)
		}
	}
	if s := b1.GossipIn + b1.BlobIn + b1.DHTIn; s > b1.In {
		t.Errorf("classes add up to %d, more than the total %d", s, b1.In)
	}
}
