package model

import (
	"context"
	"errors"
	"math"
	"slices"
	"testing"

	"github.com/trinity-net/trinity/compute/tensor"
)

// TestSessionMatchesForward checks that KV-cache decoding gives, at every
// position, bit for bit the logits and hidden state of a full Forward over
// the whole sequence (batched with another sequence, to show that batch
// shape does not matter either), on every ISA path.
func TestSessionMatchesForward(t *testing.T) {
	cfg := detConfig
	for _, tc := range []struct {
		isa   tensor.ISA
		block int
	}{{tensor.Generic, attnBlock}, {tensor.AVX2, attnBlock}, {tensor.Generic, 5}, {tensor.AVX2, 5}} {
		isa := tc.isa
		if _, err := tensor.NewKernels(isa); err != nil {
			t.Logf("skipping %v: %v", isa, err)
			continue
		}
		e := newEngine(t, tensor.WithISA(isa))
		m := newModel(t, cfg, e)
		m.attnBlock = tc.block // 5: uneven causal blocks in Forward
		m.Init(21)
		T := cfg.Context
		tokens := randomTokens(2*T, cfg.Vocab, 22)
		if _, err := m.Forward(tokens, nil, 2, T); err != nil {
			t.Fatal(err)
		}
		logits, hidden := m.Logits(), m.Hidden()
		s, err := m.NewSession(T)
		if err != nil {
			t.Fatal(err)
		}
		for seq := range 2 {
			s.Reset()
			for pos := range T {
				r := seq*T + pos
				lg, hd, err := s.Step(tokens[r])
				if err != nil {
					t.Fatal(err)
				}
				if !slices.Equal(lg, logits[r*cfg.Vocab:(r+1)*cfg.Vocab]) {
					t.Fatalf("%v seq %d pos %d: session logits differ from Forward's (max diff %g)", isa, seq, pos,
						maxDiff(lg, toF64(logits[r*cfg.Vocab:(r+1)*cfg.Vocab])))
				}
				if !slices.Equal(hd, hidden[r*cfg.Width:(r+1)*cfg.Width]) {
					t.Fatalf("%v seq %d pos %d: session hidden state differs from Forward's", isa, seq, pos)
				}
			}
			if s.Len() != T {
				t.Fatalf("Len = %d, want %d", s.Len(), T)
			}
		}
		if _, _, err := s.Step(0); err == nil {
			t.Fatal("step past maxLen succeeded")
		}
	}
}

// TestPrefill checks that a prefilled session continues exactly as one fed
// token by token, and leaves the model's own activations alone.
func TestPrefill(t *testing.T) {
	cfg := detConfig
	m := newModel(t, cfg, newEngine(t))
	m.Init(23)
	T, P := cfg.Context, 9
	tokens := randomTokens(T, cfg.Vocab, 24)
	if _, err := m.Forward(tokens, nil, 1, T); err != nil {
		t.Fatal(err)
	}
	logits, hidden := slices.Clone(m.Logits()), slices.Clone(m.Hidden())
	s, err := m.NewSession(T)
	if err != nil {
		t.Fatal(err)
	}
	pl, ph, err := s.Prefill(tokens[:P])
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(pl, logits[:P*cfg.Vocab]) || !slices.Equal(ph, hidden[:P*cfg.Width]) {
		t.Fatal("prefill logits or hidden states differ from Forward's")
	}
	if !slices.Equal(m.Logits(), logits) {
		t.Fatal("prefill disturbed the model's activations")
	}
	for pos := P; pos < T; pos++ {
		lg, hd, err := s.Step(tokens[pos])
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(lg, logits[pos*cfg.Vocab:(pos+1)*cfg.Vocab]) || !slices.Equal(hd, hidden[pos*cfg.Width:(pos+1)*cfg.Width]) {
			t.Fatalf("step %d after prefill differs from Forward", pos)
		}
	}
	if _, _, err := s.Prefill(tokens[:2]); err == nil {
		t.Error("prefill into a non-empty session succeeded")
	}
	s.Reset()
	for _, bad := range [][]int32{nil, make([]int32, T+1), {0, int32(cfg.Vocab)}} {
		if _, _, err := s.Prefill(bad); err == nil {
			t.Errorf("prefill of %d tokens %v succeeded", len(bad), bad[:min(len(bad), 2)])
		}
	}
}

