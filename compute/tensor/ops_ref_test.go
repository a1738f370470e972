package tensor

import (
	"math"
	"testing"
)

// Float64 references of the ops, and checks of the float32 kernels against
// them. Backward kernels are checked against central finite differences of
// the float64 forward references, which tests the formulas themselves.

// assertClose fails when |got-want| > atol + rtol*|want| anywhere.
func assertClose(t *testing.T, what string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	worst, at := 0.0, -1
	for i := range got {
		err := math.Abs(float64(got[i]) - want[i])
		lim := atol + rtol*math.Abs(want[i])
		if !(err <= lim) { // also catches NaN
			if r := err / lim; at < 0 || r > worst || math.IsNaN(r) {
				worst, at = r, i
			}
		}
	}
	if at >= 0 {
		t.Errorf("%s: element %d is %v, want %v (error %.3g x the tolerance)", what, at, got[at], want[at], worst)
	}
}

func to64(x []float32) []float64 {
	y := make([]float64, len(x))
	for i, v := range x {
		y[i] = float64(v)
	}
	return y
}

func geluRef(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

func layerNormRef(inp, w, b []float64, rows, C int) (out, mean, rstd []float64) {
	out, mean, rstd = make([]float64, rows*C), make([]float64, rows), make([]float64, rows)
	for r := range rows {
		x := inp[r*C : (r+1)*C]
		m := 0.0
		for _, v := range x {
			m += v
		}
		m /= float64(C)
		q := 0.0
		for _, v := range x {
			q += (v - m) * (v - m)
		}
		rs := 1 / math.Sqrt(q/float64(C)+1e-5)
		for i, v := range x {
			out[r*C+i] = (v-m)*rs*w[i] + b[i]
		}
		mean[r], rstd[r] = m, rs
	}
	return out, mean, rstd
}

func causalSoftmaxRef(s []float64, rows, n, offset int, scale float64) []float64 {
	p := make([]float64, rows*n)
	for i := range rows {
		vis := min(n, offset+i+1)
		mx := math.Inf(-1)
		for j := range vis {
			mx = math.Max(mx, scale*s[i*n+j])
		}
		sum := 0.0
		for j := range vis {
			sum += math.Exp(scale*s[i*n+j] - mx)
		}
		for j := range vis {
			p[i*n+j] = math.Exp(scale*s[i*n+j]-mx) / sum
		}
	}
	return p
}

func crossEntropyRef(logits []float64, targets []int32, rows, V int) (probs, losses []float64) {
	probs = causalSoftmaxRef(logits, rows, V, V, 1)
	losses = make([]float64, rows)
	for i := range rows {
		losses[i] = -math.Log(probs[i*V+int(targets[i])])
	}
	return probs, losses
}

// gradFD returns d/dx_i of f at x by central differences, for every i.
func gradFD(x []float64, f func([]float64) float64) []float64 {
	g := make([]float64, len(x))
	for i := range x {
		old := x[i]
		h := 1e-6 * math.Max(1, math.Abs(old))
		x[i] = old + h
		fp := f(x)
		x[i] = old - h
		fm := f(x)
		x[i] = old
		g[i] = (fp - fm) / (2 * h)
	}
	return g
}

func dot64(a []float64, b []float32) float64 {
	s := 0.0
	for i := range a {
		s += a[i] * float64(b[i])
	}
	return s
}

func TestLayerNormAccuracy(t *testing.T) {
	const rows, C = 5, 77
	r := newRNG(11)
	inp, w, b := randVec(r, rows*C, 3), randVec(r, C, 1), randVec(r, C, 1)
	for i := range inp {
		inp[i] += 10 // an offset makes the variance pass matter
	}
	wantOut, wantMean, wantRstd := layerNormRef(to64(inp), to64(w), to64(b), rows, C)
	dout := randVec(r, rows*C, 1)
	for _, k := range testKernels(t) {
		out, mean, rstd := make([]float32, rows*C), make([]float32, rows), make([]float32, rows)
		k.LayerNorm(out, mean, rstd, inp, w, b, rows, C)
		assertClose(t, k.ISA().String()+" LayerNorm out", out, wantOut, 1e-5, 1e-5)
		assertClose(t, k.ISA().String()+" LayerNorm mean", mean, wantMean, 0, 1e-6)
		assertClose(t, k.ISA().String()+" LayerNorm rstd", rstd, wantRstd, 0, 1e-5)

		// Gradients of L = sum(out*dout) by finite differences of the reference.
		dinp, dw, db := make([]float32, rows*C), make([]float32, C), make([]float32, C)
		k.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, rows, C)
		x64, w64, b64 := to64(inp), to64(w), to64(b)
		loss := func() float64 {
			o, _, _ := layerNormRef(x64, w64, b64, rows, C)
			return dot64(o, dout)
		}
		assertClose(t, k.ISA().String()+" LayerNorm dinp", dinp, gradFD(x64, func([]float64) float64 { return loss() }), 2e-4, 1e-3)
		assertClose(t, k.ISA().String()+" LayerNorm dw", dw, gradFD(w64, func([]float64) float64 { return loss() }), 2e-4, 1e-3)
		assertClose(t, k.ISA().String()+" LayerNorm db", db, gradFD(b64, func([]float64) float64 { return loss() }), 2e-4, 1e-3)
	}
}

