package optimizer

import (
	"math"
	"slices"
)

// histBits is how many high bits of |x|'s IEEE pattern the top-k histogram
// bins on: 8 exponent bits and 3 mantissa bits, eight bins per octave.
const (
	histBits  = 11
	histShift = 31 - histBits
	absMask   = 1<<31 - 1
)

// selector is the scratch space of an exact per-chunk top-k.
//
// Order is by |x| descending and, for equal magnitudes, by index ascending,
// so the result is unique and the same on every machine. The bit pattern of
// a non-negative finite float orders like the float, so the key of entry i
// is |x_i|'s bits in the high word and ^i in the low word, and the top k
// keys are the answer.
//
// Instead of sorting (O(n log n)) it first guesses a threshold from a
// sample (every 8th entry) a little below where the k-th largest should be,
// gathers the entries at or above it in one pass (skipping blocks whose
// maximum, recorded by the compressor's folding pass, is below it) and, if
// there are at least k of them, which contain the top k for sure, selects
// among those few. If the guess was too high it falls back to an exact
// histogram of the high bits of |x|: find the bin holding the k-th largest,
// keep everything above it, and select within that bin. Both paths give the
// same, exact answer; the guess only decides how much work it takes.
type selector struct {
	h0, h1 [1 << histBits]uint32
	top    uint32   // max |x| bits (set by histogram)
	bmax   []uint32 // max |x| bits per block of blockLen entries
	above  []uint16
	cand   []uint64
	work   []uint64
	samp   []uint64
	chosen []uint16
}

func newSelector(size int) *selector {
	return &selector{bmax: make([]uint32, (size+blockLen-1)/blockLen), work: make([]uint64, 0, size), samp: make([]uint64, 0, size/sampleStride+1), above: make([]uint16, 0, size), cand: make([]uint64, 0, size), chosen: make([]uint16, 0, size)}
}

// blockLen is the block size over which the largest magnitude is
// recorded, so that the gathering passes skip blocks with nothing near the
// top.
const blockLen = 8

// histogram fills the histograms, block maxima and top from x. Two
// histograms take alternate entries so that runs of equal bins do not
// serialise on one counter.
func (s *selector) histogram(x []float32) {
	clear(s.h0[:])
	clear(s.h1[:])
	var top uint32
	for j := 0; j < len(x); j += blockLen {
		var t0, t1 uint32
		if j+blockLen <= len(x) {
			xb := (*[blockLen]float32)(x[j:])
			for t := 0; t < blockLen; t += 2 {
				a0 := math.Float32bits(xb[t]) & absMask
				a1 := math.Float32bits(xb[t+1]) & absMask
				s.h0[a0>>histShift]++
				s.h1[a1>>histShift]++
				t0, t1 = max(t0, a0), max(t1, a1)
			}
		} else {
			for _, v := range x[j:] {
				a := math.Float32bits(v) & absMask
				s.h0[a>>histShift]++
				t0 = max(t0, a)
			}
		}
		m := max(t0, t1)
		s.bmax[j/blockLen] = m
		top = max(top, m)
	}
	s.top = top
}

// topK writes to idx (len k, ascending) the indices of the k entries of x
// largest in magnitude. x must be finite and k in [1, len(x)].
func (s *selector) topK(x []float32, k int, idx []uint16) {
	s.blockMax(x)
	s.selectTop(x, k, idx)
}

// sampleStride is the sampling step of the threshold guess.
const sampleStride = 8

// blockMax records the per-block maxima of |x| (the compressor fuses this
// into its folding pass).
func (s *selector) blockMax(x []float32) {
	for j := 0; j < len(x); j += blockLen {
		var m uint32
		for _, v := range x[j:min(j+blockLen, len(x))] {
			m = max(m, math.Float32bits(v)&absMask)
		}
		s.bmax[j/blockLen] = m
	}
}

// selectTop is topK after blockMax(x).
func (s *selector) selectTop(x []float32, k int, idx []uint16) {
	if s.selectSampled(x, k, idx) {
		return
	}
	s.histogram(x)
	s.selectHist(x, k, idx)
}

