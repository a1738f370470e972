package attest

import (
	"crypto/sha256"
	"encoding/binary"
	"math/rand/v2"

	"github.com/trinity-net/trinity/compute/tensor"
)

// Challenge sizes and entry range.
const (
	// EntryMax bounds the challenge entries: A and B hold integers in
	// [-EntryMax, EntryMax].
	EntryMax = 7
	// MinN and MaxN bound the challenge size n. Every product entry is a
	// sum of n integers of magnitude at most 49, so |C_ij| <= 49n <= 200,704
	// < 2^24 for n <= 4096: every partial sum of the float32 FMA chain is an
	// integer float32 represents exactly, whatever the summation order, so
	// the product is exact on every path (AVX2, AVX-512, pure Go, a GPU
	// without TF32). Exactness would hold up to n = 342,392; MaxN is set
	// by memory (three 64 MiB matrices at 4096).
	MinN = 8
	MaxN = 4096
)

// EntryBound is the largest |C_ij| an honest n x n x n product can have:
// 49n. Openings with larger entries are rejected before Freivalds runs.
func EntryBound(n int) int64 { return EntryMax * EntryMax * int64(n) }

// matrixDomain separates matrix generation from every other use of a nonce.
const matrixDomain = "trinity/attest/matrix/v1\x00"

// entryOf maps a random nibble to an entry in [-7, 7]. Nibbles 0 and 15
// both give -7: the slight bias does not matter, because soundness rests on
// the verifier's secret vector and the binding commitment, not on the
// distribution of A and B, which only have to be unpredictable before the
// challenge.
var entryOf = [16]int8{-7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, -7}

// rowSeed is the ChaCha8 key of row `row` of matrix `which` (0 = A, 1 = B):
// every row has its own stream, so rows are generated in parallel and
// identically by prover and verifier.
func rowSeed(nonce [32]byte, n int, which byte, row int) [32]byte {
	var b [len(matrixDomain) + 32 + 4 + 1 + 4]byte
	o := copy(b[:], matrixDomain)
	o += copy(b[o:], nonce[:])
	binary.BigEndian.PutUint32(b[o:], uint32(n))
	b[o+4] = which
	binary.BigEndian.PutUint32(b[o+5:], uint32(row))
	return sha256.Sum256(b[:])
}

// genRow fills dst (one row of n entries) from its stream; rng is reseeded.
func genRow[T int8 | float32](rng *rand.ChaCha8, seed [32]byte, dst []T) {
	rng.Seed(seed)
	full := len(dst) &^ 15
	for i := 0; i < full; i += 16 {
		x := rng.Uint64()
		d := dst[i : i+16 : i+16]
		for j := range d {
			d[j] = T(entryOf[x&15])
			x >>= 4
		}
	}
	if full < len(dst) {
		x := rng.Uint64()
		for j := full; j < len(dst); j++ {
			dst[j] = T(entryOf[x&15])
			x >>= 4
		}
	}
}

// genMatrices fills a and b (n*n each, row-major) with the challenge
// matrices of nonce, splitting rows over the engine's threads when e is not
// nil.
func genMatrices[T int8 | float32](e *tensor.Engine, nonce [32]byte, n int, a, b []T) {
	fill := func(lo, hi int) {
		var rng rand.ChaCha8
		for r := lo; r < hi; r++ {
			m, row := a, r
			which := byte(0)
			if r >= n {
				m, row, which = b, r-n, 1
			}
			genRow(&rng, rowSeed(nonce, n, which, row), m[row*n:(row+1)*n])
		}
	}
	if e == nil {
		fill(0, 2*n)
		return
	}
	e.ParallelGrain(2*n, 16, func(_ tensor.Kernels, lo, hi int) { fill(lo, hi) })
}
