package tensor

import (
	"fmt"
	"testing"
)

// Benchmarks of the element-wise and row ops on the reference configuration
// (L=4, C=256, 4 heads, T=64, B=4: 256 token rows, vocabulary 256,
// 3,290,624 parameters). Each op runs as Kernels (one thread) and as an
// Engine with 2 threads, for every path this machine has. Bytes are the
// slices read plus written once, so GB/s can be set against memory bandwidth.

type benchOp struct {
	name  string
	elems int // elements processed per call, for Melem/s
	bytes int // bytes moved per call, for GB/s
	// setup returns the call to time, on the kernels or the engine.
	setup func(k *Kernels, e *Engine) func()
}

func benchOps() []benchOp {
	const rows, C, V, T, P = 256, 256, 256, 64, 3290624
	r := newRNG(99)
	gIn, gOut, gD := randVec(r, rows*4*C, 1), make([]float32, rows*4*C), randVec(r, rows*4*C, 1)
	lnIn, lnW, lnB := randVec(r, rows*C, 1), randVec(r, C, 1), randVec(r, C, 1)
	lnOut, lnMean, lnRstd := make([]float32, rows*C), make([]float32, rows), make([]float32, rows)
	lnDout, lnDinp, lnDw, lnDb := randVec(r, rows*C, 1), make([]float32, rows*C), make([]float32, C), make([]float32, C)
	Kernels{}.LayerNorm(lnOut, lnMean, lnRstd, lnIn, lnW, lnB, rows, C)
	ceLogits, ceProbs, ceLoss := randVec(r, rows*V, 2), make([]float32, rows*V), make([]float32, rows)
	ceT, ceD, ceDl := randTargets(r, rows, V), randVec(r, rows, 1), make([]float32, rows*V)
	smS, smP, smDp, smDs := randVec(r, T*T, 2), make([]float32, T*T), randVec(r, T*T, 1), make([]float32, T*T)
	Kernels{}.CausalSoftmax(smP, smS, T, T, 0, 0.125)
	ap, ag, am, av := randVec(r, P, 1), randVec(r, P, 1e-2), make([]float32, P), make([]float32, P)
	res := randVec(r, rows*C, 1)
	pick := func(k *Kernels, e *Engine, kf func(Kernels), ef func(*Engine)) func() {
		if e != nil {
			return func() { ef(e) }
		}
		return func() { kf(*k) }
	}
	return []benchOp{
		{"GELU/256x1024", rows * 4 * C, 8 * rows * 4 * C, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { k.GELU(gOut, gIn) }, func(e *Engine) { e.GELU(gOut, gIn) })
		}},
		{"GELUBackward/256x1024", rows * 4 * C, 16 * rows * 4 * C, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { k.GELUBackward(gOut, gIn, gD) }, func(e *Engine) { e.GELUBackward(gOut, gIn, gD) })
		}},
		{"LayerNorm/256x256", rows * C, 8 * rows * C, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { k.LayerNorm(lnOut, lnMean, lnRstd, lnIn, lnW, lnB, rows, C) },
				func(e *Engine) { e.LayerNorm(lnOut, lnMean, lnRstd, lnIn, lnW, lnB, rows, C) })
		}},
		{"LayerNormBackward/256x256", rows * C, 16 * rows * C, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { k.LayerNormBackward(lnDinp, lnDw, lnDb, lnDout, lnIn, lnW, lnMean, lnRstd, rows, C) },
				func(e *Engine) { e.LayerNormBackward(lnDinp, lnDw, lnDb, lnDout, lnIn, lnW, lnMean, lnRstd, rows, C) })
		}},
		{"CrossEntropy/256x256", rows * V, 8 * rows * V, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { _ = k.CrossEntropy(ceProbs, ceLoss, ceLogits, ceT, rows, V) },
				func(e *Engine) { _ = e.CrossEntropy(ceProbs, ceLoss, ceLogits, ceT, rows, V) })
		}},
		{"CrossEntropyBackward/256x256", rows * V, 12 * rows * V, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { k.CrossEntropyBackward(ceDl, ceProbs, ceT, ceD, rows, V) },
				func(e *Engine) { e.CrossEntropyBackward(ceDl, ceProbs, ceT, ceD, rows, V) })
		}},
		{"CausalSoftmax/64x64", T * T, 8 * T * T, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { k.CausalSoftmax(smP, smS, T, T, 0, 0.125) },
				func(e *Engine) { e.CausalSoftmax(smP, smS, T, T, 0, 0.125) })
		}},
		{"SoftmaxBackward/64x64", T * T, 16 * T * T, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { k.SoftmaxBackward(smDs, smP, smDp, T, T, 0.125) },
				func(e *Engine) { e.SoftmaxBackward(smDs, smP, smDp, T, T, 0.125) })
		}},
		{"AdamW/3290624", P, 28 * P, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { k.AdamW(ap, ag, am, av, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7) },
				func(e *Engine) { e.AdamW(ap, ag, am, av, 1e-3, 0.9, 0.95, 1e-8, 0.1, 7) })
		}},
		{"AddTo/256x256", rows * C, 12 * rows * C, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { k.AddTo(lnOut, res) }, func(e *Engine) { e.AddTo(lnOut, res) })
		}},
		{"Dot/65536", rows * C, 8 * rows * C, func(k *Kernels, e *Engine) func() {
			return pick(k, e, func(k Kernels) { _ = k.Dot(lnIn, res) }, func(e *Engine) { _ = e.Dot(lnIn, res) })
		}},
	}
}

func BenchmarkOps(b *testing.B) {
	for _, op := range benchOps() {
		for _, k := range testKernels(b) {
			for _, threads := range []int{0, 2} {
				name := fmt.Sprintf("%s/%v/kernels", op.name, k.ISA())
				var e *Engine
				if threads > 0 {
					name = fmt.Sprintf("%s/%v/engine%d", op.name, k.ISA(), threads)
				}
				b.Run(name, func(b *testing.B) {
					if threads > 0 {
						var err error
						if e, err = New(WithThreads(threads), WithISA(k.ISA())); err != nil {
							b.Fatal(err)
						}
						defer e.Close()
					}
					fn := op.setup(&k, e)
					fn()
					b.ResetTimer()
					for b.Loop() {
						fn()
					}
					sec := b.Elapsed().Seconds() / float64(b.N)
					b.ReportMetric(float64(op.elems)/sec/1e6, "Melem/s")
					b.ReportMetric(float64(op.bytes)/sec/1e9, "GB/s")
					b.ReportMetric(sec*1e6, "us/op")
				})
			}
		}
	}
}
