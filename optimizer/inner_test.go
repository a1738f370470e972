package optimizer

import (
	"testing"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
)

// TestInnerStepTrainsWithoutAllocating checks that the inner step lowers the
// loss on a fixed batch and, once warm, allocates nothing: a trainer runs it
// thousands of times per hour.
func TestInnerStepTrainsWithoutAllocating(t *testing.T) {
	e, err := tensor.New(tensor.WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	cfg := model.Config{Vocab: 32, Context: 16, Layers: 2, Heads: 2, Width: 16}
	m, err := model.New(cfg, e)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(3)
	adam := DefaultAdamW()
	adam.Warmup, adam.LR = 0, 1e-2
	opt, err := NewAdamW(adam, m.Views())
	if err != nil {
		t.Fatal(err)
	}
	const B, T = 2, 16
	in, tgt := make([]int32, B*T), make([]int32, B*T)
	for i := range in {
		in[i], tgt[i] = int32(i*7%cfg.Vocab), int32((i*7+1)%cfg.Vocab)
	}
	first, err := InnerStep(m, opt, in, tgt, B, T)
	if err != nil {
		t.Fatal(err)
	}
	var last float32
	allocs := testing.AllocsPerRun(30, func() {
		if last, err = InnerStep(m, opt, in, tgt, B, T); err != nil {
			t.Fatal(err)
		}
	})
	if !(last < first*0.8) {
		t.Errorf("loss went from %v to %v over 31 steps on one batch; want a clear drop", first, last)
	}
	if allocs != 0 && !raceEnabled {
		t.Errorf("InnerStep allocates %v times per step in steady state, want 0", allocs)
	}
	if _, err := InnerStep(m, opt, in[:3], tgt, B, T); err == nil {
		t.Error("InnerStep accepted a batch of the wrong length")
	}
}
