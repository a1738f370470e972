package tensor

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// gemmCase is one GEMM problem. Padding is added to each leading dimension
// so that strided access is exercised.
type gemmCase struct {
	M, N, K    int
	tA, tB     bool
	acc        bool
	padA, padB int
	padC       int
}

func (c gemmCase) String() string {
	return fmt.Sprintf("%dx%dx%d_tA=%v_tB=%v_acc=%v_pad=%d,%d,%d", c.M, c.N, c.K, c.tA, c.tB, c.acc, c.padA, c.padB, c.padC)
}

// gemmOperands holds the inputs of a case, with C's padding filled with a
// sentinel that no path may overwrite.
type gemmOperands struct {
	a, b, c0      []float32
	lda, ldb, ldc int
}

const gemmSentinel = float32(-12345.5)

func newOperands(gc gemmCase, rng *rand.Rand) gemmOperands {
	var o gemmOperands
	ar, ac := gc.M, gc.K
	if gc.tA {
		ar, ac = gc.K, gc.M
	}
	br, bc := gc.K, gc.N
	if gc.tB {
		br, bc = gc.N, gc.K
	}
	o.lda, o.ldb, o.ldc = ac+gc.padA, bc+gc.padB, gc.N+gc.padC
	o.a = randSlice(rng, max(ar*o.lda, 1))
	o.b = randSlice(rng, max(br*o.ldb, 1))
	o.c0 = randSlice(rng, max(gc.M*o.ldc, 1))
	for i := range gc.M {
		for j := gc.N; j < o.ldc; j++ {
			o.c0[i*o.ldc+j] = gemmSentinel
		}
	}
	return o
}

func randSlice(rng *rand.Rand, n int) []float32 {
	x := make([]float32, n)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	return x
}

// naiveGemm is the contract written out element by element, independent of
// the loop structure of the paths under test.
func naiveGemm(gc gemmCase, o gemmOperands) []float32 {
	c := append([]float32(nil), o.c0...)
	for i := range gc.M {
		for j := range gc.N {
			var s float32
			if gc.acc {
				s = c[i*o.ldc+j]
			}
			for p := range gc.K {
				av, bv := opAt(o, gc, i, j, p)
				s = FMA32(av, bv, s)
			}
			c[i*o.ldc+j] = s
		}
	}
	return c
}

// opAt returns op(A)[i][p] and op(B)[p][j].
func opAt(o gemmOperands, gc gemmCase, i, j, p int) (av, bv float32) {
	if gc.tA {
		av = o.a[p*o.lda+i]
	} else {
		av = o.a[i*o.lda+p]
	}
	if gc.tB {
		bv = o.b[j*o.ldb+p]
	} else {
		bv = o.b[p*o.ldb+j]
	}
	return av, bv
}

// float64Gemm is the exact-ish reference for accuracy checks; it also
// returns per-element bounds sum |a||b| (+|c|) to scale the tolerance.
func float64Gemm(gc gemmCase, o gemmOperands) (ref, mag []float64) {
	ref = make([]float64, gc.M*gc.N)
	mag = make([]float64, gc.M*gc.N)
	for i := range gc.M {
		for j := range gc.N {
			var s, m float64
			if gc.acc {
				s = float64(o.c0[i*o.ldc+j])
				m = math.Abs(s)
			}
			for p := range gc.K {
				av, bv := opAt(o, gc, i, j, p)
				s += float64(av) * float64(bv)
				m += math.Abs(float64(av) * float64(bv))
			}
			ref[i*gc.N+j], mag[i*gc.N+j] = s, m
		}
	}
	return ref, mag
}

// gemmPath is one way of running a GEMM.
type gemmPath struct {
	name string
	isa  ISA
	// threads is 0 for Kernels.Gemm on the caller, else an Engine size.
	threads int
	// pooled runs Kernels.Gemm with the Kernels of an Engine (pooled
	// scratch) instead of a NewKernels value.
	pooled bool
	// bare runs Kernels.Gemm on a Kernels without a scratch pool.
	bare bool
}

