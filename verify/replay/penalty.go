package replay

import (
	"encoding/json"
	"fmt"
	"sort"
)

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

// ledgerJSON is the persisted form of a Ledger: its rule and one record per
// remembered trainer, sorted by trainer.
type ledgerJSON struct {
	Penalty  Penalty         `json:"penalty"`
	Offences []offenceRecord `json:"offences"`
}

type offenceRecord struct {
	Trainer string `json:"trainer"`
	Last    uint64 `json:"last"`
	Repeats int    `json:"repeats"`
	Until   uint64 `json:"until"`
}

// maxLedgerEntries bounds a decoded ledger.
const maxLedgerEntries = 1 << 16

// MarshalJSON encodes the ledger (for the node to persist with its state).
func (l *Ledger) MarshalJSON() ([]byte, error) {
	out := ledgerJSON{Penalty: l.p, Offences: make([]offenceRecord, 0, len(l.seen))}
	for k, o := range l.seen {
		out.Offences = append(out.Offences, offenceRecord{Trainer: k, Last: o.last, Repeats: o.repeats, Until: o.until})
	}
	sort.Slice(out.Offences, func(i, j int) bool { return out.Offences[i].Trainer < out.Offences[j].Trainer })
	return json.Marshal(out)
}

// UnmarshalJSON decodes what MarshalJSON wrote, checking every field.
func (l *Ledger) UnmarshalJSON(b []byte) error {
	var in ledgerJSON
	if err := json.Unmarshal(b, &in); err != nil {
		return fmt.Errorf("replay: ledger: %w", err)
	}
	if err := in.Penalty.Validate(); err != nil {
		return err
	}
	if len(in.Offences) > maxLedgerEntries {
		return fmt.Errorf("replay: ledger of %d entries exceeds %d", len(in.Offences), maxLedgerEntries)
	}
	seen := make(map[string]offence, len(in.Offences))
	for _, o := range in.Offences {
		if o.Trainer == "" || o.Repeats < 0 || o.Repeats > 1<<20 || o.Until < o.Last {
			return fmt.Errorf("replay: ledger entry %+v out of range", o)
		}
		seen[o.Trainer] = offence{last: o.Last, repeats: o.Repeats, until: o.Until}
	}
	l.p, l.seen = in.Penalty, seen
	return nil
}
