package p2p

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
)

// tcpBaseline serves data once per accepted connection on loopback, the
// yardstick for the blob exchange: the same bytes over a bare socket.
func tcpBaseline(b *testing.B, data []byte) (addr string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = c.Write(data)
			_ = c.Close()
		}
	}()
	return ln.Addr().String(), func() { _ = ln.Close(); wg.Wait() }
}

func tcpFetch(b *testing.B, addr string, n int) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	buf := make([]byte, n)
	if _, err := io.ReadFull(c, buf); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkBlobFetch measures one verified fetch (stream, framing, copy,
// SHA-256 check) between two nodes on loopback TCP, interleaved with a plain
// TCP copy of the same bytes; it reports both rates and their ratio.
func BenchmarkBlobFetch(b *testing.B) {
	for _, size := range []int{1 << 20, 64 << 20} {
		b.Run(fmt.Sprintf("%dMB", size>>20), func(b *testing.B) {
			ctx := context.Background()
			cfg := testConfig(b)
			cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
			srv := newTestNode(b, cfg)
			cfg2 := testConfig(b)
			cfg2.ListenAddrs = cfg.ListenAddrs
			cli := newTestNode(b, cfg2)
			connect(ctx, b, cli, srv)
			data := randomBytes(b, size)
			c, err := srv.Put(ctx, data)
			if err != nil {
				b.Fatal(err)
			}
			addr, stop := tcpBaseline(b, data)
			defer stop()
			var p2pDur, tcpDur time.Duration
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := cli.fetchFrom(ctx, srv.ID(), c, int64(size)); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				tcpFetch(b, addr, size)
				p2pDur += t1.Sub(t0)
				tcpDur += time.Since(t1)
			}
			mb := float64(size) * float64(b.N) / 1e6
			b.ReportMetric(mb/p2pDur.Seconds(), "MB/s")
			b.ReportMetric(mb/tcpDur.Seconds(), "tcp-MB/s")
			b.ReportMetric(tcpDur.Seconds()/p2pDur.Seconds(), "ratio-to-tcp")
		})
	}
}

