package tensor

import (
	"math"
	"sync"
)

// adamParams are AdamW's per-step scalars, computed once in Go (float64
// where it matters, then rounded to float32) and shared by both paths.
type adamParams struct {
	lr, b1, b2, c1, c2, ibc1, ibc2, eps, wd float32
}

func newAdamParams(lr, beta1, beta2, eps, weightDecay float32, step int) adamParams {
	if step < 1 {
		step = 1 // step 0 would divide by 1-beta^0 = 0
	}
	bc1 := 1 - powInt(float64(beta1), step)
	bc2 := 1 - powInt(float64(beta2), step)
	return adamParams{
		lr: lr, b1: beta1, b2: beta2,
		c1:   float32(1 - float64(beta1)),
		c2:   float32(1 - float64(beta2)),
		ibc1: float32(1 / bc1),
		ibc2: float32(1 / bc2),
		eps:  eps, wd: weightDecay,
	}
}

// powInt is x^n for n >= 0 by repeated squaring: products only, so no
// platform's fusion or math.Pow implementation can change its bits.
func powInt(x float64, n int) float64 {
	r := 1.0
	for n > 0 {
		if n&1 == 1 {
			r *= x
		}
		x *= x
		n >>= 1
	}
	return r
}

// AdamW does one AdamW step in place over p with gradient g and moments m, v:
//
//	m = b1*m + (1-b1)*g ; v = b2*v + (1-b2)*g*g
//	mhat = m/(1-b1^step) ; vhat = v/(1-b2^step)
//	p -= lr*(mhat/(sqrt(vhat)+eps) + wd*p)
//
// The bias corrections are computed once, in float64, as reciprocals; every
// element then takes the same unfused float32 operations on every path.
// step counts from 1 (a step below 1 is treated as 1).
func (k Kernels) AdamW(p, g, m, v []float32, lr, beta1, beta2, eps, weightDecay float32, step int) {
	checkAdamW(p, g, m, v)
	k.adamW(p, g, m, v, newAdamParams(lr, beta1, beta2, eps, weightDecay, step))
}

func checkAdamW(p, g, m, v []float32) {
	mustEq("AdamW", "g", len(g), len(p))
	mustEq("AdamW", "m", len(m), len(p))
	mustEq("AdamW", "v", len(v), len(p))
}

func (k Kernels) adamW(p, g, m, v []float32, a adamParams) {
	if k.avx2() {
		adamwAVX2(p, g, m, v, &a)
		return
	}
	g, m, v = g[:len(p)], m[:len(p)], v[:len(p)]
	for i, gi := range g {
		mi := float32(a.b1*m[i]) + float32(a.c1*gi)
		vi := float32(a.b2*v[i]) + float32(float32(a.c2*gi)*gi)
		m[i], v[i] = mi, vi
		mh := float32(mi * a.ibc1)
		vh := float32(vi * a.ibc2)
		den := float32(math.Sqrt(float64(vh))) + a.eps
		u := mh/den + float32(a.wd*p[i])
		p[i] -= float32(a.lr * u)
	}
}

// adamOp carries AdamW arguments to the workers (see binOp).
type adamOp struct {
	p, g, m, v []float32
	a          adamParams
	wg         sync.WaitGroup
}

var adamOpPool = sync.Pool{New: func() any { return new(adamOp) }}

func (o *adamOp) run(k Kernels, lo, hi int) {
	k.adamW(o.p[lo:hi], o.g[lo:hi], o.m[lo:hi], o.v[lo:hi], o.a)
}

// AdamW is Kernels.AdamW split across workers.
func (e *Engine) AdamW(p, g, m, v []float32, lr, beta1, beta2, eps, weightDecay float32, step int) {
	checkAdamW(p, g, m, v)
	o := adamOpPool.Get().(*adamOp)
	o.p, o.g, o.m, o.v = p, g, m, v
	o.a = newAdamParams(lr, beta1, beta2, eps, weightDecay, step)
	e.runJob(len(p), elemGrain, o, &o.wg)
	o.p, o.g, o.m, o.v = nil, nil, nil, nil
	adamOpPool.Put(o)
}
