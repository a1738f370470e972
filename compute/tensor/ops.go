package tensor

import (
	"fmt"
	"math"
	"sync"
)

// This file holds the simple element-wise ops and the reductions, and the
// summation order every reduction in the package follows.
//
// Summation order (sum32 and its relatives). For n terms t[0..n):
//  1. 32 partial sums acc[l] += t[i+l] over whole blocks of 32, in order;
//  2. folded to 8: s[l] = (acc[l]+acc[l+8]) + (acc[l+16]+acc[l+24]);
//  3. whole blocks of 8 that remain: s[l] += t[i+l];
//  4. s folded pairwise: (s[l]+s[l+4]), then (+2), then (+1) to one value;
//  5. the last n%8 terms added one by one, in order.
//
// The AVX2 kernels keep acc in four YMM registers and s in one, which is why
// the order looks like this; the Go path reproduces it exactly.

// fold8 is step 4 of the summation order.
func fold8(s *[8]float32) float32 {
	a0, a1, a2, a3 := s[0]+s[4], s[1]+s[5], s[2]+s[6], s[3]+s[7]
	b0, b1 := a0+a2, a1+a3
	return b0 + b1
}

// fold32 is step 2 of the summation order.
func fold32(acc *[32]float32) (s [8]float32) {
	for l := range 8 {
		s[l] = (acc[l] + acc[l+8]) + (acc[l+16] + acc[l+24])
	}
	return s
}

// sum32 is the sum of x in the package's summation order.
func sum32(x []float32) float32 {
	n := len(x)
	var acc [32]float32
	i := 0
	for ; i+32 <= n; i += 32 {
		b := x[i : i+32 : i+32]
		for l := range 32 {
			acc[l] += b[l]
		}
	}
	s := fold32(&acc)
	for ; i+8 <= n; i += 8 {
		b := x[i : i+8 : i+8]
		for l := range 8 {
			s[l] += b[l]
		}
	}
	r := fold8(&s)
	for ; i < n; i++ {
		r += x[i]
	}
	return r
}

// dot32 is sum(a[i]*b[i]) in the summation order, each product rounded to
// float32 before it is added (no fusion).
func dot32(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var acc [32]float32
	i := 0
	for ; i+32 <= n; i += 32 {
		x, y := a[i:i+32:i+32], b[i:i+32:i+32]
		for l := range 32 {
			acc[l] += float32(x[l] * y[l])
		}
	}
	s := fold32(&acc)
	for ; i+8 <= n; i += 8 {
		x, y := a[i:i+8:i+8], b[i:i+8:i+8]
		for l := range 8 {
			s[l] += float32(x[l] * y[l])
		}
	}
	r := fold8(&s)
	for ; i < n; i++ {
		r += float32(a[i] * b[i])
	}
	return r
}

// sumSqDev32 is sum((x[i]-m)^2) in the summation order, without fusion.
func sumSqDev32(x []float32, m float32) float32 {
	n := len(x)
	var acc [32]float32
	i := 0
	for ; i+32 <= n; i += 32 {
		b := x[i : i+32 : i+32]
		for l := range 32 {
			d := b[l] - m
			acc[l] += float32(d * d)
		}
	}
	s := fold32(&acc)
	for ; i+8 <= n; i += 8 {
		b := x[i : i+8 : i+8]
		for l := range 8 {
			d := b[l] - m
			s[l] += float32(d * d)
		}
	}
	r := fold8(&s)
	for ; i < n; i++ {
		d := x[i] - m
		r += float32(d * d)
	}
	return r
}

// sumSquares64 is sum(x[i]^2) in float64. Squares of float32 values are exact
// in float64, so only the additions round. Order: 16 partial sums over whole
// blocks of 16, folded to 4 as (a[l]+a[l+4]) + (a[l+8]+a[l+12]), whole blocks
// of 4 into those, folded (a0+a2)+(a1+a3), then the last n%4 in order.
func sumSquares64(x []float32) float64 {
	n := len(x)
	var acc [16]float64
	i := 0
	for ; i+16 <= n; i += 16 {
		b := x[i : i+16 : i+16]
		for l := range 16 {
			v := float64(b[l])
			acc[l] += float64(v * v)
		}
	}
	var s [4]float64
	for l := range 4 {
		s[l] = (acc[l] + acc[l+4]) + (acc[l+8] + acc[l+12])
	}
	for ; i+4 <= n; i += 4 {
		b := x[i : i+4 : i+4]
		for l := range 4 {
			v := float64(b[l])
			s[l] += float64(v * v)
		}
	}
	r := (s[0] + s[2]) + (s[1] + s[3])
	for ; i < n; i++ {
		v := float64(x[i])
		r += float64(v * v)
	}
	return r
}

// max32 is the largest element of x (x non-empty). Maximum is exact, so the
// order does not matter; NaN may or may not be returned, and callers make NaN
// propagate through their later arithmetic instead.
func max32(x []float32) float32 {
	m := x[0]
	for _, v := range x[1:] {
		if v > m {
			m = v
		}
	}
	return m
}

