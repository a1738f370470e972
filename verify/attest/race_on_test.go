//go:build race

package attest

// raceEnabled: the race detector slows the Go loops (generation, hashing)
// but not the assembly GEMM, so timing comparisons mean nothing under it.
const raceEnabled = true
