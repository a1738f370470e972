package optimizer

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
)

func randVec(r *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(r.NormFloat64() * scale)
	}
	return v
}

func testChunking(t testing.TB, lens []int, size, k int) *Chunking {
	t.Helper()
	ch, err := NewChunkingLens(lens, [32]byte{1, 2, 3}, size, k)
	if err != nil {
		t.Fatal(err)
	}
	return ch
}

func TestChunkingReference(t *testing.T) {
	ch, err := NewChunking(model.Reference, 4096, 64)
	if err != nil {
		t.Fatal(err)
	}
	if ch.NumParams != 3290624 || ch.NumParams != model.Reference.NumParams() {
		t.Fatalf("NumParams = %d", ch.NumParams)
	}
	views := model.Layout(model.Reference)
	covered, start := 0, 0
	for i, c := range ch.Chunks {
		if c.Offset != covered || c.Start != start || c.K < 1 || c.K > c.Len || c.Len > ch.Size {
			t.Fatalf("chunk %d = %+v (covered %d, start %d)", i, c, covered, start)
		}
		// A chunk lies inside one tensor.
		in := false
		for _, v := range views {
			if c.Offset >= v.Offset && c.Offset+c.Len <= v.Offset+v.Len {
				in = true
			}
		}
		if !in {
			t.Fatalf("chunk %d straddles tensors", i)
		}
		covered += c.Len
		start += c.K
	}
	if covered != ch.NumParams || start != ch.TotalK {
		t.Fatalf("covered %d of %d, kept %d of %d", covered, ch.NumParams, start, ch.TotalK)
	}
	if d := ch.Density(); math.Abs(d-1.0/64) > 1e-3 {
		t.Fatalf("density %g, want about 1/64", d)
	}
	t.Logf("reference: %d chunks, %d kept entries (density %.5f)", len(ch.Chunks), ch.TotalK, ch.Density())
}

func TestChunkingRejects(t *testing.T) {
	for _, tc := range []struct {
		name    string
		lens    []int
		size, k int
	}{
		{"size too small", []int{100}, 8, 1},
		{"size too large", []int{100}, 1 << 17, 1},
		{"k zero", []int{100}, 64, 0},
		{"k above size", []int{100}, 64, 65},
		{"empty tensor", []int{100, 0}, 64, 4},
		{"no tensors", nil, 64, 4},
	} {
		if _, err := NewChunkingLens(tc.lens, [32]byte{}, tc.size, tc.k); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}

// topKBySort is the specification: order by |x| descending then index
// ascending, keep k, return ascending indices.
func topKBySort(x []float32, k int) []uint16 {
	idx := make([]int, len(x))
	for i := range idx {
		idx[i] = i
	}
	slices.SortStableFunc(idx, func(a, b int) int {
		fa, fb := math.Abs(float64(x[a])), math.Abs(float64(x[b]))
		switch {
		case fa > fb:
			return -1
		case fa < fb:
			return 1
		}
		return a - b
	})
	out := make([]uint16, k)
	for i := range k {
		out[i] = uint16(idx[i])
	}
	slices.Sort(out)
	return out
}

func TestTopKExact(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	gens := map[string]func(n int) []float32{
		"gaussian": func(n int) []float32 { return randVec(r, n, 1e-3) },
		"ties": func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				v[i] = float32(r.IntN(5) - 2) // many equal magnitudes, both signs
			}
			return v
		},
		"zeros": func(n int) []float32 { return make([]float32, n) },
		"sample misses": func(n int) []float32 {
			// Large values only where the threshold guess samples, so
			// the guess is too high and the exact fallback runs.
			v := randVec(r, n, 1e-3)
			for i := 0; i < n; i += sampleStride {
				v[i] = 1 + float32(i)
			}
			return v
		},
		"heavy tail": func(n int) []float32 {
			v := randVec(r, n, 1)
			for i := range v {
				v[i] = float32(math.Pow(float64(v[i]), 5))
			}
			return v
		},
		"subnormal and huge": func(n int) []float32 {
			v := make([]float32, n)
			for i := range v {
				switch r.IntN(3) {
				case 0:
					v[i] = math.Float32frombits(uint32(r.IntN(1 << 20)))
				case 1:
					v[i] = -math.MaxFloat32 * float32(r.Float64())
				default:
					v[i] = float32(r.NormFloat64())
				}
			}
			return v
		},
	}
	sel := newSelector(4096)
	for name, gen := range gens {
		for _, n := range []int{1, 7, 64, 1000, 4096} {
			for _, k := range []int{1, 3, n / 64, n / 2, n} {
				if k < 1 || k > n {
					continue
				}
				x := gen(n)
				got := make([]uint16, k)
				sel.topK(x, k, got)
				if want := topKBySort(x, k); !slices.Equal(got, want) {
					t.Fatalf("%s n=%d k=%d: got %v, want %v", name, n, k, got, want)
				}
			}
		}
	}
}

