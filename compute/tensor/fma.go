package tensor

import "math"

// FMA32 returns a*b + c rounded once to float32, as the hardware VFMADD
// instructions do. math.FMA works in float64; rounding its result again to
// float32 could round twice, so the sum is computed exactly in float64 with
// round-to-odd (the product of two float32 values is exact in float64), which
// makes the final conversion a single correct rounding.
func FMA32(a, b, c float32) float32 {
	p := float64(float64(a) * float64(b)) // exact: 24+24 bits fit in 53
	s := float64(p + float64(c))
	if math.IsInf(s, 0) || s != s {
		return float32(s)
	}
	bb := float64(s - p)
	err := float64(p-float64(s-bb)) + float64(float64(c)-bb)
	if err != 0 {
		bits := math.Float64bits(s)
		if bits&1 == 0 {
			// Move s to the odd neighbour on the side of the exact value.
			if (err > 0) == (s > 0) {
				bits++
			} else {
				bits--
			}
			s = math.Float64frombits(bits)
		}
	}
	return float32(s)
}
