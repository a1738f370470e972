package grail

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"slices"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
)

type fixture struct {
	m  *model.GPT
	pr *Prover
	v  *Verifier
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	m := newModel(t, tinyConfig, 1, newEngine(t))
	pr, err := NewProver(m, testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVerifier(m)
	if err != nil {
		t.Fatal(err)
	}
	return fixture{m, pr, v}
}

func (f fixture) prove(t *testing.T, beacon [32]byte, prompt []int32, n int, s Sampling) *Proof {
	t.Helper()
	p, err := f.pr.Prove(context.Background(), beacon, prompt, n, s)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestHonestProofAccepted(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	pub := testKey(1).Public().(ed25519.PublicKey)
	for _, s := range expSamplings {
		for _, shape := range []struct{ P, n int }{{1, 1}, {1, 64}, {5, 40}, {30, 35}} {
			prompt := make([]int32, shape.P)
			for i := range prompt {
				prompt[i] = int32(i*31) % 256
			}
			p := f.prove(t, beaconOf(3), prompt, shape.n, s)
			rep, err := f.v.Check(ctx, p, Expect{Beacon: beaconOf(3), Peer: pub, Prompt: prompt, Sampling: &s, Challenge: []byte("later")})
			if err != nil {
				t.Fatalf("%v %+v: honest proof rejected: %v", s, shape, err)
			}
			if rep.MaxSketchDist != 0 || len(rep.Challenged) != min(shape.n, DefaultChallenges) {
				t.Fatalf("%v %+v: report %+v", s, shape, rep)
			}
		}
	}
}

func TestProveDeterministic(t *testing.T) {
	f := newFixture(t)
	s := Sampling{Temperature: 1}
	a := f.prove(t, beaconOf(1), []int32{1, 2}, 30, s)
	b := f.prove(t, beaconOf(1), []int32{1, 2}, 30, s)
	c := f.prove(t, beaconOf(2), []int32{1, 2}, 30, s)
	ea, _ := a.Encode()
	eb, _ := b.Encode()
	if !bytes.Equal(ea, eb) {
		t.Fatal("same inputs gave different proofs")
	}
	if slices.Equal(a.Tokens, c.Tokens) || slices.Equal(a.Sketches, c.Sketches) {
		t.Fatal("another beacon gave the same tokens or sketches")
	}
}

// TestAcrossEnginesAndBatches: proofs made on one thread count, kernel path
// and decoding mode verify on every other, alone or batched with other
// sequences, with zero sketch distance (the engine is bit-reproducible).
func TestAcrossEnginesAndBatches(t *testing.T) {
	ctx := context.Background()
	type env struct {
		name string
		m    *model.GPT
	}
	var envs []env
	for _, isa := range []tensor.ISA{tensor.BestISA(), tensor.Generic} {
		for _, th := range []int{1, 2} {
			m := newModel(t, tinyConfig, 1, newEngine(t, tensor.WithISA(isa), tensor.WithThreads(th)))
			envs = append(envs, env{isa.String() + "/" + string(rune('0'+th)), m})
		}
	}
	var proofs []*Proof
	var exps []Expect
	for i, pe := range envs {
		for _, full := range []bool{false, true} {
			var opts []ProveOption
			if full {
				opts = append(opts, WithFullRecompute())
			}
			pr, err := NewProver(pe.m, testKey(1), opts...)
			if err != nil {
				t.Fatal(err)
			}
			for j, s := range expSamplings {
				b := beaconOf(byte(10*i + j))
				prompt := []int32{int32(i), int32(j), 7}
				p, err := pr.Prove(ctx, b, prompt, 20+j%2, s)
				if err != nil {
					t.Fatal(err)
				}
				proofs = append(proofs, p)
				exps = append(exps, Expect{Beacon: b})
			}
		}
	}
	for _, ve := range envs {
		for _, batch := range []int{1, 4, 16} {
			v, err := NewVerifier(ve.m, WithBatch(batch), WithChallenges(0))
			if err != nil {
				t.Fatal(err)
			}
			reps, errs := v.CheckBatch(ctx, proofs, exps)
			for i, err := range errs {
				if err != nil {
					t.Fatalf("verifier %s batch %d: proof %d rejected: %v", ve.name, batch, i, err)
				}
				if reps[i].MaxSketchDist != 0 || len(reps[i].Challenged) != len(proofs[i].Tokens) {
					t.Fatalf("verifier %s batch %d: proof %d: %+v", ve.name, batch, i, reps[i])
				}
			}
		}
	}
}

func TestRejections(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s := Sampling{Temperature: 1, TopK: 50}
	prompt := []int32{10, 20, 30}
	exp := Expect{Beacon: beaconOf(1)}
	honest := func() *Proof { return f.prove(t, beaconOf(1), prompt, 40, s) }

	// A prover on other weights claiming f's model hash.
	forged := func(edit func([]float32)) *Proof {
		m := newModel(t, tinyConfig, 1, newEngine(t))
		edit(m.Params)
		pr, err := NewProver(m, testKey(1))
		if err != nil {
			t.Fatal(err)
		}
		pr.hash = f.pr.hash
		p, err := pr.Prove(ctx, beaconOf(1), prompt, 40, s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	resign := func(p *Proof) *Proof {
		if err := p.Sign(testKey(1)); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name  string
		proof func() *Proof
		exp   Expect
		want  error
	}{
		{"other beacon expected", honest, Expect{Beacon: beaconOf(2)}, ErrBinding},
		{"other peer expected", honest, Expect{Beacon: beaconOf(1), Peer: testKey(2).Public().(ed25519.PublicKey)}, ErrBinding},
		{"other prompt expected", honest, Expect{Beacon: beaconOf(1), Prompt: []int32{10, 20, 31}}, ErrBinding},
		{"other sampling expected", honest, Expect{Beacon: beaconOf(1), Sampling: &Sampling{}}, ErrBinding},
		{"signature broken", func() *Proof { p := honest(); p.Signature[3] ^= 1; return p }, exp, ErrSignature},
		{"unsigned edit", func() *Proof { p := honest(); p.Tokens[3]++; return p }, exp, ErrSignature},
		{"model hash of another model", func() *Proof { p := honest(); p.ModelHash[0] ^= 1; return resign(p) }, exp, ErrModel},
		{"malformed", func() *Proof { p := honest(); p.Sketches = p.Sketches[1:]; return p }, exp, ErrMalformed},
		{"other init seed", func() *Proof {
			return forged(func(w []float32) {
				m := newModel(t, tinyConfig, 99, newEngine(t))
				copy(w, m.Params)
			})
		}, exp, ErrSketch},
		{"perturbed weights 1e-3", func() *Proof {
			return forged(func(w []float32) {
				st := newStream(beaconOf(5), 0, 0)
				for i := range w {
					w[i] *= 1 + 1e-3*(float32(st.byte())/128-1)
				}
			})
		}, exp, ErrSketch},
		{"tampered sketch", func() *Proof { p := honest(); p.Sketches[0] ^= 1 << 12; return resign(p) }, Expect{Beacon: beaconOf(1), Challenge: []byte{1}}, nil},
		{"substituted token, sketches not recomputed", func() *Proof {
			p := honest()
			p.Tokens[5] = (p.Tokens[5] + 1) % 256
			return resign(p)
		}, exp, ErrSketch},
		{"substituted token", func() *Proof {
			p := honest()
			p.Tokens[5] = (p.Tokens[5] + 1) % 256
			if err := honestSketches(f.m, p); err != nil {
				t.Fatal(err)
			}
			return resign(p)
		}, exp, ErrToken},
		{"replayed with another beacon", func() *Proof { p := honest(); p.Beacon = beaconOf(2); return resign(p) }, Expect{Beacon: beaconOf(2)}, ErrSketch},
	}
	for _, tc := range tests {
		p := tc.proof()
		err := f.v.Verify(ctx, p, tc.exp)
		if tc.want == nil { // tampered sketch: caught whenever position 0 is challenged
			v, _ := NewVerifier(f.m, WithChallenges(0))
			err = v.Verify(ctx, p, tc.exp)
			tc.want = ErrSketch
		}
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestChallengeDependsOnCommitment(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	p := f.prove(t, beaconOf(1), []int32{1}, 63, Sampling{Temperature: 1})
	r1, err := f.v.Check(ctx, p, Expect{Beacon: beaconOf(1)})
	if err != nil {
		t.Fatal(err)
	}
	r2, err := f.v.Check(ctx, p, Expect{Beacon: beaconOf(1), Challenge: []byte("later beacon")})
	if err != nil {
		t.Fatal(err)
	}
	if slices.Equal(r1.Challenged, r2.Challenged) || len(r1.Challenged) != DefaultChallenges {
		t.Fatalf("challenges %v and %v", r1.Challenged, r2.Challenged)
	}
}

func TestProveErrors(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	tests := []struct {
		name   string
		prompt []int32
		n      int
		s      Sampling
	}{
		{"empty prompt", nil, 5, Sampling{}},
		{"no tokens", []int32{1}, 0, Sampling{}},
		{"beyond context", []int32{1, 2}, tinyConfig.Context, Sampling{}},
		{"token out of range", []int32{256}, 5, Sampling{}},
		{"negative token", []int32{-1}, 5, Sampling{}},
		{"bad sampling", []int32{1}, 5, Sampling{Temperature: -1}},
	}
	for _, tc := range tests {
		if _, err := f.pr.Prove(ctx, beaconOf(1), tc.prompt, tc.n, tc.s); err == nil {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.pr.Prove(cctx, beaconOf(1), []int32{1}, 5, Sampling{}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v", err)
	}
	if _, err := NewProver(f.m, nil); err == nil {
		t.Error("nil signer accepted")
	}
	for _, o := range []VerifyOption{WithChallenges(-1), WithBatch(0), WithFloor(1), WithLogitTolerance(-1)} {
		if _, err := NewVerifier(f.m, o); err == nil {
			t.Error("bad verifier option accepted")
		}
	}
	if errs := f.v.VerifyBatch(ctx, []*Proof{nil}, nil); errs[0] == nil {
		t.Error("mismatched expectations accepted")
	}
}

// FuzzVerify: any proof that decodes is verified without panicking, and a
// verdict of acceptance only ever comes for the honest seeds' exact bytes.
func FuzzVerify(f *testing.F) {
	m := newModel(f, tinyConfig, 1, newEngine(f))
	pr, err := NewProver(m, testKey(1))
	if err != nil {
		f.Fatal(err)
	}
	v, err := NewVerifier(m)
	if err != nil {
		f.Fatal(err)
	}
	honest := map[string]bool{}
	for i, s := range expSamplings {
		p, err := pr.Prove(context.Background(), beaconOf(1), []int32{int32(i), 5}, 10+i, s)
		if err != nil {
			f.Fatal(err)
		}
		b, _ := p.Encode()
		honest[string(b)] = true
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		if err := v.Verify(context.Background(), p, Expect{Beacon: beaconOf(1)}); err == nil && !honest[string(b)] {
			t.Fatal("a modified proof was accepted")
		}
	})
}

// TestExactMode: on trinity's bit-reproducible engine honest proofs pass
// with zero logit tolerance, zero floor and every position challenged.
func TestExactMode(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	v, err := NewVerifier(f.m, WithLogitTolerance(0), WithFloor(0), WithChallenges(0))
	if err != nil {
		t.Fatal(err)
	}
	for i, s := range expSamplings {
		p := f.prove(t, beaconOf(byte(i)), []int32{3, 1, 4, 1, 5}, 50, s)
		if err := v.Verify(ctx, p, Expect{Beacon: beaconOf(byte(i))}); err != nil {
			t.Fatalf("%v: %v", s, err)
		}
	}
}
