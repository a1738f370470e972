package tensor

import (
	"math"
	"sync"
)

// softmaxRow sets p[j] = exp(t[j]-max)/sum for t[j] = scale*s[j] (rounded),
// over the whole of s, and returns max and sum. Both paths: max, then one
// pass storing e[j] = exp32(t[j]-max) and summing it in the summation order,
// then p[j] = e[j] * (1/sum).
func (k Kernels) softmaxRow(p, s []float32, scale float32) (mx, sum float32) {
	if k.avx2() {
		mx = maxScaledAVX2(s, scale)
	} else {
		mx = float32(scale * s[0])
		for _, v := range s[1:] {
			if t := float32(scale * v); t > mx {
				mx = t
			}
		}
	}
	// The maximum of +0 and -0 may be either, depending on the path; make
	// it +0 so that nothing downstream (a zero loss) can differ in sign.
	// With NaN in the row the paths may pick different maxima, but every
	// output is NaN then either way.
	if mx == 0 {
		mx = 0
	}
	if k.avx2() {
		sum = expSubSumAVX2(p, s, scale, mx)
		scaleAVX2(p, 1/sum)
		return mx, sum
	}
	sum = expSubSum(p, s, scale, mx)
	inv := 1 / sum
	for j := range p {
		p[j] *= inv
	}
	return mx, sum
}

// expSubSum stores p[j] = exp32(scale*s[j] - mx) and returns their sum in
// the summation order.
func expSubSum(p, s []float32, scale, mx float32) float32 {
	n := len(s)
	p = p[:n]
	var acc [32]float32
	i := 0
	for ; i+32 <= n; i += 32 {
		for l := range 32 {
			e := exp32(float32(scale*s[i+l]) - mx)
			p[i+l] = e
			acc[l] += e
		}
	}
	sm := fold32(&acc)
	for ; i+8 <= n; i += 8 {
		for l := range 8 {
			e := exp32(float32(scale*s[i+l]) - mx)
			p[i+l] = e
			sm[l] += e
		}
	}
	r := fold8(&sm)
	for ; i < n; i++ {
		e := exp32(float32(scale*s[i]) - mx)
		p[i] = e
		r += e
	}
	return r
}

// CausalSoftmax computes, for each of rows rows of n scores (row-major s),
// p[i][j] = softmax over the visible j of scale*s[i][j], where row i sees
// columns 0..offset+i inclusive; masked entries of p are set to 0. Training
// uses rows = n = T with offset 0; decoding one token uses rows = 1 and
// offset = n-1.
func (k Kernels) CausalSoftmax(p, s []float32, rows, n, offset int, scale float32) {
	checkCausalSoftmax(p, s, rows, n, offset)
	k.causalSoftmax(p, s, rows, n, offset, 0, rows, scale)
}

func checkCausalSoftmax(p, s []float32, rows, n, offset int) {
	mustShape("CausalSoftmax", rows, n, offset)
	mustLen("CausalSoftmax", "p", len(p), rows*n)
	mustLen("CausalSoftmax", "s", len(s), rows*n)
}

// causalSoftmax handles rows [lo, hi) of the full matrices.
func (k Kernels) causalSoftmax(p, s []float32, rows, n, offset, lo, hi int, scale float32) {
	for i := lo; i < hi; i++ {
		pr := p[i*n : (i+1)*n]
		vis := n // written so that a huge offset cannot overflow
		if offset < n-i-1 {
			vis = offset + i + 1
		}
		if vis > 0 {
			k.softmaxRow(pr[:vis], s[i*n:i*n+vis], scale)
		}
		k.Fill(pr[vis:], 0)
	}
}

// SoftmaxBackward accumulates ds += scale * p*(dp - sum_j p*dp) per row of n,
// the gradient of p = softmax(scale*s) with respect to s. Masked entries have
// p = 0 and receive nothing.
func (k Kernels) SoftmaxBackward(ds, p, dp []float32, rows, n int, scale float32) {
	checkSoftmaxBackward(ds, p, dp, rows, n)
	k.softmaxBackward(ds, p, dp, n, 0, rows, scale)
}

