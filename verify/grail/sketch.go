package grail

import (
	"fmt"
	"math"
)

// Sketch parameters. See the package documentation for how they were chosen
// and what they imply for soundness.
const (
	// SketchScale multiplies <h_t, r_t> before rounding. A power of two, so
	// the multiplication is exact.
	SketchScale = 1 << 16
	// SketchModulus is q: sketches are kept mod 2^24 (3 bytes each). Honest
	// differences are far below q/2, so wrap-around never creates an honest
	// mismatch; the modular distance is used throughout.
	SketchModulus = 1 << 24
	// sketchBytes is the encoded size of a sketch.
	sketchBytes = 3
	// TolAbs is the absolute part of the tolerance, in sketch units
	// (TolAbs/SketchScale in units of <h, r>).
	TolAbs = 64
	// TolRel is the relative part of the tolerance: a fraction of the L1 mass
	// sum_i |r_i h_i| of the verifier's own projection, the natural scale of
	// float32 rounding differences in <h, r>.
	TolRel = 1.0 / (1 << 20)
	// projMax bounds |r_i|.
	projMax = 127
	// projValues is the number of values r_i takes.
	projValues = 2*projMax + 1
)

// sketchOf projects h onto r in float64 (each product r_i*h_i is exact: 8
// bits times 24 bits) in index order, and returns round(<h,r>*SketchScale)
// mod q together with the L1 mass sum_i |r_i h_i| that sizes the
// tolerance. A non-finite hidden state is an error.
func sketchOf(h []float32, r []int8) (s uint32, mass float64, err error) {
	var dot float64
	for i, x := range h {
		p := float64(r[i]) * float64(x)
		dot += p
		mass += math.Abs(p)
	}
	if math.IsNaN(mass) || math.IsInf(mass, 0) {
		return 0, 0, fmt.Errorf("grail: non-finite hidden state")
	}
	v := math.Round(dot * SketchScale)
	// math.Mod is exact on integers; masking the two's-complement bits of the
	// signed result gives the residue mod q.
	v = math.Mod(v, SketchModulus)
	return uint32(int64(v)) & (SketchModulus - 1), mass, nil
}

// tolerance is the accepted sketch distance for a position whose verifier
// side projection has L1 mass mass.
func tolerance(mass float64) uint32 {
	t := TolAbs + math.Ceil(TolRel*SketchScale*mass)
	if t >= SketchModulus/4 {
		return SketchModulus / 4 // a bound far beyond any honest difference
	}
	return uint32(t)
}

// sketchDistance is the modular distance between two sketches.
func sketchDistance(a, b uint32) uint32 {
	d := (a - b) & (SketchModulus - 1)
	if d > SketchModulus/2 {
		d = SketchModulus - d
	}
	return d
}
