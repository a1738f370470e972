package node

import (
	"encoding/hex"
	"fmt"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/verify/replay"
)

// Replay wire payloads (networks whose genesis has params.replay). A round's
// challenge runs over gossip and the blob exchange:
//
//   - The trainer's Announcement carries its replay.Commitment (Replay, hex)
//     and the round whose carried state it started from (ReplayPrev).
//   - Once the round's manifest is out, its envelope's hash is the beacon:
//     each validator derives whom it challenges at which steps
//     (replay.Derive) and publishes a ReplayChallenge (topic
//     replay-challenge).
//   - The challenged trainer checks that the steps are the ones the beacon
//     gives, stores each replay.Response as a content-addressed blob and
//     publishes a ReplayResponse naming it (topic replay-response).
//   - The validator fetches the blob (bounded by replay.MaxResponseSize),
//     checks it, and publishes a ReplayVerdict for every failure (topic
//     replay-verdict), which every validator records in its ledger.
//
// Decoding is strict, like every payload of messages.go.

// ReplayChallenge asks Trainer to answer for Steps of its Round (sender:
// the challenging validator).
type ReplayChallenge struct {
	V       int    `json:"v"`
	Round   uint64 `json:"round"`
	Trainer string `json:"trainer"`
	Beacon  Hash   `json:"beacon"` // hash of the round's manifest envelope
	Steps   []int  `json:"steps"`
}

// ReplayResponse names the blob answering one challenged step (sender: the
// trainer).
type ReplayResponse struct {
	V         int    `json:"v"`
	Round     uint64 `json:"round"`
	Validator string `json:"validator"` // who challenged
	Step      int    `json:"step"`
	CID       string `json:"cid"`
	Size      int64  `json:"size"`
}

// ReplayVerdict reports a failed challenge (sender: the validator that
// checked it). Every validator records it: the consequences are the same
// everywhere.
type ReplayVerdict struct {
	V       int    `json:"v"`
	Round   uint64 `json:"round"`
	Trainer string `json:"trainer"`
	Step    int    `json:"step"`
	Reason  string `json:"reason"`
}

// maxReplayChecks bounds the steps of one challenge (replay.Policy allows
// at most 64).
const maxReplayChecks = 64

// checkReplay validates the announcement's replay fields, if any.
func (a *Announcement) checkReplay() error {
	if a.Replay == "" {
		if a.ReplayPrev != nil {
			return fmt.Errorf("replay_prev without a commitment")
		}
		return nil
	}
	if _, err := a.commitment(); err != nil {
		return err
	}
	if a.ReplayPrev != nil && *a.ReplayPrev >= a.Round {
		return fmt.Errorf("replay_prev %d is not before round %d", *a.ReplayPrev, a.Round)
	}
	return nil
}

// commitment decodes the announced replay commitment.
func (a *Announcement) commitment() (replay.Commitment, error) {
	var c replay.Commitment
	if len(a.Replay) != 2*replay.CommitmentSize {
		return c, fmt.Errorf("replay commitment of %d hex digits, want %d", len(a.Replay), 2*replay.CommitmentSize)
	}
	b, err := hex.DecodeString(a.Replay)
	if err != nil {
		return c, fmt.Errorf("replay commitment: %w", err)
	}
	if err := c.UnmarshalBinary(b); err != nil {
		return c, err
	}
	return c, nil
}

func encodeCommitment(c replay.Commitment) (string, error) {
	b, err := c.MarshalBinary()
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

// DecodeReplayChallenge parses and checks a challenge payload.
func DecodeReplayChallenge(b []byte) (*ReplayChallenge, error) {
	var c ReplayChallenge
	if err := decodeStrict(b, &c); err != nil {
		return nil, fmt.Errorf("node: replay challenge: %w", err)
	}
	if err := checkVersion(c.V); err != nil {
		return nil, fmt.Errorf("node: replay challenge: %w", err)
	}
	if _, err := peer.Decode(c.Trainer); err != nil {
		return nil, fmt.Errorf("node: replay challenge: bad trainer: %w", err)
	}
	if len(c.Steps) < 1 || len(c.Steps) > maxReplayChecks {
		return nil, fmt.Errorf("node: replay challenge: %d steps out of range [1, %d]", len(c.Steps), maxReplayChecks)
	}
	for _, j := range c.Steps {
		if j < 0 || j >= replay.MaxSteps {
			return nil, fmt.Errorf("node: replay challenge: step %d out of range", j)
		}
	}
	return &c, nil
}

// DecodeReplayResponse parses and checks a response payload.
func DecodeReplayResponse(b []byte) (*ReplayResponse, error) {
	var r ReplayResponse
	if err := decodeStrict(b, &r); err != nil {
		return nil, fmt.Errorf("node: replay response: %w", err)
	}
	if err := checkVersion(r.V); err != nil {
		return nil, fmt.Errorf("node: replay response: %w", err)
	}
	if _, err := peer.Decode(r.Validator); err != nil {
		return nil, fmt.Errorf("node: replay response: bad validator: %w", err)
	}
	if r.Step < 0 || r.Step >= replay.MaxSteps {
		return nil, fmt.Errorf("node: replay response: step %d out of range", r.Step)
	}
	if _, err := parseCID(r.CID); err != nil {
		return nil, fmt.Errorf("node: replay response: %w", err)
	}
	if r.Size < 1 || r.Size > 1<<36 {
		return nil, fmt.Errorf("node: replay response: size %d out of range", r.Size)
	}
	return &r, nil
}

// DecodeReplayVerdict parses and checks a verdict payload.
func DecodeReplayVerdict(b []byte) (*ReplayVerdict, error) {
	var v ReplayVerdict
	if err := decodeStrict(b, &v); err != nil {
		return nil, fmt.Errorf("node: replay verdict: %w", err)
	}
	if err := checkVersion(v.V); err != nil {
		return nil, fmt.Errorf("node: replay verdict: %w", err)
	}
	if _, err := peer.Decode(v.Trainer); err != nil {
		return nil, fmt.Errorf("node: replay verdict: bad trainer: %w", err)
	}
	if v.Step < 0 || v.Step >= replay.MaxSteps {
		return nil, fmt.Errorf("node: replay verdict: step %d out of range", v.Step)
	}
	if len(v.Reason) > maxReasonLen {
		return nil, fmt.Errorf("node: replay verdict: reason longer than %d", maxReasonLen)
	}
	return &v, nil
}