// selectSampled is the fast path; it reports false when the sample's
// threshold turned out too high (fewer than k entries at or above it).
func (s *selector) selectSampled(x []float32, k int, idx []uint16) bool {
	n := len(x)
	if n < 64*sampleStride || k*sampleStride*4 > n {
		return false
	}
	// Aim at about k + 4 sqrt(k) + 16 entries: short of k only when the
	// sample is far off.
	exp := k / sampleStride
	rank := exp + 2*int(math.Sqrt(float64(exp))) + 2
	if rank > n/sampleStride {
		return false
	}
	// The rank-th largest sampled |x|: keep the largest rank samples in a
	// small ascending buffer; most samples lose to its minimum at once.
	best := s.samp[:0]
	for i := 0; i < n; i += sampleStride {
		a := uint64(math.Float32bits(x[i]) & absMask)
		if len(best) < rank {
			best = append(best, a)
			for q := len(best) - 1; q > 0 && best[q] < best[q-1]; q-- {
				best[q], best[q-1] = best[q-1], best[q]
			}
			continue
		}
		if a <= best[0] {
			continue
		}
		q := 0
		for q+1 < len(best) && best[q+1] < a {
			best[q] = best[q+1]
			q++
		}
		best[q] = a
	}
	s.samp = best
	t := uint32(best[0])
	cand := s.cand[:0]
	for j := 0; j < n; j += blockLen {
		if s.bmax[j/blockLen] < t {
			continue
		}
		for q, v := range x[j:min(j+blockLen, n)] {
			if a := math.Float32bits(v) & absMask; a >= t {
				cand = append(cand, uint64(a)<<32|uint64(^uint32(j+q)))
			}
		}
	}
	s.cand = cand
	if len(cand) < k {
		return false
	}
	work := append(s.work[:0], cand...)
	s.work = work
	th := nthLargest(work, k)
	o := 0
	for _, key := range cand { // index order
		if key >= th {
			idx[o] = uint16(^uint32(key))
			o++
		}
	}
	return true
}

// selectHist is the exact histogram path, after histogram(x).
func (s *selector) selectHist(x []float32, k int, idx []uint16) {
	need := k
	b := int(s.top >> histShift)
	for ; b > 0; b-- {
		h := int(s.h0[b] + s.h1[b])
		if h >= need {
			break
		}
		need -= h
	}
	bin := uint32(b)
	above, cand := s.above[:0], s.cand[:0]
	lowest := bin << histShift // smallest |x| bits in the boundary bin
	for j := 0; j < len(x); j += blockLen {
		if s.bmax[j/blockLen] < lowest {
			continue
		}
		for t, v := range x[j:min(j+blockLen, len(x))] {
			a := math.Float32bits(v) & absMask
			if hb := a >> histShift; hb >= bin {
				i := j + t
				if hb > bin {
					above = append(above, uint16(i))
				} else {
					cand = append(cand, uint64(a)<<32|uint64(^uint32(i)))
				}
			}
		}
	}
	s.above, s.cand = above, cand
	if need < len(cand) {
		// Keep the need largest keys of the boundary bin (keys are unique).
		th := nthLargest(cand, need)
		kept := cand[:0]
		for _, key := range cand {
			if key >= th {
				kept = append(kept, key)
			}
		}
		cand = kept
	}
	chosen := s.chosen[:0]
	for _, key := range cand {
		chosen = append(chosen, uint16(^uint32(key)))
	}
	slices.Sort(chosen) // already ascending when the whole bin is kept
	s.chosen = chosen
	// Merge the two ascending index lists.
	i, j := 0, 0
	for o := range idx {
		if j == len(chosen) || (i < len(above) && above[i] < chosen[j]) {
			idx[o] = above[i]
			i++
		} else {
			idx[o] = chosen[j]
			j++
		}
	}
}

// nthLargest returns the n-th largest (1-based) of distinct keys,
// reordering keys: quickselect with a median-of-three pivot, O(len) on
// average; the result, unlike the work, does not depend on the pivots.
func nthLargest(keys []uint64, n int) uint64 {
	lo, hi := 0, len(keys)-1
	target := len(keys) - n // index in ascending order
	for lo < hi {
		if hi-lo < 16 {
			slices.Sort(keys[lo : hi+1])
			return keys[target]
		}
		mid := lo + (hi-lo)/2
		a, b, c := keys[lo], keys[mid], keys[hi]
		p := max(min(a, b), min(max(a, b), c))
		i, j := lo, hi
		for i <= j {
			for keys[i] < p {
				i++
			}
			for keys[j] > p {
				j--
			}
			if i <= j {
				keys[i], keys[j] = keys[j], keys[i]
				i++
				j--
			}
		}
		switch {
		case target <= j:
			hi = j
		case target >= i:
			lo = i
		default:
			return keys[target]
		}
	}
	return keys[target]
}
