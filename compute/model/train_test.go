package model

import (
	"context"
	"fmt"
	"testing"

	"github.com/trinity-net/trinity/compute/tensor"
)

// trainer is the smallest training loop: the model, AdamW state and a batch.
type trainer struct {
	m               *GPT
	mom, vel        []float32
	tokens, targets []int32
	B, T, step      int
	lr              float32
}

func newTrainer(m *GPT, tokens, targets []int32, B, T int, lr float32) *trainer {
	n := len(m.Params)
	return &trainer{m: m, mom: make([]float32, n), vel: make([]float32, n),
		tokens: tokens, targets: targets, B: B, T: T, lr: lr}
}

func (tr *trainer) trainStep() (float32, error) {
	loss, err := tr.m.Forward(tr.tokens, tr.targets, tr.B, tr.T)
	if err != nil {
		return 0, err
	}
	tr.m.ZeroGrad()
	if err := tr.m.Backward(); err != nil {
		return 0, err
	}
	tr.step++
	tr.m.Engine().AdamW(tr.m.Params, tr.m.Grads, tr.mom, tr.vel, tr.lr, 0.9, 0.95, 1e-8, 0.0, tr.step)
	return loss, nil
}

// TestTrainingReducesLoss trains a tiny byte-level model on a short repeated
// text: the loss must fall far below its starting value (ln 256 = 5.5).
func TestTrainingReducesLoss(t *testing.T) {
	cfg := Config{Vocab: 256, Context: 32, Layers: 2, Heads: 2, Width: 32}
	m := newModel(t, cfg, newEngine(t))
	m.Init(1)
	text := []byte("the quick brown fox jumps over the lazy dog. ")
	B, T := 4, 32
	tokens, targets := make([]int32, B*T), make([]int32, B*T)
	for b := range B {
		for i := range T {
			tokens[b*T+i] = int32(text[(b*7+i)%len(text)])
			targets[b*T+i] = int32(text[(b*7+i+1)%len(text)])
		}
	}
	tr := newTrainer(m, tokens, targets, B, T, 1e-2)
	var first, last float32
	for i := range 40 {
		loss, err := tr.trainStep()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = loss
		}
		last = loss
	}
	t.Logf("loss %.3f -> %.3f after 40 AdamW steps", first, last)
	if first < 5 || last > 0.3*first {
		t.Fatalf("loss went from %.3f to %.3f in 40 steps; want a clear drop from ~5.5", first, last)
	}
}

// TestTrainStepAllocs checks that a steady-state training step (Forward,
// ZeroGrad, Backward) allocates nothing, for several thread counts. The
// model's own parallel regions go through Engine.Parallel; whatever one
// bare Parallel call allocates (measured here; nothing once the engine
// pools its wait groups) is the only allowance.
func TestTrainStepAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	for _, threads := range []int{1, 2, 3} {
		e := newEngine(t, tensor.WithThreads(threads))
		m := newModel(t, detConfig, e)
		m.Init(1)
		B, T := 3, 19
		tokens := randomTokens(B*T, detConfig.Vocab, 2)
		step := func() {
			if _, err := m.Forward(tokens, tokens, B, T); err != nil {
				t.Fatal(err)
			}
			m.ZeroGrad()
			if err := m.Backward(); err != nil {
				t.Fatal(err)
			}
		}
		noop := func(tensor.Kernels, int, int) {}
		perParallel := testing.AllocsPerRun(10, func() { e.Parallel(threads, noop) })
		if perParallel != 0 {
			t.Logf("%d threads: Engine.Parallel allocates %v per call", threads, perParallel)
		}
		calls := float64(2 + 2*detConfig.Layers) // embeddings and attention, forward and backward
		// The first step sizes the activations.
		step()
		if n := testing.AllocsPerRun(5, step); n > perParallel*calls {
			t.Errorf("%d threads: %v allocations per training step, want %v", threads, n, perParallel*calls)
		}
		// A smaller batch reuses the buffer.
		if n := testing.AllocsPerRun(2, func() {
			if _, err := m.Forward(tokens[:2*T], tokens[:2*T], 2, T); err != nil {
				t.Fatal(err)
			}
		}); n > perParallel*calls/2 {
			t.Errorf("%d threads: %v allocations for a smaller batch, want %v", threads, n, perParallel*calls/2)
		}
	}
}

