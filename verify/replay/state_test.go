package replay_test

import (
	"errors"
	"fmt"
	"math"
	"testing"

	"github.com/trinity-net/trinity/verify/replay"
)

func testState(n int) replay.State {
	s := replay.State{Params: make([]float32, n), M: make([]float32, n), V: make([]float32, n), EF: make([]float32, n), AdamStep: 17}
	for i := range n {
		s.Params[i] = float32(i%11)*0.125 - 0.5 + float32(i)*1e-7
		s.M[i] = float32(i%7) * 1e-3
		s.V[i] = float32(i%5) * 1e-6
		s.EF[i] = -float32(i%3) * 1e-4
	}
	return s
}

func TestStateHash(t *testing.T) {
	// Vectors longer than one hashing chunk, so the parallel path runs.
	const n = 3*65536 + 11
	s := testState(n)
	h := replay.StateHash(s.Params, s.M, s.V, s.AdamStep, s.EF)
	if h != s.Hash() || h != s.Digests().Hash() {
		t.Fatal("the three ways of hashing a state disagree")
	}
	// Every component, and each bit of it, matters; so does the order.
	flip := func(x []float32, i int) { x[i] = math.Float32frombits(math.Float32bits(x[i]) ^ 1) }
	for name, mut := range map[string]func(*replay.State){
		"params": func(s *replay.State) { flip(s.Params, n-1) },
		"m":      func(s *replay.State) { flip(s.M, 70000) },
		"v":      func(s *replay.State) { flip(s.V, 0) },
		"ef":     func(s *replay.State) { flip(s.EF, 5) },
		"step":   func(s *replay.State) { s.AdamStep++ },
		"swap":   func(s *replay.State) { s.M, s.V = s.V, s.M },
		"-0":     func(s *replay.State) { s.M[0] = float32(math.Copysign(0, -1)) },
	} {
		c := testState(n)
		mut(&c)
		if c.Hash() == h {
			t.Errorf("changing %s does not change the hash", name)
		}
	}
	// Golden: the hash is a protocol constant; it must not change by
	// accident (a change needs a new version tag).
	small := testState(3)
	const golden = "540676dd3de4115007fc8136d4a9d0b838a9f689480058c259967a532fc434a2"
	if got := fmt.Sprintf("%x", small.Hash()); got != golden {
		t.Errorf("state hash of the golden state is %s, want %s", got, golden)
	}
}

func TestSnapshotRoundTrip(t *testing.T) {
	const n = 1000
	s := testState(n)
	full := s.Digests()
	for parts := replay.Parts(0); parts <= replay.PartsAll; parts++ {
		b, err := replay.AppendSnapshot([]byte("prefix"), &s, full, parts, n)
		if err != nil {
			t.Fatal(err)
		}
		b = b[6:]
		if len(b) != replay.SnapshotSize(n, parts) {
			t.Fatalf("parts %#x: %d bytes, want %d", parts, len(b), replay.SnapshotSize(n, parts))
		}
		var got replay.State
		d, used, err := replay.DecodeSnapshot(append(b, 1, 2, 3), n, parts, &got)
		if err != nil || used != len(b) {
			t.Fatalf("parts %#x: used %d of %d: %v", parts, used, len(b), err)
		}
		if d != full {
			t.Fatalf("parts %#x: digests differ after the round trip", parts)
		}
		if parts&replay.PartParams != 0 && got.Params[999] != s.Params[999] {
			t.Fatal("params lost")
		}
		if parts&replay.PartM == 0 && got.M != nil {
			t.Fatal("absent m decoded")
		}
		// Strict: other parts, other n, truncation.
		if _, _, err := replay.DecodeSnapshot(b, n, parts^replay.PartEF, &got); !errors.Is(err, replay.ErrMalformed) {
			t.Fatalf("parts %#x accepted as %#x: %v", parts, parts^replay.PartEF, err)
		}
		if _, _, err := replay.DecodeSnapshot(b, n+1, parts, &got); !errors.Is(err, replay.ErrMalformed) {
			t.Fatalf("n+1 accepted: %v", err)
		}
		if _, _, err := replay.DecodeSnapshot(b[:len(b)-1], n, parts, &got); !errors.Is(err, replay.ErrMalformed) {
			t.Fatalf("truncated accepted: %v", err)
		}
	}
	if _, err := replay.AppendSnapshot(nil, &s, full, replay.PartsAll, n+1); err == nil {
		t.Fatal("vectors of the wrong length encoded")
	}
}
