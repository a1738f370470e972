package tensor

// implemented reports whether this build has kernels for the path. AVX-512
// kernels are not written yet: on such CPUs the AVX2 path runs.
func (i ISA) implemented() bool { return i != AVX512 }
