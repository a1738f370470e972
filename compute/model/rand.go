package model

import "math"

// rng is the package's own PRNG (SplitMix64). Weight initialisation and
// sampling draw from it, never from math/rand, so that a seed gives the same
// bits on every machine and Go version.
type rng struct{ s uint64 }

func newRNG(seed uint64) *rng { return &rng{s: seed} }

func (r *rng) next() uint64 {
	r.s += 0x9e3779b97f4a7c15
	z := r.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// float64 is uniform in [0, 1) on a grid of 2^-53.
func (r *rng) float64() float64 { return float64(r.next()>>11) * 0x1p-53 }

// normal is a standard normal draw (Marsaglia's polar method). It uses only
// IEEE-exact operations, math.Sqrt and detLog, and explicit conversions forbid
// FMA fusion, so it gives the same bits on every platform.
func (r *rng) normal() float64 {
	for {
		u := 2*r.float64() - 1 // exact on the 2^-52 grid
		v := 2*r.float64() - 1
		s := float64(u*u) + float64(v*v)
		if s >= 1 || s == 0 {
			continue
		}
		f := math.Sqrt(float64(-2*detLog(s)) / s)
		return float64(u * f)
	}
}

// detLog is the natural logarithm of x > 0 (finite), evaluated with a fixed
// sequence of rounded operations. math.Log has assembly versions on some
// architectures; this one is the same everywhere.
func detLog(x float64) float64 {
	frac, exp := math.Frexp(x) // x = frac * 2^exp, frac in [0.5, 1)
	if frac < math.Sqrt2/2 {
		frac *= 2
		exp--
	}
	f := frac - 1 // exact (Sterbenz)
	s := f / float64(2+f)
	s2 := float64(s * s)
	// log(1+f) = 2 atanh(s) = 2 (s + s^3/3 + s^5/5 + ...), |s| < 0.172.
	p := 1.0 / 25
	for k := 23; k >= 1; k -= 2 {
		p = float64(p*s2) + 1/float64(k)
	}
	lf := float64(2 * float64(s*p))
	const ln2Hi, ln2Lo = 6.93147180369123816490e-01, 1.90821492927058770002e-10
	e := float64(exp)
	return float64(float64(e*ln2Hi)+lf) + float64(e*ln2Lo)
}

// detExp is e^x for x <= 0, evaluated with a fixed sequence of rounded
// operations (see detLog). Sampling uses it so that a seed picks the same
// tokens on every platform.
func detExp(x float64) float64 {
	if x != x {
		return x
	}
	if x < -746 {
		return 0
	}
	const ln2Hi, ln2Lo = 6.93147180369123816490e-01, 1.90821492927058770002e-10
	n := math.Floor(float64(x*math.Log2E) + 0.5)
	r := float64(x-float64(n*ln2Hi)) - float64(n*ln2Lo) // |r| <= 0.35
	// Taylor series to degree 14: truncation error below 1e-17.
	p := 1.0
	for k := 14; k >= 1; k-- {
		p = float64(float64(p*r)/float64(k)) + 1
	}
	return math.Ldexp(p, int(n))
}
