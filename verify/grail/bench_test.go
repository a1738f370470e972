package grail

import (
	"context"
	"math/rand/v2"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
)

// benchConfig is the reference model; 1 prompt token and 256 generated
// tokens fill its context.
func benchSetup(b *testing.B) (*model.GPT, job) {
	m := newModel(b, model.Reference, 1, newEngine(b))
	return m, job{beacon: beaconOf(1), prompt: []int32{65}, n: model.Reference.Context, s: Sampling{Temperature: 1, TopK: 40}}
}

func BenchmarkGeneratePlain(b *testing.B) {
	m, j := benchSetup(b)
	rng := rand.New(rand.NewPCG(1, 2))
	for b.Loop() {
		if err := plainGenerate(context.Background(), m, j, rng); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(j.n*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkProve(b *testing.B) {
	m, j := benchSetup(b)
	pr, err := NewProver(m, testKey(1))
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := pr.Prove(context.Background(), j.beacon, j.prompt, j.n, j.s); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(j.n*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

func BenchmarkVerify(b *testing.B) {
	m, j := benchSetup(b)
	pr, err := NewProver(m, testKey(1))
	if err != nil {
		b.Fatal(err)
	}
	p, err := pr.Prove(context.Background(), j.beacon, j.prompt, j.n, j.s)
	if err != nil {
		b.Fatal(err)
	}
	v, err := NewVerifier(m)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if err := v.Verify(context.Background(), p, Expect{Beacon: j.beacon}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(j.n*b.N)/b.Elapsed().Seconds(), "tokens/s")
}

// BenchmarkProofOverhead isolates the prover's per-token extra work: the
// projection vector, the sketch and the sampling draw.
func BenchmarkProofOverhead(b *testing.B) {
	C := model.Reference.Width
	h := make([]float32, C)
	for i := range h {
		h[i] = float32(i%7) - 3
	}
	r := make([]int8, C)
	seed := beaconOf(9)
	st := newStream(seed, 0, 0)
	t := 0
	for b.Loop() {
		projection(seed, t, r, st)
		if _, _, err := sketchOf(h, r); err != nil {
			b.Fatal(err)
		}
		_ = uniform(seed, t, st)
		t++
	}
}
