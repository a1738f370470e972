package node

import (
	"cmp"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify"
)

// Multi-validator consensus. Every validator scores the round's
// contributions and publishes its signed score vector at ScoreAt; the
// validator that composes the manifest (the lead, or a fallback) embeds the
// signed vectors it holds (its own included) in the manifest and lists the
// contributions that pass the consensus over them (consensusPassed in
// manifest_choice.go: validators holding more than half of the total stake
// passed the trainer's contribution with that CID; a validator whose vector
// is missing votes 0), provided it holds the blob with the CID it saw
// announced and found it well formed itself (verify.Check), and replay does
// not exclude the trainer; they are ranked by consensus score (then peer ID)
// up to MaxContributions. Every peer re-runs the rule on the embedded
// vectors (checkChoice), so a dishonest composer cannot list what the
// validators did not pass. So a dishonest validator with less than half of
// the stake cannot pass a contribution the others reject, even one they had
// no time to score, nor keep out one they pass unless it composes. (Safety
// first: an honest contribution that only a minority of the stake had time
// to score waits for a later round.)
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
	if len(vr.vectors) >= len(v.n.gen.Validators) {
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

// heldScores is a validator's score vector and the signed envelope it
// came in.
type heldScores struct {
	s   *Scores
	env *p2p.Envelope
}

// embedded picks the vectors a manifest embeds: those the composer holds,
// in rank order, whose payload survives the manifest's encoding, up to
// maxEmbeddedScoreBytes (a vector left out only takes its stake's votes
// away).
func (v *validatorRole) embedded(vr *valRound) ([]SignedScores, []scoreVector) {
	g := v.n.gen
	type held struct {
		rank int
		h    heldScores
	}
	var hs []held
	for from, h := range vr.vectors {
		if rank := g.ValidatorRank(from); rank >= 0 {
			hs = append(hs, held{rank, h})
		}
	}
	slices.SortFunc(hs, func(a, b held) int { return cmp.Compare(a.rank, b.rank) })
	var signed []SignedScores
	var vecs []scoreVector
	size := 0
	for _, x := range hs {
		env := x.h.env
		if !embeddable(env.Payload) || size+len(env.Payload) > maxEmbeddedScoreBytes {
			continue
		}
		size += len(env.Payload)
		signed = append(signed, SignedScores{Validator: env.Sender.String(), Time: env.Timestamp,
			Sig: env.Signature, Payload: env.Payload})
		vecs = append(vecs, scoreVector{rank: x.rank, s: x.h.s})
	}
	return signed, vecs
}

// choose returns round r's contributions for the manifest, best first, and
// the signed score vectors they follow from.
func (v *validatorRole) choose(r uint64, vr *valRound) ([]peer.ID, []SignedScores) {
	signed, vecs := v.embedded(vr)
	t := newVoteTable(v.n.gen, vecs)
	v.recordAgreement(t, vr)
	var out []peer.ID
	for _, c := range t.passed() {
		if len(out) >= v.n.gen.Params.MaxContributions {
			break
		}
		p, err := peer.Decode(c.Trainer)
		if err != nil {
			continue
		}
		// The composer aggregates the blob it holds: the one announced to
		// it, decoded and checked by itself.
		if a := vr.anns[p]; a == nil || a.CID != c.CID {
			continue
		}
		if _, ok := vr.decoded[p]; !ok || vr.blobs[p] == nil || v.replayExcluded(p, r) {
			continue
		}
		out = append(out, p)
	}
	return out, signed
}

// recordAgreement folds, for each validator whose vector the composer
// holds, the fraction of its votes on the round's announced contributions
// that were on the consensus side (pass or reject) into its smoothed
// agreement: an honest validator stays near 1, one that publishes wrong
// scores falls towards 0 and is named in the status. (Its vote still counts
// by stake; agreement is for operators, not the rule.)
func (v *validatorRole) recordAgreement(t *voteTable, vr *valRound) {
	if len(t.entries) == 0 || len(vr.anns) == 0 {
		return
	}
	if v.book.Agreement == nil {
		v.book.Agreement = map[string]float64{}
	}
	agree := map[int]int{}
	for p, a := range vr.anns {
		s := t.consensus(p.String(), a.CID)
		for rank := range t.entries {
			if (t.vote(rank, p.String(), a.CID) > 0) == (s > 0) {
				agree[rank]++
			}
		}
	}
	for rank := range t.entries {
		id := v.n.gen.Validators[rank].Peer
		prev, seen := v.book.Agreement[id]
		if !seen {
			prev = 1
		}
		v.book.Agreement[id] = verify.Smooth(prev, float64(agree[rank])/float64(len(vr.anns)), v.policy.Alpha)
	}
}
