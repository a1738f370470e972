package node

import (
	"cmp"
	"math"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
)

// rejectionKind sorts a verdict's reason into the kinds the dashboard
// counts. The reasons come from package verify and the validator role.
func rejectionKind(reason string) string {
	r := strings.ToLower(reason)
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(r, x) {
				return true
			}
		}
		return false
	}
	switch {
	case strings.TrimSpace(r) == "":
		return "unexplained" // a validator that gives no reason
	case has("replay:"):
		return "replay" // failed or dodged a proof-of-work challenge
	case has("copied", "duplicate"):
		return "copied"
	case has("base state", "blob for round"):
		return "stale"
	case has("non-finite", "not finite", "norm"):
		return "poisoned"
	case has("no improvement", "improves less"):
		return "unhelpful"
	case has("not served"):
		return "unavailable"
	case has("not scored in time"):
		return "late"
	}
	return "malformed"
}

// currentScores are the smoothed scores: this validator's own, else, over
// the validators, the mean of the latest smoothed score each published for
// the trainer in the kept rounds (a round's scores name only the trainers
// that contributed to it).
func (d *dashState) currentScores(n *Node) map[string]float64 {
	if n.va != nil {
		return n.va.scoresSnapshot()
	}
	type key struct {
		v       peer.ID
		trainer string
	}
	latest := map[key]float64{}
	for _, r := range d.keptRounds() {
		for v, s := range d.scores[r] {
			for _, e := range s.Entries {
				if !math.IsNaN(e.Smoothed) && !math.IsInf(e.Smoothed, 0) {
					latest[key{v, e.Trainer}] = e.Smoothed
				}
			}
		}
	}
	sum, cnt := map[string]float64{}, map[string]float64{}
	for k, s := range latest {
		sum[k.trainer] += s
		cnt[k.trainer]++
	}
	for k := range sum {
		sum[k] /= cnt[k]
	}
	return sum
}

// keptRounds lists the rounds with scores, oldest first.
func (d *dashState) keptRounds() []uint64 {
	rs := make([]uint64, 0, len(d.scores))
	for r := range d.scores {
		rs = append(rs, r)
	}
	slices.Sort(rs)
	return rs
}

// scoreTable is one validator's verdicts per trainer and round.
func (d *dashState) scoreTable(n *Node) *ScoreTable {
	var src peer.ID
	if n.va != nil {
		src = n.p2p.ID()
	} else {
		best := -1
		for _, byVal := range d.scores {
			for v := range byVal {
				if rk := n.gen.ValidatorRank(v); rk >= 0 && (best < 0 || rk < best) {
					best, src = rk, v
				}
			}
		}
		if best < 0 {
			return nil
		}
	}
	t := &ScoreTable{Validator: src.String()}
	rows := map[string]*ScoreRow{}
	for _, r := range d.keptRounds() {
		s := d.scores[r][src]
		if s == nil {
			continue
		}
		col := len(t.Rounds)
		t.Rounds = append(t.Rounds, r)
		for _, e := range s.Entries {
			row := rows[e.Trainer]
			if row == nil {
				if len(rows) == dashTrainers {
					continue
				}
				row = &ScoreRow{Trainer: e.Trainer}
				rows[e.Trainer] = row
			}
			for len(row.Cells) < col {
				row.Cells = append(row.Cells, nil)
			}
			c := &ScoreCell{Score: e.Score, OK: e.OK}
			if !e.OK {
				c.Kind, c.Reason = rejectionKind(e.Reason), e.Reason
			}
			row.Cells = append(row.Cells, c)
			row.Smoothed = e.Smoothed
		}
	}
	if len(t.Rounds) == 0 {
		return nil
	}
	for _, row := range rows {
		for len(row.Cells) < len(t.Rounds) {
			row.Cells = append(row.Cells, nil)
		}
		t.Rows = append(t.Rows, *row)
	}
	slices.SortFunc(t.Rows, func(a, b ScoreRow) int {
		if c := cmp.Compare(b.Smoothed, a.Smoothed); c != 0 {
			return c
		}
		return strings.Compare(a.Trainer, b.Trainer)
	})
	return t
}

// agreement compares the validators' verdicts on the contributions that
// several of them scored; nil when fewer than two validators published.
func (d *dashState) agreement() *Agreement {
	type tally struct{ n, agree int }
	per := map[peer.ID]*tally{}
	a := &Agreement{}
	for _, r := range d.keptRounds() {
		byVal := d.scores[r]
		if len(byVal) < 2 {
			continue
		}
		type verdict struct {
			v     peer.ID
			ok    bool
			score float64
		}
		byTrainer := map[string][]verdict{}
		for v, s := range byVal {
			for _, e := range s.Entries {
				if e.Reason == "not scored in time" {
					continue // no verdict
				}
				sc := e.Score
				if !e.OK {
					sc = 0 // as published: a rejected contribution scores 0
				}
				byTrainer[e.Trainer] = append(byTrainer[e.Trainer], verdict{v, e.OK, sc})
			}
		}
		ra := RoundAgreement{Round: r, Validators: len(byVal)}
		unanimous := 0
		for _, vs := range byTrainer {
			if len(vs) < 2 {
				continue
			}
			ra.Trainers++
			oks, lo, hi := 0, math.Inf(1), math.Inf(-1)
			for _, x := range vs {
				if x.ok {
					oks++
				}
				lo, hi = min(lo, x.score), max(hi, x.score)
			}
			if oks == 0 || oks == len(vs) {
				unanimous++
			}
			if !math.IsNaN(hi - lo) {
				ra.MaxSpread = max(ra.MaxSpread, hi-lo)
			}
			majority := 2*oks >= len(vs) // ties count as accepted
			for _, x := range vs {
				t := per[x.v]
				if t == nil {
					t = &tally{}
					per[x.v] = t
				}
				t.n++
				if x.ok == majority {
					t.agree++
				}
			}
		}
		if ra.Trainers > 0 {
			ra.Unanimous = float64(unanimous) / float64(ra.Trainers)
		}
		a.Rounds = append(a.Rounds, ra)
	}
	if len(a.Rounds) == 0 {
		return nil
	}
	for v, t := range per {
		va := ValidatorAgreement{Validator: v.String(), Verdicts: t.n}
		if t.n > 0 {
			va.Agree = float64(t.agree) / float64(t.n)
		}
		a.Validators = append(a.Validators, va)
	}
	slices.SortFunc(a.Validators, func(x, y ValidatorAgreement) int { return strings.Compare(x.Validator, y.Validator) })
	return a
}
