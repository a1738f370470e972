package verify

import (
	"cmp"
	"math"
	"slices"
)

// Vote is one validator's score of one contribution (0 when it rejected
// it) and the validator's stake.
type Vote struct {
	Score float64
	Stake uint64
}

// Consensus is the stake-weighted median of the votes, Yuma-style: the
// largest score s such that validators holding more than half of the voting
// stake gave s or more. Validators holding less than half of the stake can
// therefore neither raise a contribution above what the majority gave it
// nor push it below: one dishonest validator of three with equal stakes
// moves nothing. Non-finite scores count as 0; no votes give 0.
func Consensus(votes []Vote) float64 {
	var total float64
	vs := make([]Vote, 0, len(votes))
	for _, v := range votes {
		if v.Stake == 0 {
			continue
		}
		if math.IsNaN(v.Score) || math.IsInf(v.Score, 0) {
			v.Score = 0
		}
		vs = append(vs, v)
		total += float64(v.Stake)
	}
	slices.SortFunc(vs, func(a, b Vote) int { return cmp.Compare(b.Score, a.Score) })
	var support float64
	for _, v := range vs {
		support += float64(v.Stake)
		if support > total/2 {
			return v.Score
		}
	}
	return 0
}
