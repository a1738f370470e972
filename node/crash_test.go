package node

import (
	"context"
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
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(childDirEnv); dir != "" {
		os.Exit(runChildTrainer(dir, strings.Split(os.Getenv(childBootEnv), ",")))
	}
	os.Exit(m.Run())
}

// runChildTrainer runs a trainer until it is killed.
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
	n, err := New(ctx, Config{Genesis: g, Role: RoleTrainer, DataDir: filepath.Join(dir, "data"), ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"},
		Bootstrap: boot, Threads: 1}, WithLogger(testLogger()), WithP2PConfig(func(c *p2p.Config) { c.DHTMode = p2p.DHTServer }))
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		return 2
	}
	_ = n.Run(ctx) // until SIGKILL
	return 1
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
	tn, err := NewTestnet(ctx, TestnetConfig{Dir: t.TempDir(), Trainers: 2, Model: testGenesis(), Logger: testLogger(), StartDelay: 4 * time.Second,
		ListenAddrs: []string{"/ip4/127.0.0.1/tcp/0"}})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	child := t.TempDir()
	if err := tn.Genesis.Save(filepath.Join(child, "genesis.json")); err != nil {
		t.Fatal(err)
	}
	key, err := p2p.LoadOrCreateIdentity(filepath.Join(child, "data"))
	if err != nil {
		t.Fatal(err)
	}
	childID, _ := peer.IDFromPrivateKey(key)
	if err := tn.Run(ctx); err != nil {
		t.Fatal(err)
	}
	start := func() *exec.Cmd {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), childDirEnv+"="+child, childBootEnv+"="+strings.Join(tn.bootstrapAddrs(), ","))
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	kill := func(cmd *exec.Cmd) {
		if err := cmd.Process.Kill(); err != nil { // SIGKILL
			t.Fatal(err)
		}
		_ = cmd.Wait()
	}
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

	cmd := start()
	r := waitContribution(0, "first start")
	t.Logf("child %s contributed in round %d", childID, r)

	// Kill during training: 6% into a round (training takes 5-15%).
	r = clock.Round(time.Now()) + 1
	time.Sleep(time.Until(clock.At(r, 0.06)))
	kill(cmd)
	t.Logf("killed during round %d's training", r)
	cmd = start()
	got := waitContribution(r+1, "after the kill during training")
	t.Logf("restarted; contributed again in round %d", got)

	// Kill while the round's manifest is being applied and the state saved.
	r = clock.Round(time.Now()) + 1
	time.Sleep(time.Until(clock.At(r, 0.78)))
	kill(cmd)
	t.Logf("killed during round %d's apply phase", r)
	cmd = start()
	got = waitContribution(r+1, "after the kill during apply")
	t.Logf("restarted; contributed again in round %d", got)
	kill(cmd)

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