func TestQuantizationBounds(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	ch := testChunking(t, []int{10000, 300, 4096}, 4096, 64)
	s, err := NewSparseLoCo(ch, WithErrorDecay(0))
	if err != nil {
		t.Fatal(err)
	}
	d := randVec(r, ch.NumParams, 1e-2)
	c := ch.NewCompressed()
	if err := s.Compress(7, d, c); err != nil {
		t.Fatal(err)
	}
	if err := ch.Validate(c); err != nil {
		t.Fatal(err)
	}
	for ci, k := range ch.Chunks {
		lo, hi := c.Lo[ci], c.Hi[ci]
		if !(0 <= lo && lo <= hi) {
			t.Fatalf("chunk %d: lo %g hi %g", ci, lo, hi)
		}
		var minA, maxA, l1, l1dec float64 = math.Inf(1), 0, 0, 0
		for j := k.Start; j < k.Start+k.K; j++ {
			a := math.Abs(float64(d[k.Offset+int(c.Idx[j])]))
			minA, maxA, l1 = min(minA, a), max(maxA, a), l1+a
		}
		for j := k.Start; j < k.Start+k.K; j++ {
			v := float64(d[k.Offset+int(c.Idx[j])])
			q := float64(decode(c.Codes[j], lo, hi))
			l1dec += math.Abs(q)
			if v != 0 && math.Signbit(v) != math.Signbit(q) {
				t.Fatalf("chunk %d: sign of %g decoded as %g", ci, v, q)
			}
			// Each level is a mean of magnitudes in [minA, maxA].
			if e := math.Abs(math.Abs(v) - math.Abs(q)); e > (maxA-minA)*(1+1e-6) {
				t.Fatalf("chunk %d: error %g above spread %g", ci, e, maxA-minA)
			}
			if math.Abs(q) < minA*(1-1e-6) || math.Abs(q) > maxA*(1+1e-6) {
				t.Fatalf("chunk %d: level %g outside [%g, %g]", ci, q, minA, maxA)
			}
		}
		if math.Abs(l1-l1dec) > 1e-5*l1 {
			t.Fatalf("chunk %d: L1 %g decoded as %g", ci, l1, l1dec)
		}
	}
}

func TestErrorFeedbackConservation(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	ch := testChunking(t, []int{5000, 4096 * 3, 17}, 4096, 32)
	s, err := NewSparseLoCo(ch, WithErrorDecay(0.95))
	if err != nil {
		t.Fatal(err)
	}
	c := ch.NewCompressed()
	dec := make([]float32, ch.NumParams)
	for round := range 5 {
		d := randVec(r, ch.NumParams, 1e-3)
		before := slices.Clone(s.ErrorBuffer())
		if err := s.Compress(uint64(round), d, c); err != nil {
			t.Fatal(err)
		}
		ch.Decompress(c, dec)
		after := s.ErrorBuffer()
		const eps = 1.0 / (1 << 23)
		for i := range d {
			lhs := 0.95*float64(before[i]) + float64(d[i])
			rhs := float64(after[i]) + float64(dec[i])
			tol := 3 * eps * (math.Abs(0.95*float64(before[i])) + math.Abs(float64(d[i])) + math.Abs(float64(dec[i])))
			if math.Abs(lhs-rhs) > tol {
				t.Fatalf("round %d entry %d: beta*e+d = %g, e'+dec = %g", round, i, lhs, rhs)
			}
		}
	}
}

func TestCompressWorkersIdentical(t *testing.T) {
	ch := testChunking(t, []int{20000, 333, 8192}, 1024, 16)
	var outs [][]byte
	var errs [][]float32
	for _, w := range []int{1, 2, 5} {
		s, err := NewSparseLoCo(ch, WithWorkers(w))
		if err != nil {
			t.Fatal(err)
		}
		rr := rand.New(rand.NewPCG(9, 9))
		c := ch.NewCompressed()
		var blob []byte
		for round := range 3 {
			if err := s.Compress(uint64(round), randVec(rr, ch.NumParams, 1), c); err != nil {
				t.Fatal(err)
			}
			blob, err = ch.Encode(nil, c)
			if err != nil {
				t.Fatal(err)
			}
		}
		outs = append(outs, blob)
		errs = append(errs, slices.Clone(s.ErrorBuffer()))
	}
	for i := 1; i < len(outs); i++ {
		if !slices.Equal(outs[0], outs[i]) || !slices.Equal(errs[0], errs[i]) {
			t.Fatalf("worker count changed the result")
		}
	}
}

func TestCompressRejects(t *testing.T) {
	ch := testChunking(t, []int{100}, 64, 4)
	s, err := NewSparseLoCo(ch)
	if err != nil {
		t.Fatal(err)
	}
	c := ch.NewCompressed()
	if err := s.Compress(0, make([]float32, 99), c); err == nil {
		t.Error("short pseudo-gradient accepted")
	}
	for _, bad := range []float32{float32(math.NaN()), float32(math.Inf(-1))} {
		d := make([]float32, 100)
		d[70] = bad
		if err := s.Compress(0, d, c); err == nil {
			t.Errorf("%g accepted", bad)
		}
	}
	if err := s.Compress(0, make([]float32, 100), &Compressed{}); err == nil {
		t.Error("unshaped output accepted")
	}
	for _, o := range []SparseLoCoOption{WithErrorDecay(-0.1), WithErrorDecay(float32(math.NaN())), WithWorkers(0)} {
		if _, err := NewSparseLoCo(ch, o); err == nil {
			t.Error("bad option accepted")
		}
	}
}

func TestNthLargest(t *testing.T) {
	r := rand.New(rand.NewPCG(11, 12))
	for _, n := range []int{1, 2, 15, 16, 17, 100, 1000, 5000} {
		for trial := range 5 {
			keys := make([]uint64, n)
			for i := range keys {
				switch trial {
				case 0: // sorted ascending
					keys[i] = uint64(i)
				case 1: // descending
					keys[i] = uint64(n - i)
				default:
					keys[i] = r.Uint64()
				}
			}
			sorted := slices.Clone(keys)
			slices.Sort(sorted)
			for _, m := range []int{1, n / 3, n} {
				if m < 1 {
					continue
				}
				work := slices.Clone(keys)
				if got, want := nthLargest(work, m), sorted[n-m]; got != want {
					t.Fatalf("n=%d trial %d m=%d: %d, want %d", n, trial, m, got, want)
				}
			}
		}
	}
}
