package node

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"testing"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/verify"
)

// modeBench is a round of three honest trainers' contributions and a
// validator to score them, without a network: each adversary mode's hooks
// are applied to a fourth trainer's honest work (or replace it) and the
// validator's own scoring and round screens must reject the result while
// passing the honest three.
type modeBench struct {
	n      *Node
	v      *validatorRole
	m      *model.GPT
	theta  []float32
	base   Hash
	toks   []int32
	hp     Hyper
	honest []modeContribution
}

type modeContribution struct {
	ann  *Announcement
	blob []byte
	own  verify.Batch
}

func newModeBench(t *testing.T) *modeBench {
	t.Helper()
	g := testGenesis()
	hp := g.Params
	e, err := tensor.New(tensor.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	ch, err := optimizer.NewChunking(g.Model, hp.ChunkSize, hp.TopK)
	if err != nil {
		t.Fatal(err)
	}
	n := &Node{gen: &g, ch: ch, cfg: Config{Role: RoleTrainer}, log: slog.New(slog.DiscardHandler)}
	m, err := model.New(g.Model, e)
	if err != nil {
		t.Fatal(err)
	}
	eval, err := model.New(g.Model, e)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(g.WeightSeed)
	c, err := data.DefaultCorpus(3, 1<<17)
	if err != nil {
		t.Fatal(err)
	}
	b := &modeBench{n: n, m: m, theta: append([]float32(nil), m.Params...), base: Hash(m.StateHash()), toks: c.Tokens(), hp: hp}
	b.v = &validatorRole{n: n, eval: eval, dense: make([]float32, ch.NumParams), comp: ch.NewCompressed(),
		params: hp.gauntletParams(), screen: verify.DefaultScreen()}
	for i := range 3 {
		cmp, own := b.train(t, i)
		b.honest = append(b.honest, b.contribution(t, cmp, own, 1.5))
	}
	return b
}

// batch is the i-th batch of B x T tokens after token offset off.
func (b *modeBench) batch(off, i int) verify.Batch {
	B, T := b.hp.Batch, b.hp.SeqLen
	bt := verify.Batch{Inputs: make([]int32, B*T), Targets: make([]int32, B*T), B: B, T: T}
	for s := range B {
		o := off + (i*B+s)*(T+1)
		copy(bt.Inputs[s*T:], b.toks[o:o+T])
		copy(bt.Targets[s*T:], b.toks[o+1:o+T+1])
	}
	return bt
}

// train runs trainer k's inner steps from theta on its own data and
// returns its compressed pseudo-gradient for round 1 and one of its batches.
func (b *modeBench) train(t *testing.T, k int) (*optimizer.Compressed, verify.Batch) {
	t.Helper()
	copy(b.m.Params, b.theta)
	opt, err := optimizer.NewAdamW(b.hp.AdamW, b.m.Views())
	if err != nil {
		t.Fatal(err)
	}
	off := k * 20000
	for i := range b.hp.InnerSteps {
		bt := b.batch(off, i)
		if _, err := optimizer.InnerStep(b.m, opt, bt.Inputs, bt.Targets, bt.B, bt.T); err != nil {
			t.Fatal(err)
		}
	}
	d := make([]float32, len(b.theta))
	for i := range d {
		d[i] = b.theta[i] - b.m.Params[i]
	}
	slc, err := optimizer.NewSparseLoCo(b.n.ch)
	if err != nil {
		t.Fatal(err)
	}
	c := b.n.ch.NewCompressed()
	if err := slc.Compress(1, d, c); err != nil {
		t.Fatal(err)
	}
	return c, b.batch(off, 3)
}

func (b *modeBench) contribution(t *testing.T, c *optimizer.Compressed, own verify.Batch, loss float32) modeContribution {
	t.Helper()
	blob, err := b.n.ch.Encode(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return modeContribution{ann: &Announcement{V: WireVersion, Round: 1, Base: b.base, CID: testCID(string(blob)), Size: int64(len(blob)), Loss: loss}, blob: blob, own: own}
}

// judge scores the honest contributions and x (announced last) as the
// validator does and returns each one's outcome after the round screens.
func (b *modeBench) judge(t *testing.T, x modeContribution) []verify.Outcome {
	t.Helper()
	all := append(append([]modeContribution(nil), b.honest...), x)
	out := make([]verify.Outcome, len(all))
	cands := make([]verify.Candidate, len(all))
	peers := testPeers(t, len(all), 90)
	ref, err := verify.NewReference(b.v.eval, b.theta, b.batch(100000, 0))
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range all {
		if c.ann.Size > b.n.maxBlob() {
			out[i] = verify.Failed // the validator does not fetch it
			cands[i] = verify.Candidate{Order: i}
			continue
		}
		e, dec, o := b.v.scoreBlob(peers[i], c.ann, c.blob, 1, b.base, c.own, ref)
		out[i] = o
		cands[i] = verify.Candidate{Order: i, C: dec.c, Norm: dec.norm, Score: e.Score, OK: e.OK}
	}
	for i, why := range verify.ScreenRound(b.n.ch, cands, b.v.screen) {
		if why.Reason != "" {
			out[i] = why.Outcome
		}
	}
	return out
}

// TestAdversaryModesRejected applies every trainer mode that needs no
// network (the copier's fetch and the spammer's gossip are covered by
// TestAdversaries; the lazy trainer is replay's) to a trainer's work and checks that the validator
// rejects it and still passes the three honest trainers.
func TestAdversaryModesRejected(t *testing.T) {
	b := newModeBench(t)
	ctx := context.Background()
	for _, kind := range AdversaryKinds(RoleTrainer) {
		if kind == AdversaryCopier || kind == AdversarySpam || kind == AdversaryLazy {
			continue // the lazy trainer passes the gauntlet by design: replay's tests catch it
		}
		t.Run(string(kind), func(t *testing.T) {
			a := &adversary{n: b.n, kind: kind, mode: adversaryModes()[kind], rng: rand.New(rand.NewPCG(1, 2)),
				seen: map[uint64][]seenAnn{}, wake: make(chan struct{}, 1)}
			var x modeContribution
			switch {
			case kind == AdversaryScaledCopier:
				// The copy of honest trainer 0's blob, as copyBlob makes it.
				c := b.n.ch.NewCompressed()
				if err := b.n.ch.Decode(b.honest[0].blob, c); err != nil {
					t.Fatal(err)
				}
				scaleCompressed(c, 1.25)
				_, own := b.train(t, 3)
				x = b.contribution(t, c, own, 1.5)
			case a.produces():
				blob, err := a.produceBlob(ctx, 1)
				if err != nil {
					t.Fatal(err)
				}
				_, own := b.train(t, 3)
				x = modeContribution{ann: &Announcement{V: WireVersion, Round: 1, Base: b.base, CID: testCID(string(blob)), Size: int64(len(blob))}, blob: blob, own: own}
			default:
				if kind == AdversaryStale { // its previous round's blob
					prev, _ := b.train(t, 3)
					prev.Round = 0
					old, err := b.n.ch.Encode(nil, prev)
					if err != nil {
						t.Fatal(err)
					}
					a.rewriteBlob(0, old)
				}
				c, own := b.train(t, 3)
				a.rewriteCompressed(1, c)
				x = b.contribution(t, c, own, 1.5)
				x.blob = a.rewriteBlob(1, x.blob)
				x.ann.Size = int64(len(x.blob))
				a.rewriteAnnouncement(x.ann)
			}
			got := b.judge(t, x)
			for i, o := range got[:3] {
				if o != verify.Passed {
					t.Errorf("honest trainer %d: outcome %d, want passed", i, o)
				}
			}
			// Rejected (the loss test or the bar: a strike when it repeats)
			// or failed (a strike at once); a wrong base is late work.
			ok := got[3] == verify.Failed || got[3] == verify.Rejected
			if kind == AdversaryWrongBase {
				ok = got[3] == verify.Missed
			}
			if !ok {
				t.Errorf("%s: outcome %d", kind, got[3])
			}
			t.Logf("%s: outcome %d", kind, got[3])
		})
	}
}

// TestDishonestValidatorScores checks the dishonest validator's published
// vector inverts every verdict, and that the consensus of two honest
// validators and it equals the honest verdicts.
func TestDishonestValidatorScores(t *testing.T) {
	p := testPeers(t, 2, 70)
	honest := []ScoreEntry{{Trainer: p[0].String(), CID: testCID("a"), Score: 0.2, OK: true}, {Trainer: p[1].String(), CID: testCID("b"), Reason: "copy"}}
	s := &Scores{Entries: honest}
	a := &adversary{kind: AdversaryValidator, mode: adversaryModes()[AdversaryValidator]}
	a.rewriteScores(s)
	if !honest[0].OK || honest[1].OK {
		t.Fatalf("the validator's own record was changed: %+v", honest)
	}
	if s.Entries[0].OK || !s.Entries[1].OK || s.Entries[1].Score <= honest[0].Score {
		t.Fatalf("published %+v: not inverted", s.Entries)
	}
	for i := range honest {
		score := func(e ScoreEntry) float64 {
			if e.OK {
				return e.Score
			}
			return 0
		}
		votes := []verify.Vote{{Score: score(honest[i]), Stake: 100}, {Score: score(honest[i]), Stake: 99}, {Score: score(s.Entries[i]), Stake: 98}}
		if got := verify.Consensus(votes); got != score(honest[i]) {
			t.Errorf("entry %d: consensus %v, want the honest %v", i, got, score(honest[i]))
		}
	}
}
