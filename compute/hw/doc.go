// Package hw describes the machine a peer runs on and measures what it can
// do with trinity's own kernels.
//
// Detect builds a Profile from what the operating system reports: the CPU
// (model, vendor, family, logical CPUs, physical cores, sockets) from
// /proc/cpuinfo, memory from /proc/meminfo, SIMD features from
// golang.org/x/sys/cpu (which also checks that the OS enables them), the
// tensor path the engine would run, and GPUs from /proc/driver/nvidia/gpus
// and /sys/class/drm. Any source may be missing (another OS, a container, no
// GPU): the matching fields stay empty and Detect still succeeds; a source
// that exists but cannot be read or parsed is logged as a warning, never a
// failure, because a profile is descriptive and the figures that matter are
// measured and attested.
//
// MeasureGemm and MeasureTraining time the engine's own GEMM (GFLOP/s) and
// full training steps of a model configuration (tokens/s) within a time
// budget. They are what a peer claims in its capacity record; verify/attest
// checks the GEMM figure with a matrix-multiply challenge.
//
// A Profile has a versioned binary encoding (MarshalBinary) with a strict,
// bounded decoder (UnmarshalBinary), because profiles travel inside signed
// capacity records.
package hw
