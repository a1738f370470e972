// Command variants prints, for every kernel path this CPU and build support
// and for 1, 2 and 3 threads, the fingerprint of a short training run
// (fixture.Fingerprint). verify/replay's tests build it with different
// GOAMD64 levels and GOARCH and check that every line agrees.
package main

import (
	"fmt"
	"os"
	"runtime"

	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/verify/replay/internal/fixture"
)

func main() {
	for _, isa := range []tensor.ISA{tensor.Generic, tensor.AVX2, tensor.AVX512} {
		if _, err := tensor.NewKernels(isa); err != nil {
			fmt.Printf("# %s not tested: %v\n", isa, err)
			continue
		}
		for _, threads := range []int{1, 2, 3} {
			fp, err := fixture.Fingerprint(fixture.Small, 5, isa, threads)
			if err != nil {
				fmt.Fprintf(os.Stderr, "variants: %s/%d: %v\n", isa, threads, err)
				os.Exit(1)
			}
			fmt.Printf("%s %s threads=%d %s\n", runtime.GOARCH, isa, threads, fp)
		}
	}
}
