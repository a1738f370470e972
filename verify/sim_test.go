package verify

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
)

// The simulated network below reproduces, without a network, what the
// default testnet's validator sees: trainers that each run H AdamW steps
// (moments carried across rounds) on pages assigned to them, compress with
// SparseLoCo (error feedback carried), and a global state that moves by the
// norm-clipped mean of the honest contributions at the outer learning rate.
// Adversaries' contributions are derived from an honest one each round.

// simConfig is the default testnet's shape (node.DefaultHyper, node.TinyModel).
type simConfig struct {
	Trainers, Rounds, H, B, T, PageSize, PagesPerRound int
	Seed                                               uint64
}

func defaultSim() simConfig {
	return simConfig{Trainers: 4, Rounds: 20, H: 20, B: 4, T: 64, PageSize: 1024, PagesPerRound: 8, Seed: 7}
}

// simContribution is one contribution as a validator receives it.
type simContribution struct {
	Trainer int    // index of the honest trainer it derives from
	Kind    string // "honest" or an adversary kind
	Dense   []float32
	Norm    float64
	C       *optimizer.Compressed
	Pages   []int // the pages the trainer was assigned
}

// simRound is what a validator has in round r.
type simRound struct {
	R     int
	Base  []float32
	Cs    []simContribution
	Train []int32 // the training split
	Loss  float32 // validation loss of Base
}

