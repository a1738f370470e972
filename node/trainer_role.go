package node

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/p2p"
)

// trainerRole is the trainer's part of the state machine: once per round,
// H inner steps from the global state on the round's assigned pages, then
// SparseLoCo compression, blob, announcement.
type trainerRole struct {
	n       *Node
	t       *Trainer
	slc     *optimizer.SparseLoCo
	comp    *optimizer.Compressed
	d       []float32
	tried   triedRounds   // rounds attempted (trained or given up)
	lastDur time.Duration // how long the last round's work took

	replay   *trainerReplay // nil: the network does not use replay
	lastLoss float32
}

func newTrainerRole(n *Node) (*trainerRole, error) {
	hp := n.gen.Params
	t, err := NewTrainer(n.eng, n.ds, TrainConfig{Model: n.gen.Model, Seed: n.gen.WeightSeed, Batch: hp.Batch,
		SeqLen: hp.SeqLen, PageSize: hp.PageSize, AdamW: hp.AdamW, EvalBatches: hp.EvalBatches})
	if err != nil {
		return nil, err
	}
	slc, err := optimizer.NewSparseLoCo(n.ch, optimizer.WithErrorDecay(hp.ErrorDecay))
	if err != nil {
		return nil, err
	}
	tr := &trainerRole{n: n, t: t, slc: slc, comp: n.ch.NewCompressed(), d: make([]float32, n.ch.NumParams), tried: triedRounds{}}
	st := trainerState{EF: slc.ErrorBuffer(), M: t.Opt.M, V: t.Opt.V}
	ok, err := loadTrainerState(n.cfg.DataDir, &st)
	if err != nil {
		// The error-feedback buffer is an optimisation: losing it costs a
		// little progress, never correctness. Start it afresh.
		n.log.Warn("ignoring unreadable trainer state", "err", err)
		clear(st.EF)
		t.Opt.Reset()
	} else if ok {
		t.Opt.Step = st.AdamSt
		tr.tried[st.Round] = true // that round's blob is out (or lost); do not redo it
	}
	if tr.replay, err = newTrainerReplay(tr, st.Round, ok && err == nil); err != nil {
		return nil, err
	}
	return tr, nil
}

// tick starts the round's training when the node is ready for it.
func (tr *trainerRole) tick(ctx context.Context, now time.Time, r uint64) time.Time {
	n := tr.n
	c := n.clock
	start, deadline := c.RoundStart(r), c.AnnounceBy(r)
	if now.Before(c.Start) {
		return c.Start
	}
	if tr.replay.respond(ctx, r) {
		return deadline
	}
	if tr.tried[r] {
		return c.RoundStart(r + 1)
	}
	if n.busy != "" || n.catching || len(n.pending) > 0 {
		return deadline // an event (job done) wakes the loop before that
	}
	// Wait a little into the round for the previous manifest if it has not
	// been applied yet; past that, train on what we hold (a round without a
	// manifest leaves the state unchanged).
	grace := start.Add(c.Length / 10)
	switch {
	case n.next+1 < r:
		// Rounds behind (restarted, or missed manifests): training on this
		// state would be rejected; the next manifest triggers a catch-up.
		return c.RoundStart(r + 1)
	case n.next < r && now.Before(grace):
		return grace
	}
	if !now.Before(deadline) || (tr.lastDur > 0 && now.Add(tr.lastDur).After(deadline)) {
		tr.tried[r] = true
		// The estimate came from one round, perhaps a slow one: shrink it
		// so that a node that skipped tries again soon and re-measures.
		tr.lastDur = tr.lastDur * 3 / 4
		n.metrics.missed.Add(1)
		n.log.Info("missed round: not enough time left to train", "round", r, "needs", tr.lastDur.Round(time.Millisecond))
		n.emit(Event{Kind: EventMissed, Round: r})
		return c.RoundStart(r + 1)
	}
	tr.tried.mark(r)
	copy(tr.t.Model.Params, n.global.Params)
	base := n.hash
	n.contributionJob(ctx, "train", "contribution", r, deadline, func(ctx context.Context) (*Announcement, error) {
		a, err := tr.trainRound(ctx, r, base)
		if err != nil {
			tr.replay.abandon()
		}
		return a, err
	}, func(a *Announcement, took time.Duration, err error) {
		tr.lastDur = took
		if err == nil {
			n.lastLoss = a.Loss
		}
	})
	return deadline
}

