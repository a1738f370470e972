package hw

import (
	"context"
	"testing"
	"time"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
)

func newEngine(t testing.TB) *tensor.Engine {
	t.Helper()
	e, err := tensor.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func TestMeasureGemm(t *testing.T) {
	e := newEngine(t)
	r, err := MeasureGemm(context.Background(), e, 96, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Iters < 1 || r.GFLOPs <= 0 || r.BestGFLOPs < r.GFLOPs*0.999 || r.N != 96 || r.Threads != e.Threads() {
		t.Errorf("implausible result %+v", r)
	}
	for _, bad := range []struct {
		n      int
		budget time.Duration
	}{{0, time.Millisecond}, {MaxGemmN + 1, time.Millisecond}, {64, 0}} {
		if _, err := MeasureGemm(context.Background(), e, bad.n, bad.budget); err == nil {
			t.Errorf("n=%d budget=%v accepted", bad.n, bad.budget)
		}
	}
	if _, err := MeasureGemm(context.Background(), nil, 64, time.Millisecond); err == nil {
		t.Error("nil engine accepted")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := MeasureGemm(ctx, e, 64, time.Hour); err == nil {
		t.Error("cancelled context not honoured")
	}
}

func TestMeasureTraining(t *testing.T) {
	e := newEngine(t)
	cfg := model.Config{Vocab: 64, Context: 16, Layers: 1, Heads: 2, Width: 32}
	r, err := MeasureTraining(context.Background(), e, cfg, 2, 16, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if r.Steps < 1 || r.TokensPerSec <= 0 || r.GFLOPs <= 0 {
		t.Errorf("implausible result %+v", r)
	}
	if got, want := FLOPsPerToken(cfg, 16), 6*float64(cfg.NumParams())+12*1*32*16; got != want {
		t.Errorf("FLOPsPerToken = %v, want %v", got, want)
	}
	bad := []struct {
		cfg           model.Config
		batch, seqLen int
	}{
		{cfg, 0, 16},
		{cfg, 1, 17}, // beyond the context
		{model.Config{}, 1, 1},
	}
	for _, b := range bad {
		if _, err := MeasureTraining(context.Background(), e, b.cfg, b.batch, b.seqLen, time.Millisecond); err == nil {
			t.Errorf("%+v accepted", b)
		}
	}
}

// BenchmarkMeasure reports the figures a peer would claim for the reference
// model (batch 4 x 64) and a 1024 GEMM.
func BenchmarkMeasure(b *testing.B) {
	e := newEngine(b)
	for b.Loop() {
		g, err := MeasureGemm(context.Background(), e, 1024, 500*time.Millisecond)
		if err != nil {
			b.Fatal(err)
		}
		tr, err := MeasureTraining(context.Background(), e, model.Reference, 4, 64, time.Second)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(g.GFLOPs, "gemm-GFLOP/s")
		b.ReportMetric(tr.TokensPerSec, "train-tokens/s")
		b.ReportMetric(tr.GFLOPs, "train-GFLOP/s")
	}
}
