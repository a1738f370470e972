package tensor

import (
	"fmt"
	"math"
	"runtime"
	"sync/atomic"
)

// Gemm sets C[M x N] (row-major, leading dimension ldc) to op(A)·op(B), or
// adds it to C when accumulate is set. op(A) is M x K: A itself (row-major,
// leading dimension lda) when !tA, or the transpose of the K x M matrix A
// when tA; likewise op(B) is K x N, or the transpose of the N x K matrix B
// when tB. Each element of C is one chain of fused multiply-adds over
// k = 0..K-1 in order, starting from +0 (or from the existing C value when
// accumulate is set), so every path gives the same bits (NaN payloads
// aside). C must not overlap A or B.
//
// It panics with a clear message if a dimension is negative or a slice is
// too short for its shape and leading dimension: those are programming
// errors.
func (k Kernels) Gemm(tA, tB bool, M, N, K int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	gemmCheck("Gemm", tA, tB, M, N, K, a, lda, b, ldb, c, ldc)
	if M == 0 || N == 0 {
		return
	}
	k.gemm.gemm(k.isa, tA, tB, M, N, K, a, lda, b, ldb, c, ldc, accumulate)
}

// gemm runs one single-threaded GEMM on already checked arguments. s is nil
// for the zero Kernels value; the scratch then comes fresh.
func (s *gemmShared) gemm(isa ISA, tA, tB bool, M, N, K int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	if K == 0 {
		if !accumulate {
			for i := range M {
				clear(c[i*ldc : i*ldc+N])
			}
		}
		return
	}
	if isa == Generic {
		gemmGeneric(tA, tB, M, N, K, a, lda, b, ldb, c, ldc, accumulate)
		return
	}
	sc := s.getScratch()
	gemmFast(sc, tA, tB, M, N, K, a, lda, b, ldb, c, ldc, accumulate)
	s.putScratch(sc)
}

// gemmGeneric is the portable path. Without tB it walks k in order for
// each row of C and updates the whole row (reading B row by row); with tB it
// runs the chains of four elements side by side, reading rows of B along k.
// Either way each element is one FMA chain in k order.
func gemmGeneric(tA, tB bool, M, N, K int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	for i := range M {
		crow := c[i*ldc : i*ldc+N]
		if !accumulate {
			clear(crow)
		}
		if tB {
			// Four independent chains at a time, for instruction-level
			// parallelism; each is still in k order.
			j := 0
			for ; j+4 <= N; j += 4 {
				b0 := b[j*ldb : j*ldb+K]
				b1 := b[(j+1)*ldb : (j+1)*ldb+K]
				b2 := b[(j+2)*ldb : (j+2)*ldb+K]
				b3 := b[(j+3)*ldb : (j+3)*ldb+K]
				s0, s1, s2, s3 := crow[j], crow[j+1], crow[j+2], crow[j+3]
				for p := range K {
					av := gemmAt(a, tA, lda, i, p)
					r0, ok0 := fma32Fast(av, b0[p], s0)
					r1, ok1 := fma32Fast(av, b1[p], s1)
					r2, ok2 := fma32Fast(av, b2[p], s2)
					r3, ok3 := fma32Fast(av, b3[p], s3)
					if ok0 && ok1 && ok2 && ok3 {
						s0, s1, s2, s3 = r0, r1, r2, r3
					} else {
						s0, s1 = fma32(av, b0[p], s0), fma32(av, b1[p], s1)
						s2, s3 = fma32(av, b2[p], s2), fma32(av, b3[p], s3)
					}
				}
				crow[j], crow[j+1], crow[j+2], crow[j+3] = s0, s1, s2, s3
			}
			for ; j < N; j++ {
				brow := b[j*ldb : j*ldb+K]
				s := crow[j]
				for p, bv := range brow {
					s = fma32(gemmAt(a, tA, lda, i, p), bv, s)
				}
				crow[j] = s
			}
			continue
		}
		for p := range K {
			var av float32
			if tA {
				av = a[p*lda+i]
			} else {
				av = a[i*lda+p]
			}
			brow := b[p*ldb : p*ldb+N]
			for j, bv := range brow {
				if r, ok := fma32Fast(av, bv, crow[j]); ok {
					crow[j] = r
				} else {
					crow[j] = FMA32(av, bv, crow[j])
				}
			}
		}
	}
}