func gemmPaths(t testing.TB) []gemmPath {
	var ps []gemmPath
	isas := []ISA{Generic}
	if AVX2.Supported() && AVX2.implemented() {
		isas = append(isas, AVX2)
	} else {
		t.Logf("CPU lacks AVX2+FMA: testing the generic path only")
	}
	for _, isa := range isas {
		ps = append(ps,
			gemmPath{name: isa.String() + "/kernels", isa: isa},
			gemmPath{name: isa.String() + "/kernels-pooled", isa: isa, pooled: true},
			gemmPath{name: isa.String() + "/kernels-bare", isa: isa, bare: true},
		)
		for _, th := range []int{1, 2, 3} {
			ps = append(ps, gemmPath{name: fmt.Sprintf("%v/engine%d", isa, th), isa: isa, threads: th})
		}
	}
	return ps
}

func (p gemmPath) run(t testing.TB, gc gemmCase, o gemmOperands) []float32 {
	c := append([]float32(nil), o.c0...)
	if p.bare {
		Kernels{isa: p.isa}.Gemm(gc.tA, gc.tB, gc.M, gc.N, gc.K, o.a, o.lda, o.b, o.ldb, c, o.ldc, gc.acc)
		return c
	}
	if p.threads == 0 && !p.pooled {
		k, err := NewKernels(p.isa)
		if err != nil {
			t.Fatal(err)
		}
		k.Gemm(gc.tA, gc.tB, gc.M, gc.N, gc.K, o.a, o.lda, o.b, o.ldb, c, o.ldc, gc.acc)
		return c
	}
	e, err := New(WithISA(p.isa), WithThreads(max(p.threads, 1)))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if p.pooled {
		e.Kernels().Gemm(gc.tA, gc.tB, gc.M, gc.N, gc.K, o.a, o.lda, o.b, o.ldb, c, o.ldc, gc.acc)
	} else {
		e.Gemm(gc.tA, gc.tB, gc.M, gc.N, gc.K, o.a, o.lda, o.b, o.ldb, c, o.ldc, gc.acc)
	}
	return c
}

func gemmCases() []gemmCase {
	var cs []gemmCase
	shapes := [][3]int{
		{1, 1, 1}, {7, 13, 5}, {6, 16, 8}, {12, 32, 4}, {5, 17, 3}, {1, 40, 300},
		{40, 1, 9}, {3, 3, 0}, {67, 131, 259}, {150, 20, 7}, {64, 64, 64},
		{13, 2050, 3}, {301, 40, 33}, {37, 300, 31},
		{20, 400, 21}, {9, 390, 260}, {1, 96, 64}, {1, 70, 13}, {1, 33, 8}, {1, 64, 1024},
		// Large enough for the engine to split into chunks (gemmMinChunk).
		{400, 50, 120}, {50, 700, 90}, {130, 129, 250},
	}
	for _, s := range shapes {
		for _, tA := range []bool{false, true} {
			for _, tB := range []bool{false, true} {
				for _, acc := range []bool{false, true} {
					pad := 0
					if acc {
						pad = 3 // vary strides with the other flags
					}
					cs = append(cs, gemmCase{M: s[0], N: s[1], K: s[2], tA: tA, tB: tB, acc: acc,
						padA: pad, padB: 2 * pad, padC: pad + 1})
				}
			}
		}
	}
	return cs
}

// TestGemmPathsBitIdentical checks every path against the contract written
// out naively (FMA32 in k order), bit for bit, and the result against a
// float64 reference.
func TestGemmPathsBitIdentical(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := gemmPaths(t)
	for _, gc := range gemmCases() {
		if testing.Short() && gc.M*gc.N*gc.K > 100000 {
			continue
		}
		t.Run(gc.String(), func(t *testing.T) {
			o := newOperands(gc, rng)
			want := naiveGemm(gc, o)
			checkAccuracy(t, gc, o, want)
			for _, p := range paths {
				got := p.run(t, gc, o)
				if i := firstBitDiff(got, want); i >= 0 {
					t.Fatalf("%s: element %d (row %d col %d) = %v (%#x), want %v (%#x)", p.name, i,
						i/o.ldc, i%o.ldc, got[i], math.Float32bits(got[i]), want[i], math.Float32bits(want[i]))
				}
			}
		})
	}
}

