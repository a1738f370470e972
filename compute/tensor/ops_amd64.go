package tensor

// haveAsm: the AVX2 kernels of ops_amd64.s are built; Kernels.avx2 decides
// at run time whether to call them.
const haveAsm = true

// Declarations of the kernels in ops_amd64.s. Each has a Go twin that
// computes the same bits; the comments on the twins give the operation order.

//go:noescape
func addAVX2(out, a, b []float32)

//go:noescape
func addToAVX2(dst, src []float32)

//go:noescape
func scaleAVX2(x []float32, s float32)

//go:noescape
func fillAVX2(x []float32, v float32)

//go:noescape
func axpyAVX2(y, x []float32, a float32)

//go:noescape
func sumAVX2(x []float32) float32

//go:noescape
func dotAVX2(a, b []float32) float32

//go:noescape
func sumSqDevAVX2(x []float32, m float32) float32

//go:noescape
func sumSquaresAVX2(x []float32) float64

//go:noescape
func hasNaNAVX2(x []float32) bool

//go:noescape
func lnApplyAVX2(out, x, w, b []float32, mean, rstd float32)

//go:noescape
func lnBwdSumsAVX2(x, w, g []float32, mean, rstd float32) (float32, float32)

//go:noescape
func lnBwdApplyAVX2(dinp, x, w, g []float32, mean, rstd, dm, dnm float32)

//go:noescape
func lnBwdParamsAVX2(dw, db, x, g []float32, mean, rstd float32)

//go:noescape
func maxScaledAVX2(s []float32, scale float32) float32

//go:noescape
func expSubSumAVX2(p, s []float32, scale, mx float32) float32

//go:noescape
func softmaxBwdAVX2(ds, p, dp []float32, dot, scale float32)

//go:noescape
func geluAVX2(out, inp []float32)

//go:noescape
func geluBwdAVX2(dinp, inp, dout []float32)

//go:noescape
func adamwAVX2(p, g, m, v []float32, a *adamParams)
