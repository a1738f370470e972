package grail

import (
	"errors"
	"math"
	"math/rand/v2"
	"testing"
)

func randLogits(rng *rand.Rand, V int, spread float64) []float32 {
	z := make([]float32, V)
	for i := range z {
		z[i] = float32(spread * rng.NormFloat64())
	}
	return z
}

func TestSampleGreedyAndTopK(t *testing.T) {
	sp := newSampler(8)
	z := []float32{1, 3, 0, 3, -1, 2, 2, 2}
	if tok, _ := sp.sample(z, Sampling{}, 0.9); tok != 1 {
		t.Fatalf("greedy picked %d, want 1 (lowest index of the tie)", tok)
	}
	// Top-3 of z: 3, 3 and the first 2 (index 5): draws never leave it.
	for i := range 1000 {
		tok, err := sp.sample(z, Sampling{Temperature: 5, TopK: 3}, float64(i)/1000)
		if err != nil {
			t.Fatal(err)
		}
		if tok != 1 && tok != 3 && tok != 5 {
			t.Fatalf("top-3 sample gave %d", tok)
		}
	}
	if _, err := sp.sample([]float32{0, float32(math.NaN())}, Sampling{Temperature: 1}, 0.5); err == nil {
		t.Fatal("NaN logit accepted")
	}
}

// TestSampleDistribution checks the inverse CDF: over an even grid of draws,
// each token is chosen in proportion to its softmax probability.
func TestSampleDistribution(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 3))
	const V, N = 16, 100000
	z := randLogits(rng, V, 2)
	for _, s := range []Sampling{{Temperature: 1}, {Temperature: 0.5, TopK: 5}} {
		sp := newSampler(V)
		counts := make([]int, V)
		for i := range N {
			tok, _ := sp.sample(z, s, (float64(i)+0.5)/N)
			counts[tok]++
		}
		// Expected probabilities, computed independently.
		type kv struct {
			i int
			z float32
		}
		p := make([]float64, V)
		var total float64
		for i := range z {
			rank := 0
			for j := range z {
				if z[j] > z[i] || (z[j] == z[i] && j < i) {
					rank++
				}
			}
			if s.TopK == 0 || rank < s.TopK {
				p[i] = math.Exp(float64(z[i]) / float64(s.Temperature))
				total += p[i]
			}
		}
		for i := range p {
			if got, want := float64(counts[i])/N, p[i]/total; math.Abs(got-want) > 2.0/N {
				t.Errorf("%v: token %d frequency %.5f, want %.5f", s, i, got, want)
			}
		}
	}
}

// TestCheckTokenAcceptsHonest: whatever the sampler picks is accepted, also
// when the verifier's logits differ from the prover's by less than delta.
func TestCheckTokenAcceptsHonest(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	const V = 64
	sp := newSampler(V)
	for i := range 20000 {
		z := randLogits(rng, V, 0.5+3*rng.Float64())
		if i%5 == 0 { // exact ties at the top-k boundary
			z[7], z[9] = z[3], z[3]
		}
		s := expSamplings[i%len(expSamplings)]
		u := rng.Float64()
		tok, err := sp.sample(z, s, u)
		if err != nil {
			t.Fatal(err)
		}
		delta := 1e-3
		zv := make([]float32, V)
		for j := range z {
			zv[j] = z[j] + float32(delta*0.9*(2*rng.Float64()-1))
		}
		if i%3 == 0 {
			copy(zv, z)
		}
		if err := sp.checkToken(zv, s, u, tok, delta, DefaultFloor); err != nil {
			t.Fatalf("trial %d %v: honest token %d rejected: %v", i, s, tok, err)
		}
	}
}

func TestCheckTokenRejects(t *testing.T) {
	sp := newSampler(6)
	z := []float32{0, 1, 2, 3, 4, -20}
	s := Sampling{Temperature: 1}
	// Probabilities of z at T=1 are about .012 .032 .087 .236 .643 and 3e-11.
	tests := []struct {
		name string
		s    Sampling
		u    float64
		tok  int32
		want error
	}{
		{"greedy non-argmax", Sampling{}, 0.5, 3, errNotArgmax},
		{"outside top-k", Sampling{Temperature: 1, TopK: 2}, 0.01, 0, errOutsideK},
		{"draw selects another token", s, 0.9, 1, errNotSampled},
		{"draw selects another token (low)", s, 0.001, 4, errNotSampled},
	}
	for _, tc := range tests {
		if err := sp.checkToken(z, tc.s, tc.u, tc.tok, 1e-3, DefaultFloor); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	// A near-zero-probability token whose CDF interval touches the draw
	// within the tolerance: the slack admits it only above the floor.
	zf := []float32{0, -30, 0}
	u := 0.499 // token 1's interval sits at 0.5, between tokens 0 and 2
	tok, _ := sp.sample(zf, s, u)
	if tok != 0 {
		t.Fatalf("sampler picked %d, want 0", tok)
	}
	if err := sp.checkToken(zf, s, u, 1, 1e-2, DefaultFloor); !errors.Is(err, errBelowFloor) {
		t.Errorf("negligible token next to the draw: got %v, want %v", err, errBelowFloor)
	}
	if err := sp.checkToken(z, s, 0.5, 9, 1e-3, DefaultFloor); err == nil {
		t.Error("out-of-range token accepted")
	}
}

func TestSamplingValidate(t *testing.T) {
	bad := []Sampling{
		{Temperature: -1}, {Temperature: float32(math.NaN())}, {Temperature: float32(math.Inf(1))},
		{Temperature: 2000}, {Temperature: 1, TopK: -1}, {Temperature: 1, TopK: 300}, {TopK: 5},
		{Temperature: float32(math.Copysign(0, -1))},
	}
	for _, s := range bad {
		if s.validate(256) == nil {
			t.Errorf("%+v accepted", s)
		}
	}
	for _, s := range expSamplings {
		if err := s.validate(256); err != nil {
			t.Errorf("%+v rejected: %v", s, err)
		}
	}
}
