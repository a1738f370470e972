package p2p

import (
	"bytes"
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
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

// TestGetRetriesCutStream: a provider that resets the first request stream
// (as one out of stream slots does) is asked once more and serves the blob;
// one that resets every stream is given up after the second try.
func TestGetRetriesCutStream(t *testing.T) {
	for _, tc := range []struct {
		name   string
		resets int32
		wantOK bool
	}{{"first stream reset", 1, true}, {"every stream reset", 1 << 30, false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			a := newTestNode(t, testConfig(t))
			b := newTestNode(t, testConfig(t))
			connect(ctx, t, b, a)
			data := randomBytes(t, 1<<16)
			c, err := a.Put(ctx, data)
			if err != nil {
				t.Fatal(err)
			}
			var streams atomic.Int32
			a.host.SetStreamHandler(a.cfg.NetworkID.BlobProtocol(), func(s network.Stream) {
				if streams.Add(1) <= tc.resets {
					_ = s.Reset()
					return
				}
				a.handleBlob(s)
			})
			got, err := b.Get(ctx, c, FromPeers(a.ID()))
			if tc.wantOK {
				if err != nil {
					t.Fatalf("after one reset: %v", err)
				}
				if !bytes.Equal(got, data) {
					t.Fatal("fetched bytes differ")
				}
				if n := streams.Load(); n != 2 {
					t.Fatalf("%d streams opened, want 2", n)
				}
				return
			}
			if err == nil {
				t.Fatal("a provider that resets every stream served the blob")
			}
			if n := streams.Load(); n != 2 {
				t.Fatalf("%d streams opened to a provider that resets them all, want 2 (one retry)", n)
			}
		})
	}
}
