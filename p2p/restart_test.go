package p2p

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// A restarted peer is this test binary re-executed with restartDirEnv set:
// a node with a persistent identity on a fixed QUIC port that subscribes to
// the gradient topic and prints every payload it receives.
const (
	restartDirEnv   = "TRINITY_P2P_RESTART_DIR"
	restartPortEnv  = "TRINITY_P2P_RESTART_PORT"
	restartBootEnv  = "TRINITY_P2P_RESTART_BOOT"
	restartGotTag   = "RESTART-GOT "
	restartReadyTag = "RESTART-READY"
)

// TestRestartedPeerOverQUIC: a peer killed with SIGKILL leaves its QUIC
// connection open at the other end (nothing closes it). When it comes back
// with the same identity on the same port, gossip must reach it again
// well within the old 30 s QUIC idle timeout, and the dead connection must
// be gone.
func TestRestartedPeerOverQUIC(t *testing.T) {
	if dir := os.Getenv(restartDirEnv); dir != "" {
		runRestartChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("starts and kills peer processes")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cfg := testConfig(t)
	cfg.ListenAddrs = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	y := newTestNode(t, cfg)
	sub, err := y.Subscribe(TopicGradient)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()

	dir, port := t.TempDir(), freeUDPPort(t)
	key, err := LoadOrCreateIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	xid, err := peer.IDFromPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	boot := y.Addrs()[0].String()

	published := 0
	publishUntil := func(x *restartPeer, what string) time.Duration {
		t.Helper()
		t0 := time.Now()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			published++
			msg := fmt.Sprintf("m%d", published)
			if err := y.Publish(ctx, TopicGradient, 1, []byte(msg)); err != nil {
				t.Fatal(err)
			}
			select {
			case <-x.got:
				return time.Since(t0)
			case <-ctx.Done():
				t.Fatalf("%s: no gossip reached the peer: %v", what, ctx.Err())
			case <-tick.C:
			}
		}
	}

	x1 := startRestartPeer(t, dir, port, boot)
	waitFor(ctx, t, "first peer in the topic", func() bool { return len(y.TopicPeers(TopicGradient)) == 1 })
	publishUntil(x1, "first start")
	x1.kill(t)

	x2 := startRestartPeer(t, dir, port, boot)
	d := publishUntil(x2, "after restart")
	t.Logf("restarted peer hears gossip %v after it started publishing", d)
	// The old connection is gone (closed by a stateless reset, an ICMP
	// error, or found dead by the ping of watchStaleConns) and the new one
	// carries the gossip. Before, the first restart heard nothing at all:
	// gossipsub forgot the peer's subscription when the old connection
	// died 30 s later.
	waitFor(ctx, t, "only live connections to the restarted peer", func() bool {
		for _, c := range y.host.Network().ConnsToPeer(xid) {
			if probeConn(ctx, c, staleProbeTimeout) != nil {
				return false
			}
		}
		return true
	})
	if limit := 2 * quicIdleTimeout; d > limit {
		t.Fatalf("gossip reached the restarted peer after %v, limit %v", d, limit)
	}

	// A peer that never comes back: its connection is dropped after the
	// QUIC idle timeout (quic-go's default was 30 s), not kept forever.
	x2.kill(t)
	ictx, icancel := context.WithTimeout(ctx, 2*quicIdleTimeout)
	defer icancel()
	waitFor(ictx, t, "the dead peer's connection to time out", func() bool {
		return len(y.host.Network().ConnsToPeer(xid)) == 0
	})
}

type restartPeer struct {
	cmd  *exec.Cmd
	got  chan string
	done chan struct{}
}

func startRestartPeer(t *testing.T, dir string, port int, boot string) *restartPeer {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestRestartedPeerOverQUIC$")
	cmd.Env = append(os.Environ(), restartDirEnv+"="+dir, fmt.Sprintf("%s=%d", restartPortEnv, port), restartBootEnv+"="+boot)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if _, err := cmd.StdinPipe(); err != nil { // kept open: EOF means "exit"
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &restartPeer{cmd: cmd, got: make(chan string, 1024), done: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		defer close(p.done)
		var once sync.Once
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if line == restartReadyTag {
				once.Do(func() { close(ready) })
			}
			if m, ok := strings.CutPrefix(line, restartGotTag); ok {
				select {
				case p.got <- m:
				default:
				}
			}
		}
	}()
	t.Cleanup(func() { p.kill(t) })
	select {
	case <-ready:
	case <-p.done:
		t.Fatal("peer process exited before it was ready")
	case <-time.After(60 * time.Second):
		t.Fatal("peer process not ready")
	}
	return p
}

// kill sends SIGKILL: the node gets no chance to close its connections.
func (p *restartPeer) kill(t *testing.T) {
	if p.cmd.ProcessState != nil {
		return
	}
	_ = p.cmd.Process.Kill()
	<-p.done
	_ = p.cmd.Wait()
}

func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

func runRestartChild(t *testing.T, dir string) {
	cfg := Config{
		NetworkID:   testNetID(),
		DataDir:     dir,
		ListenAddrs: []string{"/ip4/127.0.0.1/udp/" + os.Getenv(restartPortEnv) + "/quic-v1"},
		Bootstrap:   []string{os.Getenv(restartBootEnv)},
		DHTMode:     DHTServer,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n, err := New(ctx, cfg, WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	sub, err := n.Subscribe(TopicGradient)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Cancel()
	go func() { _, _ = io.Copy(io.Discard, os.Stdin); cancel() }()
	for len(n.TopicPeers(TopicGradient)) == 0 && ctx.Err() == nil {
		time.Sleep(20 * time.Millisecond)
	}
	fmt.Println(restartReadyTag)
	for {
		m, err := sub.Next(ctx)
		if err != nil {
			return
		}
		fmt.Println(restartGotTag + string(m.Envelope.Payload))
	}
}