// fma32Fast returns FMA32(a, b, c) and true, or false when it cannot tell
// cheaply. The product of two float32 values is exact in float64, so s is
// the exact a*b+c rounded once to float64; rounding s to float32 then gives
// the correctly rounded result unless s sits exactly halfway between two
// float32 values (where the first rounding may have moved it), or the
// result is float32-subnormal or zero, where that halfway test does not
// apply. Those rare cases need FMA32. It is small enough to inline.
func fma32Fast(a, b, c float32) (float32, bool) {
	s := float64(float64(a)*float64(b)) + float64(c)
	u := math.Float64bits(s)
	// Low 29 bits: what float32 drops. (u<<1)>>53: the biased exponent.
	return float32(s), u&(1<<29-1) != 1<<28 && (u<<1)>>53 >= 1023-126
}

// fma32 is FMA32 through the fast path when it applies.
func fma32(a, b, c float32) float32 {
	if r, ok := fma32Fast(a, b, c); ok {
		return r
	}
	return FMA32(a, b, c)
}

// gemmAt is op(A)[i][p].
func gemmAt(a []float32, tA bool, lda, i, p int) float32 {
	if tA {
		return a[p*lda+i]
	}
	return a[i*lda+p]
}

// gemmCheck panics on shapes that would read or write out of bounds.
func gemmCheck(op string, tA, tB bool, M, N, K int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int) {
	if M < 0 || N < 0 || K < 0 {
		panic(fmt.Sprintf("tensor: %s: negative dimension M=%d N=%d K=%d", op, M, N, K))
	}
	if M == 0 || N == 0 {
		return
	}
	checkMat(op, "C", M, N, c, ldc)
	if K == 0 {
		return
	}
	if tA {
		checkMat(op, "A", K, M, a, lda)
	} else {
		checkMat(op, "A", M, K, a, lda)
	}
	if tB {
		checkMat(op, "B", N, K, b, ldb)
	} else {
		checkMat(op, "B", K, N, b, ldb)
	}
}

// checkMat panics unless x holds a rows x cols row-major matrix with leading
// dimension ld (rows, cols > 0).
func checkMat(op, name string, rows, cols int, x []float32, ld int) {
	if ld < cols {
		panic(fmt.Sprintf("tensor: %s: leading dimension of %s is %d, less than its %d columns", op, name, ld, cols))
	}
	// Checked in two steps so that a huge ld cannot overflow the product.
	if rows-1 > (len(x)-cols)/ld || len(x) < cols {
		panic(fmt.Sprintf("tensor: %s: %s has %d elements, too few for %d x %d with leading dimension %d", op, name, len(x), rows, cols, ld))
	}
}

// Gemm is Kernels.Gemm split over the engine's threads by blocks of rows or
// columns of C; small products run on the caller alone. The result does not
// depend on the number of threads. Like Parallel it must not be called from
// inside a Parallel function: call the Kernels passed to that function.
func (e *Engine) Gemm(tA, tB bool, M, N, K int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	gemmCheck("Gemm", tA, tB, M, N, K, a, lda, b, ldb, c, ldc)
	if M == 0 || N == 0 {
		return
	}
	e.gemm(tA, tB, M, N, K, a, lda, b, ldb, c, ldc, accumulate)
}

// Parallel GEMMs are cut into chunks of whole register tiles that the
// threads claim one at a time, so a thread that the OS wakes late or
// delays costs its chunk rather than half the product. There are at most
// gemmChunksPerThread chunks per thread, each of at least gemmMinChunk
// multiply-adds. A chunk of rows packs its own copy of B, and a chunk of
// columns its own copy of A when tA: those chunks span at least
// gemmMinSharedDim rows or columns. Column chunks that read A in place
// duplicate nothing and only need to span gemmMinDim columns.
const (
	gemmChunksPerThread = 4
	gemmMinChunk        = 1 << 20
	gemmMinSharedDim    = 128
	gemmMinDim          = 32
	// gemmSpin bounds the polls (each a yield, well under a microsecond
	// when nothing else is runnable) of a caller waiting for a helper.
	gemmSpin = 1000
)

