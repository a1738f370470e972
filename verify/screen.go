package verify

import (
	"fmt"
	"math"
	"slices"

	"github.com/trinity-net/trinity/optimizer"
)

// Screen holds the thresholds of the round-wide screens a validator runs
// once every contribution of a round is scored (ScreenRound). They are
// fixed by this build, so every validator of a network applies the same.
type Screen struct {
	CopyCosine   float64 // contributions this similar (or more) are copies
	NormOutlier  float64 // norms above this many times the round's median fail
	MinScoreFrac float64 // passing scores below this fraction of the round's median fail
	MinRound     int     // the median screens need this many contributions
}

// DefaultScreen: a copy is cosine >= 0.95 (honest pairs measure well below,
// docs/verification.md), an outlier norm is 8 times the median, and a
// contribution earning less than a tenth of the median passing score is
// free-riding, from 3 contributions on.
func DefaultScreen() Screen {
	return Screen{CopyCosine: 0.95, NormOutlier: 8, MinScoreFrac: 0.1, MinRound: 3}
}

// Candidate is one contribution of a round as the screens see it.
type Candidate struct {
	Order int                   // when its announcement arrived (lower: earlier)
	C     *optimizer.Compressed // nil when the blob did not pass Check
	Norm  float64               // from Check
	Score float64               // from Gauntlet
	OK    bool                  // passed Check and Gauntlet
}

// Flag is a screen's verdict on one candidate: Reason is "" when it passes;
// otherwise Outcome is Failed (a copy, a norm outlier) or Rejected (under
// the bar).
type Flag struct {
	Reason  string
	Outcome Outcome
}

// ScreenRound returns, for each candidate, whether and why it fails a
// round-wide screen. The screens, in order:
//
//  1. Copies: of two contributions with Cosine >= CopyCosine, the one
//     announced later is a copy of the other (both when they arrived at the
//     same Order). A copier must see its victim's announcement before it
//     can copy it, so the victim's arrives first at every validator.
//  2. Norm outliers: with at least MinRound decoded contributions that are
//     not copies, a norm above NormOutlier times their median. (Aggregation
//     also clips every norm to the median of a manifest's contributions, on
//     every peer.) A median moves only when half of the contributions are
//     large, which needs half of the round's trainers.
//  3. The bar: with at least MinRound contributions still passing, a score
//     below MinScoreFrac times their median score, which catches
//     free-riders and noise that the loss test lets through by chance.
func ScreenRound(ch *optimizer.Chunking, cands []Candidate, s Screen) []Flag {
	why := make([]Flag, len(cands))
	for i := range cands {
		for j := i + 1; j < len(cands); j++ {
			a, b := &cands[i], &cands[j]
			if a.C == nil || b.C == nil {
				continue
			}
			cos := Cosine(ch, a.C, b.C)
			if cos < s.CopyCosine {
				continue
			}
			copied := Flag{fmt.Sprintf("copy: cosine %.4f with a contribution announced earlier", cos), Failed}
			if a.Order >= b.Order && why[i].Reason == "" {
				why[i] = copied
			}
			if b.Order >= a.Order && why[j].Reason == "" {
				why[j] = copied
			}
		}
	}
	// The median is over contributions that are not copies: copies of one
	// large update must not drag the reference up to it.
	var norms []float64
	for i, c := range cands {
		if c.C != nil && why[i].Reason == "" {
			norms = append(norms, c.Norm)
		}
	}
	if len(norms) >= s.MinRound {
		med := median(norms)
		for i, c := range cands {
			if c.C != nil && why[i].Reason == "" && c.Norm > s.NormOutlier*med {
				why[i] = Flag{fmt.Sprintf("norm %.4g is over %g times the round's median %.4g", c.Norm, s.NormOutlier, med), Failed}
			}
		}
	}
	var scores []float64
	for i, c := range cands {
		if c.OK && why[i].Reason == "" {
			scores = append(scores, c.Score)
		}
	}
	if len(scores) >= s.MinRound {
		med := median(scores)
		for i, c := range cands {
			if c.OK && why[i].Reason == "" && !(c.Score >= s.MinScoreFrac*med) {
				why[i] = Flag{fmt.Sprintf("score %.4g is under %g of the round's median %.4g", c.Score, s.MinScoreFrac, med), Rejected}
			}
		}
	}
	return why
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n == 0 {
		return math.NaN()
	}
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}
