// Package tensor holds the float32 kernels that the GPT model is built from:
// matrix multiplication in the three shapes training needs, layer
// normalisation, softmax, GELU, cross-entropy and the AdamW update.
//
// Two types carry the kernels. Kernels is one instruction-set path (AVX-512,
// AVX2 or pure Go) run on the calling goroutine. Engine owns a persistent
// pool of workers and splits each kernel over them by rows or output blocks.
//
// # Determinism contract
//
// Validators replay training steps and every peer hashes the model state, so
// every kernel gives identical bits on every path and thread count:
//
//   - A matrix product accumulates each output element along K in increasing
//     order with a fused multiply-add, starting from zero (or from the
//     existing output when accumulating). Vector width and blocking only
//     decide which outputs are computed side by side. The pure-Go path uses
//     FMA32, a correctly rounded float32 fused multiply-add.
//   - Reductions (sums, means, norms) use an order fixed by the shape of the
//     data, never by the number of threads: work is split by rows, and a
//     row's reduction is always done the same way on every path.
//   - Element-wise transcendental functions evaluate one polynomial in one
//     order on every path.
//   - Pure-Go code forbids implicit fusion with explicit float32 conversions,
//     so GOAMD64=v1 and v3 builds agree.
package tensor
