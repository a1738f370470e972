package model

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"testing"

	"github.com/trinity-net/trinity/compute/tensor"
)

// weightedGrads runs Forward on B x T random tokens and BackwardWeighted
// with w, returning a copy of the gradients.
func weightedGrads(t *testing.T, m *GPT, B, T int, w []float32) []float32 {
	t.Helper()
	if _, err := m.Forward(randomTokens(B*T, m.Config.Vocab, 21), randomTokens(B*T, m.Config.Vocab, 22), B, T); err != nil {
		t.Fatal(err)
	}
	m.ZeroGrad()
	var err error
	if w == nil {
		err = m.Backward()
	} else {
		err = m.BackwardWeighted(w)
	}
	if err != nil {
		t.Fatal(err)
	}
	return append([]float32(nil), m.Grads...)
}

// TestBackwardWeightedUniform: weights 1/(B*T) everywhere are Backward, bit
// for bit.
func TestBackwardWeightedUniform(t *testing.T) {
	m := newModel(t, detConfig, newEngine(t))
	m.Init(5)
	B, T := 3, 11
	w := make([]float32, B*T)
	for i := range w {
		w[i] = float32(1 / float64(B*T))
	}
	want := weightedGrads(t, m, B, T, nil)
	got := weightedGrads(t, m, B, T, w)
	for i := range got {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			t.Fatalf("grad %d: %v, Backward gives %v", i, got[i], want[i])
		}
	}
}

// TestBackwardWeightedLinear: the gradient is linear in the weights, and a
// weight on one position gives that position's cross-entropy gradient,
// which Backward of a batch of that one position's prefix reproduces
// (causality: later positions do not change earlier ones).
func TestBackwardWeightedLinear(t *testing.T) {
	m := newModel(t, detConfig, newEngine(t))
	m.Init(6)
	B, T := 2, 9
	w1, w2, sum := make([]float32, B*T), make([]float32, B*T), make([]float32, B*T)
	for i := range w1 {
		w1[i] = float32(i%5) * 0.1
		w2[i] = -float32(i%3) * 0.07
		sum[i] = w1[i] + w2[i]
	}
	g1 := weightedGrads(t, m, B, T, w1)
	g2 := weightedGrads(t, m, B, T, w2)
	gs := weightedGrads(t, m, B, T, sum)
	var maxErr, maxAbs float64
	for i := range gs {
		maxErr = max(maxErr, math.Abs(float64(g1[i])+float64(g2[i])-float64(gs[i])))
		maxAbs = max(maxAbs, math.Abs(float64(gs[i])))
	}
	if maxErr > 1e-5*maxAbs {
		t.Errorf("not linear in the weights: max error %g (max |grad| %g)", maxErr, maxAbs)
	}

	// One position: row 1, position 4 (weight 1), against Backward of that
	// row's first five positions, whose mean loss has weight 1/5 each: the
	// difference of two prefix passes isolates position 4.
	one := make([]float32, B*T)
	one[T+4] = 1
	got := weightedGrads(t, m, B, T, one)
	toks, tgts := randomTokens(B*T, m.Config.Vocab, 21), randomTokens(B*T, m.Config.Vocab, 22)
	prefix := func(n int) []float64 {
		if _, err := m.Forward(toks[T:T+n], tgts[T:T+n], 1, n); err != nil {
			t.Fatal(err)
		}
		m.ZeroGrad()
		if err := m.Backward(); err != nil {
			t.Fatal(err)
		}
		out := make([]float64, len(m.Grads))
		for i, g := range m.Grads {
			out[i] = float64(g) * float64(n)
		}
		return out
	}
	s5, s4 := prefix(5), prefix(4)
	maxErr, maxAbs = 0, 0
	for i := range got {
		maxErr = max(maxErr, math.Abs(s5[i]-s4[i]-float64(got[i])))
		maxAbs = max(maxAbs, math.Abs(float64(got[i])))
	}
	if maxAbs == 0 || maxErr > 1e-4*maxAbs {
		t.Errorf("one-position gradient differs from the prefix difference: max error %g (max |grad| %g)", maxErr, maxAbs)
	}
}

// TestBackwardWeightedDeterminism: the same bits on every ISA path and
// thread count.
func TestBackwardWeightedDeterminism(t *testing.T) {
	B, T := 3, 13
	w := make([]float32, B*T)
	for i := range w {
		w[i] = float32(math.Sin(float64(i))) * 0.3
	}
	var want [32]byte
	first := true
	for _, isa := range []tensor.ISA{tensor.Generic, tensor.AVX2, tensor.AVX512} {
		if _, err := tensor.NewKernels(isa); err != nil {
			continue
		}
		for _, threads := range []int{1, 2, 3} {
			m := newModel(t, detConfig, newEngine(t, tensor.WithISA(isa), tensor.WithThreads(threads)))
			m.Init(8)
			h := sha256.New()
			binary.Write(h, binary.LittleEndian, weightedGrads(t, m, B, T, w))
			var got [32]byte
			h.Sum(got[:0])
			if first {
				want, first = got, false
			} else if got != want {
				t.Errorf("%v with %d threads: weighted gradient hash %x, want %x", isa, threads, got[:8], want[:8])
			}
		}
	}
}

func TestBackwardWeightedErrors(t *testing.T) {
	m := newModel(t, detConfig, newEngine(t))
	m.Init(9)
	if err := m.BackwardWeighted(make([]float32, 4)); err == nil {
		t.Error("BackwardWeighted before a Forward accepted")
	}
	B, T := 2, 3
	if _, err := m.Forward(randomTokens(B*T, detConfig.Vocab, 1), randomTokens(B*T, detConfig.Vocab, 2), B, T); err != nil {
		t.Fatal(err)
	}
	for name, w := range map[string][]float32{
		"short": make([]float32, B*T-1),
		"NaN":   {0, 0, float32(math.NaN()), 0, 0, 0},
		"Inf":   {0, float32(math.Inf(-1)), 0, 0, 0, 0},
	} {
		if err := m.BackwardWeighted(w); err == nil {
			t.Errorf("%s weights accepted", name)
		}
	}
}
