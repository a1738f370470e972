package tensor

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// benchGemmShape is a GEMM shape of the reference training step (batch 4 x
// 64 tokens = 256 rows, C = 256) or a square one.
type benchGemmShape struct {
	name    string
	tA, tB  bool
	M, N, K int
}

func benchGemmShapes() []benchGemmShape {
	return []benchGemmShape{
		{"square512", false, false, 512, 512, 512},
		{"square1024", false, false, 1024, 1024, 1024},
		// Forward MatMul: out[256 x outF] = inp[256 x in] · w^T.
		{"fwd_qkv_256x768x256", false, true, 256, 768, 256},
		{"fwd_proj_256x256x256", false, true, 256, 256, 256},
		{"fwd_fc_256x1024x256", false, true, 256, 1024, 256},
		{"fwd_fcproj_256x256x1024", false, true, 256, 256, 1024},
		// Backward dinp[256 x in] += dout[256 x outF] · w[outF x in].
		{"dinp_qkv_256x256x768", false, false, 256, 256, 768},
		{"dinp_fc_256x256x1024", false, false, 256, 256, 1024},
		{"dinp_fcproj_256x1024x256", false, false, 256, 1024, 256},
		// Backward dw[outF x in] += dout^T · inp, K = 256 rows.
		{"dw_qkv_768x256x256", true, false, 768, 256, 256},
		{"dw_proj_256x256x256", true, false, 256, 256, 256},
		{"dw_fc_1024x256x256", true, false, 1024, 256, 256},
		{"dw_fcproj_256x1024x256", true, false, 256, 1024, 256},
	}
}

// BenchmarkGemm reports GFLOP/s (2·M·N·K per call) per shape, path and
// thread count.
func BenchmarkGemm(b *testing.B) {
	rng := rand.New(rand.NewPCG(1, 1))
	for _, s := range benchGemmShapes() {
		for _, isa := range []ISA{AVX2, Generic} {
			if !isa.Supported() || !isa.implemented() {
				continue
			}
			if isa == Generic && s.M*s.N*s.K > 256*256*256 {
				continue // minutes per op: not informative
			}
			for _, th := range []int{1, 2} {
				b.Run(fmt.Sprintf("%s/%v/t%d", s.name, isa, th), func(b *testing.B) {
					e, err := New(WithISA(isa), WithThreads(th))
					if err != nil {
						b.Fatal(err)
					}
					defer e.Close()
					a := randSlice(rng, s.M*s.K)
					bm := randSlice(rng, s.K*s.N)
					c := make([]float32, s.M*s.N)
					lda, ldb := s.K, s.N
					if s.tA {
						lda = s.M
					}
					if s.tB {
						ldb = s.K
					}
					b.ResetTimer()
					for b.Loop() {
						e.Gemm(s.tA, s.tB, s.M, s.N, s.K, a, lda, bm, ldb, c, s.N, true)
					}
					b.ReportMetric(2*float64(s.M)*float64(s.N)*float64(s.K)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
				})
			}
		}
	}
}

// BenchmarkGemmAttention is one head's attention product as the model calls
// it from inside a worker: Kernels.Gemm on 64x64x64 with q and k strided in
// the fused qkv buffer (ld = 3·256).
func BenchmarkGemmAttention(b *testing.B) {
	if !AVX2.Supported() {
		b.Skip("CPU lacks AVX2+FMA")
	}
	rng := rand.New(rand.NewPCG(2, 2))
	e, err := New(WithISA(AVX2), WithThreads(1))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	const T, hs, ld = 64, 64, 3 * 256
	qkv := randSlice(rng, T*ld)
	att, out := make([]float32, T*T), make([]float32, T*hs)
	k := e.Kernels()
	for _, tc := range []struct {
		name string
		run  func()
	}{
		{"qkT", func() { k.Gemm(false, true, T, T, hs, qkv, ld, qkv[256:], ld, att, T, false) }},
		{"attV", func() { k.Gemm(false, false, T, hs, T, att, T, qkv[512:], ld, out, hs, false) }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				tc.run()
			}
			b.ReportMetric(2*float64(T*T*hs)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkGemmTrainStep runs every MatMul and MatMulBackward of one
// training step of the reference model (4 layers, C = 256, vocab 256, batch
// 4 x 64 = 256 rows), without attention, and reports the effective rate.
func BenchmarkGemmTrainStep(b *testing.B) {
	const rows, C, V, L = 256, 256, 256, 4
	type lin struct{ in, out int }
	layer := []lin{{C, 3 * C}, {C, C}, {C, 4 * C}, {4 * C, C}}
	var lins []lin
	for range L {
		lins = append(lins, layer...)
	}
	lins = append(lins, lin{C, V}) // LM head
	rng := rand.New(rand.NewPCG(4, 4))
	type bufs struct{ inp, w, bias, out, dinp, dw, dbias []float32 }
	bs := make([]bufs, len(lins))
	flops := 0.0
	for i, l := range lins {
		bs[i] = bufs{
			inp: randSlice(rng, rows*l.in), w: randSlice(rng, l.out*l.in), bias: randSlice(rng, l.out),
			out: make([]float32, rows*l.out), dinp: make([]float32, rows*l.in),
			dw: make([]float32, l.out*l.in), dbias: make([]float32, l.out),
		}
		flops += 3 * 2 * float64(rows*l.in*l.out)
	}
	for _, th := range []int{1, 2} {
		b.Run(fmt.Sprintf("t%d", th), func(b *testing.B) {
			e, err := New(WithThreads(th))
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			for b.Loop() {
				for i, l := range lins {
					x := &bs[i]
					e.MatMul(x.out, x.inp, x.w, x.bias, rows, l.in, l.out)
				}
				for i := len(lins) - 1; i >= 0; i-- {
					x, l := &bs[i], lins[i]
					e.MatMulBackward(x.dinp, x.dw, x.dbias, x.out, x.inp, x.w, rows, l.in, l.out)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			b.ReportMetric(flops/sec/1e9, "GFLOP/s")
			b.ReportMetric(sec*1e3, "ms/step")
		})
	}
}