func checkAccuracy(t *testing.T, gc gemmCase, o gemmOperands, got []float32) {
	t.Helper()
	ref, mag := float64Gemm(gc, o)
	// Each FMA rounds once: the error is at most (K+1) ulps of the running
	// magnitude; 2^-23 per step is a safe bound.
	tol := float64(gc.K+1) * 0x1p-23
	for i := range gc.M {
		for j := range gc.N {
			g := float64(got[i*o.ldc+j])
			r := ref[i*gc.N+j]
			if math.Abs(g-r) > tol*mag[i*gc.N+j]+1e-30 {
				t.Fatalf("C[%d][%d] = %v, float64 reference %v (bound %v)", i, j, g, r, tol*mag[i*gc.N+j])
			}
		}
	}
}

func firstBitDiff(got, want []float32) int {
	for i := range want {
		if math.Float32bits(got[i]) != math.Float32bits(want[i]) {
			return i
		}
	}
	return -1
}

// TestFMA32MatchesHardware runs K=1 accumulating GEMMs through the AVX2
// kernel, where each C element becomes one hardware FMA, and compares with
// FMA32 on random and edge inputs.
func TestFMA32MatchesHardware(t *testing.T) {
	if !AVX2.Supported() || !AVX2.implemented() {
		t.Skip("CPU lacks AVX2+FMA")
	}
	k, err := NewKernels(AVX2)
	if err != nil {
		t.Fatal(err)
	}
	edges := []float32{
		0, float32(math.Copysign(0, -1)), 1, -1, 0.5, 3, 1.0000001, 0.99999994,
		math.SmallestNonzeroFloat32, -math.SmallestNonzeroFloat32,
		math.Float32frombits(0x007fffff), math.Float32frombits(0x00800000), // largest denormal, smallest normal
		math.Float32frombits(0x00400001), math.MaxFloat32, -math.MaxFloat32, 0x1p-75, 0x1p-74, 0x1p64, 0x1p-64,
		0x1p127, 0x1p-126, 1 + 0x1p-23, 1 - 0x1p-24, 1 + 0x1p-12, 1 - 0x1p-12, 0x1.fffffep0,
		float32(math.Inf(1)), float32(math.Inf(-1)), float32(math.NaN()),
		16777217 - 1, 16777216, 3.4e-39, 1e-45 * 3,
		// (1+2^-12)^2 + 2^-80 is a float32 tie plus a hair: rounding to float64
		// first would land on the tie.
		0x1p-80, -0x1p-80, 1 + 0x1p-11, -(1 + 0x1p-11),
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var bs, cs []float32
	for _, x := range edges {
		for _, y := range edges {
			bs = append(bs, x)
			cs = append(cs, y)
		}
	}
	// Random values with random exponents, including denormal products and
	// large exponent gaps; and near-ties: c = -round(a*b) plus a few ulps.
	for range 20000 {
		bs = append(bs, randFloat32(rng))
		cs = append(cs, randFloat32(rng))
	}
	as := append([]float32(nil), edges...)
	for range 60 {
		as = append(as, randFloat32(rng))
	}
	got := make([]float32, len(bs))
	for _, av := range as {
		copy(got, cs)
		k.Gemm(false, false, 1, len(bs), 1, []float32{av}, 1, bs, len(bs), got, len(bs), true)
		for j := range bs {
			want := FMA32(av, bs[j], cs[j])
			if f := fma32(av, bs[j], cs[j]); math.Float32bits(f) != math.Float32bits(want) && want == want {
				t.Fatalf("fma32(%g, %g, %g) = %g, FMA32 %g", av, bs[j], cs[j], f, want)
			}
			g := got[j]
			if g != g && want != want {
				continue // both NaN; payloads are not part of the contract
			}
			if math.Float32bits(g) != math.Float32bits(want) {
				t.Fatalf("fma(%g, %g, %g): hardware %g (%#x), FMA32 %g (%#x)", av, bs[j], cs[j],
					g, math.Float32bits(g), want, math.Float32bits(want))
			}
		}
	}
	// Exact cancellation and ties: c = -(a*b) rounded, so the result is the
	// rounding error of the product, and halfway cases of the sum.
	for range 20000 {
		a, b := randFloat32(rng), randFloat32(rng)
		c := -float32(a * b)
		for _, cc := range []float32{c, math.Nextafter32(c, 0), math.Nextafter32(c, float32(math.Inf(1))), c * 0.5} {
			g := []float32{cc}
			k.Gemm(false, false, 1, 1, 1, []float32{a}, 1, []float32{b}, 1, g, 1, true)
			want := FMA32(a, b, cc)
			if f := fma32(a, b, cc); math.Float32bits(f) != math.Float32bits(want) && want == want {
				t.Fatalf("fma32(%g, %g, %g) = %g, FMA32 %g", a, b, cc, f, want)
			}
			if g[0] == g[0] && math.Float32bits(g[0]) != math.Float32bits(want) {
				t.Fatalf("fma(%g, %g, %g): hardware %g, FMA32 %g", a, b, cc, g[0], want)
			}
		}
	}
}

func randFloat32(rng *rand.Rand) float32 {
	switch rng.IntN(4) {
	case 0: // any bit pattern except NaN
		for {
			f := math.Float32frombits(rng.Uint32())
			if f == f {
				return f
			}
		}
	case 1: // small integers plus a half: exercises ties
		return float32(rng.IntN(1<<12)) + 0.5
	default: // moderate exponents, full mantissa
		m := 1 + rng.Float64()
		e := rng.IntN(80) - 40
		s := 1.0
		if rng.IntN(2) == 0 {
			s = -1
		}
		return float32(s * math.Ldexp(m, e))
	}
}

// TestMatMul checks MatMul and MatMulBackward against their definitions on
// every path.
func TestMatMul(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, sh := range [][3]int{{1, 1, 1}, {7, 5, 13}, {33, 70, 21}, {64, 48, 96}} {
		rows, in, outF := sh[0], sh[1], sh[2]
		inp := randSlice(rng, rows*in)
		w := randSlice(rng, outF*in)
		bias := randSlice(rng, outF)
		dout := randSlice(rng, rows*outF)
		dinp0 := randSlice(rng, rows*in)
		dw0 := randSlice(rng, outF*in)
		dbias0 := randSlice(rng, outF)

		// Expected values from the contract.
		wantOut := make([]float32, rows*outF)
		wantOutNoBias := make([]float32, rows*outF)
		for r := range rows {
			for o := range outF {
				s, s0 := bias[o], float32(0)
				for i := range in {
					s = FMA32(inp[r*in+i], w[o*in+i], s)
					s0 = FMA32(inp[r*in+i], w[o*in+i], s0)
				}
				wantOut[r*outF+o], wantOutNoBias[r*outF+o] = s, s0
			}
		}
		wantDinp := append([]float32(nil), dinp0...)
		for r := range rows {
			for i := range in {
				s := wantDinp[r*in+i]
				for o := range outF {
					s = FMA32(dout[r*outF+o], w[o*in+i], s)
				}
				wantDinp[r*in+i] = s
			}
		}
		wantDw := append([]float32(nil), dw0...)
		for o := range outF {
			for i := range in {
				s := wantDw[o*in+i]
				for r := range rows {
					s = FMA32(dout[r*outF+o], inp[r*in+i], s)
				}
				wantDw[o*in+i] = s
			}
		}
		wantDbias := append([]float32(nil), dbias0...)
		for r := range rows {
			for o := range outF {
				wantDbias[o] += dout[r*outF+o]
			}
		}

		for _, p := range gemmPaths(t) {
			if p.threads == 0 {
				continue
			}
			t.Run(fmt.Sprintf("%dx%dx%d/%s", rows, in, outF, p.name), func(t *testing.T) {
				e, err := New(WithISA(p.isa), WithThreads(p.threads))
				if err != nil {
					t.Fatal(err)
				}
				defer e.Close()
				out := randSlice(rng, rows*outF)
				e.MatMul(out, inp, w, bias, rows, in, outF)
				mustEqualBits(t, "out", out, wantOut)
				e.MatMul(out, inp, w, nil, rows, in, outF)
				mustEqualBits(t, "out (no bias)", out, wantOutNoBias)

				dinp := append([]float32(nil), dinp0...)
				dw := append([]float32(nil), dw0...)
				dbias := append([]float32(nil), dbias0...)
				e.MatMulBackward(dinp, dw, dbias, dout, inp, w, rows, in, outF)
				mustEqualBits(t, "dinp", dinp, wantDinp)
				mustEqualBits(t, "dw", dw, wantDw)
				mustEqualBits(t, "dbias", dbias, wantDbias)

				// nil gradients are skipped, the others still accumulate.
				dw = append(dw[:0], dw0...)
				e.MatMulBackward(nil, dw, nil, dout, inp, w, rows, in, outF)
				mustEqualBits(t, "dw alone", dw, wantDw)
				dinp = append(dinp[:0], dinp0...)
				e.MatMulBackward(dinp, nil, nil, dout, nil, w, rows, in, outF)
				mustEqualBits(t, "dinp alone", dinp, wantDinp)
			})
		}
	}
}

func mustEqualBits(t *testing.T, name string, got, want []float32) {
	t.Helper()
	if i := firstBitDiff(got, want); i >= 0 {
		t.Fatalf("%s[%d] = %v, want %v", name, i, got[i], want[i])
	}
}

// TestGemmPanics checks that malformed shapes fail with a clear message
// before touching memory.
func TestGemmPanics(t *testing.T) {
	buf := make([]float32, 100)
	tests := []struct {
		name       string
		M, N, K    int
		tA         bool
		la, lb, lc int
		lda, ldb   int
		ldc        int
		want       string
	}{
		{"negative", -1, 2, 2, false, 100, 100, 100, 2, 2, 2, "negative dimension"},
		{"short A", 10, 2, 10, false, 99, 100, 100, 10, 2, 2, "A has 99 elements"},
		{"short A transposed", 10, 2, 10, true, 99, 100, 100, 10, 2, 2, "A has 99 elements"},
		{"short B", 2, 10, 10, false, 100, 99, 100, 10, 10, 10, "B has 99 elements"},
		{"short C", 10, 10, 1, false, 100, 100, 99, 1, 10, 10, "C has 99 elements"},
		{"small lda", 2, 2, 4, false, 100, 100, 100, 3, 2, 2, "leading dimension of A"},
		{"small ldc", 2, 4, 1, false, 100, 100, 100, 1, 4, 3, "leading dimension of C"},
		{"huge lda", 3, 1, 1, false, 100, 100, 100, math.MaxInt, 1, 1, "A has 100 elements"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("no panic")
				}
				if msg := fmt.Sprint(r); !strings.Contains(msg, tc.want) {
					t.Fatalf("panic %q, want it to mention %q", msg, tc.want)
				}
			}()
			var k Kernels
			k.Gemm(tc.tA, false, tc.M, tc.N, tc.K, buf[:tc.la], tc.lda, buf[:tc.lb], tc.ldb, buf[:tc.lc], tc.ldc, false)
		})
	}
}

