package data

import "math/bits"

// rng is xoshiro256** seeded through splitmix64. trinity defines its own
// generator rather than using math/rand so that a corpus or a task list
// generated from a seed is the same on every machine and Go version.
type rng struct{ s [4]uint64 }

func splitmix64(x *uint64) uint64 {
	*x += 0x9e3779b97f4a7c15
	z := *x
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// newRNG derives a generator from a seed and a domain string, so that
// different uses of one seed draw independent streams.
func newRNG(seed uint64, domain string) *rng {
	x := seed
	for _, c := range []byte(domain) {
		x = (x ^ uint64(c)) * 0x100000001b3
	}
	var r rng
	for i := range r.s {
		r.s[i] = splitmix64(&x)
	}
	return &r
}

func (r *rng) next() uint64 {
	s := &r.s
	out := bits.RotateLeft64(s[1]*5, 7) * 9
	t := s[1] << 17
	s[2] ^= s[0]
	s[3] ^= s[1]
	s[1] ^= s[2]
	s[0] ^= s[3]
	s[2] ^= t
	s[3] = bits.RotateLeft64(s[3], 45)
	return out
}

// uniform returns an unbiased integer in [0, n), n > 0 (Lemire's method).
func uniform(next func() uint64, n uint64) uint64 {
	hi, lo := bits.Mul64(next(), n)
	if lo < n {
		thresh := -n % n
		for lo < thresh {
			hi, lo = bits.Mul64(next(), n)
		}
	}
	return hi
}

func (r *rng) intn(n int) int { return int(uniform(r.next, uint64(n))) }