// trainRound runs on the job goroutine and owns the trainer's buffers.
func (tr *trainerRole) trainRound(ctx context.Context, r uint64, base Hash) (*Announcement, error) {
	n := tr.n
	hp := n.gen.Params
	if n.adv.produces() {
		blob, err := n.adv.produceBlob(ctx, r)
		if err != nil {
			return nil, err
		}
		return tr.announceBlob(ctx, r, base, blob, 0)
	}
	// The derivation validators replay (replay.DataSpec): batch i of the
	// peer's pages for the round at inner step i.
	b, err := n.replaySpec().Data.RoundBatcher(n.p2p.ID().String(), r)
	if err != nil {
		return nil, fmt.Errorf("node: round %d batches: %w", r, err)
	}
	if err := tr.replay.begin(r); err != nil {
		return nil, err
	}
	t0 := time.Now()
	in := make([]int32, hp.Batch*hp.SeqLen)
	tgt := make([]int32, len(in))
	var sum float64
	ran := 0
	for i := range hp.InnerSteps {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("node: round %d: stopped after %d of %d inner steps in %v: %w", r, i, hp.InnerSteps, time.Since(t0).Round(time.Millisecond), err)
		}
		if err := b.Fill(i, in, tgt); err != nil {
			return nil, err
		}
		loss, err := tr.innerStep(i, in, tgt)
		if err != nil {
			return nil, err
		}
		sum += float64(loss)
		ran++
	}
	loss := float32(sum / float64(max(ran, 1)))
	if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
		return nil, fmt.Errorf("node: round %d: training diverged", r)
	}
	n.metrics.observe(phaseTrain, time.Since(t0))

	t0 = time.Now()
	global, local := n.global.Params, tr.t.Model.Params
	// global is not written while a job runs (one job at a time).
	for i := range tr.d {
		tr.d[i] = global[i] - local[i]
	}
	if err := tr.slc.Compress(r, tr.d, tr.comp); err != nil {
		return nil, err
	}
	n.adv.rewriteCompressed(r, tr.comp)
	blob, err := n.ch.Encode(nil, tr.comp)
	if err != nil {
		return nil, err
	}
	if err := tr.replay.commitRound(); err != nil {
		return nil, err
	}
	n.metrics.observe(phaseCompress, time.Since(t0))
	return tr.announceBlob(ctx, r, base, n.adv.rewriteBlob(r, blob), loss)
}

// announceBlob stores the round's blob, records the trainer state and
// announces the blob.
func (tr *trainerRole) announceBlob(ctx context.Context, r uint64, base Hash, blob []byte, loss float32) (*Announcement, error) {
	n := tr.n
	t0 := time.Now()
	// Store the blob before recording the error feedback: a crash between
	// the two loses this round's contribution, never folds it in twice.
	// Stored locally only: providing on the DHT can take seconds when
	// peers have gone, and the validator asks the announcer first anyway.
	c, err := n.p2p.Store().Put(blob, p2p.WithRound(r))
	if err != nil {
		return nil, fmt.Errorf("node: storing blob: %w", err)
	}
	if ctx.Err() != nil {
		return nil, fmt.Errorf("node: round %d: announcement deadline passed while storing (train+compress done %v after the round start)", r, t0.Sub(n.clock.RoundStart(r)).Round(time.Millisecond))
	}
	// The point of no return: from here the round is announced, and its
	// state is what the trainer carries.
	st := trainerState{Round: r, EF: tr.slc.ErrorBuffer(), M: tr.t.Opt.M, V: tr.t.Opt.V, AdamSt: tr.t.Opt.Step}
	if err := saveTrainerState(n.cfg.DataDir, st); err != nil {
		return nil, err
	}
	a := &Announcement{V: WireVersion, Round: r, Base: base, CID: c.String(), Size: int64(len(blob)), Loss: loss}
	if err := tr.replay.announce(a); err != nil {
		return nil, err
	}
	n.adv.rewriteAnnouncement(a)
	n.publish(context.WithoutCancel(ctx), p2p.TopicGradient, r, a)
	n.provideLater(ctx, blob, r)
	n.metrics.bytesOut.Add(int64(len(blob))) // served at least once, to the validator
	n.metrics.observe(phaseAnnounce, time.Since(t0))
	return a, nil
}
