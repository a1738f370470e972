package optimizer

import (
	"fmt"
	"math"
	"sync"
)

// Quantisation scheme (format version 1): each kept entry is 2 bits, a sign
// bit (bit 0, set for negative) and a level bit (bit 1) choosing between two
// per-chunk magnitudes Lo <= Hi. Top-k keeps only large entries, so spending
// levels near zero (as a uniform 4-level grid over [-scale, scale] would) is
// waste; instead the kept magnitudes are split at their mean and each half
// is represented by its own mean (one Lloyd-Max step from the mean split).
// This keeps each chunk's L1 mass exactly (up to rounding), bounds every
// entry's error by the spread of the kept magnitudes, and costs two float32
// per chunk. The reference (SparseLoCo, arXiv 2508.15706, and Templar) also
// uses 2-bit values with per-block statistics; whatever is lost goes back
// into the error-feedback buffer anyway.
const (
	codeNeg = 1 // sign bit
	codeHi  = 2 // level bit
)

// Compressed is one compressed pseudo-gradient, laid out by a Chunking:
// chunk c's kept entries are Idx[Start:Start+K] (offsets inside the chunk,
// strictly increasing) with codes Codes[Start:Start+K].
type Compressed struct {
	Round  uint64
	Lo, Hi []float32 // per chunk, 0 <= Lo <= Hi, finite
	Idx    []uint16
	Codes  []uint8 // 2-bit codes, one per byte in memory
}

// NewCompressed allocates a Compressed shaped for ch.
func (ch *Chunking) NewCompressed() *Compressed {
	return &Compressed{
		Lo: make([]float32, len(ch.Chunks)), Hi: make([]float32, len(ch.Chunks)),
		Idx: make([]uint16, ch.TotalK), Codes: make([]uint8, ch.TotalK),
	}
}

// Validate checks that c is well formed for ch: sizes, finite ordered
// scales, in-range strictly increasing (hence distinct) indices, 2-bit codes.
func (ch *Chunking) Validate(c *Compressed) error {
	if len(c.Lo) != len(ch.Chunks) || len(c.Hi) != len(ch.Chunks) {
		return fmt.Errorf("optimizer: compressed has %d/%d scales, want %d", len(c.Lo), len(c.Hi), len(ch.Chunks))
	}
	if len(c.Idx) != ch.TotalK || len(c.Codes) != ch.TotalK {
		return fmt.Errorf("optimizer: compressed has %d indices and %d codes, want %d", len(c.Idx), len(c.Codes), ch.TotalK)
	}
	for ci, k := range ch.Chunks {
		if err := checkScales(c.Lo[ci], c.Hi[ci]); err != nil {
			return fmt.Errorf("optimizer: chunk %d: %w", ci, err)
		}
		prev := -1
		for j := k.Start; j < k.Start+k.K; j++ {
			i := int(c.Idx[j])
			if i >= k.Len {
				return fmt.Errorf("optimizer: chunk %d: index %d out of range [0, %d)", ci, i, k.Len)
			}
			if i <= prev {
				return fmt.Errorf("optimizer: chunk %d: index %d after %d (duplicate or unsorted)", ci, i, prev)
			}
			prev = i
			if c.Codes[j] > 3 {
				return fmt.Errorf("optimizer: chunk %d: code %d is not 2 bits", ci, c.Codes[j])
			}
		}
	}
	return nil
}

func checkScales(lo, hi float32) error {
	if !isFinite(lo) || !isFinite(hi) {
		return fmt.Errorf("scale (%g, %g) is not finite", lo, hi)
	}
	if !(0 <= lo && lo <= hi) {
		return fmt.Errorf("scales (%g, %g) not ordered 0 <= lo <= hi", lo, hi)
	}
	return nil
}

func isFinite(x float32) bool { return math.Float32bits(x)&0x7f800000 != 0x7f800000 }

// decode is the value of a 2-bit code in a chunk with levels lo, hi.
func decode(code uint8, lo, hi float32) float32 {
	v := lo
	if code&codeHi != 0 {
		v = hi
	}
	if code&codeNeg != 0 {
		v = -v
	}
	return v
}

