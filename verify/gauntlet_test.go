package verify

import (
	"errors"
	"math"
	"testing"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
)

var tiny = model.Config{Vocab: 256, Context: 32, Layers: 1, Heads: 2, Width: 32}

type fixture struct {
	m        *model.GPT
	base     []float32
	ch       *optimizer.Chunking
	own, rnd Batch
	p        Params
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	e, err := tensor.New(tensor.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	m, err := model.New(tiny, e)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(3)
	c, err := data.DefaultCorpus(5, 1<<15)
	if err != nil {
		t.Fatal(err)
	}
	toks := c.Tokens()
	mk := func(off int) Batch {
		b := Batch{Inputs: make([]int32, 4*32), Targets: make([]int32, 4*32), B: 4, T: 32}
		for s := range 4 {
			copy(b.Inputs[s*32:], toks[off+s*33:off+s*33+32])
			copy(b.Targets[s*32:], toks[off+s*33+1:off+s*33+33])
		}
		return b
	}
	ch, err := optimizer.NewChunking(tiny, 256, 32)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{m: m, base: append([]float32(nil), m.Params...), ch: ch, own: mk(0), rnd: mk(10000),
		p: Params{OuterLR: 1, StepScale: 0.5}}
}

// contribution trains a copy of base for steps AdamW steps on b and returns
// the compressed pseudo-gradient's blob for round.
func (f *fixture) contribution(t *testing.T, b Batch, steps int, round uint64, scale float32) []byte {
	t.Helper()
	copy(f.m.Params, f.base)
	cfg := optimizer.DefaultAdamW()
	cfg.LR, cfg.Warmup = 3e-3, 0
	opt, err := optimizer.NewAdamW(cfg, f.m.Views())
	if err != nil {
		t.Fatal(err)
	}
	for range steps {
		if _, err := f.m.Forward(b.Inputs, b.Targets, b.B, b.T); err != nil {
			t.Fatal(err)
		}
		f.m.ZeroGrad()
		if err := f.m.Backward(); err != nil {
			t.Fatal(err)
		}
		if _, err := opt.Update(f.m.Engine(), f.m.Params, f.m.Grads); err != nil {
			t.Fatal(err)
		}
	}
	d := make([]float32, len(f.base))
	for i := range d {
		d[i] = scale * (f.base[i] - f.m.Params[i])
	}
	s, err := optimizer.NewSparseLoCo(f.ch)
	if err != nil {
		t.Fatal(err)
	}
	c := f.ch.NewCompressed()
	if err := s.Compress(round, d, c); err != nil {
		t.Fatal(err)
	}
	blob, err := f.ch.Encode(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return blob
}

func (f *fixture) run(t *testing.T, blob []byte, own, rnd Batch) (Result, error) {
	t.Helper()
	dense := make([]float32, f.ch.NumParams)
	norm, err := Check(f.ch, blob, 7, [32]byte{1}, [32]byte{1}, f.p, f.ch.NewCompressed(), dense)
	if err != nil {
		return Result{}, err
	}
	ref, err := NewReference(f.m, f.base, rnd)
	if err != nil {
		return Result{}, err
	}
	return Gauntlet(f.m, dense, norm, own, ref, f.p)
}

func TestGauntlet(t *testing.T) {
	f := newFixture(t)
	honest := f.contribution(t, f.own, 8, 7, 1)
	tests := []struct {
		name   string
		blob   []byte
		own    Batch
		rnd    Batch
		wantOK bool
	}{
		{"honest work on its own batch", honest, f.own, f.rnd, true},
		{"harmful (negated) contribution", f.contribution(t, f.own, 8, 7, -1), f.own, f.rnd, false},
		{"lazy (no steps)", f.contribution(t, f.own, 0, 7, 1), f.own, f.rnd, false},
		{"trained on other data than assigned", honest, f.rnd, f.own, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := f.run(t, tc.blob, tc.own, tc.rnd)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("dOwn %.4f dRand %.4f score %.4f norm %.4f reason %q", r.DOwn(), r.DRand(), r.Score, r.Norm, r.Reason)
			if r.OK != tc.wantOK {
				t.Fatalf("OK = %v, want %v (%s)", r.OK, tc.wantOK, r.Reason)
			}
			if r.OK != (r.Score > 0) || r.OK != (r.Reason == "") {
				t.Fatalf("inconsistent result %+v", r)
			}
		})
	}
}

func TestGauntletDeterministic(t *testing.T) {
	f := newFixture(t)
	blob := f.contribution(t, f.own, 4, 7, 1)
	a, err := f.run(t, blob, f.own, f.rnd)
	if err != nil {
		t.Fatal(err)
	}
	b, err := f.run(t, blob, f.own, f.rnd)
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Fatalf("two runs differ: %+v vs %+v", a, b)
	}
}

