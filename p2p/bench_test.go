package p2p

import (
	"context"
	"fmt"
	"io"
	"net"
	"sync"
	"syscall"
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

// benchTransport is one way two benchmark nodes talk.
type benchTransport struct {
	name       string
	listen     string
	noiseFirst bool
	plainTLS   bool
}

var benchTransports = []benchTransport{
	{"tcp-tls", "/ip4/127.0.0.1/tcp/0", false, false},
	{"tcp-tls-unbatched", "/ip4/127.0.0.1/tcp/0", false, true},
	{"tcp-noise", "/ip4/127.0.0.1/tcp/0", true, false},
	{"quic", "/ip4/127.0.0.1/udp/0/quic-v1", false, false},
}

// withNoiseFirst makes a node prefer Noise to TLS.
func withNoiseFirst() Option {
	return func(o *options) error { o.noiseFirst = true; return nil }
}

// benchPair starts two connected nodes that speak only tr.
func benchPair(b *testing.B, tr benchTransport) (srv, cli *Node) {
	var opts []Option
	if tr.noiseFirst {
		opts = append(opts, withNoiseFirst())
	}
	if tr.plainTLS {
		opts = append(opts, func(o *options) error { o.plainTLS = true; return nil })
	}
	nodes := make([]*Node, 2)
	for i := range nodes {
		cfg := testConfig(b)
		cfg.ListenAddrs = []string{tr.listen}
		nodes[i] = newTestNode(b, cfg, opts...)
	}
	connect(context.Background(), b, nodes[1], nodes[0])
	return nodes[0], nodes[1]
}

// vsTCP accumulates the wall and CPU time (of the whole process: both
// ends of each transfer run in it) of the p2p fetches and of the plain TCP
// copies they are interleaved with. On a shared machine the CPU ratio is
// the steadier of the two: other jobs stretch wall time, not CPU time.
type vsTCP struct {
	p2pWall, tcpWall, p2pCPU, tcpCPU time.Duration
}

func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// round runs one p2p fetch and one TCP copy and adds up their costs.
func (v *vsTCP) round(b *testing.B, p2p, tcp func()) {
	c0, t0 := processCPU(b), time.Now()
	p2p()
	c1, t1 := processCPU(b), time.Now()
	tcp()
	c2, t2 := processCPU(b), time.Now()
	v.p2pWall += t1.Sub(t0)
	v.tcpWall += t2.Sub(t1)
	v.p2pCPU += c1 - c0
	v.tcpCPU += c2 - c1
}

// runVsTCP times b.N runs of p2p, each followed by a plain TCP copy of
// data, and reports both.
func runVsTCP(b *testing.B, data []byte, p2p func()) {
	addr, stop := tcpBaseline(b, data)
	defer stop()
	var v vsTCP
	b.ResetTimer()
	for range b.N {
		v.round(b, p2p, func() { tcpFetch(b, addr, len(data)) })
	}
	v.report(b, len(data))
}

// report gives the p2p and plain-TCP rates of the same bytes, the ratio of
// the rates (the target is >= 0.5) and the ratio of the CPU time spent.
func (v *vsTCP) report(b *testing.B, bytes int) {
	mb := float64(bytes) * float64(b.N) / 1e6
	b.ReportMetric(mb/v.p2pWall.Seconds(), "MB/s")
	b.ReportMetric(mb/v.tcpWall.Seconds(), "tcp-MB/s")
	b.ReportMetric(v.tcpWall.Seconds()/v.p2pWall.Seconds(), "ratio-to-tcp")
	b.ReportMetric(v.tcpCPU.Seconds()/v.p2pCPU.Seconds(), "cpu-ratio-to-tcp")
}

// BenchmarkBlobFetch measures one verified fetch (stream, framing, copy,
// SHA-256 check) between two nodes on loopback, interleaved with a plain
// TCP copy of the same bytes (the baseline of the same run), for each
// transport and security protocol; it reports both rates and their ratio.
func BenchmarkBlobFetch(b *testing.B) {
	for _, size := range []int{1 << 20, 64 << 20} {
		for _, tr := range benchTransports {
			b.Run(fmt.Sprintf("%dMB/%s", size>>20, tr.name), func(b *testing.B) {
				ctx := context.Background()
				srv, cli := benchPair(b, tr)
				data := randomBytes(b, size)
				c, err := srv.Put(ctx, data)
				if err != nil {
					b.Fatal(err)
				}
				runVsTCP(b, data, func() {
					if _, err := cli.fetchFrom(ctx, srv.ID(), c, int64(size)); err != nil {
						b.Fatal(err)
					}
				})
			})
		}
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
// libp2p stream (no framing, no hashing) carrying 64 MB over each
// transport, next to the plain TCP copy. BlobFetch/64MB over this ceiling
// is the cost of the exchange itself.
func BenchmarkStreamCeiling(b *testing.B) {
	for _, tr := range benchTransports {
		b.Run(tr.name, func(b *testing.B) {
			ctx := context.Background()
			srv, cli := benchPair(b, tr)
			const size = 64 << 20
			data := randomBytes(b, size)
			srv.host.SetStreamHandler("/bench/raw", func(s network.Stream) {
				_, _ = s.Write(data)
				_ = s.Close()
			})
			runVsTCP(b, data, func() {
				s, err := cli.host.NewStream(ctx, srv.ID(), "/bench/raw")
				if err != nil {
					b.Fatal(err)
				}
				// A fresh buffer per copy, as a fetch returns one and
				// tcpFetch allocates one.
				buf := make([]byte, size)
				if _, err := io.ReadFull(s, buf); err != nil {
					b.Fatal(err)
				}
				_ = s.Close()
			})
		})
	}
}
