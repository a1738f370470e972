package rl

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/trinity-net/trinity/compute/data"
)

// surrogate is sum_ij w_ij log pi(c_ij) under m's current parameters.
func surrogate(t *testing.T, p *Policy, samples []sample, w [][]float64) float64 {
	t.Helper()
	var f float64
	err := p.logprobs(context.Background(), p.m, samples, func(s *sample, lp []float64) {
		i := slices.IndexFunc(samples, func(x sample) bool { return &x.seq[0] == &s.seq[0] })
		for j := range lp {
			f += w[i][j] * lp[j]
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// TestGradientFiniteDifference checks the prefix-difference construction of
// per-token weighted gradients against a finite difference of the weighted
// log-likelihood, with weights that differ at every token.
func TestGradientFiniteDifference(t *testing.T) {
	cfg, ts := testConfig(), testTasks(t)
	batches := rollAll(t, 2, testRound(7), cfg, ts)
	m := tinyPolicy(t, 2)
	p, err := NewPolicy(m, nil, ts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var st UpdateStats
	samples, err := p.prepare(batches, &st)
	if err != nil {
		t.Fatal(err)
	}
	st0 := prng{seed: [32]byte{7}}
	w := make([][]float64, len(samples))
	for i, s := range samples {
		w[i] = make([]float64, len(s.seq)-s.P)
		for j := range w[i] {
			w[i][j] = float64(int64(st0.next()%2001)-1000) / 1000
		}
	}
	passes, err := p.gradient(context.Background(), samples, w)
	if err != nil {
		t.Fatal(err)
	}
	if passes == 0 {
		t.Fatal("no passes")
	}
	g := slices.Clone(p.acc)
	var norm float64
	for _, x := range g {
		norm += float64(x) * float64(x)
	}
	norm = math.Sqrt(norm)
	theta := slices.Clone(m.Params)
	const h = 1e-2
	eval := func(sign float64) float64 {
		for i := range m.Params {
			m.Params[i] = theta[i] + float32(sign*h*float64(g[i])/norm)
		}
		return surrogate(t, p, samples, w)
	}
	fd := (eval(1) - eval(-1)) / (2 * h)
	copy(m.Params, theta)
	// grad of sum w CE is minus grad of the surrogate; along g/|g| it is |g|.
	if rel := math.Abs(-fd-norm) / norm; rel > 0.03 {
		t.Fatalf("directional derivative %.5g, gradient norm %.5g (relative error %.3g)", -fd, norm, rel)
	}
}

// TestReplicasAgree runs RL rounds with three replicas on different thread
// counts, each given the manifest's batches in a different order: after
// every round all hold the same state hash, and the policy moved.
func TestReplicasAgree(t *testing.T) {
	ctx := context.Background()
	ts := testTasks(t)
	for _, c := range []struct {
		name  string
		edit  func(*Config)
		useKL bool
	}{
		{"grpo", func(*Config) {}, false},
		{"epochs+kl", func(c *Config) { c.Epochs = 2; c.KLCoef = 0.05 }, true},
		{"sgd", func(c *Config) { c.SGDLR = 0.05 }, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := testConfig()
			c.edit(&cfg)
			ref := tinyPolicy(t, 1)
			var reps []*Policy
			for _, th := range []int{1, 2, 1} {
				var r = ref
				if !c.useKL {
					r = nil
				}
				p, err := NewPolicy(tinyPolicy(t, th), r, ts, cfg)
				if err != nil {
					t.Fatal(err)
				}
				reps = append(reps, p)
			}
			h0 := reps[0].Hash()
			for round := range uint64(2) {
				rd := testRound(10 + round)
				val, err := NewValidator(reps[0].m, ts, cfg)
				if err != nil {
					t.Fatal(err)
				}
				var manifest []*Batch
				for i := range 3 {
					b, err := honestBatch(ctx, reps[i].m, testKey(byte(i)), ts, cfg, rd)
					if err != nil {
						t.Fatal(err)
					}
					if _, err := val.Check(ctx, b, Expect{Round: rd, Peer: pubOf(testKey(byte(i)))}, nil); err != nil {
						t.Fatalf("round %d: honest batch %d: %v", round, i, err)
					}
					manifest = append(manifest, b)
				}
				var informative int
				for i, p := range reps {
					order := slices.Clone(manifest)
					if i == 1 {
						slices.Reverse(order)
					}
					st, err := p.Update(ctx, order)
					if err != nil {
						t.Fatal(err)
					}
					informative = st.Informative
				}
				if informative == 0 {
					t.Fatalf("round %d: no group with differing rewards; the test model is too weak", round)
				}
				for i, p := range reps[1:] {
					if p.Hash() != reps[0].Hash() {
						t.Fatalf("round %d: replica %d disagrees", round, i+1)
					}
				}
			}
			if reps[0].Hash() == h0 {
				t.Fatal("policy did not change")
			}
		})
	}
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	cfg, ts := testConfig(), testTasks(t)
	m := tinyPolicy(t, 1)
	for name, edit := range map[string]func(*Config){
		"group size 1":   func(c *Config) { c.GroupSize = 1 },
		"no problems":    func(c *Config) { c.Problems = 0 },
		"greedy":         func(c *Config) { c.Sampling.Temperature = 0 },
		"clip":           func(c *Config) { c.ClipEps = 1 },
		"NaN kl":         func(c *Config) { c.KLCoef = math.NaN() },
		"reward sum 1":   func(c *Config) { c.FormatBonus, c.PartialCredit = 0.5, 0.5 },
		"no epochs":      func(c *Config) { c.Epochs = 0 },
		"bad adamw":      func(c *Config) { c.AdamW.Beta1 = 2 },
		"negative verif": func(c *Config) { c.VerifyGroups = -1 },
	} {
		c := cfg
		edit(&c)
		if _, err := NewPolicy(m, nil, ts, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewPolicy(m, nil, ts, func() Config { c := cfg; c.KLCoef = 0.1; return c }()); err == nil {
		t.Error("KL without a reference accepted")
	}
	p, err := NewPolicy(m, nil, ts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	h := p.Hash()
	b := rollAll(t, 1, testRound(1), cfg, ts)[0]
	bad := *b
	bad.Groups = slices.Clone(b.Groups)
	bad.Groups[0].Task = 1 << 30
	if _, err := p.Update(ctx, []*Batch{&bad}); err == nil {
		t.Error("task out of range accepted")
	}
	if _, err := p.Update(ctx, []*Batch{nil}); err == nil {
		t.Error("nil batch accepted")
	}
	if p.Hash() != h {
		t.Error("a failed update changed the policy")
	}
	v, err := NewValidator(m, ts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Check(ctx, nil, Expect{}, nil); !errors.Is(err, ErrMalformed) {
		t.Errorf("nil batch: %v", err)
	}
	if _, err := emptyPrompt(); err == nil {
		t.Error("empty prompt accepted")
	}
}

func emptyPrompt() ([]int32, error) { return PromptEncoder{}.Encode(data.Task{}) }

// TestUpdateDirection: one small update raises the log-probability of the
// completions with positive advantage relative to those with negative
// advantage (the advantage-weighted log-likelihood increases).
func TestUpdateDirection(t *testing.T) {
	for _, sgd := range []float32{0, 0.05} {
		cfg, ts := testConfig(), testTasks(t)
		cfg.SGDLR = sgd
		cfg.AdamW.LR = 1e-4
		batches := rollAll(t, 3, testRound(8), cfg, ts)
		p, err := NewPolicy(tinyPolicy(t, 1), nil, ts, cfg)
		if err != nil {
			t.Fatal(err)
		}
		var st UpdateStats
		samples, err := p.prepare(batches, &st)
		if err != nil {
			t.Fatal(err)
		}
		w := make([][]float64, len(samples))
		for i, s := range samples {
			w[i] = make([]float64, len(s.seq)-s.P)
			for j := range w[i] {
				w[i][j] = s.adv
			}
		}
		before := surrogate(t, p, samples, w)
		if _, err := p.Update(context.Background(), batches); err != nil {
			t.Fatal(err)
		}
		after := surrogate(t, p, samples, w)
		if !(after > before) {
			t.Fatalf("sgd=%v: advantage-weighted log-likelihood %v -> %v", sgd, before, after)
		}
	}
}