// mustLen panics with a clear message when a slice is shorter than the shape
// says. Slice sizes are the caller's invariants, not data: a mismatch is a
// programming error, and catching it here keeps assembly in bounds.
func mustLen(op, name string, got, want int) {
	if got < want {
		panic(fmt.Sprintf("tensor: %s: len(%s) = %d, shape needs %d", op, name, got, want))
	}
}

// mustEq panics when two element-wise operands differ in length.
func mustEq(op, name string, got, want int) {
	if got != want {
		panic(fmt.Sprintf("tensor: %s: len(%s) = %d, want %d", op, name, got, want))
	}
}

// mustShape panics on a negative dimension, or when a*b (the element count
// the length checks compare against) overflows int. The dimensions are copied
// into the message only on failure, so the check itself never allocates.
func mustShape(op string, a, b int, more ...int) {
	bad := a < 0 || b < 0 || (b > 0 && a > math.MaxInt/b)
	for _, d := range more {
		bad = bad || d < 0
	}
	if bad {
		panic(fmt.Sprintf("tensor: %s: negative or overflowing dimensions %d, %d %v", op, a, b, append([]int(nil), more...)))
	}
}

// avx2 reports whether k runs the assembly path. AVX-512 machines run the
// AVX2 kernels until AVX-512 ones exist; the bits are the same either way.
func (k Kernels) avx2() bool {
	return haveAsm && (k.isa == AVX2 || k.isa == AVX512)
}

// Add sets out = a + b element-wise.
func (k Kernels) Add(out, a, b []float32) {
	mustEq("Add", "a", len(a), len(out))
	mustEq("Add", "b", len(b), len(out))
	if k.avx2() {
		addAVX2(out, a, b)
		return
	}
	for i := range out {
		out[i] = a[i] + b[i]
	}
}

// AddTo adds src into dst element-wise.
func (k Kernels) AddTo(dst, src []float32) {
	mustEq("AddTo", "src", len(src), len(dst))
	if k.avx2() {
		addToAVX2(dst, src)
		return
	}
	for i := range dst {
		dst[i] += src[i]
	}
}

// Scale multiplies x by s in place.
func (k Kernels) Scale(x []float32, s float32) {
	if k.avx2() {
		scaleAVX2(x, s)
		return
	}
	for i := range x {
		x[i] *= s
	}
}

// Fill sets every element of x to v.
func (k Kernels) Fill(x []float32, v float32) {
	if k.avx2() {
		fillAVX2(x, v)
		return
	}
	for i := range x {
		x[i] = v
	}
}

// Dot is sum(a[i]*b[i]), each product rounded before it is added, summed in
// the package's summation order (fixed by len(a)).
func (k Kernels) Dot(a, b []float32) float32 {
	mustEq("Dot", "b", len(b), len(a))
	if k.avx2() {
		return dotAVX2(a, b)
	}
	return dot32(a, b)
}

// ssChunk is the block of SumSquares: each block of ssChunk elements is
// summed on its own (see sumSquares64) and the block sums are added left to
// right, so an Engine can sum blocks in parallel and still match Kernels.
const ssChunk = 1 << 16

// SumSquares is sum(x[i]^2) accumulated in float64 in an order fixed by
// len(x): blocks of ssChunk elements, each in sumSquares64's order, whose
// sums are added in block order.
func (k Kernels) SumSquares(x []float32) float64 {
	r := k.sumSquaresBlock(x[:min(len(x), ssChunk)])
	for i := ssChunk; i < len(x); i += ssChunk {
		r += k.sumSquaresBlock(x[i:min(len(x), i+ssChunk)])
	}
	return r
}

func (k Kernels) sumSquaresBlock(x []float32) float64 {
	if k.avx2() {
		return sumSquaresAVX2(x)
	}
	return sumSquares64(x)
}

// HasNaN reports whether x holds a NaN or an infinity.
func (k Kernels) HasNaN(x []float32) bool {
	if k.avx2() {
		return hasNaNAVX2(x)
	}
	for _, v := range x {
		if v-v != 0 { // NaN - NaN and Inf - Inf are NaN; finite - itself is 0
			return true
		}
	}
	return false
}

// Element-wise ops are split into chunks of this many elements: large enough
// that a chunk costs several microseconds, far more than waking a worker,
// and a multiple of 32 so chunk edges fall on whole vectors. Ops that only
// stream memory (add, scale, fill) take bigger chunks than GELU, which
// spends ~1 ns per element on arithmetic.
const (
	elemGrain      = 32768
	elemGrainHeavy = 8192
)

