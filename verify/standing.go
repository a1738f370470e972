package verify

import (
	"fmt"
	"math"
)

// Outcome is what a trainer's work came to in one round, for its standing.
type Outcome uint8

// Outcomes.
const (
	// Passed: the contribution passed every check and the loss test.
	Passed Outcome = iota
	// Missed: nothing announced in time, the blob was not served, the
	// validator had no time to score it, or it was computed from an older
	// state. Missing work earns nothing but is not misconduct.
	Missed
	// Rejected: the contribution failed the loss test or the round's bar.
	// Honest work does now and then (a noisy batch, a model near its
	// floor), so one rejection costs the round; a second in a row (rounds
	// it missed in between do not count) is a strike.
	Rejected
	// Failed: the contribution is malformed, non-finite, for another round,
	// oversized, a copy or a norm outlier, or the trainer equivocated:
	// nothing honest does that, so it is a strike at once.
	Failed
)

// Policy are the rules of Standing.Record.
type Policy struct {
	Alpha     float64 // EMA weight of the past score (see Smooth)
	BanRounds int     // rounds of the first ban; each further strike doubles it
	MaxBan    int     // longest ban in rounds
	Forgive   int     // consecutive passes that remove one strike
}

// DefaultPolicy bans for 2 rounds at the first strike, then 4, 8, ... up to
// 64, and forgives one strike per 16 consecutive passes.
func DefaultPolicy(alpha float64) Policy {
	return Policy{Alpha: alpha, BanRounds: 2, MaxBan: 64, Forgive: 16}
}

// Validate names the first bad field.
func (p Policy) Validate() error {
	switch {
	case !(p.Alpha >= 0 && p.Alpha < 1):
		return fmt.Errorf("verify: policy alpha %v out of range [0, 1)", p.Alpha)
	case p.BanRounds < 0 || p.MaxBan < p.BanRounds:
		return fmt.Errorf("verify: policy bans %d..%d out of order", p.BanRounds, p.MaxBan)
	case p.Forgive < 1:
		return fmt.Errorf("verify: policy forgive %d must be positive", p.Forgive)
	}
	return nil
}

// Standing is a validator's running record of one trainer.
//
// Every round the trainer is known (it announced now or before) folds a
// round score into Smoothed with Smooth: the contribution's score when it
// passed, 0 otherwise. So missing or late work is penalised by decay: each
// missed round multiplies the standing by alpha, and a peer that stops
// working falls below every peer that keeps working.
//
// A failure, or a second rejection in a row, is a strike: the trainer is
// banned (its announcements are not fetched, scored or put in a manifest)
// for BanRounds * 2^(strikes-1) rounds, at most MaxBan, counted from the
// round after; Forgive consecutive passes remove one strike. A strike is
// never softened by the trainer's past, so a peer that turns hostile is
// stopped within two rounds.
type Standing struct {
	Smoothed    float64 `json:"smoothed"`
	Strikes     int     `json:"strikes,omitempty"`
	BannedUntil uint64  `json:"banned_until,omitempty"` // first round it may contribute again
	Clean       int     `json:"clean,omitempty"`        // consecutive passes
	Rejections  int     `json:"rejections,omitempty"`   // consecutive rejections
	Failures    int     `json:"failures,omitempty"`     // strikes in total, for reports
	LastFailed  uint64  `json:"last_failed,omitempty"`  // round of the last strike (+1; 0: never)
}

// Banned reports whether the trainer may not contribute in round r.
func (s *Standing) Banned(r uint64) bool { return r < s.BannedUntil }

// Record folds round r's outcome (with the contribution's score when it
// passed) into the standing.
func (s *Standing) Record(r uint64, o Outcome, score float64, p Policy) {
	if o != Passed || math.IsNaN(score) || math.IsInf(score, 0) || score < 0 {
		score = 0
	}
	s.Smoothed = Smooth(s.Smoothed, score, p.Alpha)
	switch o {
	case Passed:
		s.Clean++
		s.Rejections = 0
		if s.Clean >= p.Forgive && s.Strikes > 0 {
			s.Strikes--
			s.Clean = 0
		}
	case Rejected:
		s.Clean = 0
		s.Rejections++
		if s.Rejections >= 2 {
			s.strike(r, p)
		}
	case Failed:
		s.strike(r, p)
	}
}

func (s *Standing) strike(r uint64, p Policy) {
	s.Clean = 0
	s.Rejections = 0
	s.Strikes++
	s.Failures++
	s.LastFailed = r + 1
	ban := p.MaxBan
	if s.Strikes-1 < 30 {
		ban = min(p.MaxBan, p.BanRounds<<(s.Strikes-1))
	}
	s.BannedUntil = max(s.BannedUntil, r+1+uint64(ban))
}
