package tensor

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// awkwardLens are vector lengths that exercise every loop of the kernels:
// empty, pure scalar tails, exact vectors, vector plus tail, the 32-block
// loop with and without leftovers.
var awkwardLens = []int{0, 1, 7, 8, 9, 15, 16, 31, 32, 33, 63, 255, 256, 257, 1000}

// testKernels is every kernel path this machine can run.
func testKernels(t testing.TB) []Kernels {
	ks := []Kernels{{isa: Generic}}
	if k, err := NewKernels(AVX2); err == nil {
		ks = append(ks, k)
	} else {
		t.Logf("AVX2 path not available (%v): comparing Generic only", err)
	}
	return ks
}

// randVec returns n values of mean 0 and deviation ~scale, deterministic in
// rng and the same on every platform: a sum of four 24-bit uniforms is
// exact, unlike NormFloat64, whose rare paths call math.Exp and math.Log.
func randVec(rng *rand.Rand, n int, scale float64) []float32 {
	x := make([]float32, n)
	for i := range x {
		u := 0.0
		for range 4 {
			u += float64(rng.Uint64()>>40) / (1 << 24)
		}
		x[i] = float32(float64((u-2)*math.Sqrt(3)) * scale)
	}
	return x
}

func randTargets(rng *rand.Rand, n, V int) []int32 {
	t := make([]int32, n)
	for i := range t {
		t[i] = int32(rng.IntN(V))
	}
	return t
}

// firstDiff is the index of the first element whose bits differ (NaNs of
// any payload count as equal), or -1.
func firstDiff(a, b []float32) int {
	if len(a) != len(b) {
		return 0
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) && !(a[i] != a[i] && b[i] != b[i]) {
			return i
		}
	}
	return -1
}

func f32s(vs ...float32) []float32 { return vs }

// opCase runs one op on kernel path k for size n, building its inputs from
// a seed so that every path sees the same inputs, and returns every output.
type opCase struct {
	name string
	run  func(k Kernels, n int, seed uint64) [][]float32
}

func newRNG(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15)) }

