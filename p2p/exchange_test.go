package p2p

import (
	"bytes"
	"context"
	"testing"
	"time"
)

func TestGetFromHintedPeer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	a := newTestNode(t, testConfig(t))
	b := newTestNode(t, testConfig(t))
	connect(ctx, t, b, a)
	data := randomBytes(t, 1<<20)
	c, err := a.Put(ctx, data, WithRound(3))
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, c, FromPeers(a.ID()), WithRound(3))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("fetched bytes differ")
	}
	if !b.Has(c) {
		t.Fatal("fetched blob not stored")
	}
	if info, _ := b.Store().Stat(c); !info.HasRound || info.Round != 3 {
		t.Fatalf("round tag not kept: %+v", info)
	}
}
