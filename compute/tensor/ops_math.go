package tensor

import "math"

// Constants of exp32. The assembly kernels hold the same values, as bit
// patterns, in their DATA tables; the bit-identity tests catch any drift.
const (
	// expLo and expHi bound the argument: below expLo the result is flushed to
	// zero (e^-87 is 1.6e-38, the bottom of the normal range), above expHi it
	// saturates at e^88 (1.65e38), so 2^n always fits a normal exponent.
	expLo float32 = -87
	expHi float32 = 88

	expLog2e float32 = 1.44269504088896341
	// ln2 split in two: expLn2Hi has 9 significant bits, so n*expLn2Hi is
	// exact for |n| <= 127 and x - n*expLn2Hi has no rounding error.
	expLn2Hi float32 = 0.693359375
	expLn2Lo float32 = -2.12194440054690583e-4

	// Taylor coefficients 1/k! for k = 2..7. On |r| <= ln2/2 the truncation
	// error is below 6e-9, under a tenth of a float32 ulp at 1.
	expC2 float32 = 1.0 / 2
	expC3 float32 = 1.0 / 6
	expC4 float32 = 1.0 / 24
	expC5 float32 = 1.0 / 120
	expC6 float32 = 1.0 / 720
	expC7 float32 = 1.0 / 5040
)

// exp32 is e^x in float32 with about 1 ulp of error, evaluated exactly as the
// AVX2 kernels evaluate it (same reduction, same operation order, no fusion).
// Arguments below expLo give 0, above expHi give e^88; NaN stays NaN.
//
// x = n*ln2 + r with |r| <= ln2/2, e^x = 2^n * p(r), and the degree-7 Taylor
// polynomial is grouped as p = 1 + (r + r2*(a + r2*(b + r2*c))) with
// r2 = r*r, a = c2 + c3*r, b = c4 + c5*r, c = c6 + c7*r: a dependency chain
// about half as long as Horner's, which is what limits the vector kernels.
func exp32(x float32) float32 {
	if x != x {
		return x
	}
	if x < expLo {
		return 0
	}
	if x > expHi {
		x = expHi
	}
	n := float32(math.RoundToEven(float64(float32(x * expLog2e))))
	r := x - float32(n*expLn2Hi)
	r = r - float32(n*expLn2Lo)
	r2 := float32(r * r)
	b := float32(expC5*r) + expC4
	c := float32(expC7*r) + expC6
	q := float32(c*r2) + b
	a := float32(expC3*r) + expC2
	q = float32(q*r2) + a
	p := float32(q*r2) + r
	p = p + 1
	two := math.Float32frombits(uint32(int32(n)+127) << 23)
	return p * two
}

// log64 is the natural logarithm of a positive finite float64, written out so
// that its bits do not depend on the platform's math.Log (assembly on some
// architectures, fused pure Go on others). Accuracy is a few ulp of float64,
// far more than the float32 losses it produces need.
func log64(x float64) float64 {
	switch {
	case x != x || x < 0:
		return math.NaN()
	case x == 0:
		return math.Inf(-1)
	case math.IsInf(x, 1):
		return x
	}
	m, e := math.Frexp(x) // x = m * 2^e, m in [0.5, 1)
	if m < math.Sqrt2/2 {
		m *= 2
		e--
	}
	// m in [sqrt(2)/2, sqrt(2)): log(m) = 2*atanh(s), s = (m-1)/(m+1), |s| < 0.172.
	s := float64(m-1) / float64(m+1)
	s2 := float64(s * s)
	// Series 2*(s + s^3/3 + s^5/5 + ...); s^2 < 0.0295, so 12 terms reach 1e-19.
	t := 1.0 / 25
	for k := 23; k >= 3; k -= 2 {
		t = float64(t*s2) + 1/float64(k)
	}
	t = float64(t*s2) + 1
	l := float64(2 * float64(s*t))
	const ln2Hi = 6.93147180369123816490e-01 // ln2 with the low 32 bits cleared
	const ln2Lo = 1.90821492927058770002e-10
	fe := float64(e)
	return float64(fe*ln2Hi) + float64(l+float64(fe*ln2Lo))
}