var opCases = []opCase{
	{"Add", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		a, b, out := randVec(r, n, 1), randVec(r, n, 3), make([]float32, n)
		k.Add(out, a, b)
		return [][]float32{out}
	}},
	{"AddTo", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		d, s := randVec(r, n, 1), randVec(r, n, 1e-3)
		k.AddTo(d, s)
		return [][]float32{d}
	}},
	{"Scale", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		x := randVec(r, n, 1)
		k.Scale(x, 0.3)
		return [][]float32{x}
	}},
	{"Fill", func(k Kernels, n int, seed uint64) [][]float32 {
		x := make([]float32, n)
		k.Fill(x, -2.5)
		return [][]float32{x}
	}},
	{"Dot", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		a, b := randVec(r, n, 1), randVec(r, n, 1)
		return [][]float32{{k.Dot(a, b)}}
	}},
	{"SumSquares", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		s := k.SumSquares(randVec(r, n, 10))
		b := math.Float64bits(s)
		return [][]float32{{math.Float32frombits(uint32(b)), math.Float32frombits(uint32(b >> 32))}}
	}},
	{"HasNaN", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		x := randVec(r, n, 1)
		var out []float32
		for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
			for i := range x {
				old := x[i]
				x[i] = bad
				if !k.HasNaN(x) {
					out = append(out, float32(i))
				}
				x[i] = old
			}
		}
		if k.HasNaN(x) {
			out = append(out, -1)
		}
		return [][]float32{out}
	}},
	{"GELU", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		x, out := randVec(r, n, 3), make([]float32, n)
		k.GELU(out, x)
		return [][]float32{out}
	}},
	{"GELUBackward", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		x, dout, dinp := randVec(r, n, 3), randVec(r, n, 1), randVec(r, n, 1)
		k.GELUBackward(dinp, x, dout)
		return [][]float32{dinp}
	}},
	{"LayerNorm", func(k Kernels, C int, seed uint64) [][]float32 {
		r := newRNG(seed)
		rows := 3
		inp := randVec(r, rows*C, 2)
		for i := range inp {
			inp[i] += 0.7
		}
		w, b := randVec(r, C, 1), randVec(r, C, 1)
		out, mean, rstd := make([]float32, rows*C), make([]float32, rows), make([]float32, rows)
		k.LayerNorm(out, mean, rstd, inp, w, b, rows, C)
		return [][]float32{out, mean, rstd}
	}},
	{"LayerNormBackward", func(k Kernels, C int, seed uint64) [][]float32 {
		r := newRNG(seed)
		rows := 3
		inp, w, dout := randVec(r, rows*C, 2), randVec(r, C, 1), randVec(r, rows*C, 1)
		mean, rstd := randVec(r, rows, 0.1), randVec(r, rows, 0.1)
		for i := range rstd {
			rstd[i] += 1
		}
		dinp, dw, db := randVec(r, rows*C, 1), randVec(r, C, 1), randVec(r, C, 1)
		k.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, rows, C)
		dw2 := randVec(r, C, 1)
		k.LayerNormBackward(nil, dw2, nil, dout, inp, w, mean, rstd, rows, C)
		db2 := randVec(r, C, 1)
		k.LayerNormBackward(nil, nil, db2, dout, inp, w, mean, rstd, rows, C)
		return [][]float32{dinp, dw, db, dw2, db2}
	}},
	{"CausalSoftmax", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		rows := min(n, 5)
		s, p := randVec(r, rows*n, 4), randVec(r, rows*n, 1)
		k.CausalSoftmax(p, s, rows, n, n-rows, 0.125)
		p2 := randVec(r, n, 1)
		k.CausalSoftmax(p2, s[:n], 1, n, max(n-1, 0), 1) // decoding shape
		return [][]float32{p, p2}
	}},
	{"SoftmaxBackward", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		rows := 3
		p, dp, ds := randVec(r, rows*n, 1), randVec(r, rows*n, 1), randVec(r, rows*n, 1)
		k.SoftmaxBackward(ds, p, dp, rows, n, 0.3)
		return [][]float32{ds}
	}},
	{"CrossEntropy", func(k Kernels, V int, seed uint64) [][]float32 {
		if V == 0 {
			return nil
		}
		r := newRNG(seed)
		rows := 4
		logits := randVec(r, rows*V, 5)
		tg := randTargets(r, rows, V)
		probs, losses := make([]float32, rows*V), make([]float32, rows)
		if err := k.CrossEntropy(probs, losses, logits, tg, rows, V); err != nil {
			panic(err)
		}
		dl, dloss := randVec(r, rows*V, 1), randVec(r, rows, 1)
		k.CrossEntropyBackward(dl, probs, tg, dloss, rows, V)
		return [][]float32{probs, losses, dl}
	}},
	{"AdamW", func(k Kernels, n int, seed uint64) [][]float32 {
		r := newRNG(seed)
		p, g, m, v := randVec(r, n, 1), randVec(r, n, 1e-2), randVec(r, n, 1e-3), randVec(r, n, 1e-5)
		for i := range v {
			v[i] = float32(math.Abs(float64(v[i])))
		}
		for step := 1; step <= 3; step++ {
			k.AdamW(p, g, m, v, 3e-4, 0.9, 0.95, 1e-8, 0.1, step)
		}
		return [][]float32{p, m, v}
	}},
}

// TestOpsPathsBitIdentical runs every op on every kernel path, over
// awkward sizes, and requires identical bits.
func TestOpsPathsBitIdentical(t *testing.T) {
	ks := testKernels(t)
	if len(ks) < 2 {
		t.Skip("only the Generic path runs on this machine")
	}
	for _, c := range opCases {
		for _, n := range awkwardLens {
			for seed := uint64(1); seed <= 3; seed++ {
				ref := c.run(ks[0], n, seed)
				for _, k := range ks[1:] {
					got := c.run(k, n, seed)
					for o := range ref {
						if len(ref[o]) != len(got[o]) {
							t.Fatalf("%s n=%d seed=%d output %d: %v gives %v, %v gives %v",
								c.name, n, seed, o, k.ISA(), got[o], ks[0].ISA(), ref[o])
						}
						if i := firstDiff(ref[o], got[o]); i >= 0 {
							t.Fatalf("%s n=%d seed=%d output %d: %v differs from %v at %d: %v vs %v",
								c.name, n, seed, o, k.ISA(), ks[0].ISA(), i, got[o][i], ref[o][i])
						}
					}
				}
			}
		}
	}
}

