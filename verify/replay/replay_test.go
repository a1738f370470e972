package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"testing"

	"github.com/trinity-net/trinity/verify/replay"
	"github.com/trinity-net/trinity/verify/replay/internal/fixture"
)

// Honest trainers are never flagged: every step of every round of a network
// whose state, moments and error feedback evolve over many rounds passes.
func TestHonestNeverFlagged(t *testing.T) {
	e := engine(t)
	n := tinyNet(t, e)
	ck := newChecker(t, e, n)
	rounds := 12
	if testing.Short() {
		rounds = 6
	}
	for _, k := range []int{1, 4} {
		tr := newTrainer(t, e, n, fmt.Sprintf("peer-k%d", k), replay.WithCheckpointEvery(k))
		global := slices.Clone(n.Init)
		checks := 0
		var prev *replay.Commitment
		for r := range uint64(rounds) {
			if r == 5 {
				// A trainer that lost its state restarts from the reset
				// state, as node does: allowed, and not flagged.
				tr.Opt.Reset()
				clear(tr.SLC.ErrorBuffer())
			}
			p := playRound(t, tr, r, global, fixture.Attack{})
			p.prev = prev
			prev = &p.c
			if f := p.failing(t, ck); len(f) != 0 {
				t.Fatalf("k=%d round %d: honest trainer flagged at %s", k, r, steps(f))
			}
			checks += p.c.Steps
			if err := n.Apply(global, p.blob, r); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("k=%d: %d honest challenges over %d rounds, none flagged", k, checks, rounds)
	}
}

// Each attack is caught exactly at the steps it faked, for the stated reason.
func TestAttacksCaught(t *testing.T) {
	e := engine(t)
	n := tinyNet(t, e)
	ck := newChecker(t, e, n)
	H := n.Shape.Steps
	all := func(r replay.Reason) map[int]replay.Reason {
		m := map[int]replay.Reason{}
		for j := range H {
			m[j] = r
		}
		return m
	}
	lazyLR := map[int]float32{}
	lazySkip := map[int]bool{}
	for j := range H {
		if j%2 == 0 {
			lazyLR[j] = 2
		} else {
			lazySkip[j] = true
		}
	}
	for _, tc := range []struct {
		name string
		a    fixture.Attack
		want map[int]replay.Reason
	}{
		{"skips steps 1 and 4", fixture.Attack{Skip: map[int]bool{1: true, 4: true}},
			map[int]replay.Reason{1: replay.StepMismatch, 4: replay.StepMismatch}},
		{"larger learning rate", fixture.Attack{LRScale: map[int]float32{0: 1.5, 1: 1.5, 2: 1.5, 3: 1.5, 4: 1.5, 5: 1.5}}, all(replay.StepMismatch)},
		{"larger learning rate on one step", fixture.Attack{LRScale: map[int]float32{3: 1.01}}, map[int]replay.Reason{3: replay.StepMismatch}},
		{"other pages", fixture.Attack{Pages: "somebody-else"}, all(replay.StepMismatch)},
		{"one step perturbed by one ulp", fixture.Attack{Perturb: 3}, map[int]replay.Reason{2: replay.StepMismatch}},
		{"blob not from the committed state", fixture.Attack{ForgeBlob: true}, all(replay.BlobMismatch)},
		{"injected error feedback", fixture.Attack{InjectEF: true}, all(replay.WrongStart)},
		{"lied about its carry", fixture.Attack{LieCarry: true}, all(replay.WrongCarry)},
		{"lazy: half the steps at double lr", fixture.Attack{LRScale: lazyLR, Skip: lazySkip}, all(replay.StepMismatch)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTrainer(t, e, n, "cheat", replay.WithCheckpointEvery(1)) // a cheater answers with what it committed, not a recomputation
			global := slices.Clone(n.Init)
			// One honest round first, so moments and error feedback are
			// not zero when the attack happens.
			p := playRound(t, tr, 0, global, fixture.Attack{})
			if err := n.Apply(global, p.blob, 0); err != nil {
				t.Fatal(err)
			}
			prev := p.c
			p = playRound(t, tr, 1, global, tc.a)
			p.prev = &prev
			got := p.failing(t, ck)
			if !maps.Equal(got, tc.want) {
				t.Fatalf("failing steps %s, want %s", steps(got), steps(tc.want))
			}
			f := float64(len(got)) / float64(H)
			t.Logf("faked fraction f=%.3f; escapes one check with probability %.3f, s=3 checks with %.3f", f, replay.Escape(f, 1), replay.Escape(f, 3))
		})
	}
}