func TestGELUAccuracy(t *testing.T) {
	var x []float32
	for v := -12.0; v <= 12; v += 0.0173 {
		x = append(x, float32(v))
	}
	want, wantGrad := make([]float64, len(x)), make([]float64, len(x))
	for i, v := range x {
		want[i] = geluRef(float64(v))
		h := 1e-6
		wantGrad[i] = (geluRef(float64(v)+h) - geluRef(float64(v)-h)) / (2 * h)
	}
	for _, k := range testKernels(t) {
		out := make([]float32, len(x))
		k.GELU(out, x)
		assertClose(t, k.ISA().String()+" GELU", out, want, 1e-7, 2e-6)
		ones, g := make([]float32, len(x)), make([]float32, len(x))
		k.Fill(ones, 1)
		k.GELUBackward(g, x, ones)
		assertClose(t, k.ISA().String()+" GELU'", g, wantGrad, 1e-6, 1e-5)
	}
}

func TestSoftmaxAccuracy(t *testing.T) {
	const T = 37
	const scale = 0.25
	r := newRNG(12)
	s, dp := randVec(r, T*T, 4), randVec(r, T*T, 1)
	want := causalSoftmaxRef(to64(s), T, T, 0, scale)
	for _, k := range testKernels(t) {
		p := make([]float32, T*T)
		k.CausalSoftmax(p, s, T, T, 0, scale)
		assertClose(t, k.ISA().String()+" CausalSoftmax", p, want, 1e-7, 1e-5)
		for i := range T {
			for j := i + 1; j < T; j++ {
				if p[i*T+j] != 0 {
					t.Fatalf("%v: masked p[%d][%d] = %v", k.ISA(), i, j, p[i*T+j])
				}
			}
		}
		// L = sum(p*dp); ds by finite differences (masked s get 0 from both).
		ds := make([]float32, T*T)
		k.SoftmaxBackward(ds, p, dp, T, T, scale)
		s64 := to64(s)
		fd := gradFD(s64, func(x []float64) float64 { return dot64(causalSoftmaxRef(x, T, T, 0, scale), dp) })
		assertClose(t, k.ISA().String()+" SoftmaxBackward", ds, fd, 1e-5, 1e-3)
	}
	// An offset past the end (even the largest int) shows every column.
	for _, k := range testKernels(t) {
		p := make([]float32, T*T)
		k.CausalSoftmax(p, s, T, T, math.MaxInt, scale)
		assertClose(t, k.ISA().String()+" CausalSoftmax full", p, causalSoftmaxRef(to64(s), T, T, T, scale), 1e-7, 1e-5)
	}
	// Decoding: one row that sees all n columns equals the last training row.
	for _, k := range testKernels(t) {
		p := make([]float32, T)
		k.CausalSoftmax(p, s[(T-1)*T:], 1, T, T-1, scale)
		assertClose(t, k.ISA().String()+" CausalSoftmax offset", p, want[(T-1)*T:], 1e-7, 1e-5)
	}
}