func checkSoftmaxBackward(ds, p, dp []float32, rows, n int) {
	mustShape("SoftmaxBackward", rows, n)
	mustLen("SoftmaxBackward", "ds", len(ds), rows*n)
	mustLen("SoftmaxBackward", "p", len(p), rows*n)
	mustLen("SoftmaxBackward", "dp", len(dp), rows*n)
}

func (k Kernels) softmaxBackward(ds, p, dp []float32, n, lo, hi int, scale float32) {
	for i := lo; i < hi; i++ {
		d := ds[i*n : (i+1)*n]
		pr := p[i*n : (i+1)*n]
		g := dp[i*n : (i+1)*n]
		if k.avx2() {
			softmaxBwdAVX2(d, pr, g, dotAVX2(pr, g), scale)
			continue
		}
		dot := dot32(pr, g)
		for j, pj := range pr {
			t := g[j] - dot
			t = float32(pj * t)
			d[j] += float32(scale * t)
		}
	}
}

// smOp carries softmax arguments to the workers (see binOp).
type smOp struct {
	p, s, ds, dp    []float32
	rows, n, offset int
	scale           float32
	backward        bool
	wg              sync.WaitGroup
}

var smOpPool = sync.Pool{New: func() any { return new(smOp) }}

func (o *smOp) run(k Kernels, lo, hi int) {
	if o.backward {
		o.runBwd(k, lo, hi)
	} else {
		o.runFwd(k, lo, hi)
	}
}

func (o *smOp) runFwd(k Kernels, lo, hi int) {
	if o.offset == 0 && o.rows == o.n {
		// Training shape: row i costs i+1, so rows [0, r) cost ~r^2. Map the
		// evenly split range onto rows at square-root spacing to give every
		// worker the same work. The map is monotonic with f(0) = 0 and
		// f(rows) = rows, so the ranges still tile the rows exactly.
		lo, hi = isqrt(lo*o.rows), isqrt(hi*o.rows)
	}
	k.causalSoftmax(o.p, o.s, o.rows, o.n, o.offset, lo, hi, o.scale)
}

// isqrt is floor(sqrt(x)) for x >= 0, exact for every int.
func isqrt(x int) int {
	r := int(math.Sqrt(float64(x)))
	for r*r > x {
		r--
	}
	for (r+1)*(r+1) <= x {
		r++
	}
	return r
}

func (o *smOp) runBwd(k Kernels, lo, hi int) {
	k.softmaxBackward(o.ds, o.p, o.dp, o.n, lo, hi, o.scale)
}

func (o *smOp) release() {
	o.p, o.s, o.ds, o.dp = nil, nil, nil, nil
	smOpPool.Put(o)
}

// CausalSoftmax is Kernels.CausalSoftmax split across workers by rows.
func (e *Engine) CausalSoftmax(p, s []float32, rows, n, offset int, scale float32) {
	checkCausalSoftmax(p, s, rows, n, offset)
	o := smOpPool.Get().(*smOp)
	o.p, o.s, o.rows, o.n, o.offset, o.scale = p, s, rows, n, offset, scale
	o.backward = false
	e.runJob(rows, rowGrain(n), o, &o.wg)
	o.release()
}

// SoftmaxBackward is Kernels.SoftmaxBackward split across workers by rows.
func (e *Engine) SoftmaxBackward(ds, p, dp []float32, rows, n int, scale float32) {
	checkSoftmaxBackward(ds, p, dp, rows, n)
	o := smOpPool.Get().(*smOp)
	o.ds, o.p, o.dp, o.rows, o.n, o.scale = ds, p, dp, rows, n, scale
	o.backward = true
	// The backward pass streams memory at ~0.3 ns per element: split it
	// only when each part gets a few microseconds.
	e.runJob(rows, max(1, 8192/max(n, 1)), o, &o.wg)
	o.release()
}
