package hw

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
)

// GemmResult is a measured GEMM rate.
type GemmResult struct {
	N       int     // square size n (n x n times n x n)
	Iters   int     // timed multiplies (after one untimed warm-up)
	Seconds float64 // total time of the timed multiplies
	// GFLOPs is the sustained rate, 2n^3 * Iters / Seconds / 1e9; Best is
	// the fastest single multiply.
	GFLOPs     float64
	BestGFLOPs float64
	ISA        string
	Threads    int
}

// Limits of the benchmarks, so a bad argument cannot ask for unbounded
// memory or time.
const (
	MaxGemmN      = 8192
	minIterations = 1
)

// MeasureGemm times n x n x n float32 GEMMs (e.Gemm) on random data until
// budget has passed (at least one timed multiply after a warm-up).
func MeasureGemm(ctx context.Context, e *tensor.Engine, n int, budget time.Duration) (GemmResult, error) {
	if e == nil {
		return GemmResult{}, errors.New("hw: gemm benchmark: nil engine")
	}
	if n < 1 || n > MaxGemmN {
		return GemmResult{}, fmt.Errorf("hw: gemm benchmark: n = %d out of [1, %d]", n, MaxGemmN)
	}
	if budget <= 0 {
		return GemmResult{}, fmt.Errorf("hw: gemm benchmark: budget %v is not positive", budget)
	}
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	a := make([]float32, n*n)
	b := make([]float32, n*n)
	c := make([]float32, n*n)
	for i := range a {
		a[i] = rng.Float32()*2 - 1
		b[i] = rng.Float32()*2 - 1
	}
	e.Gemm(false, false, n, n, n, a, n, b, n, c, n, false) // warm-up: packing buffers, caches
	flops := 2 * float64(n) * float64(n) * float64(n)
	res := GemmResult{N: n, ISA: e.ISA().String(), Threads: e.Threads()}
	start := time.Now()
	for res.Iters < minIterations || time.Since(start) < budget {
		if err := ctx.Err(); err != nil {
			return GemmResult{}, fmt.Errorf("hw: gemm benchmark: %w", err)
		}
		t := time.Now()
		e.Gemm(false, false, n, n, n, a, n, b, n, c, n, false)
		if d := time.Since(t).Seconds(); d > 0 {
			res.BestGFLOPs = max(res.BestGFLOPs, flops/d/1e9)
		}
		res.Iters++
	}
	res.Seconds = time.Since(start).Seconds()
	res.GFLOPs = flops * float64(res.Iters) / res.Seconds / 1e9
	return res, nil
}

// TrainResult is a measured training rate.
type TrainResult struct {
	Config       model.Config
	Batch        int // sequences per step
	SeqLen       int // tokens per sequence
	Steps        int // timed steps (after one untimed warm-up)
	Seconds      float64
	TokensPerSec float64 // Batch*SeqLen*Steps / Seconds
	// GFLOPs is TokensPerSec times FLOPsPerToken, the usual 6N + 12*L*C*T
	// convention for forward plus backward.
	GFLOPs  float64
	ISA     string
	Threads int
}

// FLOPsPerToken is the forward+backward cost per token of cfg at sequence
// length seqLen: 6 * params + 12 * layers * width * seqLen.
func FLOPsPerToken(cfg model.Config, seqLen int) float64 {
	return 6*float64(cfg.NumParams()) + 12*float64(cfg.Layers)*float64(cfg.Width)*float64(seqLen)
}

// MeasureTraining times full training steps of cfg (forward, backward and
// an AdamW update, as a trainer runs them) on random tokens, batch x seqLen
// per step, until budget has passed (at least one timed step after a
// warm-up).
func MeasureTraining(ctx context.Context, e *tensor.Engine, cfg model.Config, batch, seqLen int, budget time.Duration) (TrainResult, error) {
	if e == nil {
		return TrainResult{}, errors.New("hw: training benchmark: nil engine")
	}
	if budget <= 0 {
		return TrainResult{}, fmt.Errorf("hw: training benchmark: budget %v is not positive", budget)
	}
	if batch < 1 || seqLen < 1 || seqLen > cfg.Context {
		return TrainResult{}, fmt.Errorf("hw: training benchmark: batch %d x seqLen %d invalid for context %d", batch, seqLen, cfg.Context)
	}
	m, err := model.New(cfg, e)
	if err != nil {
		return TrainResult{}, fmt.Errorf("hw: training benchmark: %w", err)
	}
	m.Init(1)
	rng := rand.New(rand.NewPCG(2, uint64(cfg.Vocab)))
	bt := batch * seqLen
	tokens := make([]int32, bt+1)
	for i := range tokens {
		tokens[i] = int32(rng.IntN(cfg.Vocab))
	}
	mom := make([]float32, len(m.Params))
	vel := make([]float32, len(m.Params))
	step := func(i int) error {
		m.ZeroGrad()
		if _, err := m.Forward(tokens[:bt], tokens[1:], batch, seqLen); err != nil {
			return err
		}
		if err := m.Backward(); err != nil {
			return err
		}
		e.AdamW(m.Params, m.Grads, mom, vel, 1e-4, 0.9, 0.95, 1e-8, 0.1, i)
		return nil
	}
	if err := step(1); err != nil { // warm-up: activation buffers, caches
		return TrainResult{}, fmt.Errorf("hw: training benchmark: %w", err)
	}
	res := TrainResult{Config: cfg, Batch: batch, SeqLen: seqLen, ISA: e.ISA().String(), Threads: e.Threads()}
	start := time.Now()
	for res.Steps < minIterations || time.Since(start) < budget {
		if err := ctx.Err(); err != nil {
			return TrainResult{}, fmt.Errorf("hw: training benchmark: %w", err)
		}
		if err := step(res.Steps + 2); err != nil {
			return TrainResult{}, fmt.Errorf("hw: training benchmark: %w", err)
		}
		res.Steps++
	}
	res.Seconds = time.Since(start).Seconds()
	res.TokensPerSec = float64(bt*res.Steps) / res.Seconds
	res.GFLOPs = res.TokensPerSec * FLOPsPerToken(cfg, seqLen) / 1e9
	return res, nil
}
