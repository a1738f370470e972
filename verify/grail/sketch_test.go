package grail

import (
	"math"
	"math/rand/v2"
	"testing"
)

func TestSketchExact(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 1))
	for range 200 {
		C := 1 + rng.IntN(300)
		h, r := make([]float32, C), make([]int8, C)
		var exact int64 // <h, r> * 2^16 computed in integers: h_i are multiples of 2^-10
		for i := range h {
			hi := int64(rng.IntN(1<<14)) - 1<<13
			h[i] = float32(hi) / 1024
			r[i] = int8(rng.IntN(255) - 127)
			exact += hi * int64(r[i]) * 64
		}
		s, mass, err := sketchOf(h, r)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint32(exact) & (SketchModulus - 1); s != want {
			t.Fatalf("sketch %d, want %d", s, want)
		}
		if mass < 0 {
			t.Fatalf("negative mass %v", mass)
		}
	}
}

func TestSketchRounding(t *testing.T) {
	tests := []struct {
		h    float32
		want uint32
	}{
		{0, 0},
		{1.0 / (1 << 16), 1},
		{-1.0 / (1 << 16), SketchModulus - 1},
		{0.4 / (1 << 16), 0},
		{2.6 / (1 << 16), 3},
		{-2.6 / (1 << 16), SketchModulus - 3},
		{SketchModulus / (1 << 16), 0}, // exactly q wraps to 0
		{1e30, uint32(math.Mod(1e30*(1<<16), SketchModulus))},
	}
	for _, tc := range tests {
		s, _, err := sketchOf([]float32{tc.h}, []int8{1})
		if err != nil {
			t.Fatal(err)
		}
		if s != tc.want {
			t.Errorf("h = %g: sketch %d, want %d", tc.h, s, tc.want)
		}
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		if _, _, err := sketchOf([]float32{1, bad}, []int8{1, 2}); err == nil {
			t.Errorf("hidden value %v accepted", bad)
		}
	}
}

func TestSketchDistance(t *testing.T) {
	tests := []struct{ a, b, want uint32 }{
		{0, 0, 0}, {5, 3, 2}, {3, 5, 2}, {0, SketchModulus - 1, 1}, {SketchModulus - 1, 0, 1},
		{0, SketchModulus / 2, SketchModulus / 2}, {10, SketchModulus - 10, 20},
	}
	for _, tc := range tests {
		if d := sketchDistance(tc.a, tc.b); d != tc.want {
			t.Errorf("distance(%d, %d) = %d, want %d", tc.a, tc.b, d, tc.want)
		}
	}
	if tolerance(0) != TolAbs || tolerance(1e6) <= tolerance(1e3) || tolerance(math.MaxFloat64) != SketchModulus/4 {
		t.Error("tolerance is not TolAbs at 0, increasing, and capped")
	}
}

// TestPositionBound checks the analytic bound against simulation: forged
// hidden states at a given max deviation pass no more often than the bound.
func TestPositionBound(t *testing.T) {
	rng := rand.New(rand.NewPCG(2, 2))
	const C, trials = 64, 20000
	for _, maxDiff := range []float64{1e-2, 1e-3, 2e-4} {
		h := make([]float32, C)
		d := make([]float32, C)
		for i := range h {
			h[i] = float32(rng.NormFloat64())
			d[i] = float32(maxDiff * (2*rng.Float64() - 1))
		}
		d[0] = float32(maxDiff)
		h2 := make([]float32, C)
		for i := range h {
			h2[i] = h[i] + d[i]
		}
		r := make([]int8, C)
		pass := 0
		var maxTol uint32
		for range trials {
			for i := range r {
				r[i] = int8(rng.IntN(255) - 127)
			}
			s1, mass, _ := sketchOf(h, r)
			s2, _, _ := sketchOf(h2, r)
			tol := tolerance(mass)
			maxTol = max(maxTol, tol)
			if sketchDistance(s1, s2) <= tol {
				pass++
			}
		}
		// The actual max deviation after float32 rounding is at least 0.99 maxDiff.
		bound := PositionBound(0.99*maxDiff, maxTol)
		rate := float64(pass) / trials
		t.Logf("max |d| %.0e: pass rate %.4f, bound %.4f (tol <= %d)", maxDiff, rate, bound, maxTol)
		if rate > bound+3*math.Sqrt(bound/trials) {
			t.Errorf("max |d| %.0e: pass rate %.4f exceeds the bound %.4f", maxDiff, rate, bound)
		}
	}
	if PositionBound(0, 10) != 1 || PositionBound(1, 0) > 2.0/projValues {
		t.Error("bound limits wrong")
	}
}
