package optimizer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
)

func testEngine(t testing.TB) *tensor.Engine {
	t.Helper()
	e, err := tensor.New(tensor.WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func TestAdamWConfigValidate(t *testing.T) {
	if err := DefaultAdamW().Validate(); err != nil {
		t.Fatalf("default: %v", err)
	}
	nan := float32(math.NaN())
	for name, edit := range map[string]func(c *AdamWConfig){
		"lr zero":         func(c *AdamWConfig) { c.LR = 0 },
		"lr NaN":          func(c *AdamWConfig) { c.LR = nan },
		"beta1 one":       func(c *AdamWConfig) { c.Beta1 = 1 },
		"beta2 negative":  func(c *AdamWConfig) { c.Beta2 = -0.1 },
		"eps zero":        func(c *AdamWConfig) { c.Eps = 0 },
		"wd negative":     func(c *AdamWConfig) { c.WeightDecay = -1 },
		"clip negative":   func(c *AdamWConfig) { c.GradClip = -1 },
		"warmup negative": func(c *AdamWConfig) { c.Warmup = -1 },
		"total <= warmup": func(c *AdamWConfig) { c.Warmup, c.TotalSteps = 10, 10 },
		"min lr frac > 1": func(c *AdamWConfig) { c.MinLRFrac = 2 },
	} {
		c := DefaultAdamW()
		edit(&c)
		if err := c.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if _, err := NewAdamW(c, model.Layout(model.Reference)); err == nil {
			t.Errorf("%s: NewAdamW accepted", name)
		}
	}
}

func TestLRSchedule(t *testing.T) {
	c := AdamWConfig{LR: 1e-3, Warmup: 10, TotalSteps: 110, MinLRFrac: 0.1}
	for _, tc := range []struct {
		step int
		want float64
	}{
		{1, 1e-4}, {5, 5e-4}, {10, 1e-3}, {60, 1e-4 + 0.9e-3*0.5}, {110, 1e-4}, {500, 1e-4},
	} {
		if got := float64(c.LRAt(tc.step)); math.Abs(got-tc.want) > 1e-9 {
			t.Errorf("step %d: lr %g, want %g", tc.step, got, tc.want)
		}
	}
	c.TotalSteps = 0
	if c.LRAt(1000) != c.LR {
		t.Error("constant schedule decays")
	}
	prev := float32(math.Inf(1))
	c.TotalSteps = 110
	for s := 10; s <= 110; s++ {
		if lr := c.LRAt(s); lr > prev {
			t.Fatalf("cosine not monotone at %d", s)
		} else {
			prev = lr
		}
	}
}

// TestAdamWMatchesReference checks clipping, bias correction and
// matrices-only weight decay against a float64 transcription of the
// formulas, over several steps.
func TestAdamWMatchesReference(t *testing.T) {
	views := []model.View{
		{Name: "w", Shape: []int{4, 8}, Offset: 0, Len: 32},
		{Name: "b", Shape: []int{8}, Offset: 32, Len: 8},
	}
	cfg := AdamWConfig{LR: 1e-2, Beta1: 0.9, Beta2: 0.95, Eps: 1e-8, WeightDecay: 0.1, GradClip: 0.5, Warmup: 2, TotalSteps: 10, MinLRFrac: 0.1}
	a, err := NewAdamW(cfg, views)
	if err != nil {
		t.Fatal(err)
	}
	e := testEngine(t)
	r := rand.New(rand.NewPCG(1, 2))
	p := randVec(r, 40, 1)
	ref := make([]float64, 40)
	m, v := make([]float64, 40), make([]float64, 40)
	for i := range p {
		ref[i] = float64(p[i])
	}
	for step := 1; step <= 6; step++ {
		g := randVec(r, 40, 1)
		var ss float64
		for _, x := range g {
			ss += float64(x) * float64(x)
		}
		norm := math.Sqrt(ss)
		scale := 1.0
		if norm > 0.5 {
			scale = 0.5 / norm
		}
		lr := float64(cfg.LRAt(step))
		for i := range ref {
			gi := float64(g[i]) * scale
			m[i] = 0.9*m[i] + 0.1*gi
			v[i] = 0.95*v[i] + 0.05*gi*gi
			mh := m[i] / (1 - math.Pow(0.9, float64(step)))
			vh := v[i] / (1 - math.Pow(0.95, float64(step)))
			wd := 0.1
			if i >= 32 {
				wd = 0
			}
			ref[i] -= lr * (mh/(math.Sqrt(vh)+1e-8) + wd*ref[i])
		}
		got, err := a.Update(e, p, g)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(got-norm) > 1e-6*norm {
			t.Fatalf("step %d: norm %g, want %g", step, got, norm)
		}
	}
	for i := range p {
		if math.Abs(float64(p[i])-ref[i]) > 1e-5 {
			t.Fatalf("param %d: %g, want %g", i, p[i], ref[i])
		}
	}
	if a.Step != 6 {
		t.Fatalf("step count %d", a.Step)
	}
}

func TestAdamWRejects(t *testing.T) {
	views := []model.View{{Name: "w", Shape: []int{4}, Offset: 0, Len: 4}}
	a, err := NewAdamW(DefaultAdamW(), views)
	if err != nil {
		t.Fatal(err)
	}
	e := testEngine(t)
	p := []float32{1, 2, 3, 4}
	if _, err := a.Update(e, p, []float32{1, float32(math.NaN()), 0, 0}); err == nil {
		t.Error("NaN gradient accepted")
	}
	if p[0] != 1 || a.Step != 0 {
		t.Error("rejected step changed state")
	}
	if _, err := a.Update(e, p, []float32{1}); err == nil {
		t.Error("short gradient accepted")
	}
	if _, err := NewAdamW(DefaultAdamW(), []model.View{{Name: "x", Offset: 3, Len: 4}}); err == nil {
		t.Error("gapped views accepted")
	}
}

func TestNesterov(t *testing.T) {
	o, err := NewNesterov(2, 0.7, 0.9)
	if err != nil {
		t.Fatal(err)
	}
	theta := []float32{1, 1}
	var m0 float64
	th := 1.0
	for _, g := range []float32{0.5, -0.25, 0.125} {
		if err := o.Step(theta, []float32{g, 0}); err != nil {
			t.Fatal(err)
		}
		m0 = 0.9*m0 + float64(g)
		th -= 0.7 * (float64(g) + 0.9*m0)
	}
	if math.Abs(float64(theta[0])-th) > 1e-6 || theta[1] != 1 {
		t.Fatalf("theta %v, want [%g 1]", theta, th)
	}
	for _, bad := range [][2]float32{{0, 0.9}, {0.7, 1}, {float32(math.NaN()), 0.9}} {
		if _, err := NewNesterov(2, bad[0], bad[1]); err == nil {
			t.Errorf("lr %g momentum %g accepted", bad[0], bad[1])
		}
	}
	if o.Step(theta, []float32{1}) == nil {
		t.Error("short gradient accepted")
	}
}

func TestMeanDense(t *testing.T) {
	out := make([]float32, 2)
	if err := MeanDense(out, [][]float32{{1, 2}, {3, 4}, {5, 9}}); err != nil {
		t.Fatal(err)
	}
	if out[0] != 3 || out[1] != 5 {
		t.Fatalf("mean %v", out)
	}
	if MeanDense(out, nil) == nil || MeanDense(out, [][]float32{{1}}) == nil {
		t.Error("bad input accepted")
	}
}