func (e *Engine) gemm(tA, tB bool, M, N, K int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	s := e.k.gemm
	// Split the larger of M and N.
	byRows := M > N
	n, grain, minDim := N, gemmNR, gemmMinDim
	if byRows {
		n, grain = M, gemmMR
	}
	if byRows || tA {
		minDim = gemmMinSharedDim
	}
	blocks := (n + grain - 1) / grain
	byWork := int(min(int64(M)*int64(N)*int64(K)/gemmMinChunk, 1<<30)) // no overflow on 32-bit
	chunks := min(blocks/((minDim+grain-1)/grain), gemmChunksPerThread*e.threads, byWork)
	chunks = max(chunks, min(e.threads, blocks, byWork))
	if e.threads <= 1 || chunks <= 1 {
		s.gemm(e.k.isa, tA, tB, M, N, K, a, lda, b, ldb, c, ldc, accumulate)
		return
	}
	per := (blocks + chunks - 1) / chunks
	chunks = (blocks + per - 1) / per
	j := s.getJob()
	j.s, j.byRows, j.tA, j.tB = s, byRows, tA, tB
	j.M, j.N, j.K = M, N, K
	j.a, j.lda, j.b, j.ldb, j.c, j.ldc = a, lda, b, ldb, c, ldc
	j.accumulate = accumulate
	j.n, j.chunk, j.chunks = n, per*grain, int64(chunks)
	j.next.Store(0)
	j.remaining.Store(int64(chunks))
	helpers := min(e.threads-1, chunks-1)
	j.refs.Store(int32(helpers + 1))
	for range helpers {
		e.tasks <- task{job: j}
	}
	if !j.work(e.k) {
		// A helper finishes the last chunk, within a chunk's time: poll
		// rather than park at once, since waking a parked goroutine takes
		// microseconds. Then take the helper's signal.
		for i := 0; i < gemmSpin && j.remaining.Load() > 0; i++ {
			runtime.Gosched()
		}
		<-j.done
	}
	j.release()
}

// rangeJob is work that the engine's workers run without a per-call
// closure. The job signals its own completion.
type rangeJob interface {
	run(k Kernels, lo, hi int)
}

// gemmJob is one parallel GEMM, cut into chunks of rows (byRows) or columns
// of C that the caller and helpers claim in turn. It returns to its pool
// when the last participant lets go of it, so a helper that starts late
// (after all chunks are done) never delays the caller.
type gemmJob struct {
	s              *gemmShared
	byRows, tA, tB bool
	M, N, K        int
	a              []float32
	lda            int
	b              []float32
	ldb            int
	c              []float32
	ldc            int
	accumulate     bool

	n, chunk  int           // rows or columns to split, per chunk
	chunks    int64         // number of chunks
	next      atomic.Int64  // next chunk to claim
	remaining atomic.Int64  // chunks not finished
	refs      atomic.Int32  // participants still holding the job
	done      chan struct{} // a helper finished the last chunk
}

// run is a helper's part: claim chunks, report the last one, let go.
func (j *gemmJob) run(k Kernels, _, _ int) {
	if j.work(k) {
		j.done <- struct{}{}
	}
	j.release()
}

// work runs chunks until none is left and reports whether this caller
// finished the last one.
func (j *gemmJob) work(k Kernels) (last bool) {
	for {
		ci := j.next.Add(1) - 1
		if ci >= j.chunks {
			return false
		}
		lo := int(ci) * j.chunk
		j.runRange(k, lo, min(j.n, lo+j.chunk))
		if j.remaining.Add(-1) == 0 {
			return true
		}
	}
}

