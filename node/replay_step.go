package node

// innerStep runs inner step i of the round on the batch in/tgt, as the
// node's adversary mode (if any) says, and records the state after it. A
// step the mode skips (the lazy trainer of issue 13, AdversaryLazy) still
// advances the AdamW step count, so the schedule matches, and still gets
// its leaf in the commitment: the lazy trainer commits to the states it
// reached and answers challenges from them, so replay catches it by the
// check itself (step-mismatch), not by its silence. Train job.
func (tr *trainerRole) innerStep(i int, in, tgt []int32) (float32, error) {
	t := tr.t
	run, undo := tr.n.adv.innerStep(t.Opt, i, tr.n.gen.Params.InnerSteps)
	defer undo()
	if !run {
		t.Opt.Step++
		return tr.lastLoss, tr.replay.record()
	}
	loss, err := t.StepBatch(in, tgt)
	if err != nil {
		return 0, err
	}
	tr.lastLoss = loss
	return loss, tr.replay.record()
}
