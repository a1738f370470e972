package verify

import (
	"slices"
	"testing"
	"time"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
)

// BenchmarkScoreVsProduce measures, in the same run, what a trainer spends
// to produce one contribution of the default testnet (H = 20 AdamW steps of
// 4 x 64 tokens on its tiny model, then SparseLoCo compression and
// encoding) and what a validator spends to score it with the network's
// settings (Check and the loss test on two own and two random batches:
// three forward passes of 8 x 64 tokens, plus the round's reference loss,
// one more, shared by the round's contributions and counted here as a
// quarter, the testnet's 4 trainers). It reports both and their ratio, the
// validator's cost per contribution (target: under 20%).
func BenchmarkScoreVsProduce(b *testing.B) {
	cfg := model.Config{Vocab: 256, Context: 64, Layers: 2, Heads: 2, Width: 64} // node.TinyModel
	const B, T, H = 4, 64, 20
	e, err := tensor.New(tensor.WithThreads(1))
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	m, err := model.New(cfg, e)
	if err != nil {
		b.Fatal(err)
	}
	eval, err := model.New(cfg, e)
	if err != nil {
		b.Fatal(err)
	}
	m.Init(1)
	base := append([]float32(nil), m.Params...)
	c, err := data.DefaultCorpus(5, 1<<17)
	if err != nil {
		b.Fatal(err)
	}
	toks := c.Tokens()
	batch := func(i int) Batch {
		bt := Batch{Inputs: make([]int32, B*T), Targets: make([]int32, B*T), B: B, T: T}
		for s := range B {
			off := (i*B + s) * (T + 1)
			copy(bt.Inputs[s*T:], toks[off:off+T])
			copy(bt.Targets[s*T:], toks[off+1:off+T+1])
		}
		return bt
	}
	batches := make([]Batch, H+2)
	for i := range batches {
		batches[i] = batch(i)
	}
	pair := func(a, b Batch) Batch {
		return Batch{Inputs: append(slices.Clone(a.Inputs), b.Inputs...), Targets: append(slices.Clone(a.Targets), b.Targets...), B: a.B + b.B, T: T}
	}
	own, rnd := pair(batches[3], batches[11]), pair(batches[H], batches[H+1])
	const perRound = 4 // contributions sharing one reference
	ch, err := optimizer.NewChunking(cfg, 1024, 32)
	if err != nil {
		b.Fatal(err)
	}
	slc, err := optimizer.NewSparseLoCo(ch)
	if err != nil {
		b.Fatal(err)
	}
	adam := optimizer.DefaultAdamW()
	adam.LR, adam.Warmup = 3e-3, 0
	comp, dec := ch.NewCompressed(), ch.NewCompressed()
	d, dense := make([]float32, ch.NumParams), make([]float32, ch.NumParams)
	p := Params{OuterLR: 1, StepScale: 0.5, GapTolerance: 0.5}
	var produce, score, reference time.Duration
	for b.Loop() {
		t0 := time.Now()
		copy(m.Params, base)
		opt, err := optimizer.NewAdamW(adam, m.Views())
		if err != nil {
			b.Fatal(err)
		}
		for i := range H {
			if _, err := optimizer.InnerStep(m, opt, batches[i].Inputs, batches[i].Targets, B, T); err != nil {
				b.Fatal(err)
			}
		}
		for i := range d {
			d[i] = base[i] - m.Params[i]
		}
		if err := slc.Compress(1, d, comp); err != nil {
			b.Fatal(err)
		}
		blob, err := ch.Encode(nil, comp)
		if err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		ref, err := NewReference(eval, base, rnd)
		if err != nil {
			b.Fatal(err)
		}
		t2 := time.Now()
		norm, err := Check(ch, blob, 1, [32]byte{}, [32]byte{}, p, dec, dense)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := Gauntlet(eval, dense, norm, own, ref, p); err != nil {
			b.Fatal(err)
		}
		t3 := time.Now()
		produce += t1.Sub(t0)
		reference += t2.Sub(t1)
		score += t3.Sub(t2)
	}
	perContribution := score + reference/perRound
	b.ReportMetric(float64(produce.Milliseconds())/float64(b.N), "produce-ms/op")
	b.ReportMetric(float64(perContribution.Microseconds())/1000/float64(b.N), "score-ms/op")
	b.ReportMetric(100*perContribution.Seconds()/produce.Seconds(), "score/produce-%")
}
