package node

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
)

// WireVersion is the version of the gossip payloads below. A payload is
// compact JSON; the signed p2p envelope around it carries the network ID,
// topic, round and sender, and the payload repeats the round so that a
// payload moved into another envelope is caught.
//
// JSON rather than a binary layout: these messages are a few hundred bytes per
// peer per round against kilobytes to megabytes of blobs, so readability and
// easy evolution win. Decoding is strict (unknown fields, trailing data,
// wrong versions and out-of-range values are errors) and bounded by the
// envelope's size limit.
//
// Version 2: a manifest embeds the signed score vectors it was composed
// from (Manifest.Scores), so that every peer can check its choice.
const WireVersion = 2

// Limits on decoded payloads.
const (
	maxManifestEntries = 1024
	maxScoreEntries    = 1024
	maxReasonLen       = 256
	// A manifest embeds at most one score vector per genesis validator
	// (at most 256) and at most maxEmbeddedScoreBytes of their payloads,
	// so that it fits in a gossip message (1 MiB) with its contributions.
	maxManifestVectors    = 256
	maxEmbeddedScoreBytes = 640 << 10
	maxPeerIDLen          = 128
	maxSignatureLen       = 128
)

// Hash is a SHA-256 state hash, hex in JSON.
type Hash [32]byte

// MarshalText encodes h as 64 hex digits.
func (h Hash) MarshalText() ([]byte, error) { return []byte(hex.EncodeToString(h[:])), nil }

// UnmarshalText decodes 64 hex digits.
func (h *Hash) UnmarshalText(b []byte) error {
	if len(b) != 64 {
		return fmt.Errorf("hash must be 64 hex digits, got %d characters", len(b))
	}
	_, err := hex.Decode(h[:], b)
	return err
}

// Short is the first 8 hex digits, for logs.
func (h Hash) Short() string { return hex.EncodeToString(h[:4]) }

func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Announcement is a trainer's claim of a contribution for a round (topic
// gradient).
type Announcement struct {
	V     int     `json:"v"`
	Round uint64  `json:"round"`
	Base  Hash    `json:"base"` // state hash the trainer started from
	CID   string  `json:"cid"`  // the SparseLoCo blob
	Size  int64   `json:"size"` // its length in bytes
	Loss  float32 `json:"loss"` // mean inner training loss (informational)
	// Reward is a rollout batch's mean claimed reward (RL stage,
	// informational).
	Reward float64 `json:"reward,omitempty"`
	// Networks with replay (see replay_messages.go): the hex of the round's
	// replay.Commitment, and the round whose carried state this round
	// started from (absent: the reset state).
	Replay     string  `json:"replay,omitempty"`
	ReplayPrev *uint64 `json:"replay_prev,omitempty"`
}

// ScoreEntry is one validator's verdict on one contribution.
type ScoreEntry struct {
	Trainer  string  `json:"trainer"`
	CID      string  `json:"cid"`
	Score    float64 `json:"score"`
	Smoothed float64 `json:"smoothed"`
	OK       bool    `json:"ok"`
	DOwn     float64 `json:"d_own"`
	DRand    float64 `json:"d_rand"`
	Reason   string  `json:"reason,omitempty"`
}

// Scores is a validator's scores of a round (topic score).
type Scores struct {
	V       int          `json:"v"`
	Round   uint64       `json:"round"`
	Base    Hash         `json:"base"`
	Entries []ScoreEntry `json:"entries"`
}

// Contribution names a blob to aggregate.
type Contribution struct {
	Peer string `json:"peer"`
	CID  string `json:"cid"`
}

// CheckpointRef points at a checkpoint blob of the state with hash Hash,
// which is theta_Round. An empty CID means the genesis state (Init from the
// weight seed), which needs no blob.
type CheckpointRef struct {
	Round uint64 `json:"round"`
	Hash  Hash   `json:"hash"`
	CID   string `json:"cid,omitempty"`
}