// TestOpsSpecialValues feeds infinities, NaN, huge and tiny values through
// the transcendental kernels: the paths must still agree bit for bit.
func TestOpsSpecialValues(t *testing.T) {
	ks := testKernels(t)
	inf := float32(math.Inf(1))
	nan := float32(math.NaN())
	x := f32s(0, float32(math.Copysign(0, -1)), 1e-30, -1e-30, 1e-45, 5, -5, 9, -9, 10, -10, 20, -20, 44, -44,
		87, -87, 88, -88, 89, -89, 100, -100, 1e30, -1e30, inf, -inf, nan, 3.4e38, -3.4e38, 0.5, -0.5)
	for len(x)%8 != 3 {
		x = append(x, 0.25*float32(len(x)))
	}
	run := func(k Kernels) [][]float32 {
		g, gb := make([]float32, len(x)), make([]float32, len(x))
		k.GELU(g, x)
		ones := make([]float32, len(x))
		k.Fill(ones, 1)
		k.GELUBackward(gb, x, ones)
		e := make([]float32, len(x))
		expSub := k.expRow(e, x)
		return [][]float32{g, gb, e, {expSub}}
	}
	ref := run(ks[0])
	for _, k := range ks[1:] {
		got := run(k)
		for o := range ref {
			if i := firstDiff(ref[o], got[o]); i >= 0 {
				t.Errorf("output %d, x=%v: %v gives %v, generic %v", o, x[i], k.ISA(), got[o][i], ref[o][i])
			}
		}
	}
	for i, v := range x {
		g := ref[0][i]
		switch {
		case v != v:
			if g == g {
				t.Errorf("GELU(NaN) = %v, want NaN", g)
			}
		case math.IsInf(float64(v), 1):
			// x/(1+0) = +Inf is the limit; accept Inf.
		case math.IsInf(float64(v), -1):
			// -Inf/(1+huge) is -Inf or NaN-free; the true limit is 0 but Inf
			// inputs are caught by HasNaN before they matter.
		default:
			if math.IsNaN(float64(g)) || math.IsNaN(float64(ref[1][i])) {
				t.Errorf("GELU or its gradient at %v is NaN", v)
			}
		}
	}
}

// expRow applies exp32 via the softmax kernel with max 0 and scale 1 and
// returns the sum (a hook for the special-value test).
func (k Kernels) expRow(e, x []float32) float32 {
	if k.avx2() {
		return expSubSumAVX2(e, x, 1, 0)
	}
	return expSubSum(e, x, 1, 0)
}

