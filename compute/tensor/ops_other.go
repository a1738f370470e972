//go:build !amd64

package tensor

// haveAsm is false off amd64: Kernels.avx2 never selects these stubs.
const haveAsm = false

func unreachable() { panic("tensor: assembly kernel called on a build without it") }

func addAVX2(out, a, b []float32)                            { unreachable() }
func addToAVX2(dst, src []float32)                           { unreachable() }
func scaleAVX2(x []float32, s float32)                       { unreachable() }
func fillAVX2(x []float32, v float32)                        { unreachable() }
func dotAVX2(a, b []float32) float32                         { unreachable(); return 0 }
func sumAVX2(x []float32) float32                            { unreachable(); return 0 }
func sumSqDevAVX2(x []float32, m float32) float32            { unreachable(); return 0 }
func sumSquaresAVX2(x []float32) float64                     { unreachable(); return 0 }
func hasNaNAVX2(x []float32) bool                            { unreachable(); return false }
func lnApplyAVX2(out, x, w, b []float32, mean, rstd float32) { unreachable() }
func lnBwdSumsAVX2(x, w, g []float32, mean, rstd float32) (float32, float32) {
	unreachable()
	return 0, 0
}
func lnBwdApplyAVX2(dinp, x, w, g []float32, mean, rstd, dm, dnm float32) { unreachable() }
func lnBwdParamsAVX2(dw, db, x, g []float32, mean, rstd float32)          { unreachable() }
func maxScaledAVX2(s []float32, scale float32) float32                    { unreachable(); return 0 }
func expSubSumAVX2(p, s []float32, scale, mx float32) float32             { unreachable(); return 0 }
func softmaxBwdAVX2(ds, p, dp []float32, dot, scale float32)              { unreachable() }
func axpyAVX2(y, x []float32, a float32)                                  { unreachable() }
func geluAVX2(out, inp []float32)                                         { unreachable() }
func geluBwdAVX2(dinp, inp, dout []float32)                               { unreachable() }
func adamwAVX2(p, g, m, v []float32, a *adamParams)                       { unreachable() }