// TestGemmNoAllocs checks that warm GEMMs allocate nothing, on the engine
// and with the engine's Kernels.
func TestGemmNoAllocs(t *testing.T) {
	for _, isa := range []ISA{Generic, AVX2} {
		if !isa.Supported() || !isa.implemented() {
			continue
		}
		e, err := New(WithISA(isa), WithThreads(2))
		if err != nil {
			t.Fatal(err)
		}
		rng := rand.New(rand.NewPCG(7, 8))
		const n = 130 // large enough to be split over the threads
		a, b, c := randSlice(rng, n*n), randSlice(rng, n*n), randSlice(rng, n*n)
		dbias, dw := make([]float32, n), make([]float32, n*n)
		run := func() {
			e.Gemm(false, true, n, n, n, a, n, b, n, c, n, false)
			e.Kernels().Gemm(true, false, n-1, n-3, n, a, n, b, n, c, n, true)
			e.MatMul(c, a, b, dbias, n, n, n)
			e.MatMulBackward(c, dw, dbias, b, a, b, n, n, n)
		}
		run()
		if allocs := testing.AllocsPerRun(10, run); allocs != 0 {
			t.Errorf("%v: %v allocations per run, want 0", isa, allocs)
		}
		e.Close()
	}
}

// TestMatMulPanics checks the length checks of MatMul and MatMulBackward.
func TestMatMulPanics(t *testing.T) {
	e, err := New(WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	buf := make([]float32, 64)
	tests := []struct {
		name string
		call func()
		want string
	}{
		{"short bias", func() { e.MatMul(buf, buf, buf, buf[:3], 2, 4, 4) }, "bias has 3 elements"},
		{"short out", func() { e.MatMul(buf[:7], buf, buf, nil, 2, 4, 4) }, "MatMul: C has 7 elements"},
		{"short w", func() { e.MatMulBackward(buf, nil, nil, buf, buf, buf[:15], 2, 4, 4) }, "MatMulBackward dinp: B has 15"},
		{"short inp", func() { e.MatMulBackward(nil, buf, nil, buf, buf[:7], buf, 2, 4, 4) }, "MatMulBackward dw: B has 7"},
		{"short dbias", func() { e.MatMulBackward(nil, nil, buf[:3], buf, buf, buf, 2, 4, 4) }, "dbias has 3"},
		{"negative", func() { e.MatMul(buf, buf, buf, nil, -1, 4, 4) }, "negative dimension"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if r == nil {
					t.Fatal("no panic")
				}
				if msg := fmt.Sprint(r); !strings.Contains(msg, tc.want) {
					t.Fatalf("panic %q, want it to mention %q", msg, tc.want)
				}
			}()
			tc.call()
		})
	}
}