// Manifest is the lead validator's decision for a round (topic manifest):
// apply the mean of Contributions to the state Base, giving the state Result.
// Prev is the CID of the previous manifest's envelope (stored as a blob by
// every peer), so manifests form a hash chain that a peer that fell behind
// walks back to a state it has, or to Checkpoint, and replays forward.
type Manifest struct {
	V             int            `json:"v"`
	Round         uint64         `json:"round"`
	Base          Hash           `json:"base"`
	Result        Hash           `json:"result"`
	Prev          string         `json:"prev,omitempty"`
	Stage         string         `json:"stage,omitempty"` // StageRL, or empty in pre-training
	Checkpoint    CheckpointRef  `json:"checkpoint"`
	Contributions []Contribution `json:"contributions"`
	// Scores are the validators' signed score vectors of the round that
	// the contributions were chosen from (see manifest_choice.go): every
	// peer recomputes the consensus over them and rejects a manifest that
	// lists a contribution it does not pass.
	Scores []SignedScores `json:"scores,omitempty"`
}

// SignedScores is a validator's score vector as it signed it: the fields of
// its p2p envelope (topic score) that the manifest does not imply. The
// network, topic and round are the manifest's, so a vector signed for
// another network or round does not verify.
type SignedScores struct {
	Validator string          `json:"validator"` // peer ID, the envelope's sender
	Time      int64           `json:"time"`      // the envelope's timestamp (Unix ns)
	Sig       []byte          `json:"sig"`       // the envelope's signature
	Payload   json.RawMessage `json:"payload"`   // the Scores payload, byte for byte
}

// CheckpointAnnouncement advertises a checkpoint blob (topic checkpoint).
type CheckpointAnnouncement struct {
	V    int           `json:"v"`
	Ref  CheckpointRef `json:"ref"`
	Size int64         `json:"size"`
}

func encodeMsg(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("node: encoding message: %w", err)
	}
	return b, nil
}

func decodeStrict(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("trailing data")
	}
	return nil
}

func checkVersion(v int) error {
	if v != WireVersion {
		return fmt.Errorf("wire version %d, want %d", v, WireVersion)
	}
	return nil
}

func parseCID(s string) (cid.Cid, error) {
	c, err := cid.Decode(s)
	if err != nil {
		return cid.Undef, fmt.Errorf("bad CID %q: %w", s, err)
	}
	if _, err := p2p.CheckCID(c); err != nil {
		return cid.Undef, err
	}
	return c, nil
}

func finite(f float64) bool { return !math.IsNaN(f) && !math.IsInf(f, 0) }

// DecodeAnnouncement parses and checks an announcement payload.
func DecodeAnnouncement(b []byte) (*Announcement, error) {
	var a Announcement
	if err := decodeStrict(b, &a); err != nil {
		return nil, fmt.Errorf("node: announcement: %w", err)
	}
	if err := checkVersion(a.V); err != nil {
		return nil, fmt.Errorf("node: announcement: %w", err)
	}
	if _, err := parseCID(a.CID); err != nil {
		return nil, fmt.Errorf("node: announcement: %w", err)
	}
	if a.Size < 1 || a.Size > 1<<34 {
		return nil, fmt.Errorf("node: announcement: size %d out of range", a.Size)
	}
	if !finite(float64(a.Loss)) || !finite(a.Reward) {
		return nil, fmt.Errorf("node: announcement: loss or reward is not finite")
	}
	if err := a.checkReplay(); err != nil {
		return nil, fmt.Errorf("node: announcement: %w", err)
	}
	return &a, nil
}

// DecodeScores parses and checks a scores payload.
func DecodeScores(b []byte) (*Scores, error) {
	var s Scores
	if err := decodeStrict(b, &s); err != nil {
		return nil, fmt.Errorf("node: scores: %w", err)
	}
	if err := checkVersion(s.V); err != nil {
		return nil, fmt.Errorf("node: scores: %w", err)
	}
	if len(s.Entries) > maxScoreEntries {
		return nil, fmt.Errorf("node: scores: %d entries exceed %d", len(s.Entries), maxScoreEntries)
	}
	seen := make(map[string]bool, len(s.Entries))
	for i, e := range s.Entries {
		if _, err := peer.Decode(e.Trainer); err != nil {
			return nil, fmt.Errorf("node: scores: entry %d: bad trainer: %w", i, err)
		}
		// One verdict per trainer: the consensus reads a vector as a map.
		if seen[e.Trainer] {
			return nil, fmt.Errorf("node: scores: entry %d: trainer %s listed twice", i, e.Trainer)
		}
		seen[e.Trainer] = true
		if _, err := parseCID(e.CID); err != nil {
			return nil, fmt.Errorf("node: scores: entry %d: %w", i, err)
		}
		if !finite(e.Score) || !finite(e.Smoothed) || !finite(e.DOwn) || !finite(e.DRand) {
			return nil, fmt.Errorf("node: scores: entry %d: non-finite value", i)
		}
		if len(e.Reason) > maxReasonLen {
			return nil, fmt.Errorf("node: scores: entry %d: reason longer than %d", i, maxReasonLen)
		}
	}
	return &s, nil
}

