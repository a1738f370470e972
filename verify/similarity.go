package verify

import (
	"math"

	"github.com/trinity-net/trinity/optimizer"
)

// Cosine is the cosine similarity of the dense vectors two compressed
// contributions (valid for ch) represent, computed on the sparse entries in
// O(TotalK): within each chunk both index lists are sorted, so one merge
// finds the common positions. It is 0 when either vector is zero.
//
// Two honest trainers start from the same state on different data, so their
// kept entries overlap only partly and their cosine stays well below 1
// (docs/verification.md gives measured values); a copy, scaled or not, has
// cosine 1, and a copy with a little noise added stays close to it.
func Cosine(ch *optimizer.Chunking, a, b *optimizer.Compressed) float64 {
	var dot float64
	for ci, k := range ch.Chunks {
		alo, ahi, blo, bhi := a.Lo[ci], a.Hi[ci], b.Lo[ci], b.Hi[ci]
		i, j, end := k.Start, k.Start, k.Start+k.K
		for i < end && j < end {
			switch {
			case a.Idx[i] < b.Idx[j]:
				i++
			case a.Idx[i] > b.Idx[j]:
				j++
			default:
				dot += float64(value(a.Codes[i], alo, ahi)) * float64(value(b.Codes[j], blo, bhi))
				i++
				j++
			}
		}
	}
	na, nb := ch.SquaredNorm(a), ch.SquaredNorm(b)
	if na == 0 || nb == 0 {
		return 0
	}
	return dot / math.Sqrt(na*nb)
}

// value decodes a 2-bit code as optimizer's format defines it: bit 0 the
// sign (set: negative), bit 1 the level (set: hi).
func value(code uint8, lo, hi float32) float32 {
	v := lo
	if code&2 != 0 {
		v = hi
	}
	if code&1 != 0 {
		v = -v
	}
	return v
}
