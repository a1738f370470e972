package p2p

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	dht "github.com/libp2p/go-libp2p-kad-dht"
	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/net/swarm"
	ma "github.com/multiformats/go-multiaddr"
)

// TestClusterGossipAndDHTFetch runs 8 real hosts on loopback TCP: every
// topic is published and received everywhere, and a 10 MB blob put on one
// peer is found through the DHT and fetched by a peer (a DHT client) not
// connected to it.
func TestClusterGossipAndDHTFetch(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const k = 8
	// The fetcher is a DHT client, as a home peer behind NAT would be.
	nodes := newCluster(t, k, func(i int, c *Config) {
		if i == k-1 {
			c.DHTMode = DHTClient
		}
	})
	waitRouting(ctx, t, nodes, 2)
	if m := nodes[k-1].dht.Mode(); m != dht.ModeClient {
		t.Fatalf("fetcher DHT mode %v, want client", m)
	}

	subs := make([]map[Topic]*Subscription, k)
	for i, n := range nodes {
		subs[i] = map[Topic]*Subscription{}
		for _, tp := range BuiltinTopics() {
			s, err := n.Subscribe(tp)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Cancel()
			subs[i][tp] = s
		}
	}
	waitFor(ctx, t, "topic peers", func() bool {
		for _, n := range nodes {
			for _, tp := range BuiltinTopics() {
				if len(n.TopicPeers(tp)) == 0 {
					return false
				}
			}
		}
		return true
	})
	// Knowing a topic peer is not being in its mesh: meshes take in new
	// subscribers at the next heartbeat. A message that arrives before then
	// goes only to the mesh so far, and gossip (IHAVE) skips the peers the
	// heartbeat has just grafted, so such a peer would never get it. Real
	// rounds publish long after the meshes formed; the test waits for them.
	time.Sleep(2 * pubsub.GossipSubHeartbeatInterval)
	for j, tp := range BuiltinTopics() {
		pub := nodes[1+j]
		if err := pub.Publish(ctx, tp, uint64(100+j), []byte("payload of "+string(tp))); err != nil {
			t.Fatal(err)
		}
	}
	for i := range nodes {
		for j, tp := range BuiltinTopics() {
			m, err := subs[i][tp].Next(ctx)
			if err != nil {
				t.Fatalf("node %d topic %s: %v", i, tp, err)
			}
			e := m.Envelope
			if e.Sender != nodes[1+j].ID() || e.Round != uint64(100+j) || string(e.Payload) != "payload of "+string(tp) || e.Topic != tp {
				t.Fatalf("node %d topic %s: got %+v", i, tp, e)
			}
			if m.Local != (i == 1+j) {
				t.Fatalf("node %d topic %s: Local=%v", i, tp, m.Local)
			}
		}
	}

	data := randomBytes(t, 10<<20)
	holder, fetcher := nodes[1], nodes[k-1]
	c, err := holder.Put(ctx, data, WithRound(5))
	if err != nil {
		t.Fatal(err)
	}
	// Whatever links the DHT's own walks made, the fetcher must find the
	// holder through provider records, not an existing connection.
	_ = fetcher.host.Network().ClosePeer(holder.ID())
	if fetcher.Connectedness(holder.ID()) == network.Connected {
		t.Fatal("fetcher still connected to holder")
	}
	got, err := fetcher.Get(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, data) {
		t.Fatal("fetched bytes differ")
	}
	if !fetcher.Has(c) {
		t.Fatal("fetched blob not stored")
	}
}

// adversary is a blob-protocol behaviour that misleads the reader.
type adversary func(ctx context.Context, s network.Stream, q blobRequest, data []byte)

func writeHeader(s network.Stream, h responseHeader) { _, _ = s.Write(h.marshal()) }

func trickle(ctx context.Context, s network.Stream) {
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := s.Write([]byte{0}); err != nil {
				return
			}
		}
	}
}

