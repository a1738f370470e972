package attest

import (
	"fmt"
	"math/bits"
	"sync/atomic"

	"github.com/trinity-net/trinity/compute/tensor"
)

// Freivalds' check, exact, in wrapping uint64 arithmetic.
//
// The verifier draws a secret vector r (entries uniform in [0, 2^b)) and
// tests C·r == A·(B·r) modulo 2^64: O(n^2) against the O(n^3) multiply. An
// honest C passes always (reduction mod 2^64 is a ring homomorphism of the
// exact integer identity). If C != A·B, take a row d of D = C - A·B with a
// nonzero entry d_j; for any fixed values of the other entries of r, the
// products d_j·r_j mod 2^64 take each value for at most 2^v residues of
// r_j, v being the 2-adic valuation of d_j, and those residues are spaced
// 2^(64-v) apart. So the check passes with probability at most
// 2^-min(b, 64-v) per repetition. Entries of C are checked to lie within
// ±49n first, so |d_j| <= 98n and v <= floor(log2(98n)): 17 for n <= 2048,
// 18 for n <= 4096. With b = 64 one repetition gives 2^-47 (n <= 2048) and
// 2^-46 (n <= 4096), below the 2^-40 target; with b = 1 (0/1 vectors) the
// bound is the textbook 1/2 per repetition, and 40 repetitions reach 2^-40.
// The escape probability of a single wrong entry is exactly 2^-b for small
// b, which the tests measure.

// Defaults of the check.
const (
	DefaultRBits        = 64
	DefaultSecurityBits = 40
)

// perRepBits is the escape exponent one repetition guarantees:
// min(rBits, 64 - floor(log2(98n))).
func perRepBits(n, rBits int) int {
	v := bits.Len64(uint64(2*EntryBound(n))) - 1
	return min(rBits, 64-v)
}

// repetitions is the number of independent vectors that push the escape
// probability below 2^-securityBits.
func repetitions(n, rBits, securityBits int) int {
	p := perRepBits(n, rBits)
	return (securityBits + p - 1) / p
}

// SoundnessBits is the bound the check achieves for size n:
// P(wrong C passes) <= 2^-SoundnessBits.
func SoundnessBits(n, rBits, securityBits int) int {
	return repetitions(n, rBits, securityBits) * perRepBits(n, rBits)
}

func validFreivalds(rBits, securityBits int) error {
	if rBits < 1 || rBits > 64 {
		return fmt.Errorf("attest: Freivalds vector entries of %d bits, want 1..64", rBits)
	}
	if securityBits < 1 || securityBits > 128 {
		return fmt.Errorf("attest: Freivalds target of 2^-%d, want 1..128 bits", securityBits)
	}
	return nil
}

// inRange reports whether every entry of c lies within ±EntryBound(n), the
// precondition of the bound above.
func inRange(c []int32, n int) bool {
	lim := EntryBound(n)
	for _, v := range c {
		if int64(v) > lim || int64(v) < -lim {
			return false
		}
	}
	return true
}

// freivalds reports whether C·r == A·(B·r) (mod 2^64) for every vector in
// rs (each of length n). a and b are the n x n challenge matrices, c the
// claimed product, all row-major; c must satisfy inRange. Rows are split
// over e's threads when e is not nil.
func freivalds(e *tensor.Engine, a, b []int8, c []int32, n int, rs [][]uint64) bool {
	reps := len(rs)
	br := make([]uint64, reps*n) // B·r, rep-major
	cr := make([]uint64, reps*n) // C·r
	par := func(fn func(lo, hi int)) {
		if e == nil {
			fn(0, n)
			return
		}
		e.ParallelGrain(n, 16, func(_ tensor.Kernels, lo, hi int) { fn(lo, hi) })
	}
	par(func(lo, hi int) {
		for i := lo; i < hi; i++ {
			for k, r := range rs {
				br[k*n+i] = dotInt(b[i*n:(i+1)*n], r)
				cr[k*n+i] = dotInt(c[i*n:(i+1)*n], r)
			}
		}
	})
	var bad atomic.Bool
	par(func(lo, hi int) {
		for i := lo; i < hi && !bad.Load(); i++ {
			for k := range rs {
				if dotInt(a[i*n:(i+1)*n], br[k*n:(k+1)*n]) != cr[k*n+i] {
					bad.Store(true)
					return
				}
			}
		}
	})
	return !bad.Load()
}

// dotInt is sum x_j*r_j mod 2^64; four accumulators hide the add latency.
func dotInt[T int8 | int32](x []T, r []uint64) uint64 {
	r = r[:len(x)]
	var s0, s1, s2, s3 uint64
	j := 0
	for ; j+4 <= len(x); j += 4 {
		s0 += uint64(int64(x[j])) * r[j]
		s1 += uint64(int64(x[j+1])) * r[j+1]
		s2 += uint64(int64(x[j+2])) * r[j+2]
		s3 += uint64(int64(x[j+3])) * r[j+3]
	}
	for ; j < len(x); j++ {
		s0 += uint64(int64(x[j])) * r[j]
	}
	return s0 + s1 + s2 + s3
}

// productRow computes row i of A·B exactly (|entries| <= 49n fits int32):
// the O(n^2) recomputation behind a spot-row check.
func productRow(a, b []int8, n, i int, dst []int32) {
	clear(dst[:n])
	for k, av := range a[i*n : (i+1)*n] {
		if av == 0 {
			continue
		}
		x := int32(av)
		brow := b[k*n : (k+1)*n]
		for j, bv := range brow {
			dst[j] += x * int32(bv)
		}
	}
}