func TestCrossEntropyAccuracy(t *testing.T) {
	const rows, V = 6, 50
	r := newRNG(13)
	logits, tg, dloss := randVec(r, rows*V, 4), randTargets(r, rows, V), randVec(r, rows, 1)
	logits[3] = 80 // a large logit: probabilities far below float32's range elsewhere in row 0
	wantP, wantL := crossEntropyRef(to64(logits), tg, rows, V)
	for _, k := range testKernels(t) {
		probs, losses := make([]float32, rows*V), make([]float32, rows)
		if err := k.CrossEntropy(probs, losses, logits, tg, rows, V); err != nil {
			t.Fatal(err)
		}
		assertClose(t, k.ISA().String()+" CrossEntropy probs", probs, wantP, 1e-7, 1e-5)
		assertClose(t, k.ISA().String()+" CrossEntropy losses", losses, wantL, 1e-6, 1e-6)
		dl := make([]float32, rows*V)
		k.CrossEntropyBackward(dl, probs, tg, dloss, rows, V)
		l64 := to64(logits)
		fd := gradFD(l64, func(x []float64) float64 {
			_, l := crossEntropyRef(x, tg, rows, V)
			return dot64(l, dloss)
		})
		assertClose(t, k.ISA().String()+" CrossEntropyBackward", dl, fd, 1e-5, 1e-4)
	}
}

func TestReductionsAccuracy(t *testing.T) {
	r := newRNG(14)
	for _, n := range []int{1, 9, 1000, 100003} {
		a, b := randVec(r, n, 1), randVec(r, n, 1)
		d, ss, aa := 0.0, 0.0, 0.0
		for i := range a {
			d += float64(a[i]) * float64(b[i])
			ss += float64(a[i]) * float64(a[i])
			aa += math.Abs(float64(a[i]) * float64(b[i]))
		}
		for _, k := range testKernels(t) {
			// Float32 summation: error bounded by ~log-depth * eps * sum|terms|.
			if got := float64(k.Dot(a, b)); math.Abs(got-d) > 1e-5*aa+1e-6 {
				t.Errorf("%v Dot n=%d = %v, want %v", k.ISA(), n, got, d)
			}
			if got := k.SumSquares(a); math.Abs(got-ss) > 1e-12*ss {
				t.Errorf("%v SumSquares n=%d = %v, want %v", k.ISA(), n, got, ss)
			}
		}
	}
}

func TestAdamWAgainstFloat64(t *testing.T) {
	const n = 1003
	r := newRNG(15)
	p0, g := randVec(r, n, 1), randVec(r, n, 1e-2)
	const lr, b1, b2, eps, wd = 1e-3, 0.9, 0.95, 1e-8, 0.1
	for _, k := range testKernels(t) {
		p, m, v := append([]float32(nil), p0...), make([]float32, n), make([]float32, n)
		pr, mr, vr := to64(p0), make([]float64, n), make([]float64, n)
		for step := 1; step <= 5; step++ {
			k.AdamW(p, g, m, v, lr, b1, b2, eps, wd, step)
			for i := range pr {
				gi := float64(g[i])
				mr[i] = b1*mr[i] + (1-b1)*gi
				vr[i] = b2*vr[i] + (1-b2)*gi*gi
				mh := mr[i] / (1 - math.Pow(b1, float64(step)))
				vh := vr[i] / (1 - math.Pow(b2, float64(step)))
				pr[i] -= lr * (mh/(math.Sqrt(vh)+eps) + wd*pr[i])
			}
		}
		assertClose(t, k.ISA().String()+" AdamW m", m, mr, 1e-9, 1e-5)
		assertClose(t, k.ISA().String()+" AdamW v", v, vr, 1e-12, 1e-5)
		// Parameter change is lr-sized; compare it, not just p, to see errors.
		dp, dr := make([]float32, n), make([]float64, n)
		for i := range p {
			dp[i] = p[i] - p0[i]
			dr[i] = pr[i] - float64(p0[i])
		}
		assertClose(t, k.ISA().String()+" AdamW p", p, pr, 1e-7, 1e-6)
		assertClose(t, k.ISA().String()+" AdamW step", dp, dr, 1e-7, 1e-3)
	}
}