// SparseLoCo is one trainer's compressor: it keeps the error-feedback
// buffer e and turns each round's pseudo-gradient into a Compressed.
// It is not safe for concurrent use.
type SparseLoCo struct {
	ch      *Chunking
	beta    float32
	workers int
	e       []float32
	sel     []*selector
}

// SparseLoCoOption configures a SparseLoCo.
type SparseLoCoOption func(*SparseLoCo) error

// WithErrorDecay sets beta in e = beta*e + d (default 0.95, Templar's).
func WithErrorDecay(beta float32) SparseLoCoOption {
	return func(s *SparseLoCo) error {
		if !(beta >= 0 && beta <= 1) {
			return fmt.Errorf("optimizer: error decay %g out of range [0, 1]", beta)
		}
		s.beta = beta
		return nil
	}
}

// WithWorkers sets how many goroutines compress chunks (default 1). The
// result does not depend on it.
func WithWorkers(n int) SparseLoCoOption {
	return func(s *SparseLoCo) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("optimizer: workers %d out of range [1, 1024]", n)
		}
		s.workers = n
		return nil
	}
}

// NewSparseLoCo returns a compressor with a zero error buffer.
func NewSparseLoCo(ch *Chunking, opts ...SparseLoCoOption) (*SparseLoCo, error) {
	s := &SparseLoCo{ch: ch, beta: 0.95, workers: 1}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	s.e = make([]float32, ch.NumParams)
	s.sel = make([]*selector, s.workers)
	for i := range s.sel {
		s.sel[i] = newSelector(ch.Size)
	}
	return s, nil
}

// ErrorBuffer is the error-feedback state (length NumParams), exposed for
// checkpoints; writing it restores a saved state.
func (s *SparseLoCo) ErrorBuffer() []float32 { return s.e }

// Chunking is the layout the compressor works on.
func (s *SparseLoCo) Chunking() *Chunking { return s.ch }

// Compress folds the pseudo-gradient d (theta_global - theta_local) into the
// error buffer (e = beta*e + d), keeps the top-k entries of e per chunk,
// quantises them into out (which must come from NewCompressed), and
// subtracts what was sent from e, so that beta*e_before + d = e_after +
// Decompress(out) up to float rounding.
//
// A non-finite entry in e after the fold is an error; e is then zeroed,
// since it may hold a partial update.
func (s *SparseLoCo) Compress(round uint64, d []float32, out *Compressed) error {
	if len(d) != s.ch.NumParams {
		return fmt.Errorf("optimizer: compress: pseudo-gradient has %d entries, want %d", len(d), s.ch.NumParams)
	}
	if len(out.Lo) != len(s.ch.Chunks) || len(out.Hi) != len(s.ch.Chunks) || len(out.Idx) != s.ch.TotalK || len(out.Codes) != s.ch.TotalK {
		return fmt.Errorf("optimizer: compress: output not shaped for this chunking (use NewCompressed)")
	}
	out.Round = round
	nc := len(s.ch.Chunks)
	bad := make([]int, s.workers) // first bad chunk+1 per worker, 0 if none
	if s.workers == 1 {
		bad[0] = s.compressRange(s.sel[0], d, out, 0, nc)
	} else {
		var wg sync.WaitGroup
		for w := range s.workers {
			lo, hi := nc*w/s.workers, nc*(w+1)/s.workers
			wg.Add(1)
			go func() {
				defer wg.Done()
				bad[w] = s.compressRange(s.sel[w], d, out, lo, hi)
			}()
		}
		wg.Wait()
	}
	for _, b := range bad {
		if b != 0 {
			clear(s.e)
			return fmt.Errorf("optimizer: compress: non-finite error-feedback value in chunk %d (at parameter %d..)", b-1, s.ch.Chunks[b-1].Offset)
		}
	}
	return nil
}

