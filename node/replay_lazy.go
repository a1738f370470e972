package node

// Lazy training: the cheap imitation of honest work that proof of training
// work exists to catch (issue 13). A lazy trainer computes only the even
// inner steps, at double the learning rate, and skips the odd ones (its
// AdamW step count still advances, so its schedule matches). Its
// contribution improves the loss about as much as an honest one, so the
// loss-based gauntlet passes it; replay fails it at every step. It still
// records and commits to the states it reached, and answers challenges
// from them, so it is caught by the check itself (StepMismatch), not by
// silence.

// WithLazyTraining makes a trainer lazy (experiments and tests only).
func WithLazyTraining() Option { return func(o *options) error { o.lazy = true; return nil } }

// innerStep runs inner step i of the round on the batch in/tgt and records
// the state after it. Train job.
func (tr *trainerRole) innerStep(i int, in, tgt []int32) (float32, error) {
	t := tr.t
	if tr.lazy && i%2 == 1 {
		t.Opt.Step++
		return tr.lastLoss, tr.replay.record()
	}
	lr := t.Opt.Config.LR
	if tr.lazy {
		t.Opt.Config.LR = 2 * lr
	}
	loss, err := t.StepBatch(in, tgt)
	t.Opt.Config.LR = lr
	if err != nil {
		return 0, err
	}
	tr.lastLoss = loss
	return loss, tr.replay.record()
}
