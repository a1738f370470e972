package replay

import "fmt"

// Penalty is the rule every validator applies to failed challenges, so that
// all of them treat a trainer the same way.
type Penalty struct {
	// ExcludeRounds: after a failure in round r the trainer's score is zero
	// and its blob stays out of the manifest in round r and the next
	// ExcludeRounds rounds; each repeated failure within WatchRounds doubles
	// the exclusion (capped at 2^10 times).
	ExcludeRounds int
	// WatchRounds: for this many rounds after a failure every validator
	// challenges the trainer (Policy.Rate = 1) instead of sampling it.
	WatchRounds int
}

// DefaultPenalty excludes for 4 rounds (doubling on repeats) and watches for
// 32.
func DefaultPenalty() Penalty { return Penalty{ExcludeRounds: 4, WatchRounds: 32} }

// Validate names the first bad field.
func (p Penalty) Validate() error {
	if p.ExcludeRounds < 0 || p.ExcludeRounds > 1<<20 {
		return fmt.Errorf("replay: exclude rounds %d out of range [0, 2^20]", p.ExcludeRounds)
	}
	if p.WatchRounds < 0 || p.WatchRounds > 1<<20 {
		return fmt.Errorf("replay: watch rounds %d out of range [0, 2^20]", p.WatchRounds)
	}
	return nil
}

// Ledger remembers failed challenges across rounds. It is not safe for
// concurrent use (the node's state machine owns it). Validators feed it the
// failures they observe (their own checks, and others' signed verdicts if
// the node shares them); the node persists it with its own state.
type Ledger struct {
	p    Penalty
	seen map[string]offence
}

type offence struct {
	last    uint64 // round of the latest failure
	repeats int    // failures within WatchRounds of the previous one, minus 1
	until   uint64 // last excluded round
}

// NewLedger returns an empty ledger.
func NewLedger(p Penalty) (*Ledger, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &Ledger{p: p, seen: map[string]offence{}}, nil
}

// Fail records that trainer failed a challenge for round.
func (l *Ledger) Fail(trainer string, round uint64) {
	o, ok := l.seen[trainer]
	switch {
	case !ok:
		o = offence{}
	case round <= o.last:
		return // already counted (several validators, several checks)
	case round-o.last <= uint64(l.p.WatchRounds):
		o.repeats++
	default:
		o.repeats = 0
	}
	o.last = round
	o.until = max(o.until, round+uint64(l.p.ExcludeRounds)<<min(o.repeats, 10))
	l.seen[trainer] = o
}

// Excluded reports whether trainer's contribution for round gets score zero
// and stays out of the manifest.
func (l *Ledger) Excluded(trainer string, round uint64) bool {
	o, ok := l.seen[trainer]
	return ok && round >= o.last && round <= o.until
}

// Watched reports whether every validator must challenge trainer in round.
func (l *Ledger) Watched(trainer string, round uint64) bool {
	o, ok := l.seen[trainer]
	return ok && round >= o.last && round <= o.last+uint64(l.p.WatchRounds)
}

// Forget drops trainers whose last failure is older than before and whose
// exclusion and watch have both ended, bounding the ledger's memory.
func (l *Ledger) Forget(before uint64) {
	for k, o := range l.seen {
		if o.last < before && o.until < before && o.last+uint64(l.p.WatchRounds) < before {
			delete(l.seen, k)
		}
	}
}

// PolicyFor is the challenge policy for trainer in round: p, or rate 1 while
// the trainer is watched.
func (l *Ledger) PolicyFor(p Policy, trainer string, round uint64) Policy {
	if l.Watched(trainer, round) {
		p.Rate = 1
	}
	return p
}
