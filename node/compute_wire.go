package node

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/attest"
	"github.com/trinity-net/trinity/verify/grail"
	"github.com/trinity-net/trinity/verify/replay"
)

// The compute market's wire. Gossip on TopicCapacity carries one byte of
// kind and an attest binary message (a signed CapacityRecord or
// Attestation). The request protocols (p2p request service) carry attest's
// binary messages for attestation, and versioned strict JSON for jobs.
const (
	// TopicCapacity is the gossip topic of capacity records and
	// attestations.
	TopicCapacity p2p.Topic = "capacity"

	reqRecord = "compute-record" // -> CapacityRecord
	reqCommit = "compute-commit" // Challenge -> Commitment
	reqOpen   = "compute-open"   // OpenRequest -> Opening
	reqJob    = "compute-job"    // JobRequest -> grail proof | TrainJobResult
	reqState  = "compute-state"  // StateRequest -> replay snapshot

	capacityKindRecord      byte = 1
	capacityKindAttestation byte = 2

	// MaxJobTokens bounds a generation job's prompt plus output.
	MaxJobTokens = 4096
	// MaxJobSteps bounds a training job's inner steps.
	MaxJobSteps = 256
	// maxJobPages bounds the pages a training job names.
	maxJobPages = 4096
)

// CapacityKey is the well-known DHT key every compute provider of network
// provides; what each offers is asked of it (reqRecord).
func CapacityKey(network p2p.NetworkID) string { return "/trinity-capacity/" + network.String() }

// capacityRound is the round capacity gossip is stamped with: the
// network's current round by the genesis clock, so that peers of the round
// protocol, which accept only a window of rounds, take it too (a compute
// host alone accepts any round).
func capacityRound(g *Genesis) uint64 { return NewClock(g).Round(time.Now()) }

// encodeCapacity wraps a record or an attestation for the capacity topic.
func encodeCapacity(kind byte, m interface{ MarshalBinary() ([]byte, error) }) ([]byte, error) {
	b, err := m.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return append([]byte{kind}, b...), nil
}

// decodeCapacity decodes and verifies a capacity-topic payload: exactly one
// of the results is non-nil.
func decodeCapacity(b []byte) (*attest.CapacityRecord, *attest.Attestation, error) {
	if len(b) < 1 {
		return nil, nil, errors.New("node: empty capacity message")
	}
	switch b[0] {
	case capacityKindRecord:
		var r attest.CapacityRecord
		if err := r.UnmarshalBinary(b[1:]); err != nil {
			return nil, nil, err
		}
		if err := r.Verify(); err != nil {
			return nil, nil, err
		}
		return &r, nil, nil
	case capacityKindAttestation:
		var a attest.Attestation
		if err := a.UnmarshalBinary(b[1:]); err != nil {
			return nil, nil, err
		}
		if err := a.Verify(); err != nil {
			return nil, nil, err
		}
		return nil, &a, nil
	}
	return nil, nil, fmt.Errorf("node: capacity message of kind %d", b[0])
}

// Job kinds.
const (
	JobGenerate = "generate"
	JobTrain    = "train"
)

// JobRequest leases a provider for one bounded job on the model whose state
// hash is Model.
//
// Generate: Tokens tokens after Prompt with the given sampling, proven with
// GRAIL under Beacon (fresh randomness of the client's, so that nothing
// could be prepared). Train: Steps inner steps (optimizer.InnerStep with the
// genesis's AdamW, batch and sequence length) from Model with fresh AdamW
// moments, step i on batch i of the given pages (data.NewBatcher).
type JobRequest struct {
	V           int     `json:"v"`
	Kind        string  `json:"kind"`
	Model       Hash    `json:"model"`
	Beacon      Hash    `json:"beacon,omitempty"`
	Prompt      []int32 `json:"prompt,omitempty"`
	Tokens      int     `json:"tokens,omitempty"`
	Temperature float32 `json:"temperature,omitempty"`
	TopK        int     `json:"top_k,omitempty"`
	Pages       []int   `json:"pages,omitempty"`
	Steps       int     `json:"steps,omitempty"`
}

