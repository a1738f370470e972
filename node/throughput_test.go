package node

import (
	"testing"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/optimizer"
)

// TestBlobSize measures the contribution blob against a dense fp32
// pseudo-gradient for the testnet's model and for the reference model at
// Templar's density (the figures in docs/network.md).
func TestBlobSize(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cfg         model.Config
		chunk, topK int
		minRatio    float64
	}{
		{"testnet tiny model, top-32 of 1024", TinyModel, 1024, 32, 50},
		{"reference model, top-64 of 4096", model.Reference, 4096, 64, 100},
	} {
		ch, err := optimizer.NewChunking(tc.cfg, tc.chunk, tc.topK)
		if err != nil {
			t.Fatal(err)
		}
		s, err := optimizer.NewSparseLoCo(ch)
		if err != nil {
			t.Fatal(err)
		}
		// A pseudo-gradient with no structure: the index coding gains
		// nothing from it, so this is the blob's typical size.
		d := make([]float32, ch.NumParams)
		x := uint32(1)
		for i := range d {
			x ^= x << 13
			x ^= x >> 17
			x ^= x << 5
			d[i] = float32(int32(x)) / (1 << 31)
		}
		c := ch.NewCompressed()
		if err := s.Compress(0, d, c); err != nil {
			t.Fatal(err)
		}
		blob, err := ch.Encode(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		ratio := float64(ch.DenseBytes()) / float64(len(blob))
		t.Logf("%s: %d params, blob %d B vs dense fp32 %d B: 1/%.0f (%.2f bits per parameter)", tc.name, ch.NumParams, len(blob), ch.DenseBytes(), ratio, 8*float64(len(blob))/float64(ch.NumParams))
		if ratio < tc.minRatio {
			t.Errorf("%s: compression 1/%.0f, want at least 1/%.0f", tc.name, ratio, tc.minRatio)
		}
	}
}
