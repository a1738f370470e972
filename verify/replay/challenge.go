package replay

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
)

// Policy is how often validators challenge. Every validator applies it on
// its own to every trainer with a commitment in the round.
type Policy struct {
	// Rate is the probability that a validator challenges a given trainer in
	// a round (1: always).
	Rate float64
	// Checks is s, the number of steps checked per challenged trainer, each
	// drawn independently and uniformly from [0, H).
	Checks int
}

// DefaultPolicy: each validator challenges a quarter of the trainers each
// round, one step each. See the package documentation for the soundness this
// gives and why.
func DefaultPolicy() Policy { return Policy{Rate: 0.25, Checks: 1} }

// Validate names the first bad field.
func (p Policy) Validate() error {
	if !(p.Rate >= 0 && p.Rate <= 1) {
		return fmt.Errorf("replay: challenge rate %g out of range [0, 1]", p.Rate)
	}
	if p.Checks < 1 || p.Checks > 64 {
		return fmt.Errorf("replay: checks %d out of range [1, 64]", p.Checks)
	}
	return nil
}

// Escape is the probability that a trainer who faked a fraction f of its
// steps passes a challenge of s independent uniform checks: (1-f)^s.
func Escape(f float64, s int) float64 { return math.Pow(1-f, float64(s)) }

// Challenge asks a trainer to open and justify inner step Step of its round.
type Challenge struct {
	Round      uint64
	Trainer    string     // the trainer's peer ID
	Commitment Commitment // as announced
	Step       int        // j in [0, Commitment.Steps): state j -> state j+1
	// Prev, when the validator knows it, is the trainer's commitment of the
	// last round it contributed to before this one: this round's start
	// must be Prev's carry, or the reset state (zero moments and error
	// feedback, AdamW step 0). Nil skips that link (first contribution, or
	// a validator that joined later).
	Prev *Commitment
}

// Derive decides, from beacon (randomness fixed after every commitment of
// the round was out, e.g. the hash of the round's manifest or published
// scores), whether validator challenges trainer in round, and if so returns
// p.Checks challenges. Selection hashes (round, beacon, validator, trainer);
// steps also hash the commitment, so no trainer can predict either before
// committing, and validators' choices are independent. Everything is SHA-256
// of length-prefixed fields, the same on every machine.
func Derive(beacon []byte, round uint64, validator, trainer string, c Commitment, p Policy) ([]Challenge, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	if c.Steps < 1 || c.Steps > MaxSteps {
		return nil, fmt.Errorf("replay: commitment of %d steps out of range [1, %d]", c.Steps, MaxSteps)
	}
	if len(beacon) < 16 {
		return nil, fmt.Errorf("replay: beacon of %d bytes is too short to be unpredictable", len(beacon))
	}
	base := func(tag string) []byte {
		b := append([]byte(nil), tag...)
		b = binary.LittleEndian.AppendUint64(b, round)
		for _, f := range [][]byte{beacon, []byte(validator), []byte(trainer)} {
			b = binary.LittleEndian.AppendUint32(b, uint32(len(f)))
			b = append(b, f...)
		}
		return b
	}
	sel := sha256.Sum256(base(tagSelect))
	if !below(binary.LittleEndian.Uint64(sel[:]), p.Rate) {
		return nil, nil
	}
	out := make([]Challenge, p.Checks)
	stepBase := base(tagStep)
	stepBase = append(stepBase, c.Root[:]...)
	stepBase = binary.LittleEndian.AppendUint32(stepBase, uint32(c.Steps))
	for k := range out {
		out[k] = Challenge{Round: round, Trainer: trainer, Commitment: c, Step: uniform(stepBase, k, c.Steps)}
	}
	return out, nil
}

// below reports whether u, uniform on 64 bits, falls in the first rate of
// its range, on its top 53 bits (exact in float64).
func below(u uint64, rate float64) bool {
	return float64(u>>11) < rate*(1<<53)
}

// uniform draws from [0, n) without bias, by rejection, from SHA-256 of
// base | u32 k | u32 attempt.
func uniform(base []byte, k, n int) int {
	limit := math.MaxUint64 - math.MaxUint64%uint64(n) // accept u < limit
	for attempt := uint32(0); ; attempt++ {
		b := binary.LittleEndian.AppendUint32(append([]byte(nil), base...), uint32(k))
		b = binary.LittleEndian.AppendUint32(b, attempt)
		h := sha256.Sum256(b)
		if u := binary.LittleEndian.Uint64(h[:]); u < limit {
			return int(u % uint64(n))
		}
	}
}

// ResetCommitment stands for "no previous round" in Challenge.Prev: its
// carry is the reset state's (zero moments and error feedback of n values,
// AdamW step 0), so a trainer that declares it carries nothing must start
// from exactly that.
func ResetCommitment(n int) *Commitment {
	z := VectorDigest(make([]float32, n))
	return &Commitment{Steps: 1, Carry: Digests{M: z, V: z, EF: z}.Carry()}
}