// A trainer caught at a fraction f of its steps is caught by Derive's draws
// at the stated rate 1-(1-f)^s.
func TestCatchRate(t *testing.T) {
	const trials = 4000
	c := replay.Commitment{Steps: 30}
	c.Root[0] = 7
	for _, tc := range []struct {
		bad []int // steps whose challenge fails
		s   int
	}{{[]int{4}, 1}, {[]int{4}, 4}, {[]int{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14}, 1}, {[]int{3, 9, 27}, 2}} {
		f := float64(len(tc.bad)) / float64(c.Steps)
		caught := 0
		for i := range trials {
			chs, err := replay.Derive(fmt.Appendf(nil, "beacon-%08d-xxxxxxxx", i), 5, "validator", "trainer", c, replay.Policy{Rate: 1, Checks: tc.s})
			if err != nil {
				t.Fatal(err)
			}
			for _, ch := range chs {
				if slices.Contains(tc.bad, ch.Step) {
					caught++
					break
				}
			}
		}
		want := 1 - replay.Escape(f, tc.s)
		got := float64(caught) / trials
		sigma := math.Sqrt(want * (1 - want) / trials)
		if math.Abs(got-want) > 5*sigma {
			t.Errorf("f=%.3f s=%d: caught %.4f, want %.4f (+-%.4f)", f, tc.s, got, want, 5*sigma)
		}
	}
}

func TestDeriveSelection(t *testing.T) {
	c := replay.Commitment{Steps: 30}
	sel := 0
	const trials = 4000
	for i := range trials {
		chs, err := replay.Derive(fmt.Appendf(nil, "beacon-%08d-xxxxxxxx", i), 9, "v", "t", c, replay.DefaultPolicy())
		if err != nil {
			t.Fatal(err)
		}
		if chs != nil {
			sel++
			if len(chs) != 1 || chs[0].Step < 0 || chs[0].Step >= 30 || chs[0].Trainer != "t" || chs[0].Round != 9 {
				t.Fatalf("bad challenge %+v", chs)
			}
		}
	}
	if p := float64(sel) / trials; math.Abs(p-0.25) > 5*math.Sqrt(0.25*0.75/trials) {
		t.Errorf("selected %.3f of trainers, want 0.25", p)
	}
	// Deterministic, and sensitive to every input.
	b := []byte("0123456789abcdef0123")
	one := func(beacon []byte, v, tr string, c replay.Commitment) int {
		chs, err := replay.Derive(beacon, 1, v, tr, c, replay.Policy{Rate: 1, Checks: 8})
		if err != nil {
			t.Fatal(err)
		}
		h := 0
		for _, ch := range chs {
			h = h*31 + ch.Step
		}
		return h
	}
	c2 := c
	c2.Root[3] = 1
	base := one(b, "v", "t", c)
	if base != one(b, "v", "t", c) {
		t.Fatal("Derive is not deterministic")
	}
	for name, h := range map[string]int{"beacon": one([]byte("0123456789abcdef0124"), "v", "t", c), "validator": one(b, "w", "t", c), "trainer": one(b, "v", "u", c), "root": one(b, "v", "t", c2)} {
		if h == base {
			t.Errorf("changing the %s does not change the steps", name)
		}
	}
	for _, bad := range []replay.Policy{{Rate: -0.1, Checks: 1}, {Rate: 1.1, Checks: 1}, {Rate: math.NaN(), Checks: 1}, {Rate: 0.5, Checks: 0}} {
		if _, err := replay.Derive(b, 1, "v", "t", c, bad); err == nil {
			t.Errorf("policy %+v accepted", bad)
		}
	}
	if _, err := replay.Derive([]byte("short"), 1, "v", "t", c, replay.DefaultPolicy()); err == nil {
		t.Error("short beacon accepted")
	}
}

