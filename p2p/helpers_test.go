package p2p

import (
	"context"
	"crypto/rand"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"go.uber.org/goleak"
)

// TestMain fails the run if any goroutine outlives the tests: every node is
// closed by its test's cleanup, so whatever remains leaked.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func testNetID() NetworkID {
	var id NetworkID
	copy(id[:], "trinity-p2p-tests-network-id-000")
	return id
}

func testLogger() *slog.Logger {
	if os.Getenv("TRINITY_P2P_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.DiscardHandler)
}

// testConfig listens on loopback only, serves the DHT (AutoNAT never calls
// loopback public) and uses short timeouts so failure paths end quickly.
func testConfig(tb testing.TB) Config {
	return Config{
		NetworkID:     testNetID(),
		DataDir:       tb.TempDir(),
		ListenAddrs:   []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"},
		DHTMode:       DHTServer,
		HeaderTimeout: 2 * time.Second,
		MinFetchRate:  1 << 20,
		ConnLow:       100,
		ConnHigh:      400,
	}
}

func newTestNode(tb testing.TB, cfg Config, opts ...Option) *Node {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	n, err := New(ctx, cfg, append([]Option{WithLogger(testLogger())}, opts...)...)
	if err != nil {
		tb.Fatalf("New: %v", err)
	}
	tb.Cleanup(func() {
		if err := n.Close(); err != nil {
			tb.Errorf("Close: %v", err)
		}
	})
	return n
}

// newCluster starts k nodes; node 0 is the bootstrap node of the others.
func newCluster(tb testing.TB, k int, mod func(i int, c *Config)) []*Node {
	tb.Helper()
	nodes := make([]*Node, k)
	for i := range nodes {
		cfg := testConfig(tb)
		if i > 0 {
			for _, a := range nodes[0].Addrs() {
				cfg.Bootstrap = append(cfg.Bootstrap, a.String())
			}
		}
		if mod != nil {
			mod(i, &cfg)
		}
		nodes[i] = newTestNode(tb, cfg)
	}
	return nodes
}

// waitFor polls cond every 20 ms until it holds or ctx ends.
func waitFor(ctx context.Context, tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			tb.Fatalf("waiting for %s: %v", what, ctx.Err())
		case <-t.C:
		}
	}
}

// waitRouting waits until every node's DHT routing table has at least min
// peers, so that provide and find work.
func waitRouting(ctx context.Context, tb testing.TB, nodes []*Node, min int) {
	tb.Helper()
	waitFor(ctx, tb, "DHT routing tables", func() bool {
		for _, n := range nodes {
			if n.dht.RoutingTable().Size() < min {
				return false
			}
		}
		return true
	})
}

func randomBytes(tb testing.TB, n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return b
}

func connect(ctx context.Context, tb testing.TB, a, b *Node) {
	tb.Helper()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.host.Addrs()}); err != nil {
		tb.Fatal(err)
	}
}
