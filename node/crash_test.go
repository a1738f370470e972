package node

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
)

// Environment of the child process TestKillNine starts: this test binary,
// running a trainer instead of the tests.
const (
	childDirEnv  = "TRINITY_NODE_CHILD_DIR"
	childBootEnv = "TRINITY_NODE_CHILD_BOOTSTRAP"
	childQUICEnv = "TRINITY_NODE_CHILD_QUIC" // listen on QUIC only
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(runChildTrainer(dir, strings.Split(os.Getenv(childBootEnv), ",")))
	}
	os.Exit(m.Run())
}

// runChildTrainer runs a trainer until it is killed, printing a line
// "announced <round>" on stdout for each contribution it announces.
func runChildTrainer(dir string, boot []string) int {
	g, err := LoadGenesis(filepath.Join(dir, "genesis.json"))
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 2
	}
	ctx := context.Background()
	// TCP only (here and in the test's network): the kernel resets a killed
	// process's TCP connections at once, while its peers hold a QUIC
	// connection to it until the idle timeout (30 s) and keep gossiping into
	// the dead stream, so a restarted peer with the same ID hears nothing for
	// that long. That is a p2p matter (docs/network.md, known gaps); this
	// test is about the node's own recovery.
	listen := []string{"/ip4/127.0.0.1/tcp/0"}
	if os.Getenv(childQUICEnv) != "" {
		// A killed peer's QUIC connections look alive to its peers until
		// the idle timeout: the worst case for whoever fetches from it.
		listen = []string{"/ip4/127.0.0.1/udp/0/quic-v1"}
	}
	announced := func(e Event) {
		if e.Kind == EventAnnounced {
			fmt.Fprintf(os.Stdout, "announced %d\n", e.Round)
		}
	}
	n, err := New(ctx, Config{Genesis: g, Role: RoleTrainer, DataDir: filepath.Join(dir, "data"), ListenAddrs: listen,
		Bootstrap: boot, Threads: 1}, WithLogger(testLogger()), WithP2PConfig(func(c *p2p.Config) { c.DHTMode = p2p.DHTServer }),
		WithObserver(announced))
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 2
	}
	_ = n.Run(ctx) // until SIGKILL
	return 1
}

// childTrainer is a trainer in a process of its own (runChildTrainer),
// which can be killed and started again on the same data directory.
type childTrainer struct {
	id        peer.ID
	dir       string
	env       []string
	cmd       *exec.Cmd
	announced chan uint64 // rounds it announced in
}

// newChildTrainer prepares a child trainer of tn (over QUIC only if quic).
func newChildTrainer(t *testing.T, tn *Testnet, quic bool) *childTrainer {
	t.Helper()
	dir := t.TempDir()
	if err := tn.Genesis.Save(filepath.Join(dir, "genesis.json")); err != nil {
		t.Fatal(err)
	}
	key, err := p2p.LoadOrCreateIdentity(filepath.Join(dir, "data"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(key)
	env := append(os.Environ(), childDirEnv+"="+dir, childBootEnv+"="+strings.Join(tn.bootstrapAddrs(), ","))
	if quic {
		env = append(env, childQUICEnv+"=1")
	}
	c := &childTrainer{id: id, dir: dir, env: env, announced: make(chan uint64, 64)}
	t.Cleanup(c.kill)
	return c
}

// start runs the child process (again).
func (c *childTrainer) start(t *testing.T) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = c.env
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c.cmd = cmd
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			var r uint64
			if _, err := fmt.Sscanf(sc.Text(), "announced %d", &r); err == nil {
				select {
				case c.announced <- r:
				default:
				}
			}
		}
	}()
}

// waitAnnounced returns the first round >= from the child announces in.
func (c *childTrainer) waitAnnounced(t *testing.T, from uint64, timeout time.Duration) uint64 {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case r := <-c.announced:
			if r >= from {
				return r
			}
		case <-deadline:
			t.Fatalf("child trainer %s announced nothing from round %d on", c.id, from)
		}
	}
}

// kill sends SIGKILL and reaps the process.
func (c *childTrainer) kill() {
	if c.cmd != nil && c.cmd.ProcessState == nil {
		_ = c.cmd.Process.Kill()
		_ = c.cmd.Wait()
	}
}

// TestKillNine runs a trainer as a separate process next to an in-process
// network, kills it with SIGKILL during training and again during the apply
// phase, restarts it on the same data directory each time, and checks that
// it comes back and contributes again (which needs its state to match the
// validator's hash) while the network never waits for it.
func TestKillNine(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("kill -9 test: skipped in -short and under the race detector (timing)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tn := startTestnet(ctx, t, TestnetConfig{Trainers: 2, StartDelay: 4 * time.Second, ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	child := newChildTrainer(t, tn, false)
	childID := child.id
	clock := NewClock(tn.Genesis)
	L := tn.Genesis.Params.RoundLength()
	// waitContribution waits until a manifest of a round >= from holds the
	// child's blob, and returns that round.
	waitContribution := func(from uint64, what string) uint64 {
		t.Helper()
		deadline := time.Now().Add(12 * L)
		for time.Now().Before(deadline) {
			rs := contributions(tn)[childID]
			if i := slices.IndexFunc(rs, func(r uint64) bool { return r >= from }); i >= 0 {
				return rs[i]
			}
			time.Sleep(L / 4)
		}
		t.Fatalf("%s: the child trainer did not contribute from round %d on", what, from)
		return 0
	}

	child.start(t)
	r := waitContribution(0, "first start")
	t.Logf("child %s contributed in round %d", childID, r)

	// Kill during training: 6% into a round (training takes 5-15%).
	r = clock.Round(time.Now()) + 1
	time.Sleep(time.Until(clock.At(r, 0.06)))
	child.kill()
	t.Logf("killed during round %d's training", r)
	child.start(t)
	got := waitContribution(r+1, "after the kill during training")
	t.Logf("restarted; contributed again in round %d", got)

	// Kill while the round's manifest is being applied and the state saved.
	r = clock.Round(time.Now()) + 1
	time.Sleep(time.Until(clock.At(r, 0.78)))
	child.kill()
	t.Logf("killed during round %d's apply phase", r)
	child.start(t)
	got = waitContribution(r+1, "after the kill during apply")
	t.Logf("restarted; contributed again in round %d", got)
	child.kill()

	// The in-process peers kept agreeing and never waited.
	last := clock.Round(time.Now())
	for rr := uint64(1); rr < last; rr++ {
		rep, err := tn.WaitRound(ctx, rr, 2*L)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.HashesAgree {
			t.Errorf("round %d: in-process peers disagree", rr)
		}
	}
}