// runJob is ParallelGrain for a pooled job record: the record carries its
// own WaitGroup and goes to the workers as a rangeJob, so a call allocates
// nothing (ParallelGrain's closure and WaitGroup would escape to the heap).
// The ranges are the ones ParallelGrain would choose.
func (e *Engine) runJob(n, grain int, j rangeJob, wg *sync.WaitGroup) {
	if n <= 0 {
		return
	}
	grain = max(grain, 1)
	blocks := (n + grain - 1) / grain
	parts := min(e.threads, blocks)
	if parts <= 1 {
		j.run(e.k, 0, n)
		return
	}
	bound := func(p int) int { return min(n, (blocks*p/parts)*grain) }
	wg.Add(parts - 1)
	for p := 1; p < parts; p++ {
		e.tasks <- task{job: j, lo: bound(p), hi: bound(p + 1), done: wg}
	}
	j.run(e.k, 0, bound(1))
	wg.Wait()
}

// binOp carries the arguments of a split element-wise op to the workers.
// Records are pooled (sync.Pool: a free list, no state survives a call).
type binOp struct {
	out, a, b []float32
	s         float32
	kind      int
	wg        sync.WaitGroup
}

const (
	opAdd = iota
	opAddTo
	opScale
	opFill
	opGELU
	opGELUBackward
)

var binOpPool = sync.Pool{New: func() any { return new(binOp) }}

func (o *binOp) run(k Kernels, lo, hi int) {
	switch o.kind {
	case opAdd:
		k.Add(o.out[lo:hi], o.a[lo:hi], o.b[lo:hi])
	case opAddTo:
		k.AddTo(o.out[lo:hi], o.a[lo:hi])
	case opScale:
		k.Scale(o.out[lo:hi], o.s)
	case opFill:
		k.Fill(o.out[lo:hi], o.s)
	case opGELU:
		k.GELU(o.out[lo:hi], o.a[lo:hi])
	case opGELUBackward:
		k.GELUBackward(o.out[lo:hi], o.a[lo:hi], o.b[lo:hi])
	}
}

// elementwise runs an element-wise op over n elements, split across workers
// when n is large enough to pay for it.
func (e *Engine) elementwise(kind, n int, out, a, b []float32, s float32) {
	o := binOpPool.Get().(*binOp)
	o.out, o.a, o.b, o.s, o.kind = out, a, b, s, kind
	grain := elemGrain
	if kind == opGELU || kind == opGELUBackward {
		grain = elemGrainHeavy
	}
	if n <= grain {
		o.run(e.k, 0, n)
	} else {
		e.runJob(n, grain, o, &o.wg)
	}
	o.out, o.a, o.b = nil, nil, nil
	binOpPool.Put(o)
}

// Add sets out = a + b element-wise.
func (e *Engine) Add(out, a, b []float32) {
	mustEq("Add", "a", len(a), len(out))
	mustEq("Add", "b", len(b), len(out))
	e.elementwise(opAdd, len(out), out, a, b, 0)
}

// AddTo adds src into dst element-wise.
func (e *Engine) AddTo(dst, src []float32) {
	mustEq("AddTo", "src", len(src), len(dst))
	e.elementwise(opAddTo, len(dst), dst, src, nil, 0)
}

// Scale multiplies x by s in place.
func (e *Engine) Scale(x []float32, s float32) {
	e.elementwise(opScale, len(x), x, nil, nil, s)
}

// Fill sets every element of x to v.
func (e *Engine) Fill(x []float32, v float32) {
	e.elementwise(opFill, len(x), x, nil, nil, v)
}

// Dot is Kernels.Dot, on one thread: its summation order is defined over
// the whole vector (Dot serves short vectors).
func (e *Engine) Dot(a, b []float32) float32 { return e.k.Dot(a, b) }

// ssOp carries SumSquares to the workers: each fills the sums of its
// blocks; the caller adds them in block order.
type ssOp struct {
	x    []float32
	sums []float64
	wg   sync.WaitGroup
}

var ssOpPool = sync.Pool{New: func() any { return new(ssOp) }}

func (o *ssOp) run(k Kernels, lo, hi int) {
	for c := lo; c < hi; c++ {
		o.sums[c] = k.sumSquaresBlock(o.x[c*ssChunk : min(len(o.x), (c+1)*ssChunk)])
	}
}

// SumSquares is Kernels.SumSquares with its blocks summed in parallel; the
// block sums are added in order, so the bits do not depend on the threads.
func (e *Engine) SumSquares(x []float32) float64 {
	blocks := (len(x) + ssChunk - 1) / ssChunk
	if blocks <= 1 || e.threads == 1 {
		return e.k.SumSquares(x)
	}
	o := ssOpPool.Get().(*ssOp)
	if cap(o.sums) < blocks {
		o.sums = make([]float64, blocks) // kept in the pool for the next call
	}
	o.x, o.sums = x, o.sums[:blocks]
	e.runJob(blocks, 1, o, &o.wg)
	r := o.sums[0]
	for _, v := range o.sums[1:] {
		r += v
	}
	o.x = nil
	ssOpPool.Put(o)
	return r
}

// HasNaN reports whether x holds a NaN or an infinity.
func (e *Engine) HasNaN(x []float32) bool { return e.k.HasNaN(x) }
