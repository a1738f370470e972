package node

import (
	"cmp"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/verify"
)

// Multi-validator consensus. Every validator scores the round's
// contributions and publishes its score vector at ScoreAt; the validator
// that composes the manifest (the lead, or a fallback) takes, for each
// announced contribution, the stake-weighted median (verify.Consensus) of
// the votes of every validator whose score vector reached it: a
// validator's vote is its score when it passed the contribution with the
// CID the composer saw, and 0 otherwise (rejected, another CID of the
// trainer, not scored in time, not in its vector). A validator whose vector
// did not arrive (down, late) does not vote. A contribution enters the
// manifest when its consensus score is positive, i.e. validators with more
// than half of the voting stake passed it, and the composer holds the blob
// and found it well formed itself (verify.Check); they are ranked by
// consensus score (then peer ID) up to MaxContributions. So a dishonest
// validator with less than half of the voting stake cannot pass a
// contribution the others reject, even one they had no time to score, nor
// keep out one they pass. (Safety first: an honest contribution that only
// a minority of the voting stake had time to score waits for a later round.)
//
// Timing: the composer waits at ManifestAt until it holds the vectors of
// every validator, at most until ManifestAt + FallbackStep/4, so that a
// validator that publishes a little late still counts while the next
// fallback (ManifestAt + FallbackStep) still sees the manifest in time.

// manifestAt is when this validator may compose round r's manifest, and
// whether it should still wait for other validators' scores.
func (v *validatorRole) manifestAt(now time.Time, r uint64, vr *valRound) (time.Time, bool) {
	c := v.n.clock
	at := c.ManifestAt(r, v.rank)
	if len(vr.others)+1 >= len(v.n.gen.Validators) {
		return at, false
	}
	limit := at.Add(time.Duration(c.Hyper.FallbackStep / 4 * float64(c.Length)))
	if now.Before(limit) {
		if now.Before(at) {
			return at, true
		}
		return limit, true
	}
	return at, false
}

// votes gathers the votes on trainer p's announced contribution of every
// validator whose score vector the composer holds (itself included), and
// the rank of the validator of each.
func (v *validatorRole) votes(vr *valRound, p peer.ID) ([]verify.Vote, []int) {
	g := v.n.gen
	a := vr.anns[p]
	var out []verify.Vote
	var ranks []int
	vote := func(rank int, entries []ScoreEntry, e *ScoreEntry) {
		if rank < 0 || rank >= len(g.Validators) {
			return
		}
		if e == nil {
			for i := range entries {
				if entries[i].Trainer == p.String() {
					e = &entries[i]
					break
				}
			}
		}
		s := 0.0
		if e != nil && e.OK && e.CID == a.CID {
			s = e.Score
		}
		out = append(out, verify.Vote{Score: s, Stake: g.Validators[rank].Stake})
		ranks = append(ranks, rank)
	}
	if e, ok := vr.results[p]; ok {
		vote(v.rank, nil, &e)
	} else {
		vote(v.rank, nil, &ScoreEntry{})
	}
	for from, s := range vr.others {
		vote(g.ValidatorRank(from), s.Entries, nil)
	}
	return out, ranks
}

// choose returns round r's contributions for the manifest, best first.
func (v *validatorRole) choose(r uint64, vr *valRound) []peer.ID {
	type cand struct {
		p peer.ID
		s float64
	}
	var cs []cand
	agree, total := map[int]int{}, map[int]int{}
	for p := range vr.anns {
		votes, ranks := v.votes(vr, p)
		s := verify.Consensus(votes)
		for i, vote := range votes {
			total[ranks[i]]++
			if (vote.Score > 0) == (s > 0) {
				agree[ranks[i]]++
			}
		}
		if _, ok := vr.decoded[p]; !ok || vr.blobs[p] == nil || v.replayExcluded(p, r) {
			continue
		}
		if s > 0 {
			cs = append(cs, cand{p, s})
		}
	}
	v.recordAgreement(agree, total)
	slices.SortFunc(cs, func(a, b cand) int {
		if c := cmp.Compare(b.s, a.s); c != 0 {
			return c
		}
		return strings.Compare(a.p.String(), b.p.String())
	})
	// Two trainers with the same blob: the screens reject the later one;
	// should both still pass, neither goes in.
	byCID := map[string]int{}
	for _, c := range cs {
		byCID[vr.anns[c.p].CID]++
	}
	out := make([]peer.ID, 0, len(cs))
	for _, c := range cs {
		if byCID[vr.anns[c.p].CID] == 1 && len(out) < v.n.gen.Params.MaxContributions {
			out = append(out, c.p)
		}
	}
	return out
}

// recordAgreement folds, for each validator that voted this round, the
// fraction of its votes on the consensus side (pass or reject) into its
// smoothed agreement: an honest validator stays near 1, one that publishes
// wrong scores falls towards 0 and is named in the status. (Its vote still
// counts by stake; agreement is for operators, not the rule.)
func (v *validatorRole) recordAgreement(agree, total map[int]int) {
	if v.book.Agreement == nil {
		v.book.Agreement = map[string]float64{}
	}
	for rank, n := range total {
		id := v.n.gen.Validators[rank].Peer
		prev, seen := v.book.Agreement[id]
		if !seen {
			prev = 1
		}
		v.book.Agreement[id] = verify.Smooth(prev, float64(agree[rank])/float64(n), v.policy.Alpha)
	}
}
