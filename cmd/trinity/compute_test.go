package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer a running command writes while the test
// reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestComputeCLI runs `trinity compute serve` in-process on loopback, then
// `compute list --attest` and `compute run` (generate and train) against it
// as separate commands with their own hosts, bootstrapping from the
// provider's printed address.
func TestComputeCLI(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "v.key")
	gpath := filepath.Join(dir, "genesis.json")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"keygen", "--out", key}, &out, &errb); code != 0 {
		t.Fatalf("keygen: %s", errb.String())
	}
	if code := run(context.Background(), []string{"genesis", "--out", gpath, "--validator-key", key}, &out, &errb); code != 0 {
		t.Fatalf("genesis: %s", errb.String())
	}

	ctx, cancel := context.WithCancel(context.Background())
	addrRe := regexp.MustCompile(`listening (/ip4/127\.0\.0\.1/tcp/\d+/p2p/(\S+))`)
	// serve starts a provider and returns its address and peer ID.
	serve := func(name string, extra ...string) (addr, id string) {
		var sout, serr syncBuffer
		done := make(chan int, 1)
		args := append([]string{"compute", "serve", "--genesis", gpath, "--data-dir", filepath.Join(dir, name),
			"--listen", "/ip4/127.0.0.1/tcp/0", "--bench-n", "128", "--bench-time", "50ms"}, extra...)
		go func() { done <- run(ctx, args, &sout, &serr) }()
		t.Cleanup(func() {
			cancel()
			if code := <-done; code != 0 {
				t.Errorf("serve %s exited %d: %s", name, code, serr.String())
			}
		})
		deadline := time.Now().Add(2 * time.Minute)
		for {
			if m := addrRe.FindStringSubmatch(sout.String()); m != nil {
				return m[1], m[2]
			}
			if time.Now().After(deadline) {
				t.Fatalf("serve %s printed no address: %s %s", name, sout.String(), serr.String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	addr, id := serve("provider", "--claim-gflops", "0.001")
	_, over := serve("overclaimer", "--claim-gflops", "1000000", "--bootstrap", addr)

	common := []string{"--genesis", gpath, "--listen", "/ip4/127.0.0.1/tcp/0", "--bootstrap", addr}
	cli := func(name string, args ...string) string {
		t.Helper()
		var o, e bytes.Buffer
		args = append(append(args, common...), "--data-dir", filepath.Join(dir, name))
		if code := run(ctx, append([]string{"compute"}, args...), &o, &e); code != 0 {
			t.Fatalf("compute %s: exit %d: %s", strings.Join(args, " "), code, e.String())
		}
		return o.String()
	}
	var list string
	for range 20 { // until the over-claimer's record has spread too
		if list = cli("list", "list", "--wait", "30s", "--attest", "--sizes", "64,96"); strings.Contains(list, over) {
			break
		}
	}
	if !strings.Contains(list, "attested "+id+": pass") || !regexp.MustCompile(id+`\s+attested`).MatchString(list) {
		t.Fatalf("list does not show the attested provider:\n%s", list)
	}
	if !strings.Contains(list, "attested "+over+": overclaim") || !regexp.MustCompile(over+`\s+downgraded`).MatchString(list) {
		t.Fatalf("list does not show the over-claimer downgraded:\n%s", list)
	}
	gen := cli("gen", "run", "--peer", id, "--job", "generate", "--prompt", "To be", "--tokens", "16")
	if !strings.Contains(gen, "GRAIL proof verified") {
		t.Fatalf("generate:\n%s", gen)
	}
	train := cli("train", "run", "--wait", "30s", "--job", "train", "--pages", "1,2", "--steps", "3", "--checks", "3")
	if !strings.Contains(train, "replayed steps [0 1 2] bit for bit: verified") {
		t.Fatalf("train:\n%s", train)
	}
	var o, e bytes.Buffer
	if code := run(ctx, []string{"compute", "nonsense"}, &o, &e); code != 2 {
		t.Fatalf("unknown subcommand: exit %d", code)
	}
}
