package optimizer

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"math/rand/v2"
	"testing"
)

// exactVec draws floats from integer bits only (no math library), so the
// inputs are the same on every platform.
func exactVec(r *rand.Rand, n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(int32(r.Uint32())>>8) * (1.0 / (1 << 33))
	}
	return v
}

// TestGoldenBits pins the bits of compression, encoding, aggregation and
// the outer steps. Run it under GOAMD64=v1 and v3 (where the compiler may
// fuse a*b+c), with -race, on arm64: it must pass unchanged everywhere. A
// deliberate change of the algorithm or format updates the constants.
func TestGoldenBits(t *testing.T) {
	ch := testChunking(t, []int{6000, 100, 4096}, 1024, 16)
	r := rand.New(rand.NewPCG(2026, 11))
	blobs := make([][]byte, 3)
	blobHash := sha256.New()
	for w := range blobs {
		s, err := NewSparseLoCo(ch, WithErrorDecay(0.95), WithWorkers(1+w))
		if err != nil {
			t.Fatal(err)
		}
		c := ch.NewCompressed()
		for round := range 3 {
			if err := s.Compress(uint64(round), exactVec(r, ch.NumParams), c); err != nil {
				t.Fatal(err)
			}
		}
		if blobs[w], err = ch.Encode(nil, c); err != nil {
			t.Fatal(err)
		}
		blobHash.Write(blobs[w])
		blobHash.Write(f32bytes(s.ErrorBuffer()))
	}
	agg := make([]float32, ch.NumParams)
	if _, err := ch.Aggregate(agg, blobs, 2); err != nil {
		t.Fatal(err)
	}
	theta := exactVec(r, ch.NumParams)
	if err := OuterStep(theta, agg, 0.7); err != nil {
		t.Fatal(err)
	}
	nest, err := NewNesterov(ch.NumParams, 0.7, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := nest.Step(theta, agg); err != nil {
			t.Fatal(err)
		}
	}
	got := map[string]string{
		"blobs+error": hex.EncodeToString(blobHash.Sum(nil)),
		"aggregate":   hex.EncodeToString(f32sum(agg)),
		"theta":       hex.EncodeToString(f32sum(theta)),
	}
	want := map[string]string{
		"blobs+error": "e1caf49c80dd99a5e46004d3f263b4207e0ba62c1a4a9249b963aa0d161480e2",
		"aggregate":   "d18cce7b961d09cddccb3baba31884c0fb6018fa9d1f27879a5b277a02d97ed4",
		"theta":       "8255067a116a7a4d972b45a172cfd9425c8bc2829b4287d434ea9e7343023c20",
	}
	for k, g := range got {
		if want[k] != g {
			t.Errorf("%s: hash %s, want %s", k, g, want[k])
		}
	}
}

func f32sum(v []float32) []byte { h := sha256.Sum256(f32bytes(v)); return h[:] }

func f32bytes(v []float32) []byte {
	b := make([]byte, 0, 4*len(v))
	for _, x := range v {
		u := math.Float32bits(x)
		b = append(b, byte(u), byte(u>>8), byte(u>>16), byte(u>>24))
	}
	return b
}
