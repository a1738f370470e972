package main

import (
	"bytes"
	"os"
	"testing"
)

// TestGeneratedFileUpToDate fails when gemm_kernels_amd64.s was edited by
// hand or the generator changed without regenerating it.
func TestGeneratedFileUpToDate(t *testing.T) {
	have, err := os.ReadFile("../../gemm_kernels_amd64.s")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(have, generate()) {
		t.Fatal("gemm_kernels_amd64.s is stale: run go generate ./compute/tensor")
	}
}