func TestGenerate(t *testing.T) {
	cfg := detConfig
	e := newEngine(t)
	m := newModel(t, cfg, e)
	m.Init(31)
	prompt := []int32{1, 2, 3}
	n := cfg.Context - len(prompt)
	ctx := context.Background()

	// Greedy: each new token is the argmax of a full Forward's last logits,
	// and the hook sees every position with Forward's logits and hidden state.
	var calls int
	var hookLogits, hookHidden []float32
	seq, err := m.Generate(ctx, prompt, n, Sampler{}, func(pos int, tok int32, logits, hidden []float32) error {
		calls++
		if pos != calls-1 {
			t.Fatalf("hook called for position %d, want %d", pos, calls-1)
		}
		hookLogits = append(hookLogits, logits...)
		hookHidden = append(hookHidden, hidden...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(seq) != cfg.Context || calls != cfg.Context || !slices.Equal(seq[:3], prompt) {
		t.Fatalf("got %d tokens and %d hook calls, want %d; prompt %v", len(seq), calls, cfg.Context, seq[:3])
	}
	if _, err := m.Forward(seq, nil, 1, len(seq)); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(hookLogits, m.Logits()) || !slices.Equal(hookHidden, m.Hidden()) {
		t.Fatal("the hook's logits or hidden states differ from a Forward over the sequence")
	}
	V := cfg.Vocab
	for pos := len(prompt) - 1; pos < len(seq)-1; pos++ {
		if want := argmax(m.Logits()[pos*V : (pos+1)*V]); seq[pos+1] != want {
			t.Fatalf("greedy token at %d is %d, argmax of Forward is %d", pos+1, seq[pos+1], want)
		}
	}

	// Sampling: deterministic given the seed; top-k 1 is greedy.
	s := Sampler{Temperature: 1, Seed: 7}
	a, err := m.Generate(ctx, prompt, n, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := m.Generate(ctx, prompt, n, s, nil)
	s.Seed = 8
	c, _ := m.Generate(ctx, prompt, n, s, nil)
	if !slices.Equal(a, b) || slices.Equal(a, c) {
		t.Fatalf("sampling with a seed is not deterministic, or ignores the seed:\n%v\n%v\n%v", a, b, c)
	}
	g, _ := m.Generate(ctx, prompt, n, Sampler{Temperature: 0.7, TopK: 1, Seed: 3}, nil)
	if !slices.Equal(g, seq) {
		t.Fatalf("top-k 1 sampling %v differs from greedy %v", g, seq)
	}

	// The hook's error and a cancelled context stop generation.
	stop := errors.New("stop")
	if _, err := m.Generate(ctx, prompt, n, s, func(int, int32, []float32, []float32) error { return stop }); !errors.Is(err, stop) {
		t.Fatalf("hook error not returned: %v", err)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := m.Generate(cctx, prompt, n, s, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled context: %v", err)
	}
}

// TestSamplerDistribution draws many tokens from fixed logits and compares
// the frequencies with softmax(logits/T) restricted to the top k.
func TestSamplerDistribution(t *testing.T) {
	logits := []float32{0, 1, 2, -1, 0.5, 2}
	for _, tc := range []struct {
		temp float32
		topK int
	}{{1, 0}, {0.5, 0}, {2, 3}, {1, 2}} {
		st := newSampling(Sampler{Temperature: tc.temp, TopK: tc.topK, Seed: 1}, len(logits))
		const draws = 60000
		counts := make([]int, len(logits))
		for range draws {
			tok, err := st.pick(logits)
			if err != nil {
				t.Fatal(err)
			}
			counts[tok]++
		}
		// Top k by logit, ties to the lower index: {2, 5, 1, 4, 0, 3}.
		order := []int{2, 5, 1, 4, 0, 3}
		keep := len(logits)
		if tc.topK > 0 {
			keep = tc.topK
		}
		var z float64
		for _, i := range order[:keep] {
			z += math.Exp(float64(logits[i]) / float64(tc.temp))
		}
		want := make([]float64, len(logits))
		for _, i := range order[:keep] {
			want[i] = math.Exp(float64(logits[i])/float64(tc.temp)) / z
		}
		for i, c := range counts {
			got := float64(c) / draws
			// 5 standard deviations of a binomial proportion.
			if sd := math.Sqrt(want[i] * (1 - want[i]) / draws); math.Abs(got-want[i]) > 5*sd+1e-9 {
				t.Errorf("T=%v k=%d: token %d drawn with frequency %.4f, want %.4f", tc.temp, tc.topK, i, got, want[i])
			}
		}
	}
	st := newSampling(Sampler{Temperature: 1}, 3)
	if _, err := st.pick([]float32{0, float32(math.NaN()), 1}); err == nil {
		t.Error("sampling from NaN logits succeeded")
	}
}

func argmax(x []float32) int32 {
	best := 0
	for i, v := range x {
		if v > x[best] {
			best = i
		}
	}
	return int32(best)
}

// TestSamplerGolden pins the tokens a seed draws, which must be the same on
// every machine (GRAIL verifiers and replays rely on it).
func TestSamplerGolden(t *testing.T) {
	logits := []float32{0.5, -1, 2, 1.25, 0, 3, -0.5, 1}
	st := newSampling(Sampler{Temperature: 0.8, TopK: 5, Seed: 1}, len(logits))
	got := make([]int32, 24)
	for i := range got {
		tok, err := st.pick(logits)
		if err != nil {
			t.Fatal(err)
		}
		got[i] = tok
	}
	want := []int32{5, 2, 7, 5, 5, 2, 3, 5, 5, 2, 5, 5, 5, 5, 5, 5, 5, 2, 2, 3, 5, 5, 5, 5}
	if !slices.Equal(got, want) {
		t.Errorf("seed 1 drew %v, want %v", got, want)
	}
}