func TestCheckRejects(t *testing.T) {
	f := newFixture(t)
	blob := f.contribution(t, f.own, 2, 7, 1)
	dense := make([]float32, f.ch.NumParams)
	tests := []struct {
		name          string
		blob          []byte
		round         uint64
		claimed, want [32]byte
		p             Params
	}{
		{"wrong round", blob, 8, [32]byte{}, [32]byte{}, f.p},
		{"base state mismatch", blob, 7, [32]byte{1}, [32]byte{2}, f.p},
		{"truncated", blob[:len(blob)-3], 7, [32]byte{}, [32]byte{}, f.p},
		{"garbage", []byte("not a blob at all"), 7, [32]byte{}, [32]byte{}, f.p},
		{"norm above bound", blob, 7, [32]byte{}, [32]byte{}, Params{OuterLR: 1, StepScale: 1, MaxNorm: 1e-9}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Check(f.ch, tc.blob, tc.round, tc.claimed, tc.want, tc.p, f.ch.NewCompressed(), dense)
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("err = %v, want ErrRejected", err)
			}
		})
	}
	if _, err := Check(f.ch, blob, 7, [32]byte{}, [32]byte{}, f.p, f.ch.NewCompressed(), dense[:3]); err == nil || errors.Is(err, ErrRejected) {
		t.Fatalf("a short dense buffer is the caller's error, got %v", err)
	}
}

func TestParamsValidate(t *testing.T) {
	for _, p := range []Params{{}, {OuterLR: -1, StepScale: 1}, {OuterLR: float32(math.Inf(1)), StepScale: 1},
		{OuterLR: 1}, {OuterLR: 1, StepScale: 1.5}, {OuterLR: 1, StepScale: math.NaN()},
		{OuterLR: 1, StepScale: 1, MaxNorm: -1}, {OuterLR: 1, StepScale: 1, MaxNorm: math.NaN()},
		{OuterLR: 1, StepScale: 1, GapTolerance: -0.5}} {
		if p.Validate() == nil {
			t.Errorf("%+v accepted", p)
		}
	}
	if err := (Params{OuterLR: 0.7, StepScale: 0.5, MaxNorm: 10, GapTolerance: 0.5}).Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestSmooth(t *testing.T) {
	s := 0.0
	for range 50 {
		s = Smooth(s, 1, 0.7)
	}
	if math.Abs(s-1) > 1e-6 {
		t.Fatalf("EMA of a constant 1 is %v", s)
	}
	if got := Smooth(1, 0, 0.7); math.Abs(got-0.7) > 1e-12 {
		t.Fatalf("Smooth(1, 0, 0.7) = %v", got)
	}
}

func FuzzCheck(f *testing.F) {
	e, err := tensor.New(tensor.WithThreads(1))
	if err != nil {
		f.Fatal(err)
	}
	defer e.Close()
	ch, err := optimizer.NewChunking(tiny, 256, 32)
	if err != nil {
		f.Fatal(err)
	}
	s, _ := optimizer.NewSparseLoCo(ch)
	d := make([]float32, ch.NumParams)
	for i := range d {
		d[i] = float32(i%17) - 8
	}
	c := ch.NewCompressed()
	if err := s.Compress(7, d, c); err != nil {
		f.Fatal(err)
	}
	blob, _ := ch.Encode(nil, c)
	f.Add(blob)
	f.Add(blob[:40])
	f.Add([]byte{})
	dense := make([]float32, ch.NumParams)
	out := ch.NewCompressed()
	f.Fuzz(func(t *testing.T, b []byte) {
		norm, err := Check(ch, b, 7, [32]byte{}, [32]byte{}, Params{OuterLR: 1}, out, dense)
		if err != nil {
			if !errors.Is(err, ErrRejected) {
				t.Fatalf("error not marked as a rejection: %v", err)
			}
			return
		}
		if math.IsNaN(norm) || math.IsInf(norm, 0) || norm < 0 {
			t.Fatalf("accepted blob with norm %v", norm)
		}
	})
}