func TestExp32Accuracy(t *testing.T) {
	maxUlp := 0.0
	for x := float32(-87); x <= 88; x = math.Nextafter32(x, 100) + 1e-3 {
		got := float64(exp32(x))
		want := math.Exp(float64(x))
		ulp := math.Abs(got-want) / (want * math.Pow(2, -23))
		maxUlp = math.Max(maxUlp, ulp)
	}
	if maxUlp > 2 {
		t.Errorf("exp32 max error %.2f ulp, want <= 2", maxUlp)
	}
	t.Logf("exp32 max error %.3f ulp (relative to 2^-23)", maxUlp)
	for _, c := range []struct{ x, want float32 }{
		{0, 1}, {-1000, 0}, {float32(math.Inf(-1)), 0}, {-87.5, 0},
		{float32(math.Inf(1)), exp32(88)}, {1000, exp32(88)},
	} {
		if got := exp32(c.x); got != c.want {
			t.Errorf("exp32(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if v := exp32(float32(math.NaN())); v == v {
		t.Errorf("exp32(NaN) = %v, want NaN", v)
	}
}

func TestLog64(t *testing.T) {
	rng := newRNG(7)
	for range 20000 {
		x := math.Exp(rng.NormFloat64() * 50)
		got, want := log64(x), math.Log(x)
		if math.Abs(got-want) > 4e-16*math.Max(1, math.Abs(want)) {
			t.Fatalf("log64(%v) = %v, want %v", x, got, want)
		}
	}
	for _, c := range []struct{ x, want float64 }{{1, 0}, {0, math.Inf(-1)}, {math.Inf(1), math.Inf(1)}} {
		if got := log64(c.x); got != c.want {
			t.Errorf("log64(%v) = %v, want %v", c.x, got, c.want)
		}
	}
	if !math.IsNaN(log64(-1)) || !math.IsNaN(log64(math.NaN())) {
		t.Error("log64 of a negative or NaN should be NaN")
	}
}

// TestOpsEngineThreadsIdentical runs the Engine methods with 1, 2 and 3
// threads, on every path, on shapes big enough to be split, and requires the
// same bits as the single-threaded Kernels.
func TestOpsEngineThreadsIdentical(t *testing.T) {
	type ecase struct {
		name string
		run  func(e *Engine, seed uint64) [][]float32
	}
	const rows, C, T, V = 67, 200, 150, 131
	n := 3*elemGrain + 123
	cases := []ecase{
		{"LayerNorm+Backward", func(e *Engine, seed uint64) [][]float32 {
			r := newRNG(seed)
			inp, w, b := randVec(r, rows*C, 2), randVec(r, C, 1), randVec(r, C, 1)
			out, mean, rstd := make([]float32, rows*C), make([]float32, rows), make([]float32, rows)
			e.LayerNorm(out, mean, rstd, inp, w, b, rows, C)
			dout := randVec(r, rows*C, 1)
			dinp, dw, db := randVec(r, rows*C, 1), randVec(r, C, 1), randVec(r, C, 1)
			e.LayerNormBackward(dinp, dw, db, dout, inp, w, mean, rstd, rows, C)
			return [][]float32{out, mean, rstd, dinp, dw, db}
		}},
		{"Softmax+Backward", func(e *Engine, seed uint64) [][]float32 {
			r := newRNG(seed)
			s, p := randVec(r, T*T, 3), make([]float32, T*T)
			e.CausalSoftmax(p, s, T, T, 0, 0.2)
			dp, ds := randVec(r, T*T, 1), randVec(r, T*T, 1)
			e.SoftmaxBackward(ds, p, dp, T, T, 0.2)
			return [][]float32{p, ds}
		}},
		{"CrossEntropy+Backward", func(e *Engine, seed uint64) [][]float32 {
			r := newRNG(seed)
			logits, tg := randVec(r, rows*V, 3), randTargets(r, rows, V)
			probs, losses := make([]float32, rows*V), make([]float32, rows)
			if err := e.CrossEntropy(probs, losses, logits, tg, rows, V); err != nil {
				panic(err)
			}
			dl, dloss := randVec(r, rows*V, 1), randVec(r, rows, 1)
			e.CrossEntropyBackward(dl, probs, tg, dloss, rows, V)
			return [][]float32{probs, losses, dl}
		}},
		{"GELU+Backward", func(e *Engine, seed uint64) [][]float32 {
			r := newRNG(seed)
			x, out := randVec(r, n, 2), make([]float32, n)
			e.GELU(out, x)
			dout, dinp := randVec(r, n, 1), randVec(r, n, 1)
			e.GELUBackward(dinp, x, dout)
			return [][]float32{out, dinp}
		}},
		{"Elementwise", func(e *Engine, seed uint64) [][]float32 {
			r := newRNG(seed)
			a, b, out := randVec(r, n, 1), randVec(r, n, 1), make([]float32, n)
			e.Add(out, a, b)
			e.AddTo(a, b)
			e.Scale(b, 1.7)
			f := make([]float32, n)
			e.Fill(f, 3)
			d := e.Dot(a, b)
			ss := e.SumSquares(out)
			return [][]float32{out, a, b, f, {d, float32(ss), float32(ss - float64(float32(ss)))}}
		}},
		{"AdamW", func(e *Engine, seed uint64) [][]float32 {
			r := newRNG(seed)
			p, g, m, v := randVec(r, n, 1), randVec(r, n, 1e-2), make([]float32, n), make([]float32, n)
			for step := 1; step <= 2; step++ {
				e.AdamW(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.01, step)
			}
			return [][]float32{p, m, v}
		}},
	}
	for _, k := range testKernels(t) {
		var ref [][][]float32
		for _, threads := range []int{1, 2, 3} {
			e, err := New(WithThreads(threads), WithISA(k.ISA()))
			if err != nil {
				t.Fatal(err)
			}
			for ci, c := range cases {
				got := c.run(e, uint64(ci+1))
				if threads == 1 {
					ref = append(ref, got)
					continue
				}
				for o := range got {
					if i := firstDiff(ref[ci][o], got[o]); i >= 0 {
						t.Errorf("%v %s output %d: %d threads differ from 1 at %d", k.ISA(), c.name, o, threads, i)
					}
				}
			}
			e.Close()
		}
	}
}

// TestSumSquaresBlocks: Engine.SumSquares sums blocks in parallel and must
// match Kernels.SumSquares on every path and thread count.
func TestSumSquaresBlocks(t *testing.T) {
	r := newRNG(21)
	x := randVec(r, 5*ssChunk+77, 3)
	for _, k := range testKernels(t) {
		want := k.SumSquares(x)
		for _, n := range []int{ssChunk, ssChunk + 1, 2 * ssChunk, len(x)} {
			w := k.SumSquares(x[:n])
			for _, threads := range []int{1, 2, 3} {
				e, err := New(WithThreads(threads), WithISA(k.ISA()))
				if err != nil {
					t.Fatal(err)
				}
				if got := e.SumSquares(x[:n]); math.Float64bits(got) != math.Float64bits(w) {
					t.Errorf("%v n=%d threads=%d: %v, Kernels %v", k.ISA(), n, threads, got, w)
				}
				e.Close()
			}
		}
		ref := 0.0
		for _, v := range x {
			ref += float64(v) * float64(v)
		}
		if math.Abs(want-ref) > 1e-12*ref {
			t.Errorf("%v: SumSquares %v, float64 reference %v", k.ISA(), want, ref)
		}
	}
}

func TestCrossEntropyBadTargets(t *testing.T) {
	e, err := New(WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	const rows, V = 3, 5
	logits := make([]float32, rows*V)
	for _, tg := range [][]int32{{0, 5, 1}, {-1, 0, 0}, {0, 0, 1 << 30}} {
		for _, k := range testKernels(t) {
			probs, losses := make([]float32, rows*V), make([]float32, rows)
			err := k.CrossEntropy(probs, losses, logits, tg, rows, V)
			if err == nil || !strings.Contains(err.Error(), "outside [0, 5)") {
				t.Errorf("%v targets %v: err = %v, want out-of-range error", k.ISA(), tg, err)
			}
			if probs[0] != 0 || losses[0] != 0 {
				t.Errorf("%v: outputs written despite the error", k.ISA())
			}
		}
		probs, losses := make([]float32, rows*V), make([]float32, rows)
		if err := e.CrossEntropy(probs, losses, logits, tg, rows, V); err == nil {
			t.Errorf("Engine targets %v: no error", tg)
		}
	}
}

func TestHasNaN(t *testing.T) {
	for _, k := range testKernels(t) {
		for _, n := range awkwardLens {
			x := make([]float32, n)
			for i := range x {
				x[i] = float32(i) - 3.3e38*float32(i%2) // large but finite
			}
			if k.HasNaN(x) {
				t.Errorf("%v n=%d: finite slice reported bad", k.ISA(), n)
			}
			if n == 0 {
				continue
			}
			for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
				x[n-1] = float32(bad)
				if !k.HasNaN(x) {
					t.Errorf("%v n=%d: %v at the end not found", k.ISA(), n, bad)
				}
				x[n-1] = 0
				x[0] = float32(bad)
				if !k.HasNaN(x) {
					t.Errorf("%v n=%d: %v at the start not found", k.ISA(), n, bad)
				}
				x[0] = 0
			}
		}
	}
}

// TestLengthChecks: shape mismatches are programming errors and panic with
// a message naming the op and the operand, before any worker runs.
func TestLengthChecks(t *testing.T) {
	e, err := New(WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	x := make([]float32, 10)
	cases := []struct {
		name, want string
		fn         func()
	}{
		{"Add", "Add: len(b)", func() { e.Add(x, x, x[:9]) }},
		{"GELU", "GELU: len(inp)", func() { e.Kernels().GELU(x, x[:3]) }},
		{"LayerNorm", "LayerNorm: len(w)", func() { e.LayerNorm(x, x, x, x, x[:1], x, 2, 5) }},
		{"Softmax", "CausalSoftmax: len(s)", func() { e.CausalSoftmax(x, x[:5], 2, 5, 0, 1) }},
		{"AdamW", "AdamW: len(v)", func() { e.AdamW(x, x, x, x[:2], 1, 0.9, 0.9, 0, 0, 1) }},
		{"negative", "negative or overflowing", func() { e.SoftmaxBackward(x, x, x, -1, 5, 1) }},
		{"overflow", "negative or overflowing", func() { e.LayerNorm(x, x, x, x, x, x, 1<<62, 1<<3) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), c.want) {
					t.Errorf("panic = %v, want one mentioning %q", r, c.want)
				}
			}()
			c.fn()
		})
	}
}