// compressRange handles chunks [lo, hi); it returns 1+the first chunk with a
// non-finite value, or 0.
func (s *SparseLoCo) compressRange(sel *selector, d []float32, out *Compressed, lo, hi int) int {
	beta := s.beta
	for ci := lo; ci < hi; ci++ {
		c := s.ch.Chunks[ci]
		e := s.e[c.Offset : c.Offset+c.Len]
		dc := d[c.Offset : c.Offset+c.Len]
		// Fold d into e and record the block maxima of |e| that top-k
		// uses, in one pass; the overall maximum tells finiteness.
		var top uint32
		n := len(e)
		dc = dc[:n]
		for j := 0; j < n; j += blockLen {
			var t0, t1 uint32
			if j+blockLen <= n {
				eb, db := (*[blockLen]float32)(e[j:]), (*[blockLen]float32)(dc[j:])
				for t := 0; t < blockLen; t += 2 {
					v0 := float32(beta*eb[t]) + db[t] // explicit rounding: no FMA
					v1 := float32(beta*eb[t+1]) + db[t+1]
					eb[t], eb[t+1] = v0, v1
					t0 = max(t0, math.Float32bits(v0)&absMask)
					t1 = max(t1, math.Float32bits(v1)&absMask)
				}
			} else {
				for t := j; t < n; t++ {
					v := float32(beta*e[t]) + dc[t]
					e[t] = v
					t0 = max(t0, math.Float32bits(v)&absMask)
				}
			}
			m := max(t0, t1)
			sel.bmax[j/blockLen] = m
			top = max(top, m)
		}
		sel.top = top
		// The largest magnitude is non-finite iff some entry is.
		if sel.top&0x7f800000 == 0x7f800000 {
			return ci + 1
		}
		idx := out.Idx[c.Start : c.Start+c.K]
		codes := out.Codes[c.Start : c.Start+c.K]
		sel.selectTop(e, c.K, idx)
		// Split the kept magnitudes at their mean; each side's level is its
		// mean. Sums in float64 in index order: deterministic.
		var sum float64
		for _, i := range idx {
			sum += math.Abs(float64(e[i]))
		}
		mean := sum / float64(c.K)
		var sLo, sHi float64
		var nLo, nHi int
		for _, i := range idx {
			a := math.Abs(float64(e[i]))
			if a >= mean {
				sHi += a
				nHi++
			} else {
				sLo += a
				nLo++
			}
		}
		hiV := float32(sHi / float64(nHi)) // nHi >= 1: the largest is >= the mean
		loV := hiV
		if nLo > 0 {
			loV = min(float32(sLo/float64(nLo)), hiV)
		}
		out.Lo[ci], out.Hi[ci] = loV, hiV
		for j, i := range idx {
			v := e[i]
			var code uint8
			if math.Abs(float64(v)) >= mean {
				code = codeHi
			}
			if math.Signbit(float64(v)) {
				code |= codeNeg
			}
			codes[j] = code
			e[i] = v - decode(code, loV, hiV)
		}
	}
	return 0
}

// Decompress writes the dense vector c represents into out (len NumParams).
// c must be valid for ch (Decode guarantees it).
func (ch *Chunking) Decompress(c *Compressed, out []float32) {
	clear(out)
	for ci, k := range ch.Chunks {
		lo, hi := c.Lo[ci], c.Hi[ci]
		dst := out[k.Offset : k.Offset+k.Len]
		for j := k.Start; j < k.Start+k.K; j++ {
			dst[c.Idx[j]] = decode(c.Codes[j], lo, hi)
		}
	}
}

// SquaredNorm is ||Decompress(c)||^2, summed in float64 in chunk order.
func (ch *Chunking) SquaredNorm(c *Compressed) float64 {
	var s float64
	for ci, k := range ch.Chunks {
		lo, hi := float64(c.Lo[ci]), float64(c.Hi[ci])
		var nHi int
		for j := k.Start; j < k.Start+k.K; j++ {
			nHi += int(c.Codes[j] >> 1)
		}
		s += float64(nHi)*hi*hi + float64(k.K-nHi)*lo*lo
	}
	return s
}