func (j *gemmJob) release() {
	if j.refs.Add(-1) == 0 {
		j.a, j.b, j.c = nil, nil, nil // do not keep the caller's buffers alive
		j.s.putJob(j)
	}
}

// runRange computes rows (byRows) or columns [lo, hi) of C.
func (j *gemmJob) runRange(k Kernels, lo, hi int) {
	if j.byRows {
		a := j.a
		if j.tA {
			a = a[lo:]
		} else {
			a = a[lo*j.lda:]
		}
		j.s.gemm(k.isa, j.tA, j.tB, hi-lo, j.N, j.K, a, j.lda, j.b, j.ldb, j.c[lo*j.ldc:], j.ldc, j.accumulate)
		return
	}
	b := j.b
	if j.tB {
		b = b[lo*j.ldb:]
	} else {
		b = b[lo:]
	}
	j.s.gemm(k.isa, j.tA, j.tB, j.M, hi-lo, j.K, j.a, j.lda, b, j.ldb, j.c[lo:], j.ldc, j.accumulate)
}

// MatMul computes out[rows x outF] = inp[rows x in] · w[outF x in]^T + bias
// (the nn.Linear layout). Each output starts its FMA chain from its bias (or
// +0 when bias is nil). It panics if a slice is too short.
func (e *Engine) MatMul(out, inp, w, bias []float32, rows, in, outF int) {
	if rows < 0 || in < 0 || outF < 0 {
		panic(fmt.Sprintf("tensor: MatMul: negative dimension rows=%d in=%d outF=%d", rows, in, outF))
	}
	if rows == 0 || outF == 0 {
		return
	}
	gemmCheck("MatMul", false, true, rows, outF, in, inp, in, w, in, out, outF)
	if bias == nil {
		e.gemm(false, true, rows, outF, in, inp, in, w, in, out, outF, false)
		return
	}
	if len(bias) < outF {
		panic(fmt.Sprintf("tensor: MatMul: bias has %d elements, want %d", len(bias), outF))
	}
	bias = bias[:outF]
	for r := range rows {
		copy(out[r*outF:(r+1)*outF], bias)
	}
	e.gemm(false, true, rows, outF, in, inp, in, w, in, out, outF, true)
}

// MatMulBackward accumulates the gradients of MatMul: dinp += dout · w,
// dw += dout^T · inp, and dbias += the column sums of dout, added row by row
// in row order. A nil gradient is skipped. It panics if a slice is too short.
func (e *Engine) MatMulBackward(dinp, dw, dbias, dout, inp, w []float32, rows, in, outF int) {
	if rows < 0 || in < 0 || outF < 0 {
		panic(fmt.Sprintf("tensor: MatMulBackward: negative dimension rows=%d in=%d outF=%d", rows, in, outF))
	}
	if dinp != nil && rows > 0 && in > 0 {
		gemmCheck("MatMulBackward dinp", false, false, rows, in, outF, dout, outF, w, in, dinp, in)
		e.gemm(false, false, rows, in, outF, dout, outF, w, in, dinp, in, true)
	}
	if dw != nil && outF > 0 && in > 0 {
		gemmCheck("MatMulBackward dw", true, false, outF, in, rows, dout, outF, inp, in, dw, in)
		e.gemm(true, false, outF, in, rows, dout, outF, inp, in, dw, in, true)
	}
	if dbias != nil && outF > 0 && rows > 0 {
		if len(dbias) < outF {
			panic(fmt.Sprintf("tensor: MatMulBackward: dbias has %d elements, want %d", len(dbias), outF))
		}
		checkMat("MatMulBackward", "dout", rows, outF, dout, outF)
		e.biasGrad(dbias[:outF], dout, rows, outF)
	}
}

// biasGrad adds the rows of dout to dbias in row order. It is a few
// hundred thousand vector adds at most, cheaper than waking a worker.
func (e *Engine) biasGrad(dbias, dout []float32, rows, outF int) {
	for r := range rows {
		addRow(dbias, dout[r*outF:(r+1)*outF])
	}
}