// TestOpsNoAllocs: Engine calls allocate nothing in steady state.
func TestOpsNoAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under -race (sync.Pool drops items)")
	}
	e, err := New(WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	r := newRNG(3)
	const rows, C = 64, 256
	n := 4 * elemGrain
	inp, w, b := randVec(r, rows*C, 1), randVec(r, C, 1), randVec(r, C, 1)
	out, mean, rstd := make([]float32, rows*C), make([]float32, rows), make([]float32, rows)
	dinp, dw, db := make([]float32, rows*C), make([]float32, C), make([]float32, C)
	big, big2, big3, big4 := randVec(r, n, 1), randVec(r, n, 1), make([]float32, n), make([]float32, n)
	tg := randTargets(r, rows, C)
	losses := make([]float32, rows)
	ops := map[string]func(){
		"LayerNorm":         func() { e.LayerNorm(out, mean, rstd, inp, w, b, rows, C) },
		"LayerNormBackward": func() { e.LayerNormBackward(dinp, dw, db, inp, inp, w, mean, rstd, rows, C) },
		"CausalSoftmax":     func() { e.CausalSoftmax(out, inp, rows, C, 10, 0.1) },
		"SoftmaxBackward":   func() { e.SoftmaxBackward(dinp, out, inp, rows, C, 0.1) },
		"CrossEntropy": func() {
			if err := e.CrossEntropy(out, losses, inp, tg, rows, C); err != nil {
				panic(err)
			}
		},
		"CrossEntropyBackward": func() { e.CrossEntropyBackward(dinp, out, tg, losses, rows, C) },
		"GELU":                 func() { e.GELU(big3, big) },
		"GELUBackward":         func() { e.GELUBackward(big3, big, big2) },
		"Add":                  func() { e.Add(big3, big, big2) },
		"AddTo":                func() { e.AddTo(big3, big) },
		"Scale":                func() { e.Scale(big3, 0.5) },
		"Fill":                 func() { e.Fill(big3, 0) },
		"Dot":                  func() { _ = e.Dot(big, big2) },
		"SumSquares":           func() { _ = e.SumSquares(big) },
		"HasNaN":               func() { _ = e.HasNaN(big) },
		"AdamW":                func() { e.AdamW(big4, big, big2, big3, 1e-3, 0.9, 0.999, 1e-8, 0, 3) },
	}
	for name, fn := range ops {
		fn() // warm the pools
		// A garbage collection empties sync.Pools, so one refill can land in
		// a run; steady state means some run of 50 calls allocates nothing.
		a := testing.AllocsPerRun(50, fn)
		if a != 0 {
			a = testing.AllocsPerRun(50, fn)
		}
		if a != 0 {
			t.Errorf("%s: %v allocations per call, want 0", name, a)
		}
	}
}

