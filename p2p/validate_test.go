package p2p

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestCheckMessage covers every verdict of the envelope checks without a
// network.
func TestCheckMessage(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	n := newTestNode(t, testConfig(t), WithRoundWindow(func() (uint64, uint64) { return 10, 12 }))
	n.now = func() time.Time { return now }
	if err := n.RegisterValidator(TopicScore, func(_ context.Context, _ peer.ID, e *Envelope) error {
		switch string(e.Payload) {
		case "dup":
			return ErrIgnore
		case "bad":
			return errors.New("score out of range")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	key, _, _ := crypto.GenerateEd25519Key(nil)
	author, _ := peer.IDFromPrivateKey(key)
	mk := func(f func(e *Envelope)) []byte {
		e := &Envelope{Version: 1, Network: testNetID(), Topic: TopicScore, Round: 11, Timestamp: now.UnixNano(), Payload: []byte("ok")}
		f(e)
		if err := e.Sign(key); err != nil {
			t.Fatal(err)
		}
		b, err := e.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	id := func(*Envelope) {}
	corrupt := func(b []byte) []byte { b[len(b)-1] ^= 1; return b }
	otherKey, _, _ := crypto.GenerateEd25519Key(nil)
	otherID, _ := peer.IDFromPrivateKey(otherKey)
	accept, ignore, reject := pubsub.ValidationAccept, pubsub.ValidationIgnore, pubsub.ValidationReject
	cases := []struct {
		name   string
		data   []byte
		author peer.ID
		want   pubsub.ValidationResult
	}{
		{"valid", mk(id), author, accept},
		{"garbage", []byte("garbage"), author, reject},
		{"oversize", make([]byte, n.cfg.MaxMessageSize+1), author, reject},
		{"bad signature", corrupt(mk(id)), author, reject},
		{"other network", mk(func(e *Envelope) { e.Network[0] ^= 1 }), author, reject},
		{"other topic", mk(func(e *Envelope) { e.Topic = TopicGradient }), author, reject},
		{"sender is not the author", mk(id), otherID, reject},
		{"round below window", mk(func(e *Envelope) { e.Round = 9 }), author, ignore},
		{"round above window", mk(func(e *Envelope) { e.Round = 13 }), author, ignore},
		{"stamped in the future", mk(func(e *Envelope) { e.Timestamp = now.Add(time.Hour).UnixNano() }), author, ignore},
		{"stale", mk(func(e *Envelope) { e.Timestamp = now.Add(-2 * time.Hour).UnixNano() }), author, ignore},
		{"consumer ignores", mk(func(e *Envelope) { e.Payload = []byte("dup") }), author, ignore},
		{"consumer rejects", mk(func(e *Envelope) { e.Payload = []byte("bad") }), author, reject},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			env, got, err := n.checkMessage(context.Background(), TopicScore, tc.author, tc.data)
			if got != tc.want {
				t.Fatalf("verdict %s (%v), want %s", verdictName(got), err, verdictName(tc.want))
			}
			if (got == accept) != (env != nil) {
				t.Fatalf("envelope %v with verdict %s", env, verdictName(got))
			}
		})
	}
	if err := n.RegisterValidator("no-such-topic", nil); err == nil {
		t.Fatal("validator for an unknown topic accepted")
	}
}

// TestInvalidGossipIsDroppedAndPenalised: a raw gossipsub peer speaking
// our protocol publishes forged and malformed messages. None reach a
// subscriber, honest traffic still flows, and the forger's score falls
// below the graylist threshold on the honest peers.
func TestInvalidGossipIsDroppedAndPenalised(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	nodes := make([]*Node, 3)
	for i := range nodes {
		nodes[i] = newTestNode(t, testConfig(t), WithScoreInspectPeriod(100*time.Millisecond))
	}
	connect(ctx, t, nodes[1], nodes[0])
	connect(ctx, t, nodes[2], nodes[0])
	connect(ctx, t, nodes[2], nodes[1])

	advKey, _, _ := crypto.GenerateEd25519Key(nil)
	advHost, err := libp2p.New(libp2p.Identity(advKey), libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableMetrics())
	if err != nil {
		t.Fatal(err)
	}
	defer advHost.Close()
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	advPS, err := pubsub.NewGossipSub(pctx, advHost, append(gossipOptions(testNetID(), BuiltinTopics(), 1<<20), pubsub.WithFloodPublish(true))...)
	if err != nil {
		t.Fatal(err)
	}
	advTopic, err := advPS.Join(testNetID().topicName(TopicScore))
	if err != nil {
		t.Fatal(err)
	}
	defer advTopic.Close()
	advSub, err := advTopic.Subscribe() // be a full topic member, so we are meshed
	if err != nil {
		t.Fatal(err)
	}
	defer advSub.Cancel()
	for _, n := range nodes {
		if err := advHost.Connect(ctx, peer.AddrInfo{ID: n.ID(), Addrs: n.host.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	subs := make([]*Subscription, len(nodes))
	for i, n := range nodes {
		if subs[i], err = n.Subscribe(TopicScore); err != nil {
			t.Fatal(err)
		}
		defer subs[i].Cancel()
	}
	waitFor(ctx, t, "adversary in topic", func() bool {
		for _, n := range nodes {
			found := false
			for _, p := range n.TopicPeers(TopicScore) {
				found = found || p == advHost.ID()
			}
			if !found {
				return false
			}
		}
		return len(advTopic.ListPeers()) == len(nodes)
	})

	otherKey, _, _ := crypto.GenerateEd25519Key(nil)
	sign := func(k crypto.PrivKey, f func(*Envelope)) []byte {
		e := &Envelope{Version: 1, Network: testNetID(), Topic: TopicScore, Round: 1, Timestamp: time.Now().UnixNano(), Payload: []byte("forged")}
		f(e)
		if err := e.Sign(k); err != nil {
			t.Fatal(err)
		}
		b, _ := e.MarshalBinary()
		return b
	}
	invalid := [][]byte{
		[]byte("not an envelope"),
		sign(advKey, func(e *Envelope) { e.Network[0] ^= 1 }),
		sign(otherKey, func(*Envelope) {}), // signed by someone else
		sign(advKey, func(e *Envelope) { e.Topic = TopicGradient }),
		func() []byte { b := sign(advKey, func(*Envelope) {}); b[len(b)-1] ^= 1; return b }(),
		[]byte{1, 2, 3},
	}
	// The adversary floods every topic peer (as an attacker would; meshes
	// prune it after the first strike) until every honest peer has judged it.
	next := 0
	waitFor(ctx, t, "adversary graylisted everywhere", func() bool {
		if err := advTopic.Publish(ctx, invalid[next%len(invalid)]); err != nil {
			t.Fatal(err)
		}
		next++
		for _, n := range nodes {
			if s, ok := n.PeerScore(advHost.ID()); !ok || s >= graylistThreshold {
				return false
			}
		}
		return true
	})
	// Honest traffic still flows, and it is the first thing each subscriber
	// sees: none of the invalid messages got through.
	if err := nodes[0].Publish(ctx, TopicScore, 1, []byte("honest")); err != nil {
		t.Fatal(err)
	}
	for i, s := range subs {
		m, err := s.Next(ctx)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if m.Envelope.Sender != nodes[0].ID() || string(m.Envelope.Payload) != "honest" {
			t.Fatalf("node %d received %q from %s", i, m.Envelope.Payload, m.Envelope.Sender)
		}
	}
	t.Logf("adversary sent %d invalid messages", next)
	for _, n := range nodes {
		s, _ := n.PeerScore(advHost.ID())
		t.Logf("%s scores adversary %.1f (graylist below %d)", n.ID().ShortString(), s, graylistThreshold)
	}
}
