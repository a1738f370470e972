package optimizer

import (
	"fmt"
	"math"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
)

// AdamWConfig is the inner optimizer's configuration.
type AdamWConfig struct {
	LR          float32 `json:"lr"`           // peak learning rate
	Beta1       float32 `json:"beta1"`        // first-moment decay
	Beta2       float32 `json:"beta2"`        // second-moment decay
	Eps         float32 `json:"eps"`          // denominator epsilon
	WeightDecay float32 `json:"weight_decay"` // decoupled, on matrices only
	GradClip    float32 `json:"grad_clip"`    // max global grad L2 norm; 0 = off
	Warmup      int     `json:"warmup"`       // linear warmup steps
	TotalSteps  int     `json:"total_steps"`  // end of the cosine decay; 0 = constant LR after warmup
	MinLRFrac   float32 `json:"min_lr_frac"`  // LR at TotalSteps as a fraction of LR
}

// DefaultAdamW is a reasonable inner optimizer for the reference model.
func DefaultAdamW() AdamWConfig {
	return AdamWConfig{LR: 1e-3, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradClip: 1, Warmup: 100, MinLRFrac: 0.1}
}

// Validate names the first bad field.
func (c AdamWConfig) Validate() error {
	finite := func(x float32) bool { return !math.IsNaN(float64(x)) && !math.IsInf(float64(x), 0) }
	switch {
	case !finite(c.LR) || c.LR <= 0 || c.LR > 10:
		return fmt.Errorf("optimizer: adamw lr %g out of range (0, 10]", c.LR)
	case !finite(c.Beta1) || c.Beta1 < 0 || c.Beta1 >= 1:
		return fmt.Errorf("optimizer: adamw beta1 %g out of range [0, 1)", c.Beta1)
	case !finite(c.Beta2) || c.Beta2 < 0 || c.Beta2 >= 1:
		return fmt.Errorf("optimizer: adamw beta2 %g out of range [0, 1)", c.Beta2)
	case !finite(c.Eps) || c.Eps <= 0 || c.Eps > 1:
		return fmt.Errorf("optimizer: adamw eps %g out of range (0, 1]", c.Eps)
	case !finite(c.WeightDecay) || c.WeightDecay < 0 || c.WeightDecay > 1:
		return fmt.Errorf("optimizer: adamw weight_decay %g out of range [0, 1]", c.WeightDecay)
	case !finite(c.GradClip) || c.GradClip < 0:
		return fmt.Errorf("optimizer: adamw grad_clip %g must be >= 0", c.GradClip)
	case c.Warmup < 0:
		return fmt.Errorf("optimizer: adamw warmup %d must be >= 0", c.Warmup)
	case c.TotalSteps < 0 || (c.TotalSteps > 0 && c.TotalSteps <= c.Warmup):
		return fmt.Errorf("optimizer: adamw total_steps %d must be 0 or > warmup %d", c.TotalSteps, c.Warmup)
	case !finite(c.MinLRFrac) || c.MinLRFrac < 0 || c.MinLRFrac > 1:
		return fmt.Errorf("optimizer: adamw min_lr_frac %g out of range [0, 1]", c.MinLRFrac)
	}
	return nil
}

// LRAt is the learning rate of step (counted from 1): linear warmup to LR
// over Warmup steps, then cosine decay to MinLRFrac*LR at TotalSteps, flat
// after. Computed in float64 and rounded once, so it is the same everywhere.
func (c AdamWConfig) LRAt(step int) float32 {
	lr := float64(c.LR)
	if step <= c.Warmup {
		return float32(lr * float64(step) / float64(c.Warmup))
	}
	if c.TotalSteps == 0 {
		return c.LR
	}
	minLR := lr * float64(c.MinLRFrac)
	if step >= c.TotalSteps {
		return float32(minLR)
	}
	t := float64(step-c.Warmup) / float64(c.TotalSteps-c.Warmup)
	return float32(minLR + (lr-minLR)*0.5*(1+math.Cos(math.Pi*t)))
}

// AdamW is the inner optimizer over one flat parameter vector. Weight decay
// applies to tensors of two or more dimensions (matrices, embeddings), not
// to biases and LayerNorm gains, as in GPT-2 practice.
type AdamW struct {
	Config AdamWConfig
	M, V   []float32 // moments, exposed for checkpoints
	Step   int       // steps taken
	views  []model.View
}

// NewAdamW validates cfg and returns zeroed state for the parameters laid
// out by views (which must tile [0, n) in order).
func NewAdamW(cfg AdamWConfig, views []model.View) (*AdamW, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	off := 0
	for _, v := range views {
		if v.Offset != off || v.Len < 0 {
			return nil, fmt.Errorf("optimizer: adamw: view %s at offset %d, want %d", v.Name, v.Offset, off)
		}
		off += v.Len
	}
	if off == 0 {
		return nil, fmt.Errorf("optimizer: adamw: no parameters")
	}
	return &AdamW{Config: cfg, M: make([]float32, off), V: make([]float32, off), views: views}, nil
}

// Reset zeroes the moments and the step count.
func (a *AdamW) Reset() {
	clear(a.M)
	clear(a.V)
	a.Step = 0
}

// Update takes one step: it clips grads in place to GradClip global norm,
// then applies AdamW at the scheduled learning rate. It returns the grad
// norm before clipping. A non-finite norm is an error and nothing changes.
func (a *AdamW) Update(e *tensor.Engine, params, grads []float32) (float64, error) {
	if len(params) != len(a.M) || len(grads) != len(a.M) {
		return 0, fmt.Errorf("optimizer: adamw: %d params, %d grads, want %d", len(params), len(grads), len(a.M))
	}
	norm := math.Sqrt(e.SumSquares(grads))
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("optimizer: adamw: gradient norm is %v", norm)
	}
	if c := float64(a.Config.GradClip); c > 0 && norm > c {
		e.Scale(grads, float32(c/norm))
	}
	a.Step++
	lr := a.Config.LRAt(a.Step)
	c := a.Config
	for _, v := range a.views {
		wd := c.WeightDecay
		if len(v.Shape) < 2 {
			wd = 0
		}
		s := v.Offset
		t := v.Offset + v.Len
		e.AdamW(params[s:t], grads[s:t], a.M[s:t], a.V[s:t], lr, c.Beta1, c.Beta2, c.Eps, wd, a.Step)
	}
	return norm, nil
}