// TestExchangeRejectsBadProviders: for every way a provider can lie or
// stall, the fetch from it fails with a bounded wait and Get falls back to
// an honest provider found on the DHT.
func TestExchangeRejectsBadProviders(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	nodes := newCluster(t, 4, func(i int, c *Config) {
		c.HeaderTimeout = 2 * time.Second
		c.MinFetchRate = 256 << 10
		c.MaxBlobSize = 1 << 20
		c.MaxStoreBytes = 64 << 20
	})
	honest, bad, fetcher := nodes[1], nodes[2], nodes[3]
	waitRouting(ctx, t, nodes, 2)

	data := randomBytes(t, 64<<10)
	c, err := honest.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	// The adversary holds and provides the blob too, so it is a provider
	// on the DHT as well as the hinted peer.
	if _, err := bad.Put(ctx, data); err != nil {
		t.Fatal(err)
	}
	bomb := func() []byte {
		return honest.zenc.EncodeAll(make([]byte, 4<<20), nil)
	}()

	cases := []struct {
		name string
		act  adversary
	}{
		{"wrong bytes", func(_ context.Context, s network.Stream, _ blobRequest, d []byte) {
			w := append([]byte(nil), d...)
			w[len(w)/2] ^= 0xff
			writeHeader(s, responseHeader{status: statusOK, size: uint64(len(w)), wireLen: uint64(len(w))})
			_, _ = s.Write(w)
		}},
		{"oversize announced", func(_ context.Context, s network.Stream, q blobRequest, _ []byte) {
			writeHeader(s, responseHeader{status: statusOK, size: q.maxSize + 1, wireLen: q.maxSize + 1})
			_, _ = s.Write(make([]byte, 64<<10))
		}},
		{"bytes past the body", func(_ context.Context, s network.Stream, _ blobRequest, d []byte) {
			writeHeader(s, responseHeader{status: statusOK, size: uint64(len(d)), wireLen: uint64(len(d))})
			_, _ = s.Write(d)
			_, _ = s.Write(make([]byte, 1<<20))
		}},
		{"truncated body", func(_ context.Context, s network.Stream, _ blobRequest, d []byte) {
			writeHeader(s, responseHeader{status: statusOK, size: uint64(len(d)), wireLen: uint64(len(d))})
			_, _ = s.Write(d[:len(d)/2])
		}},
		{"zstd bomb", func(_ context.Context, s network.Stream, _ blobRequest, d []byte) {
			writeHeader(s, responseHeader{status: statusOK, encoding: encodingZstd, size: uint64(len(d)), wireLen: uint64(len(bomb))})
			_, _ = s.Write(bomb)
		}},
		{"slow loris body", func(ctx context.Context, s network.Stream, _ blobRequest, d []byte) {
			writeHeader(s, responseHeader{status: statusOK, size: uint64(len(d)), wireLen: uint64(len(d))})
			trickle(ctx, s)
		}},
		{"slow loris header", func(ctx context.Context, s network.Stream, _ blobRequest, _ []byte) {
			trickle(ctx, s)
		}},
		{"silent", func(ctx context.Context, _ network.Stream, _ blobRequest, _ []byte) {
			<-ctx.Done()
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hctx, hcancel := context.WithCancel(ctx)
			defer hcancel()
			bad.host.SetStreamHandler(testNetID().BlobProtocol(), func(s network.Stream) {
				defer s.Close()
				q, err := readRequest(s)
				if err != nil {
					return
				}
				tc.act(hctx, s, q, data)
			})
			if _, err := fetcher.fetchFrom(ctx, bad.ID(), c, fetcher.cfg.MaxBlobSize); err == nil {
				t.Fatal("fetch from the adversary succeeded")
			} else {
				t.Logf("adversary cut off: %v", err)
			}
			got, err := fetcher.Get(ctx, c, FromPeers(bad.ID()))
			if err != nil {
				t.Fatalf("Get did not fall back to the honest provider: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("Get returned wrong bytes")
			}
			if err := fetcher.store.Delete(c); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestQUICTransfer moves a blob over QUIC only.
func TestQUICTransfer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	quicOnly := func() Config {
		c := testConfig(t)
		c.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
		return c
	}
	a, b := newTestNode(t, quicOnly()), newTestNode(t, quicOnly())
	connect(ctx, t, b, a)
	for _, conn := range b.host.Network().ConnsToPeer(a.ID()) {
		if !strings.Contains(conn.RemoteMultiaddr().String(), "/quic-v1") {
			t.Fatalf("connection over %s, want QUIC", conn.RemoteMultiaddr())
		}
	}
	data := randomBytes(t, 2<<20)
	c, err := a.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	got, err := b.Get(ctx, c, FromPeers(a.ID()))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("QUIC fetch: %v", err)
	}
}

// TestCompressedTransfer fetches a compressible blob with zstd on the wire.
func TestCompressedTransfer(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := testConfig(t)
	cfg.Compress = true
	a, b := newTestNode(t, cfg), newTestNode(t, testConfig(t))
	connect(ctx, t, b, a)
	data := bytes.Repeat([]byte("sparse gradient with many zeros\x00\x00\x00\x00"), 50000)
	c, _ := a.Put(ctx, data)
	got, err := b.Get(ctx, c, FromPeers(a.ID()))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("compressed fetch: %v", err)
	}
}

// TestRelayedConnection: a node behind "NAT" (forced private) reserves a
// slot on a relay node and is reached through it by a third node.
func TestRelayedConnection(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	rc := testConfig(t)
	rc.RelayService = true
	rc.ForceReachability = ReachabilityPublic
	relay := newTestNode(t, rc)
	ac := testConfig(t)
	ac.ForceReachability = ReachabilityPrivate
	for _, m := range relay.Addrs() {
		ac.Relays = append(ac.Relays, m.String())
	}
	a := newTestNode(t, ac)
	b := newTestNode(t, testConfig(t))

	// go-libp2p advertises circuit addresses only for relays with public
	// or private-range addresses, never loopback ones, so build the circuit
	// address by hand: relay address, relay ID, p2p-circuit, target ID.
	circuit, err := ma.NewMultiaddr(relay.Addrs()[0].String() + "/p2p-circuit/p2p/" + a.ID().String())
	if err != nil {
		t.Fatal(err)
	}
	// A takes a reservation in the background: retry until it is in place.
	waitFor(ctx, t, "relayed connection", func() bool {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		defer ccancel()
		// A refused dial puts the peer in dial backoff; retry right away.
		b.host.Network().(*swarm.Swarm).Backoff().Clear(a.ID())
		return b.Connect(cctx, peer.AddrInfo{ID: a.ID(), Addrs: []ma.Multiaddr{circuit}}) == nil
	})
	if a.Reachability() != ReachabilityPrivate {
		t.Fatalf("reachability %v, want private", a.Reachability())
	}
	if relay.Reachability() != ReachabilityPublic {
		t.Fatalf("relay reachability %v, want public", relay.Reachability())
	}
	data := randomBytes(t, 32<<10)
	c, err := a.Put(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	viaRelay := false
	for _, conn := range b.host.Network().ConnsToPeer(a.ID()) {
		if conn.Stat().Limited || strings.Contains(conn.RemoteMultiaddr().String(), "p2p-circuit") {
			viaRelay = true
		}
	}
	if !viaRelay {
		t.Fatal("connection did not go through the relay")
	}
	got, err := b.Get(ctx, c, FromPeers(a.ID()))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("fetch through relay: %v", err)
	}
}