// Bad responses get a Failure with a clear reason; the validator neither
// panics nor reads past its bound.
func TestBadResponses(t *testing.T) {
	e := engine(t)
	n := tinyNet(t, e)
	ck := newChecker(t, e, n)
	tr := newTrainer(t, e, n, "peer")
	p := playRound(t, tr, 3, n.Init, fixture.Attack{})
	ch := replay.Challenge{Round: p.round, Trainer: p.peer, Commitment: p.c, Step: 2}
	resp, err := tr.Rec.Respond(context.Background(), ch)
	if err != nil {
		t.Fatal(err)
	}
	if err := ck.Check(context.Background(), ch, resp, p.global, p.blob); err != nil {
		t.Fatalf("honest response rejected: %v", err)
	}
	np := n.Shape.Model.NumParams()
	stateJ := 56 // offset of state j's snapshot
	paramsOff := stateJ + 24
	proofJ := stateJ + replay.SnapshotSize(np, replay.PartsAll)
	mod := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(resp)) }
	setF := func(off int, v float32) func(b []byte) []byte {
		return func(b []byte) []byte {
			bits := math.Float32bits(v)
			b[off], b[off+1], b[off+2], b[off+3] = byte(bits), byte(bits>>8), byte(bits>>16), byte(bits>>24)
			return b
		}
	}
	otherRound := ch
	otherRound.Round++
	for _, tc := range []struct {
		name string
		resp []byte
		ch   replay.Challenge
		want replay.Reason
	}{
		{"empty", nil, ch, replay.Malformed},
		{"truncated", resp[:len(resp)-1], ch, replay.Malformed},
		{"trailing byte", append(bytes.Clone(resp), 0), ch, replay.Malformed},
		{"oversized", make([]byte, replay.MaxResponseSize(np)+1), ch, replay.Malformed},
		{"bad magic", mod(func(b []byte) []byte { b[0] = 'X'; return b }), ch, replay.Malformed},
		{"future version", mod(func(b []byte) []byte { b[4] = 2; return b }), ch, replay.Malformed},
		{"state of the wrong shape", mod(func(b []byte) []byte { b[stateJ+8]++; return b }), ch, replay.Malformed},
		{"NaN parameter", mod(setF(paramsOff+40, float32(math.NaN()))), ch, replay.Malformed},
		{"infinite parameter", mod(setF(paramsOff+40, float32(math.Inf(1)))), ch, replay.Malformed},
		{"negative v", mod(setF(stateJ+24+3*0+2*4*np+4, -1)), ch, replay.Malformed},
		{"proof longer than any tree", mod(func(b []byte) []byte { b[proofJ] = 200; return b }), ch, replay.Malformed},
		{"wrong merkle path", mod(func(b []byte) []byte { b[proofJ+1] ^= 1; return b }), ch, replay.BadProof},
		{"changed parameter", mod(func(b []byte) []byte { b[paramsOff+40] ^= 1; return b }), ch, replay.BadProof},
		{"answer to another round", resp, otherRound, replay.WrongChallenge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ck.Check(context.Background(), tc.ch, tc.resp, p.global, p.blob)
			var f *replay.Failure
			if !errors.As(err, &f) {
				t.Fatalf("got %v, want a failure", err)
			}
			if f.Reason != tc.want {
				t.Fatalf("reason %s, want %s (%v)", f.Reason, tc.want, err)
			}
		})
	}
	// A response to another step opened at this one.
	ch3 := ch
	ch3.Step = 3
	if err := ck.Check(context.Background(), ch3, resp, p.global, p.blob); !errors.Is(err, replay.ErrFailed) {
		t.Fatalf("response to step 2 accepted for step 3: %v", err)
	}
	// Wrong global state: the start check.
	g := slices.Clone(p.global)
	g[0] += 1
	var f *replay.Failure
	if err := ck.Check(context.Background(), ch, resp, g, p.blob); !errors.As(err, &f) || f.Reason != replay.WrongStart {
		t.Fatalf("wrong start: %v", err)
	}
	// Validator-side errors are not failures.
	if err := ck.Check(context.Background(), ch, resp, p.global[:5], p.blob); err == nil || errors.Is(err, replay.ErrFailed) {
		t.Fatalf("short global: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := ck.Check(ctx, ch, resp, p.global, p.blob); err == nil || errors.Is(err, replay.ErrFailed) {
		t.Fatalf("cancelled: %v", err)
	}
	// Every prefix is refused, never a panic.
	for l := 0; l < len(resp); l += 1 + l/7 {
		if err := ck.Check(context.Background(), ch, resp[:l], p.global, p.blob); !errors.Is(err, replay.ErrFailed) {
			t.Fatalf("prefix of %d bytes: %v", l, err)
		}
	}
	// No response.
	if err := replay.NoResponse(ch, nil); err.Reason != replay.Unanswered || !errors.Is(err, replay.ErrFailed) {
		t.Fatal(err)
	}
}

