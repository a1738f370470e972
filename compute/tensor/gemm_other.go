//go:build !amd64

package tensor

// gemmFast is never reached off amd64 (only the Generic path is built);
// it exists so the package compiles, and falls back to the reference.
func gemmFast(_ *gemmScratch, tA, tB bool, M, N, K int, a []float32, lda int, b []float32, ldb int, c []float32, ldc int, accumulate bool) {
	gemmGeneric(tA, tB, M, N, K, a, lda, b, ldb, c, ldc, accumulate)
}

func addRow(dst, src []float32) { addRowGeneric(dst, src) }