// flopsPerToken is the usual 6N + 12*L*C*T count for forward + backward.
func flopsPerToken(cfg Config, T int) float64 {
	return float64(6*cfg.NumParams() + 12*cfg.Layers*cfg.Width*T)
}

func benchModel(b *testing.B, threads int) (*GPT, []int32, []int32) {
	var opts []tensor.Option
	if threads > 0 {
		opts = append(opts, tensor.WithThreads(threads))
	}
	m := newModel(b, Reference, newEngine(b, opts...))
	m.Init(1)
	const B, T = 4, 64
	return m, randomTokens(B*T, Reference.Vocab, 1), randomTokens(B*T, Reference.Vocab, 2)
}

// BenchmarkTrainStep is one full training step of the reference model on a
// 4 x 64 batch: Forward, ZeroGrad, Backward and AdamW over all parameters.
func BenchmarkTrainStep(b *testing.B) {
	for _, threads := range []int{0, 1} {
		name := "threads=all"
		if threads > 0 {
			name = fmt.Sprintf("threads=%d", threads)
		}
		b.Run(name, func(b *testing.B) {
			m, tokens, targets := benchModel(b, threads)
			const B, T = 4, 64
			tr := newTrainer(m, tokens, targets, B, T, 1e-4)
			if _, err := tr.trainStep(); err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for b.Loop() {
				if _, err := tr.trainStep(); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(sec*1e3, "ms/step")
			b.ReportMetric(B*T/sec, "tokens/s")
			b.ReportMetric(flopsPerToken(Reference, T)*B*T/sec/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkForward is the forward pass with loss of the same step.
func BenchmarkForward(b *testing.B) {
	m, tokens, targets := benchModel(b, 0)
	const B, T = 4, 64
	for b.Loop() {
		if _, err := m.Forward(tokens, targets, B, T); err != nil {
			b.Fatal(err)
		}
	}
	sec := b.Elapsed().Seconds() / float64(b.N)
	b.ReportMetric(sec*1e3, "ms/op")
	b.ReportMetric(B*T/sec, "tokens/s")
	b.ReportMetric(flopsPerToken(Reference, T)/3*B*T/sec/1e9, "GFLOP/s")
}

// BenchmarkSession decodes a full context (256 tokens) with a KV cache.
func BenchmarkSession(b *testing.B) {
	m, _, _ := benchModel(b, 0)
	tokens := randomTokens(Reference.Context, Reference.Vocab, 3)
	s, err := m.NewSession(Reference.Context)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		s.Reset()
		for _, tok := range tokens {
			if _, _, err := s.Step(tok); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(len(tokens))*float64(b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkAttention is the attention core of one block (forward and
// backward over the B x heads pairs) on the reference shapes.
func BenchmarkAttention(b *testing.B) {
	m, tokens, targets := benchModel(b, 0)
	const B, T = 4, 64
	if _, err := m.Forward(tokens, targets, B, T); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		m.runHeads(0, false)
		m.runHeads(0, true)
	}
	hs := Reference.Width / Reference.Heads
	flops := float64(B*Reference.Heads) * 6 * 2 * T * T * float64(hs) / 2 // the causal half
	b.ReportMetric(flops*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
}

// BenchmarkGenerate prefills a 64-token prompt and samples 64 more tokens.
func BenchmarkGenerate(b *testing.B) {
	m, tokens, _ := benchModel(b, 0)
	prompt := tokens[:64]
	s := Sampler{Temperature: 1, TopK: 40, Seed: 1}
	for b.Loop() {
		if _, err := m.Generate(context.Background(), prompt, 64, s, nil); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(64*float64(b.N)/b.Elapsed().Seconds(), "new-tokens/s")
}