func TestIsqrt(t *testing.T) {
	for x := range 100000 {
		r := isqrt(x)
		if r*r > x || (r+1)*(r+1) <= x {
			t.Fatalf("isqrt(%d) = %d", x, r)
		}
	}
	for _, x := range []int{1 << 62, 1<<62 - 1, 1 << 52, 1<<52 + 1} {
		if r := isqrt(x); r*r > x || (r+1)*(r+1) <= x {
			t.Errorf("isqrt(%d) = %d", x, r)
		}
	}
}

// opsGoldenHash is the SHA-256 of every op's outputs over the awkward
// sizes (see opsHash). It pins the arithmetic: every path on every platform
// must produce it. If a deliberate change to an op alters it, that change
// alters training results network-wide and must ship as a new protocol
// version; update the constant only then.
const opsGoldenHash = "cc4ff7bc786af139dda2c98dabf241669748850fef7ccfbf8b2093b7cb55cb17"

func opsHash(k Kernels) string {
	h := sha256.New()
	for _, c := range opCases {
		for _, n := range awkwardLens {
			for _, out := range c.run(k, n, 1) {
				for _, v := range out {
					if v != v {
						v = float32(math.NaN()) // one NaN encoding
					}
					binary.Write(h, binary.LittleEndian, math.Float32bits(v))
				}
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestOpsGoldenHash(t *testing.T) {
	for _, k := range testKernels(t) {
		if got := opsHash(k); got != opsGoldenHash {
			t.Errorf("%v path: outputs hash to %s, want %s", k.ISA(), got, opsGoldenHash)
		}
	}
}

// TestOpsStayInBounds runs the ops on sub-slices that start one element
// into a larger buffer (so vectors are misaligned) and checks that the
// sentinels on both sides are untouched: masked tails must not write past
// the end, and nothing may write before the start.
func TestOpsStayInBounds(t *testing.T) {
	const guard = 9
	sentinel := float32(-12345.5)
	for _, k := range testKernels(t) {
		for _, n := range awkwardLens {
			r := newRNG(uint64(n) + 5)
			// view returns a slice of n values inside a guarded buffer.
			var bufs [][]float32
			view := func(m int, fill bool) []float32 {
				b := make([]float32, m+2*guard)
				for i := range b {
					b[i] = sentinel
				}
				v := b[guard : guard+m : guard+m]
				if fill {
					copy(v, randVec(r, m, 1))
				}
				bufs = append(bufs, b)
				return v
			}
			rows := 2
			x, y, z := view(n, true), view(n, true), view(n, true)
			k.Add(z, x, y)
			k.AddTo(z, x)
			k.Scale(z, 2)
			k.Fill(view(n, false), 1)
			k.GELU(view(n, false), x)
			k.GELUBackward(z, x, y)
			inp, out := view(rows*n, true), view(rows*n, false)
			w, b := view(n, true), view(n, true)
			mean, rstd := view(rows, false), view(rows, false)
			k.LayerNorm(out, mean, rstd, inp, w, b, rows, n)
			k.LayerNormBackward(view(rows*n, true), view(n, true), view(n, true), out, inp, w, mean, rstd, rows, n)
			k.LayerNormBackward(nil, view(n, true), nil, out, inp, w, mean, rstd, rows, n)
			p := view(rows*n, false)
			k.CausalSoftmax(p, inp, rows, n, 0, 0.5)
			k.SoftmaxBackward(view(rows*n, true), p, out, rows, n, 0.5)
			if n > 0 {
				tg := []int32{int32(n - 1), 0}
				probs, losses := view(rows*n, false), view(rows, false)
				if err := k.CrossEntropy(probs, losses, inp, tg, rows, n); err != nil {
					t.Fatal(err)
				}
				k.CrossEntropyBackward(view(rows*n, true), probs, tg, view(rows, true), rows, n)
			}
			pp, g, m, v := view(n, true), view(n, true), view(n, true), view(n, true)
			for i := range v {
				v[i] *= v[i]
			}
			k.AdamW(pp, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.1, 1)
			for bi, b := range bufs {
				for i := range guard {
					if b[i] != sentinel || b[len(b)-1-i] != sentinel {
						t.Fatalf("%v n=%d: buffer %d written outside its slice", k.ISA(), n, bi)
					}
				}
			}
		}
	}
}
