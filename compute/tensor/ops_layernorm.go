package tensor

import (
	"math"
	"sync"
)

// lnEps is added to the variance before the square root, as in GPT-2.
const lnEps float32 = 1e-5

// lnStats returns the mean and 1/sqrt(var+eps) of one row: mean = sum/C,
// var = sum((x-mean)^2)/C (two passes, biased). The square root and the
// divisions are correctly rounded float32 operations on every path.
func (k Kernels) lnStats(x []float32) (mean, rstd float32) {
	c := float32(len(x))
	var s, q float32
	if k.avx2() {
		s = sumAVX2(x)
	} else {
		s = sum32(x)
	}
	mean = s / c
	if k.avx2() {
		q = sumSqDevAVX2(x, mean)
	} else {
		q = sumSqDev32(x, mean)
	}
	v := q/c + lnEps
	rstd = 1 / float32(math.Sqrt(float64(v)))
	return mean, rstd
}

// LayerNorm normalises each of rows rows of C values: out = (x-mean)*rstd*w + b,
// with each row's mean and rstd = 1/sqrt(var+1e-5) (biased variance) saved
// for the backward pass.
func (k Kernels) LayerNorm(out, mean, rstd, inp, w, b []float32, rows, C int) {
	checkLayerNorm(out, mean, rstd, inp, w, b, rows, C)
	k.layerNorm(out, mean, rstd, inp, w, b, rows, C)
}

func checkLayerNorm(out, mean, rstd, inp, w, b []float32, rows, C int) {
	mustShape("LayerNorm", rows, C)
	mustLen("LayerNorm", "out", len(out), rows*C)
	mustLen("LayerNorm", "inp", len(inp), rows*C)
	mustLen("LayerNorm", "mean", len(mean), rows)
	mustLen("LayerNorm", "rstd", len(rstd), rows)
	mustLen("LayerNorm", "w", len(w), C)
	mustLen("LayerNorm", "b", len(b), C)
}

func (k Kernels) layerNorm(out, mean, rstd, inp, w, b []float32, rows, C int) {
	if C == 0 {
		return
	}
	w, b = w[:C], b[:C]
	for r := range rows {
		x := inp[r*C : (r+1)*C]
		o := out[r*C : (r+1)*C]
		m, rs := k.lnStats(x)
		mean[r], rstd[r] = m, rs
		if k.avx2() {
			lnApplyAVX2(o, x, w, b, m, rs)
			continue
		}
		for i, v := range x {
			n := float32((v - m) * rs)
			o[i] = float32(n*w[i]) + b[i]
		}
	}
}

// LayerNormBackward accumulates the gradients of LayerNorm: dinp (rows x C),
// dw and db (C each, summed over rows in row order). Any of the three may be
// nil to skip it. mean and rstd are those the forward pass saved.
func (k Kernels) LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd []float32, rows, C int) {
	checkLayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, rows, C)
	if dinp != nil {
		k.lnBackwardInput(dinp, dout, inp, w, mean, rstd, rows, C)
	}
	k.lnBackwardParams(dw, db, dout, inp, mean, rstd, rows, C, 0, C)
}

func checkLayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd []float32, rows, C int) {
	mustShape("LayerNormBackward", rows, C)
	if dinp != nil {
		mustLen("LayerNormBackward", "dinp", len(dinp), rows*C)
	}
	if dw != nil {
		mustLen("LayerNormBackward", "dw", len(dw), C)
	}
	if db != nil {
		mustLen("LayerNormBackward", "db", len(db), C)
	}
	mustLen("LayerNormBackward", "dout", len(dout), rows*C)
	mustLen("LayerNormBackward", "inp", len(inp), rows*C)
	mustLen("LayerNormBackward", "w", len(w), C)
	mustLen("LayerNormBackward", "mean", len(mean), rows)
	mustLen("LayerNormBackward", "rstd", len(rstd), rows)
}

// lnBackwardInput: with norm = (x-mean)*rstd and dnorm = w*dout,
// dinp += (dnorm - mean(dnorm) - norm*mean(dnorm*norm)) * rstd.
func (k Kernels) lnBackwardInput(dinp, dout, inp, w, mean, rstd []float32, rows, C int) {
	if C == 0 {
		return
	}
	w = w[:C]
	c := float32(C)
	for r := range rows {
		x := inp[r*C : (r+1)*C]
		g := dout[r*C : (r+1)*C]
		d := dinp[r*C : (r+1)*C]
		m, rs := mean[r], rstd[r]
		var s1, s2 float32
		if k.avx2() {
			s1, s2 = lnBwdSumsAVX2(x, w, g, m, rs)
		} else {
			s1, s2 = lnBwdSums(x, w, g, m, rs)
		}
		dm, dnm := s1/c, s2/c
		if k.avx2() {
			lnBwdApplyAVX2(d, x, w, g, m, rs, dm, dnm)
			continue
		}
		for i, v := range x {
			n := float32((v - m) * rs)
			dn := float32(w[i] * g[i])
			t := dn - dm
			t = t - float32(n*dnm)
			d[i] += float32(t * rs)
		}
	}
}