// batchOf makes a batch of k*B sequences from batches idx of a batcher
// over pages.
func batchOf(tb testing.TB, train []int32, pageSize int, pages []int, B, T int, idx []int) Batch {
	tb.Helper()
	bt, err := data.NewBatcher(train, pageSize, pages, B, T)
	if err != nil {
		tb.Fatal(err)
	}
	out := Batch{Inputs: make([]int32, len(idx)*B*T), Targets: make([]int32, len(idx)*B*T), B: len(idx) * B, T: T}
	for j, i := range idx {
		if err := bt.Fill(i, out.Inputs[j*B*T:(j+1)*B*T], out.Targets[j*B*T:(j+1)*B*T]); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// simulate runs cfg's honest trainers and calls each with every round's
// contributions (honest ones and, for each kind in adversaries, one derived
// from trainer 0's) before the global step.
func simulate(tb testing.TB, cfg simConfig, adversaries []string, each func(*simRound)) {
	tb.Helper()
	mcfg := model.Config{Vocab: 256, Context: 64, Layers: 2, Heads: 2, Width: 64}
	e, err := tensor.New(tensor.WithThreads(1))
	if err != nil {
		tb.Fatal(err)
	}
	defer e.Close()
	corpus, err := data.DefaultCorpus(cfg.Seed, 2<<20)
	if err != nil {
		tb.Fatal(err)
	}
	ds, err := data.NewDataset(corpus.Tokens(), 256, 0.05)
	if err != nil {
		tb.Fatal(err)
	}
	numPages := data.NumPages(len(ds.Train), cfg.PageSize)
	global, err := model.New(mcfg, e)
	if err != nil {
		tb.Fatal(err)
	}
	global.Init(cfg.Seed)
	ch, err := optimizer.NewChunking(mcfg, 1024, 32)
	if err != nil {
		tb.Fatal(err)
	}
	type trainer struct {
		m   *model.GPT
		opt *optimizer.AdamW
		slc *optimizer.SparseLoCo
	}
	adam := optimizer.DefaultAdamW()
	adam.LR, adam.Warmup, adam.TotalSteps = 3e-3, 20, 0
	ts := make([]trainer, cfg.Trainers)
	for i := range ts {
		m, err := model.New(mcfg, e)
		if err != nil {
			tb.Fatal(err)
		}
		opt, err := optimizer.NewAdamW(adam, m.Views())
		if err != nil {
			tb.Fatal(err)
		}
		slc, err := optimizer.NewSparseLoCo(ch, optimizer.WithErrorDecay(0.95))
		if err != nil {
			tb.Fatal(err)
		}
		ts[i] = trainer{m, opt, slc}
	}
	val := Batch{Inputs: make([]int32, 8*cfg.B*cfg.T), Targets: make([]int32, 8*cfg.B*cfg.T), B: 8 * cfg.B, T: cfg.T}
	copy(val.Inputs, ds.Val[:len(val.Inputs)])
	copy(val.Targets, ds.Val[1:len(val.Targets)+1])
	rng := rand.New(rand.NewPCG(cfg.Seed, 1))
	d := make([]float32, ch.NumParams)
	agg := make([]float32, ch.NumParams)
	for r := range cfg.Rounds {
		sr := &simRound{R: r, Base: append([]float32(nil), global.Params...), Train: ds.Train}
		if sr.Loss, err = global.Forward(val.Inputs, val.Targets, val.B, val.T); err != nil {
			tb.Fatal(err)
		}
		var blobs [][]byte
		for i, t := range ts {
			pages := data.AssignPages(cfg.Seed, string(rune('a'+i)), uint64(r), numPages, cfg.PagesPerRound)
			bt, err := data.NewBatcher(ds.Train, cfg.PageSize, pages, cfg.B, cfg.T)
			if err != nil {
				tb.Fatal(err)
			}
			copy(t.m.Params, global.Params)
			in, tgt := make([]int32, cfg.B*cfg.T), make([]int32, cfg.B*cfg.T)
			for s := range cfg.H {
				if err := bt.Fill(s, in, tgt); err != nil {
					tb.Fatal(err)
				}
				if _, err := optimizer.InnerStep(t.m, t.opt, in, tgt, cfg.B, cfg.T); err != nil {
					tb.Fatal(err)
				}
			}
			for j := range d {
				d[j] = global.Params[j] - t.m.Params[j]
			}
			c := ch.NewCompressed()
			if err := t.slc.Compress(uint64(r), d, c); err != nil {
				tb.Fatal(err)
			}
			blob, err := ch.Encode(nil, c)
			if err != nil {
				tb.Fatal(err)
			}
			blobs = append(blobs, blob)
			dense := make([]float32, ch.NumParams)
			norm, err := Check(ch, blob, uint64(r), [32]byte{}, [32]byte{}, Params{OuterLR: 1}, ch.NewCompressed(), dense)
			if err != nil {
				tb.Fatal(err)
			}
			sr.Cs = append(sr.Cs, simContribution{Trainer: i, Kind: "honest", Dense: dense, Norm: norm, C: c, Pages: pages})
		}
		for _, kind := range adversaries {
			h := sr.Cs[0]
			a := simContribution{Trainer: 0, Kind: kind, Dense: make([]float32, len(h.Dense)), Pages: h.Pages}
			switch kind {
			case "zeros":
			case "tiny-noise":
				for j := range a.Dense {
					a.Dense[j] = float32(rng.NormFloat64() * 1e-6)
				}
			case "sign-flip":
				for j, v := range h.Dense {
					a.Dense[j] = -v
				}
			case "noise": // random coordinates, the honest values' magnitudes and random signs
				for _, v := range h.Dense {
					if v != 0 {
						k := rng.IntN(len(a.Dense))
						if rng.IntN(2) == 0 {
							v = -v
						}
						a.Dense[k] = v
					}
				}
			case "other-data": // trainer 1's honest update, claimed by trainer 0
				copy(a.Dense, sr.Cs[1].Dense)
			default:
				tb.Fatalf("unknown adversary %q", kind)
			}
			var ss float64
			for _, v := range a.Dense {
				ss += float64(v) * float64(v)
			}
			a.Norm = math.Sqrt(ss)
			sr.Cs = append(sr.Cs, a)
		}
		each(sr)
		if _, err := ch.Aggregate(agg, blobs, uint64(r)); err != nil {
			tb.Fatal(err)
		}
		if err := optimizer.OuterStep(global.Params, agg, 1); err != nil {
			tb.Fatal(err)
		}
	}
}

// rejections runs the loss test and the round screens on every
// contribution of a simulated round, with k of the trainer's batches and k
// random ones, and counts rejections per kind into rej (and totals into n).
func rejections(tb testing.TB, m *model.GPT, cfg simConfig, sr *simRound, p Params, k int, n, rej map[string]int) {
	tb.Helper()
	idx := func(first int) []int {
		out := make([]int, k)
		for j := range out {
			out[j] = (first + j*5) % cfg.H
		}
		return out
	}
	randPages := []int{(sr.R*7 + 3) % 100}
	ref, err := NewReference(m, sr.Base, batchOf(tb, sr.Train, cfg.PageSize, randPages, cfg.B, cfg.T, idx(0)))
	if err != nil {
		tb.Fatal(err)
	}
	cands := make([]Candidate, len(sr.Cs))
	for i, c := range sr.Cs {
		own := batchOf(tb, sr.Train, cfg.PageSize, c.Pages, cfg.B, cfg.T, idx(sr.R*3+i))
		res, err := Gauntlet(m, c.Dense, c.Norm, own, ref, p)
		if err != nil {
			tb.Fatal(err)
		}
		cands[i] = Candidate{Order: i, Score: res.Score, OK: res.OK}
	}
	flags := ScreenRound(nil, cands, DefaultScreen())
	for i, c := range sr.Cs {
		n[c.Kind]++
		if !cands[i].OK || flags[i].Reason != "" {
			rej[c.Kind]++
		}
	}
}

// TestHonestWorkPasses trains the default testnet's network in simulation
// and runs the loss test and the bar on every contribution: with the
// network's settings (half an outer step, two batches each) honest work is
// rarely rejected while zero, tiny-noise, sign-flipped and random-noise
// contributions are rejected every round. The whole outer step with one
// batch each, the rule before, is measured alongside: it rejected about
// one honest contribution in five once the loss had fallen. The simulation
// is deterministic (same bits on every machine), so the counts are exact.
func TestHonestWorkPasses(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a 4-trainer network for 20 rounds")
	}
	cfg := defaultSim()
	e, err := tensor.New(tensor.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m, err := model.New(model.Config{Vocab: 256, Context: 64, Layers: 2, Heads: 2, Width: 64}, e)
	if err != nil {
		t.Fatal(err)
	}
	adversaries := []string{"zeros", "tiny-noise", "sign-flip", "noise"}
	type setting struct {
		name string
		p    Params
		k    int
	}
	settings := []setting{
		{"network (half step, 2 batches)", Params{OuterLR: 1, StepScale: 0.5, GapTolerance: 0.5}, 2},
		{"before (whole step, 1 batch)", Params{OuterLR: 1, StepScale: 1, GapTolerance: 0.5}, 1},
	}
	n := make([]map[string]int, len(settings))
	rej := make([]map[string]int, len(settings))
	for i := range settings {
		n[i], rej[i] = map[string]int{}, map[string]int{}
	}
	var first, last float32
	simulate(t, cfg, adversaries, func(sr *simRound) {
		if sr.R == 0 {
			first = sr.Loss
		}
		last = sr.Loss
		for i, s := range settings {
			rejections(t, m, cfg, sr, s.p, s.k, n[i], rej[i])
		}
	})
	t.Logf("validation loss %.3f -> %.3f over %d rounds", first, last, cfg.Rounds)
	if !(last < first-1) {
		t.Fatalf("the simulated network did not train: loss %.3f -> %.3f", first, last)
	}
	for i, s := range settings {
		t.Logf("%s: honest rejected %d/%d; zeros %d/%d, tiny-noise %d/%d, sign-flip %d/%d, noise %d/%d", s.name,
			rej[i]["honest"], n[i]["honest"], rej[i]["zeros"], n[i]["zeros"], rej[i]["tiny-noise"], n[i]["tiny-noise"],
			rej[i]["sign-flip"], n[i]["sign-flip"], rej[i]["noise"], n[i]["noise"])
	}
	if got, of := rej[0]["honest"], n[0]["honest"]; got*40 > of {
		t.Errorf("honest contributions rejected %d of %d times (over 2.5%%)", got, of)
	}
	for _, kind := range adversaries {
		if got, of := rej[0][kind], n[0][kind]; got*20 < of*19 {
			t.Errorf("%s contributions rejected only %d of %d times (under 95%%)", kind, got, of)
		}
	}
	if rej[1]["honest"] <= rej[0]["honest"] {
		t.Errorf("the whole step with one batch rejected %d honest contributions, the network's setting %d: the comparison no longer shows why half a step is used",
			rej[1]["honest"], rej[0]["honest"])
	}
}
