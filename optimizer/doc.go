// Package optimizer holds trinity's optimizers: the inner AdamW every trainer
// runs between rounds, and the outer optimizers that turn the trainers'
// pseudo-gradients into the next global state: SparseLoCo (error feedback,
// per-chunk top-k, 2-bit values; the network's default), DiLoCo (dense
// pseudo-gradient, Nesterov momentum) and DeMo (per-step momentum, DCT top-k)
// as baselines. It also owns the versioned binary codec of one compressed
// pseudo-gradient.
//
// Contract:
//   - Everything works on the flat parameter vector of compute/model, cut
//     into per-tensor chunks by a Chunking built from model.Layout.
//   - Decoding a blob is strict and bounded: every size, count and index is
//     checked against the Chunking the caller expects, never trusted from the
//     blob, so hostile input yields an error, not a panic or a large
//     allocation.
//   - Aggregation and the outer step are bit-reproducible: the same set of
//     contributions yields the same bytes whatever their arrival order, the
//     number of goroutines or the build (GOAMD64=v1 or v3). Contributions are
//     summed in the order of their blob's SHA-256, and every float32
//     expression that the compiler could fuse into an FMA carries an explicit
//     float32() conversion.
//
// The package knows nothing of networks; the node feeds it bytes.
package optimizer
