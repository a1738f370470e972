package rl

import (
	"cmp"
	"context"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// term is one forward/backward pass worth of gradient: coef times the
// gradient of the summed cross-entropy over the first n positions of seq
// (seq holds n+1 tokens: inputs and the last target).
type term struct {
	seq  []int32
	coef float64
}

// gradientPrefix writes sum_i sum_j w_ij grad CE_ij into p.acc with the
// model's uniform Backward only: the construction Policy.gradient used before
// model.BackwardWeighted, kept as the reference it is tested against.
//
// The model's Backward only gives the gradient of the mean cross-entropy
// over all positions of a batch, with one weight. Per-token weights come from
// causality: the first n positions of a sequence compute the same values
// whatever follows, so with S_n = n * grad(mean CE over a forward of the
// first n positions), grad CE at position n-1 is S_n - S_{n-1}, and by
// summation by parts
//
//	sum_j w_j grad CE_(P-2+j) = -w_1 S_(P-1) + sum_j (w_j - w_(j+1)) S_(P-1+j)
//
// (w_(L+1) = 0). Prefixes shared by rollouts of one task merge into one term
// (the prompt prefix's coefficients sum to about zero in a group, since
// advantages do); terms of equal length and coefficient run as one batch.
// In the on-policy case without KL every token of a rollout has the same
// weight, so each rollout needs only its full-length pass and rollouts of a
// group with equal reward and length share it.
func (p *Policy) gradientPrefix(ctx context.Context, samples []sample, weights [][]float64) (int, error) {
	coefs := map[string]*term{}
	var order []*term
	add := func(seq []int32, c float64) {
		if c == 0 {
			return
		}
		k := tokensKey(seq)
		t, ok := coefs[k]
		if !ok {
			t = &term{seq: seq}
			coefs[k] = t
			order = append(order, t)
		}
		t.coef += c
	}
	for i, s := range samples {
		w := weights[i]
		L := len(w)
		if s.P-1 >= 1 {
			add(s.seq[:s.P], -w[0])
		}
		for j := 1; j <= L; j++ {
			next := 0.0
			if j < L {
				next = w[j]
			}
			add(s.seq[:s.P+j], w[j-1]-next)
		}
	}
	var maxAbs float64
	for _, t := range order {
		maxAbs = max(maxAbs, math.Abs(t.coef))
	}
	// Coefficients that cancelled to rounding noise are dropped: their
	// contribution is far below float32 resolution of the sum.
	terms := order[:0]
	for _, t := range order {
		if math.Abs(t.coef) > 1e-9*maxAbs {
			terms = append(terms, t)
		}
	}
	slices.SortFunc(terms, func(a, b *term) int {
		if c := cmp.Compare(len(a.seq), len(b.seq)); c != 0 {
			return c
		}
		if c := cmp.Compare(a.coef, b.coef); c != 0 {
			return c
		}
		return slices.Compare(a.seq, b.seq)
	})
	clear(p.acc)
	e := p.m.Engine()
	passes := 0
	for lo := 0; lo < len(terms); {
		hi := lo + 1
		for hi < len(terms) && hi-lo < maxRows && len(terms[hi].seq) == len(terms[lo].seq) && terms[hi].coef == terms[lo].coef {
			hi++
		}
		if err := ctx.Err(); err != nil {
			return passes, fmt.Errorf("rl: policy update: %w", err)
		}
		n, B := len(terms[lo].seq)-1, hi-lo
		in, tg := make([]int32, 0, B*n), make([]int32, 0, B*n)
		for _, t := range terms[lo:hi] {
			in = append(in, t.seq[:n]...)
			tg = append(tg, t.seq[1:]...)
		}
		if _, err := p.m.Forward(in, tg, B, n); err != nil {
			return passes, fmt.Errorf("rl: policy update: forward: %w", err)
		}
		p.m.ZeroGrad()
		if err := p.m.Backward(); err != nil {
			return passes, fmt.Errorf("rl: policy update: backward: %w", err)
		}
		e.Scale(p.m.Grads, float32(terms[lo].coef*float64(B*n)))
		e.AddTo(p.acc, p.m.Grads)
		passes++
		lo = hi
	}
	return passes, nil
}

// gradientSetup prepares two peers' batches and per-token weights that
// differ at every token (the PPO-epoch and KL case), or GRPO's on-policy
// weights (one per rollout) when onPolicy.
func gradientSetup(t testing.TB, onPolicy bool) (*Policy, []sample, [][]float64) {
	cfg, ts := testConfig(), testTasks(t)
	batches := rollAll(t, 2, testRound(7), cfg, ts)
	p, err := NewPolicy(tinyPolicy(t, 2), nil, ts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	var st UpdateStats
	samples, err := p.prepare(batches, &st)
	if err != nil {
		t.Fatal(err)
	}
	st0 := prng{seed: [32]byte{9}}
	w := make([][]float64, len(samples))
	for i, s := range samples {
		w[i] = make([]float64, len(s.seq)-s.P)
		for j := range w[i] {
			w[i][j] = float64(int64(st0.next()%2001)-1000) / 1000
			if onPolicy {
				w[i][j] = s.adv / float64(st.Tokens)
			}
		}
	}
	return p, samples, w
}

// TestGradientMatchesPrefix: the weighted backward gives the gradient the
// prefix-difference construction gives, up to float32 rounding, in fewer
// passes.
func TestGradientMatchesPrefix(t *testing.T) {
	for _, onPolicy := range []bool{false, true} {
		p, samples, w := gradientSetup(t, onPolicy)
		n1, err := p.gradient(context.Background(), samples, w)
		if err != nil {
			t.Fatal(err)
		}
		got := slices.Clone(p.acc)
		n2, err := p.gradientPrefix(context.Background(), samples, w)
		if err != nil {
			t.Fatal(err)
		}
		var maxErr, norm float64
		for i, x := range p.acc {
			maxErr = max(maxErr, math.Abs(float64(got[i])-float64(x)))
			norm = max(norm, math.Abs(float64(x)))
		}
		t.Logf("on-policy %v: %d weighted passes, %d prefix passes, max |diff| %.3g of max |grad| %.3g", onPolicy, n1, n2, maxErr, norm)
		if norm == 0 || maxErr > 2e-3*norm {
			t.Errorf("on-policy %v: gradients differ by %.3g (max |grad| %.3g)", onPolicy, maxErr, norm)
		}
		if n1 > n2 {
			t.Errorf("on-policy %v: %d weighted passes, more than the %d prefix passes", onPolicy, n1, n2)
		}
	}
}

// BenchmarkGradient compares the weighted backward with the prefix
// construction on the same rollouts; "speedup" is prefix time / weighted
// time in the same run.
func BenchmarkGradient(b *testing.B) {
	for _, onPolicy := range []bool{true, false} {
		b.Run(fmt.Sprintf("on-policy=%v", onPolicy), func(b *testing.B) {
			p, samples, w := gradientSetup(b, onPolicy)
			ctx := context.Background()
			var tw, tp float64
			for b.Loop() {
				t0 := nowSeconds()
				if _, err := p.gradient(ctx, samples, w); err != nil {
					b.Fatal(err)
				}
				t1 := nowSeconds()
				if _, err := p.gradientPrefix(ctx, samples, w); err != nil {
					b.Fatal(err)
				}
				tw, tp = tw+t1-t0, tp+nowSeconds()-t1
			}
			b.ReportMetric(tp/tw, "speedup")
		})
	}
}

func nowSeconds() float64 { return float64(time.Now().UnixNano()) / 1e9 }