// BenchmarkAnnounceLatency: time from Publish on one of 8 nodes until the
// last of the other 7 has the verified message from its subscription.
func BenchmarkAnnounceLatency(b *testing.B) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	nodes := newCluster(b, 8, nil)
	waitRouting(ctx, b, nodes, 2)
	subs := make([]*Subscription, len(nodes))
	for i, n := range nodes {
		s, err := n.Subscribe(TopicGradient)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Cancel()
		subs[i] = s
	}
	waitTopicMesh(ctx, b, nodes, TopicGradient)
	var total, first time.Duration
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if err := nodes[1].Publish(ctx, TopicGradient, uint64(i), []byte("announce")); err != nil {
			b.Fatal(err)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		firstAt := time.Duration(0)
		for j, s := range subs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := s.Next(ctx); err != nil {
					b.Error(err)
					return
				}
				if j != 1 {
					mu.Lock()
					if d := time.Since(t0); firstAt == 0 || d < firstAt {
						firstAt = d
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		total += time.Since(t0)
		first += firstAt
	}
	b.ReportMetric(float64(total.Microseconds())/float64(b.N)/1000, "ms-to-all")
	b.ReportMetric(float64(first.Microseconds())/float64(b.N)/1000, "ms-to-first")
}

func waitTopicMesh(ctx context.Context, tb testing.TB, nodes []*Node, t Topic) {
	waitFor(ctx, tb, "topic peers", func() bool {
		for _, n := range nodes {
			if len(n.TopicPeers(t)) == 0 {
				return false
			}
		}
		return true
	})
}

// BenchmarkAnnounceToAllHold: one node puts a 4 MB blob and announces its
// CID; every other node fetches it on receipt (hinted at the announcer,
// DHT providers as fallback). The metric is the time until all N-1 hold it.
func BenchmarkAnnounceToAllHold(b *testing.B) {
	for _, n := range []int{8, 32} {
		b.Run(fmt.Sprintf("N=%d", n), func(b *testing.B) {
			benchSpread(b, n, 4<<20)
		})
	}
}

func benchSpread(b *testing.B, k, size int) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	nodes := newCluster(b, k, func(_ int, c *Config) {
		c.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
		c.Limits.MaxFDs = 4096
	})
	waitRouting(ctx, b, nodes, 2)
	held := make(chan time.Time, k*b.N)
	var wg sync.WaitGroup
	rctx, rcancel := context.WithCancel(ctx)
	for _, n := range nodes[1:] {
		s, err := n.Subscribe(TopicGradient)
		if err != nil {
			b.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer s.Cancel()
			for {
				m, err := s.Next(rctx)
				if err != nil {
					return
				}
				c, err := cid.Cast(m.Envelope.Payload)
				if err != nil {
					b.Error(err)
					return
				}
				if _, err := n.Get(rctx, c, FromPeers(m.Envelope.Sender)); err != nil {
					if rctx.Err() == nil {
						b.Error(err)
					}
					return
				}
				held <- time.Now()
			}
		}()
	}
	defer func() { rcancel(); wg.Wait() }()
	waitTopicMesh(ctx, b, nodes[1:], TopicGradient)
	pub := nodes[0]
	if _, err := pub.Subscribe(TopicGradient); err != nil {
		b.Fatal(err)
	}
	waitFor(ctx, b, "publisher in topic", func() bool { return len(pub.TopicPeers(TopicGradient)) > 0 })
	var total time.Duration
	b.ResetTimer()
	for i := range b.N {
		data := randomBytes(b, size)
		c, err := pub.Put(ctx, data)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		if err := pub.Publish(ctx, TopicGradient, uint64(i), c.Bytes()); err != nil {
			b.Fatal(err)
		}
		var last time.Time
		for range k - 1 {
			select {
			case at := <-held:
				last = at
			case <-ctx.Done():
				b.Fatal(ctx.Err())
			}
		}
		total += last.Sub(t0)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "s-to-all-hold")
	b.ReportMetric(float64(size)*float64(k-1)*float64(b.N)/1e6/total.Seconds(), "agg-MB/s")
}

// BenchmarkStreamCeiling is the yardstick between the two above: a bare
// libp2p stream (TLS + yamux over TCP, no framing, no hashing) carrying
// 64 MB, next to the plain TCP copy. BlobFetch/64MB over this ceiling is
// the cost of the exchange itself.
func BenchmarkStreamCeiling(b *testing.B) {
	ctx := context.Background()
	cfg := testConfig(b)
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/tcp/0"}
	srv := newTestNode(b, cfg)
	cfg2 := testConfig(b)
	cfg2.ListenAddrs = cfg.ListenAddrs
	cli := newTestNode(b, cfg2)
	connect(ctx, b, cli, srv)
	const size = 64 << 20
	data := randomBytes(b, size)
	srv.host.SetStreamHandler("/bench/raw", func(s network.Stream) {
		_, _ = s.Write(data)
		_ = s.Close()
	})
	addr, stop := tcpBaseline(b, data)
	defer stop()
	buf := make([]byte, size)
	var p2pDur, tcpDur time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		s, err := cli.host.NewStream(ctx, srv.ID(), "/bench/raw")
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(s, buf); err != nil {
			b.Fatal(err)
		}
		_ = s.Close()
		t1 := time.Now()
		tcpFetch(b, addr, size)
		p2pDur += t1.Sub(t0)
		tcpDur += time.Since(t1)
	}
	mb := float64(size) * float64(b.N) / 1e6
	b.ReportMetric(mb/p2pDur.Seconds(), "MB/s")
	b.ReportMetric(mb/tcpDur.Seconds(), "tcp-MB/s")
	b.ReportMetric(tcpDur.Seconds()/p2pDur.Seconds(), "ratio-to-tcp")
}