// DecodeManifest parses and checks a manifest payload.
func DecodeManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := decodeStrict(b, &m); err != nil {
		return nil, fmt.Errorf("node: manifest: %w", err)
	}
	if err := checkVersion(m.V); err != nil {
		return nil, fmt.Errorf("node: manifest: %w", err)
	}
	if m.Stage != "" && m.Stage != StageRL {
		return nil, fmt.Errorf("node: manifest: stage %q", m.Stage)
	}
	if m.Prev != "" {
		if _, err := parseCID(m.Prev); err != nil {
			return nil, fmt.Errorf("node: manifest: prev: %w", err)
		}
	}
	if err := m.Checkpoint.check(); err != nil {
		return nil, fmt.Errorf("node: manifest: checkpoint: %w", err)
	}
	if m.Checkpoint.Round > m.Round {
		return nil, fmt.Errorf("node: manifest: checkpoint round %d after the manifest's %d", m.Checkpoint.Round, m.Round)
	}
	if len(m.Contributions) > maxManifestEntries {
		return nil, fmt.Errorf("node: manifest: %d contributions exceed %d", len(m.Contributions), maxManifestEntries)
	}
	seen := make(map[string]bool, len(m.Contributions))
	for i, c := range m.Contributions {
		if _, err := peer.Decode(c.Peer); err != nil {
			return nil, fmt.Errorf("node: manifest: contribution %d: bad peer: %w", i, err)
		}
		if _, err := parseCID(c.CID); err != nil {
			return nil, fmt.Errorf("node: manifest: contribution %d: %w", i, err)
		}
		if seen[c.Peer] {
			return nil, fmt.Errorf("node: manifest: contribution %d: peer %s listed twice", i, c.Peer)
		}
		seen[c.Peer] = true
	}
	if len(m.Contributions) == 0 && m.Result != m.Base {
		return nil, fmt.Errorf("node: manifest: no contributions but result differs from base")
	}
	if len(m.Scores) > maxManifestVectors {
		return nil, fmt.Errorf("node: manifest: %d score vectors exceed %d", len(m.Scores), maxManifestVectors)
	}
	size := 0
	for i, v := range m.Scores {
		if len(v.Validator) == 0 || len(v.Validator) > maxPeerIDLen {
			return nil, fmt.Errorf("node: manifest: score vector %d: validator ID of %d characters", i, len(v.Validator))
		}
		if len(v.Sig) == 0 || len(v.Sig) > maxSignatureLen {
			return nil, fmt.Errorf("node: manifest: score vector %d: signature of %d bytes", i, len(v.Sig))
		}
		if len(v.Payload) == 0 || v.Payload[0] != '{' {
			return nil, fmt.Errorf("node: manifest: score vector %d: payload is not a JSON object", i)
		}
		if size += len(v.Payload); size > maxEmbeddedScoreBytes {
			return nil, fmt.Errorf("node: manifest: score vectors exceed %d bytes", maxEmbeddedScoreBytes)
		}
	}
	return &m, nil
}

func (r CheckpointRef) check() error {
	if r.CID == "" {
		if r.Round != 0 {
			return fmt.Errorf("only the genesis state (round 0) may have no blob")
		}
		return nil
	}
	_, err := parseCID(r.CID)
	return err
}

// DecodeCheckpointAnnouncement parses and checks a checkpoint announcement.
func DecodeCheckpointAnnouncement(b []byte) (*CheckpointAnnouncement, error) {
	var c CheckpointAnnouncement
	if err := decodeStrict(b, &c); err != nil {
		return nil, fmt.Errorf("node: checkpoint announcement: %w", err)
	}
	if err := checkVersion(c.V); err != nil {
		return nil, fmt.Errorf("node: checkpoint announcement: %w", err)
	}
	if c.Ref.CID == "" {
		return nil, fmt.Errorf("node: checkpoint announcement: no CID")
	}
	if err := c.Ref.check(); err != nil {
		return nil, fmt.Errorf("node: checkpoint announcement: %w", err)
	}
	if c.Size < 1 || c.Size > 1<<34 {
		return nil, fmt.Errorf("node: checkpoint announcement: size %d out of range", c.Size)
	}
	return &c, nil
}