type endless struct{}

func (endless) Read(b []byte) (int, error) { return len(b), nil }

func TestReadResponseBounded(t *testing.T) {
	np := fixture.Tiny.Model.NumParams()
	_, err := replay.ReadResponse(endless{}, np)
	if !errors.Is(err, replay.ErrOversized) || !errors.Is(err, replay.ErrMalformed) {
		t.Fatalf("endless reader: %v", err)
	}
	b, err := replay.ReadResponse(bytes.NewReader(make([]byte, 100)), np)
	if err != nil || len(b) != 100 {
		t.Fatalf("short response: %d bytes, %v", len(b), err)
	}
}

func TestLedger(t *testing.T) {
	l, err := replay.NewLedger(replay.Penalty{ExcludeRounds: 2, WatchRounds: 5})
	if err != nil {
		t.Fatal(err)
	}
	l.Fail("x", 10)
	l.Fail("x", 10) // counted once
	for r, want := range map[uint64][2]bool{9: {false, false}, 10: {true, true}, 12: {true, true}, 13: {false, true}, 15: {false, true}, 16: {false, false}} {
		if got := [2]bool{l.Excluded("x", r), l.Watched("x", r)}; got != want {
			t.Errorf("round %d: excluded, watched = %v, want %v", r, got, want)
		}
	}
	if l.Excluded("honest", 10) || l.Watched("honest", 10) {
		t.Error("an honest trainer is penalised")
	}
	if p := l.PolicyFor(replay.DefaultPolicy(), "x", 14); p.Rate != 1 {
		t.Errorf("watched trainer challenged at rate %g", p.Rate)
	}
	l.Fail("x", 14) // repeat within the watch: exclusion doubles
	if !l.Excluded("x", 18) || l.Excluded("x", 19) {
		t.Error("repeat offence not excluded for 4 rounds")
	}
	l.Forget(100)
	if l.Watched("x", 15) {
		t.Error("Forget kept an expired offence")
	}
	if _, err := replay.NewLedger(replay.Penalty{ExcludeRounds: -1}); err == nil {
		t.Error("negative exclusion accepted")
	}
}

// A persisted ledger decodes to the same verdicts; a corrupt one is refused.
func TestLedgerJSON(t *testing.T) {
	l, err := replay.NewLedger(replay.Penalty{ExcludeRounds: 2, WatchRounds: 5})
	if err != nil {
		t.Fatal(err)
	}
	l.Fail("x", 10)
	l.Fail("x", 14)
	l.Fail("y", 3)
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	var got replay.Ledger
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{"x", "y", "z"} {
		for r := uint64(0); r < 30; r++ {
			if got.Excluded(who, r) != l.Excluded(who, r) || got.Watched(who, r) != l.Watched(who, r) {
				t.Fatalf("%s round %d: decoded ledger disagrees", who, r)
			}
		}
	}
	for _, bad := range []string{`{"penalty":{"ExcludeRounds":-1},"offences":[]}`, `{"penalty":{},"offences":[{"trainer":"","last":1,"until":2}]}`,
		`{"penalty":{},"offences":[{"trainer":"a","last":5,"until":2}]}`, `[`} {
		var l2 replay.Ledger
		if err := json.Unmarshal([]byte(bad), &l2); err == nil {
			t.Errorf("corrupt ledger %s accepted", bad)
		}
	}
}

func TestResetCommitment(t *testing.T) {
	st := replay.State{Params: make([]float32, 5), M: make([]float32, 5), V: make([]float32, 5), EF: make([]float32, 5)}
	if got := st.Digests().Carry(); got != replay.ResetCommitment(5).Carry {
		t.Error("reset commitment's carry is not the zero state's")
	}
}