// lnBwdSums returns sum(dnorm) and sum(dnorm*norm) in the summation order.
func lnBwdSums(x, w, g []float32, m, rs float32) (float32, float32) {
	n := len(x)
	w, g = w[:n], g[:n]
	var a1, a2 [32]float32
	i := 0
	for ; i+32 <= n; i += 32 {
		for l := range 32 {
			nv := float32((x[i+l] - m) * rs)
			dn := float32(w[i+l] * g[i+l])
			a1[l] += dn
			a2[l] += float32(dn * nv)
		}
	}
	s1, s2 := fold32(&a1), fold32(&a2)
	for ; i+8 <= n; i += 8 {
		for l := range 8 {
			nv := float32((x[i+l] - m) * rs)
			dn := float32(w[i+l] * g[i+l])
			s1[l] += dn
			s2[l] += float32(dn * nv)
		}
	}
	r1, r2 := fold8(&s1), fold8(&s2)
	for ; i < n; i++ {
		nv := float32((x[i] - m) * rs)
		dn := float32(w[i] * g[i])
		r1 += dn
		r2 += float32(dn * nv)
	}
	return r1, r2
}

// lnBackwardParams accumulates dw[j] += norm*dout and db[j] += dout for the
// columns j in [lo, hi), walking the rows in order. The order per column is
// fixed, so splitting by columns keeps the bits thread-independent.
func (k Kernels) lnBackwardParams(dw, db, dout, inp, mean, rstd []float32, rows, C, lo, hi int) {
	if (dw == nil && db == nil) || lo >= hi {
		return
	}
	for r := range rows {
		x := inp[r*C+lo : r*C+hi]
		g := dout[r*C+lo : r*C+hi]
		m, rs := mean[r], rstd[r]
		switch {
		case dw != nil && k.avx2():
			var dbs []float32
			if db != nil {
				dbs = db[lo:hi]
			}
			lnBwdParamsAVX2(dw[lo:hi], dbs, x, g, m, rs)
		case db != nil && k.avx2():
			addToAVX2(db[lo:hi], g)
		default:
			if dw != nil {
				dws := dw[lo:hi]
				for i, v := range x {
					n := float32((v - m) * rs)
					dws[i] += float32(n * g[i])
				}
			}
			if db != nil {
				dbs := db[lo:hi]
				for i, v := range g {
					dbs[i] += v
				}
			}
		}
	}
}

// lnOp carries LayerNorm arguments to the workers (see binOp).
type lnOp struct {
	out, mean, rstd, inp, w, b []float32
	dinp, dw, db, dout         []float32
	rows, C                    int
	phase                      int
	wg                         sync.WaitGroup
}

const (
	lnForward = iota
	lnBackwardInput
	lnBackwardParams
)

var lnOpPool = sync.Pool{New: func() any { return new(lnOp) }}

func (o *lnOp) run(k Kernels, lo, hi int) {
	switch o.phase {
	case lnForward:
		o.runFwd(k, lo, hi)
	case lnBackwardInput:
		o.runBwdIn(k, lo, hi)
	case lnBackwardParams:
		o.runBwdParams(k, lo, hi)
	}
}

func (o *lnOp) runFwd(k Kernels, lo, hi int) {
	C := o.C
	k.layerNorm(o.out[lo*C:hi*C], o.mean[lo:hi], o.rstd[lo:hi], o.inp[lo*C:hi*C], o.w, o.b, hi-lo, C)
}

func (o *lnOp) runBwdIn(k Kernels, lo, hi int) {
	C := o.C
	k.lnBackwardInput(o.dinp[lo*C:hi*C], o.dout[lo*C:hi*C], o.inp[lo*C:hi*C], o.w, o.mean[lo:hi], o.rstd[lo:hi], hi-lo, C)
}

func (o *lnOp) runBwdParams(k Kernels, lo, hi int) {
	k.lnBackwardParams(o.dw, o.db, o.dout, o.inp, o.mean, o.rstd, o.rows, o.C, lo, hi)
}

func (o *lnOp) release() {
	o.out, o.mean, o.rstd, o.inp, o.w, o.b = nil, nil, nil, nil, nil, nil
	o.dinp, o.dw, o.db, o.dout = nil, nil, nil, nil
	lnOpPool.Put(o)
}

// rowGrain is the number of rows per parallel chunk for a row length C:
// enough rows that a chunk holds at least ~2048 elements, some microseconds
// of work against a fork-join of well under one.
func rowGrain(C int) int {
	if C <= 0 {
		return 1
	}
	return max(1, 2048/C)
}

// LayerNorm is Kernels.LayerNorm split across workers by rows.
func (e *Engine) LayerNorm(out, mean, rstd, inp, w, b []float32, rows, C int) {
	checkLayerNorm(out, mean, rstd, inp, w, b, rows, C)
	o := lnOpPool.Get().(*lnOp)
	o.out, o.mean, o.rstd, o.inp, o.w, o.b, o.rows, o.C = out, mean, rstd, inp, w, b, rows, C
	o.phase = lnForward
	e.runJob(rows, rowGrain(C), o, &o.wg)
	o.release()
}

// LayerNormBackward is Kernels.LayerNormBackward split across workers: dinp
// by rows, dw and db by columns (each worker walks all rows in order), so the
// bits do not depend on the thread count.
func (e *Engine) LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd []float32, rows, C int) {
	checkLayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, rows, C)
	o := lnOpPool.Get().(*lnOp)
	o.dinp, o.dw, o.db, o.dout, o.inp, o.w, o.mean, o.rstd, o.rows, o.C = dinp, dw, db, dout, inp, w, mean, rstd, rows, C
	if dinp != nil {
		o.phase = lnBackwardInput
		e.runJob(rows, rowGrain(C), o, &o.wg)
	}
	if dw != nil || db != nil {
		// Column blocks of 64 keep each worker on whole cache lines.
		o.phase = lnBackwardParams
		e.runJob(C, 64, o, &o.wg)
	}
	o.release()
}
