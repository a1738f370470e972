package tensor

import (
	"strings"
	"testing"
	"time"
)

func TestMinProbe(t *testing.T) {
	ops := benchOps()
	for _, k := range testKernels(t)[1:] {
		for _, op := range ops {
			if !strings.Contains(op.name, "GELU") && !strings.Contains(op.name, "Cross") && !strings.Contains(op.name, "Softmax") {
				continue
			}
			fn := op.setup(&k, nil)
			best := time.Hour
			for range 300 {
				s := time.Now()
				fn()
				if d := time.Since(s); d < best {
					best = d
				}
			}
			t.Logf("%-30s %-8v min %9.1f us  %7.2f ns/elem  %6.1f GB/s", op.name, k.ISA(), best.Seconds()*1e6, best.Seconds()*1e9/float64(op.elems), float64(op.bytes)/best.Seconds()/1e9)
		}
	}
}
