//go:build !amd64

package tensor

func (i ISA) implemented() bool { return i == Generic }
