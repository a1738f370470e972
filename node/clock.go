package node

import (
	"time"
)

// Clock cuts time into rounds from the genesis start time. Round r covers
// [Start + r*Length, Start + (r+1)*Length); before Start it is round 0.
type Clock struct {
	Start  time.Time
	Length time.Duration
	Hyper  Hyper
}

// NewClock returns the clock of a genesis.
func NewClock(g *Genesis) Clock {
	return Clock{Start: g.Start, Length: g.Params.RoundLength(), Hyper: g.Params}
}

// Round is the round at time t.
func (c Clock) Round(t time.Time) uint64 {
	if t.Before(c.Start) {
		return 0
	}
	return uint64(t.Sub(c.Start) / c.Length)
}

// At is the time at fraction f of round r.
func (c Clock) At(r uint64, f float64) time.Time {
	return c.Start.Add(time.Duration(r)*c.Length + time.Duration(f*float64(c.Length)))
}

// RoundStart is the beginning of round r.
func (c Clock) RoundStart(r uint64) time.Time { return c.At(r, 0) }

// AnnounceBy is the deadline of round r's announcements.
func (c Clock) AnnounceBy(r uint64) time.Time { return c.At(r, c.Hyper.AnnounceBy) }

// ScoreAt is when validators publish round r's scores.
func (c Clock) ScoreAt(r uint64) time.Time { return c.At(r, c.Hyper.ScoreAt) }

// ManifestAt is when the validator of lead rank k publishes round r's
// manifest if none has arrived by then.
func (c Clock) ManifestAt(r uint64, rank int) time.Time {
	return c.At(r, c.Hyper.ManifestAt+float64(rank)*c.Hyper.FallbackStep)
}

// Phase names the part of a round a time falls in.
func (c Clock) Phase(t time.Time) string {
	r := c.Round(t)
	switch {
	case t.Before(c.Start):
		return "waiting"
	case t.Before(c.AnnounceBy(r)):
		return "train"
	case t.Before(c.ScoreAt(r)):
		return "validate"
	case t.Before(c.ManifestAt(r, 0)):
		return "score"
	default:
		return "apply"
	}
}
