package node

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/verify"
)

// reasonNotScored marks an entry the validator had no time to score: it is
// an abstention in the consensus, not a vote against.
const reasonNotScored = "not scored in time"

// reasonNotServed marks a blob the validator could not fetch.
const reasonNotServed = "blob not served"

// checked is a contribution that passed verify.Check, kept for the
// round-wide screens.
type checked struct {
	c    *optimizer.Compressed
	norm float64
}

func cloneCompressed(c *optimizer.Compressed) *optimizer.Compressed {
	return &optimizer.Compressed{Round: c.Round, Lo: slices.Clone(c.Lo), Hi: slices.Clone(c.Hi),
		Idx: slices.Clone(c.Idx), Codes: slices.Clone(c.Codes)}
}

// scoreBlob runs verify's checks and loss test on trainer p's blob for
// round r against the state ref.Base (with hash base); it uses the
// validator's scratch buffers, so one call at a time.
func (v *validatorRole) scoreBlob(p peer.ID, a *Announcement, blob []byte, r uint64, base Hash, own verify.Batch, ref verify.Reference) (ScoreEntry, checked, verify.Outcome) {
	e := ScoreEntry{Trainer: p.String(), CID: a.CID}
	norm, err := verify.Check(v.n.ch, blob, r, a.Base, base, v.params, v.comp, v.dense)
	switch {
	case errors.Is(err, verify.ErrStaleBase):
		e.Reason = err.Error()
		return e, checked{}, verify.Missed
	case err != nil:
		e.Reason = err.Error()
		return e, checked{}, verify.Failed
	}
	dec := checked{c: cloneCompressed(v.comp), norm: norm}
	res, err := verify.Gauntlet(v.eval, v.dense, norm, own, ref, v.params)
	if err != nil {
		e.Reason = err.Error()
		return e, dec, verify.Missed // the validator's failure, not the trainer's
	}
	e.Score, e.OK, e.Reason, e.DOwn, e.DRand = res.Score, res.OK, res.Reason, res.DOwn(), res.DRand()
	if !res.OK {
		return e, dec, verify.Rejected
	}
	return e, dec, verify.Passed
}

// verdict records a contribution that is not scored (banned, oversized, not
// served) with the reason and the outcome for the trainer's standing.
func (v *validatorRole) verdict(vr *valRound, p peer.ID, reason string, o verify.Outcome) {
	cid := ""
	if a := vr.anns[p]; a != nil {
		cid = a.CID
	}
	vr.results[p] = ScoreEntry{Trainer: p.String(), CID: cid, Reason: reason}
	vr.outcome[p] = o
}

// screenRound runs, at the scoring deadline, the checks that need the whole
// round: equivocation (more than one blob announced), then verify's
// round-wide screens (copies, norm outliers, the score bar). A contribution
// failing one is rejected and its trainer takes a strike.
func (v *validatorRole) screenRound(r uint64, vr *valRound) {
	t0 := time.Now()
	defer func() { v.n.metrics.observe(phaseScreen, time.Since(t0)) }()
	for p, k := range vr.extra {
		if vr.anns[p] != nil {
			v.verdict(vr, p, fmt.Sprintf("equivocation: %d more blobs announced in the round", k), verify.Failed)
			delete(vr.decoded, p)
		}
	}
	ids := make([]peer.ID, 0, len(vr.results))
	for p := range vr.results {
		ids = append(ids, p)
	}
	slices.Sort(ids)
	cands := make([]verify.Candidate, len(ids))
	for i, p := range ids {
		e := vr.results[p]
		cands[i] = verify.Candidate{Order: vr.order[p], Score: e.Score, OK: e.OK}
		if d, ok := vr.decoded[p]; ok {
			cands[i].C, cands[i].Norm = d.c, d.norm
		}
	}
	for i, f := range verify.ScreenRound(v.n.ch, cands, v.screen) {
		if f.Reason == "" {
			continue
		}
		p := ids[i]
		e := vr.results[p]
		e.OK, e.Score, e.Reason = false, 0, f.Reason
		vr.results[p], vr.outcome[p] = e, f.Outcome
		v.n.log.Info("contribution rejected", "round", r, "trainer", p, "reason", f.Reason)
	}
}

// record folds round r's outcome into trainer id's standing and returns
// its smoothed score.
func (v *validatorRole) record(r uint64, id string, o verify.Outcome, score float64) float64 {
	st := v.book.Standing[id]
	if st == nil {
		st = &verify.Standing{}
		v.book.Standing[id] = st
	}
	strikes := st.Strikes
	st.Record(r, o, score, v.policy)
	if st.Strikes > strikes {
		v.n.log.Info("trainer banned", "round", r, "trainer", id, "strikes", st.Strikes, "until", st.BannedUntil)
	}
	return st.Smoothed
}

// zeroStanding sets trainer id's smoothed score to 0 (a failed replay
// challenge; replay's ledger keeps it out of manifests).
func (v *validatorRole) zeroStanding(id string) {
	st := v.book.Standing[id]
	if st == nil {
		st = &verify.Standing{}
		v.book.Standing[id] = st
	}
	st.Smoothed = 0
}
