package tensor

import (
	"encoding/binary"
	"math"
	"testing"
)

// FuzzOpsPathsAgree feeds arbitrary float32 bit patterns (NaN, infinities,
// signed zeros, subnormals, huge values) through every op on the Generic
// and AVX2 paths and requires identical bits (NaNs compare equal to each
// other whatever their payload).
func FuzzOpsPathsAgree(f *testing.F) {
	seed := func(vs ...float32) []byte {
		b := make([]byte, 4*len(vs))
		for i, v := range vs {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
		}
		return b
	}
	inf, nan := float32(math.Inf(1)), float32(math.NaN())
	negZero := float32(math.Copysign(0, -1))
	f.Add(seed(1, 2, 3))
	f.Add(seed(0, negZero, 0, negZero, -100, 5, 1e-40, -1e-45, 9, 10, 11))
	f.Add(seed(inf, -inf, nan, 88, -88, 87, -87, 89, 3e38, -3e38, 1e-30, 20, -20, 21, -21, 0.5, 7))
	f.Add(seed(-87.3, -87.0001, -86.9999, 88.0001, 0.34657, -0.34657, 44.36, -44.36, 1, 1))
	ks := testKernels(f)
	if len(ks) < 2 {
		f.Skip("only the Generic path runs on this machine")
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		n := min(len(data)/4, 300)
		if n == 0 {
			return
		}
		x := make([]float32, n)
		for i := range x {
			x[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		y := make([]float32, n) // a second operand: x reversed
		for i := range y {
			y[i] = x[n-1-i]
		}
		run := func(k Kernels) [][]float32 {
			outs := [][]float32{}
			add := func(v []float32) { outs = append(outs, v) }
			o := make([]float32, n)
			k.GELU(o, x)
			add(o)
			o = append([]float32(nil), y...)
			k.GELUBackward(o, x, y)
			add(o)
			o = make([]float32, n)
			add([]float32{k.expRow(o, x)})
			add(o)
			o = make([]float32, n)
			k.Add(o, x, y)
			add(o)
			add([]float32{k.Dot(x, y)})
			sq := k.SumSquares(x)
			if sq != sq {
				sq = math.NaN() // payloads may differ; NaN is NaN
			}
			ss := math.Float64bits(sq)
			add([]float32{math.Float32frombits(uint32(ss)), math.Float32frombits(uint32(ss >> 32))})
			add([]float32{map[bool]float32{false: 0, true: 1}[k.HasNaN(x)]})
			// Row ops: one row of n, and the decoding shape.
			out, mean, rstd := make([]float32, n), make([]float32, 1), make([]float32, 1)
			k.LayerNorm(out, mean, rstd, x, y, x, 1, n)
			add(out)
			add(mean)
			add(rstd)
			d, dw, db := append([]float32(nil), x...), append([]float32(nil), y...), append([]float32(nil), x...)
			k.LayerNormBackward(d, dw, db, y, x, y, mean, rstd, 1, n)
			add(d)
			add(dw)
			add(db)
			p := make([]float32, n)
			k.CausalSoftmax(p, x, 1, n, n-1, 0.7)
			add(p)
			ds := append([]float32(nil), y...)
			k.SoftmaxBackward(ds, x, y, 1, n, 0.7)
			add(ds)
			probs, loss := make([]float32, n), make([]float32, 1)
			tg := []int32{int32(len(data) % n)}
			if err := k.CrossEntropy(probs, loss, x, tg, 1, n); err != nil {
				t.Fatal(err)
			}
			add(probs)
			add(loss)
			dl := append([]float32(nil), x...)
			k.CrossEntropyBackward(dl, x, tg, y[:1], 1, n)
			add(dl)
			pp, g, m, v := append([]float32(nil), x...), append([]float32(nil), y...), append([]float32(nil), y...), append([]float32(nil), x...)
			k.AdamW(pp, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.1, 1+len(data)%5)
			add(pp)
			add(m)
			add(v)
			return outs
		}
		ref, got := run(ks[0]), run(ks[1])
		for o := range ref {
			if i := firstDiff(ref[o], got[o]); i >= 0 {
				t.Fatalf("output %d element %d: %v gives %v (%#x), generic %v (%#x); input %v",
					o, i, ks[1].ISA(), got[o][i], math.Float32bits(got[o][i]), ref[o][i], math.Float32bits(ref[o][i]), x)
			}
		}
	})
}