// TestGemmConcurrentCallers shares one engine between goroutines (as a
// trainer and a validator in one process might) and checks every result.
func TestGemmConcurrentCallers(t *testing.T) {
	isa := BestISA()
	e, err := New(WithISA(isa), WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	rng := rand.New(rand.NewPCG(9, 10))
	gc := gemmCase{M: 90, N: 200, K: 120, tB: true} // split in chunks
	o := newOperands(gc, rng)
	want := naiveGemm(gc, o)
	errs := make(chan error, 4)
	for g := range 4 {
		go func() {
			c := make([]float32, len(o.c0))
			for range 5 {
				copy(c, o.c0)
				if g%2 == 0 {
					e.Gemm(gc.tA, gc.tB, gc.M, gc.N, gc.K, o.a, o.lda, o.b, o.ldb, c, o.ldc, false)
				} else {
					e.Kernels().Gemm(gc.tA, gc.tB, gc.M, gc.N, gc.K, o.a, o.lda, o.b, o.ldb, c, o.ldc, false)
				}
				if i := firstBitDiff(c, want); i >= 0 {
					errs <- fmt.Errorf("goroutine %d: element %d = %v, want %v", g, i, c[i], want[i])
					return
				}
			}
			errs <- nil
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}

// FuzzFMA32 compares FMA32, its fast path fma32 and (with AVX2) the
// hardware FMA of the GEMM kernel on arbitrary bit patterns.
func FuzzFMA32(f *testing.F) {
	f.Add(uint32(0x3f800800), uint32(0x3f800800), uint32(0x17800000)) // tie plus a hair
	f.Add(uint32(0x00000001), uint32(0x3f000000), uint32(0x80000000)) // subnormal halving
	f.Add(uint32(0x7f7fffff), uint32(0x40000000), uint32(0xff7fffff)) // overflow then cancel
	f.Add(uint32(0x3f800001), uint32(0x3f7fffff), uint32(0xbf800000)) // exact cancellation
	var k Kernels
	hw := AVX2.Supported() && AVX2.implemented()
	if hw {
		var err error
		if k, err = NewKernels(AVX2); err != nil {
			f.Fatal(err)
		}
	}
	f.Fuzz(func(t *testing.T, ab, bb, cb uint32) {
		a, b, c := math.Float32frombits(ab), math.Float32frombits(bb), math.Float32frombits(cb)
		want := FMA32(a, b, c)
		if want != want {
			return // NaN payloads are not part of the contract
		}
		if got := fma32(a, b, c); math.Float32bits(got) != math.Float32bits(want) {
			t.Fatalf("fma32(%g, %g, %g) = %g, FMA32 %g", a, b, c, got, want)
		}
		if hw {
			got := []float32{c}
			k.Gemm(false, false, 1, 1, 1, []float32{a}, 1, []float32{b}, 1, got, 1, true)
			if math.Float32bits(got[0]) != math.Float32bits(want) {
				t.Fatalf("hardware fma(%g, %g, %g) = %g, FMA32 %g", a, b, c, got[0], want)
			}
		}
	})
}