// check validates the request's shape for a model of vocab tokens and
// context length ctxLen, and a training split of numPages pages.
func (j *JobRequest) check(vocab, ctxLen, numPages int) error {
	if err := checkVersion(j.V); err != nil {
		return err
	}
	switch j.Kind {
	case JobGenerate:
		if len(j.Prompt) < 1 || j.Tokens < 1 || len(j.Prompt)+j.Tokens > MaxJobTokens || len(j.Prompt)+j.Tokens-1 > ctxLen {
			return fmt.Errorf("node: generate job of %d prompt and %d new tokens: need both, within the context %d", len(j.Prompt), j.Tokens, ctxLen)
		}
		for _, t := range j.Prompt {
			if t < 0 || int(t) >= vocab {
				return fmt.Errorf("node: prompt token %d outside the vocabulary of %d", t, vocab)
			}
		}
		if math.IsNaN(float64(j.Temperature)) || j.Temperature < 0 || j.TopK < 0 || len(j.Pages) != 0 || j.Steps != 0 {
			return errors.New("node: generate job with bad sampling or training fields")
		}
	case JobTrain:
		if j.Steps < 1 || j.Steps > MaxJobSteps {
			return fmt.Errorf("node: train job of %d steps, want 1..%d", j.Steps, MaxJobSteps)
		}
		if len(j.Pages) < 1 || len(j.Pages) > maxJobPages {
			return fmt.Errorf("node: train job of %d pages, want 1..%d", len(j.Pages), maxJobPages)
		}
		for _, p := range j.Pages {
			if p < 0 || p >= numPages {
				return fmt.Errorf("node: page %d outside the training split's %d", p, numPages)
			}
		}
		if len(j.Prompt) != 0 || j.Tokens != 0 || j.Temperature != 0 || j.TopK != 0 {
			return errors.New("node: train job with generation fields")
		}
	default:
		return fmt.Errorf("node: unknown job kind %q", j.Kind)
	}
	return nil
}

func (j *JobRequest) sampling() grail.Sampling {
	return grail.Sampling{Temperature: j.Temperature, TopK: j.TopK}
}

// DecodeJobRequest decodes a job request strictly (shape only; the
// provider checks it against its model).
func DecodeJobRequest(b []byte) (*JobRequest, error) {
	var j JobRequest
	if err := decodeStrict(b, &j); err != nil {
		return nil, fmt.Errorf("node: decoding job request: %w", err)
	}
	if err := checkVersion(j.V); err != nil {
		return nil, err
	}
	return &j, nil
}

// StateDigests are one training state's replay.Digests on the wire.
type StateDigests struct {
	Params Hash   `json:"params"`
	M      Hash   `json:"m"`
	V      Hash   `json:"v"`
	EF     Hash   `json:"ef"`
	Step   uint64 `json:"step"`
}

func toStateDigests(d replay.Digests) StateDigests {
	return StateDigests{Params: d.Params, M: d.M, V: d.V, EF: d.EF, Step: d.AdamStep}
}

func (s StateDigests) digests() replay.Digests {
	return replay.Digests{Params: s.Params, M: s.M, V: s.V, EF: s.EF, AdamStep: s.Step}
}

// TrainJobResult is a provider's answer to a train job: the digests of
// every state 0..Steps (its commitment, sent before the client picks the
// steps it replays) and the final parameters, float32 little-endian.
type TrainJobResult struct {
	V      int            `json:"v"`
	Job    Hash           `json:"job"`
	States []StateDigests `json:"states"`
	Params []byte         `json:"params"`
}

// DecodeTrainJobResult decodes strictly and checks the shape against the
// job's steps and the model's n parameters.
func DecodeTrainJobResult(b []byte, steps, n int) (*TrainJobResult, error) {
	var r TrainJobResult
	if err := decodeStrict(b, &r); err != nil {
		return nil, fmt.Errorf("node: decoding train result: %w", err)
	}
	if err := checkVersion(r.V); err != nil {
		return nil, err
	}
	if len(r.States) != steps+1 || len(r.Params) != 4*n {
		return nil, fmt.Errorf("node: train result of %d states and %d parameter bytes, want %d and %d", len(r.States), len(r.Params), steps+1, 4*n)
	}
	return &r, nil
}

// StateRequest asks a provider for state Step of a train job it answered:
// params, m and v in full (replay snapshot).
type StateRequest struct {
	V    int  `json:"v"`
	Job  Hash `json:"job"`
	Step int  `json:"step"`
}

// maxTrainResult is the response limit of a train job for n parameters:
// base64 of 4n bytes plus the digests in JSON.
func maxTrainResult(n, steps int) int { return (4*n+2)/3*4 + (steps+1)*400 + 1024 }

// stateParts are the vectors a state response carries in full.
const stateParts = replay.PartParams | replay.PartM | replay.PartV
