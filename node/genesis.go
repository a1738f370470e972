package node

import (
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/trinity-net/trinity/internal/atomicfile"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify"
)

// GenesisVersion is the genesis format this package reads and writes.
// Version 2 added params.gauntlet_step and params.gauntlet_batches.
const GenesisVersion = 2

// maxGenesisBytes bounds a genesis file.
const maxGenesisBytes = 1 << 20

// Genesis defines a network. Its hash (NetworkID) namespaces every topic,
// protocol and blob of the network, so two peers with different genesis files
// never exchange anything.
type Genesis struct {
	Version    int            `json:"version"`
	Network    string         `json:"network"`     // human-readable name
	Start      time.Time      `json:"start"`       // beginning of round 0
	WeightSeed uint64         `json:"weight_seed"` // theta_0 = model.Init(WeightSeed)
	Model      model.Config   `json:"model"`
	Data       data.Spec      `json:"data"`
	Params     Hyper          `json:"params"`
	Validators []ValidatorKey `json:"validators"` // in decreasing priority for the lead role
	Bootstrap  []string       `json:"bootstrap"`  // multiaddrs ending in /p2p/<id>
	// Stage is the round protocol's stage: StagePretrain (or empty) or
	// StageRL, which RL configures (rl_genesis.go).
	Stage string    `json:"stage,omitempty"`
	RL    *RLParams `json:"rl,omitempty"`
}

// ValidatorKey is a member of the validator set.
type ValidatorKey struct {
	Peer  string `json:"peer"` // libp2p peer ID
	Stake uint64 `json:"stake"`
}

// Hyper holds the hyper-parameters of the protocol.
type Hyper struct {
	RoundMillis int64 `json:"round_ms"` // round length
	// Phase boundaries as fractions of the round: trainers must announce by
	// AnnounceBy, validators publish scores at ScoreAt, the lead validator
	// publishes the manifest at ManifestAt (a fallback validator of rank k at
	// ManifestAt + k*FallbackStep).
	AnnounceBy   float64 `json:"announce_by"`
	ScoreAt      float64 `json:"score_at"`
	ManifestAt   float64 `json:"manifest_at"`
	FallbackStep float64 `json:"fallback_step"`

	InnerSteps    int                   `json:"inner_steps"` // H
	Batch         int                   `json:"batch"`       // sequences per inner step
	SeqLen        int                   `json:"seq_len"`
	PageSize      int                   `json:"page_size"`       // tokens per page
	PagesPerRound int                   `json:"pages_per_round"` // pages assigned to a trainer per round
	AdamW         optimizer.AdamWConfig `json:"adamw"`
	ChunkSize     int                   `json:"chunk_size"`
	TopK          int                   `json:"top_k"`
	ErrorDecay    float32               `json:"error_decay"`
	OuterLR       float32               `json:"outer_lr"`
	NormClip      bool                  `json:"norm_clip"`

	MaxContributions int     `json:"max_contributions"` // per manifest
	SampleSize       int     `json:"sample_size"`       // trainers a validator scores per round; 0: all
	ScoreAlpha       float64 `json:"score_alpha"`       // EMA weight of the past score
	GapTolerance     float64 `json:"gap_tolerance"`     // see package verify
	GauntletStep     float64 `json:"gauntlet_step"`     // the loss test steps by this fraction of outer_lr (see package verify)
	GauntletBatches  int     `json:"gauntlet_batches"`  // batches of the trainer's, and random ones, in each loss test
	MaxNorm          float64 `json:"max_norm"`          // see package verify; 0: none
	EvalBatches      int     `json:"eval_batches"`      // validation batches per evaluation
	CheckpointEvery  int     `json:"checkpoint_every"`  // rounds between checkpoints (K)
	KeepRounds       int     `json:"keep_rounds"`       // rounds of blobs kept in the store

	Replay *ReplayParams `json:"replay,omitempty"` // proof of training work; nil: off
}

// maxGauntletBatches bounds the loss test's batches, and so a validator's
// work per contribution.
const maxGauntletBatches = 16

// gauntletParams are verify's loss-test parameters of the network.
func (h Hyper) gauntletParams() verify.Params {
	return verify.Params{OuterLR: h.OuterLR, StepScale: h.GauntletStep, MaxNorm: h.MaxNorm, GapTolerance: h.GapTolerance}
}

// RoundLength is the round length as a duration.
func (h Hyper) RoundLength() time.Duration { return time.Duration(h.RoundMillis) * time.Millisecond }

// DefaultHyper returns the hyper-parameters of the default testnet: a round
// of a few seconds for the tiny model on a couple of shared cores.
func DefaultHyper() Hyper {
	adam := optimizer.DefaultAdamW()
	adam.LR = 3e-3
	adam.Warmup = 20
	adam.TotalSteps = 0
	return Hyper{
		RoundMillis: 4000, AnnounceBy: 0.5, ScoreAt: 0.7, ManifestAt: 0.75, FallbackStep: 0.05,
		InnerSteps: 20, Batch: 4, SeqLen: 64, PageSize: 1024, PagesPerRound: 8,
		AdamW: adam, ChunkSize: 1024, TopK: 32, ErrorDecay: 0.95, OuterLR: 1.0, NormClip: true,
		MaxContributions: 32, SampleSize: 0, ScoreAlpha: 0.7, GapTolerance: 0.5, GauntletStep: 0.5, GauntletBatches: 2, EvalBatches: 8,
		CheckpointEvery: 5, KeepRounds: 40,
	}
}

// TinyModel is the default testnet's model: small enough that a round of
// inner steps takes well under a second on one core.
var TinyModel = model.Config{Vocab: 256, Context: 64, Layers: 2, Heads: 2, Width: 64}

// Validate names the first unusable field.
func (h Hyper) Validate() error {
	frac := func(name string, v float64) error {
		if !(v > 0 && v < 1) {
			return fmt.Errorf("node: genesis params.%s = %v out of range (0, 1)", name, v)
		}
		return nil
	}
	pos := func(name string, v int) error {
		if v < 1 || v > 1<<30 {
			return fmt.Errorf("node: genesis params.%s = %d out of range [1, 2^30]", name, v)
		}
		return nil
	}
	if h.RoundMillis < 100 || h.RoundMillis > 24*3600*1000 {
		return fmt.Errorf("node: genesis params.round_ms = %d out of range [100, 86400000]", h.RoundMillis)
	}
	for _, f := range []struct {
		n string
		v float64
	}{{"announce_by", h.AnnounceBy}, {"score_at", h.ScoreAt}, {"manifest_at", h.ManifestAt}, {"fallback_step", h.FallbackStep},
		{"score_alpha", h.ScoreAlpha + 1e-300}} {
		if err := frac(f.n, f.v); err != nil {
			return err
		}
	}
	if !(h.AnnounceBy < h.ScoreAt && h.ScoreAt <= h.ManifestAt) {
		return fmt.Errorf("node: genesis params: announce_by %v < score_at %v <= manifest_at %v must hold", h.AnnounceBy, h.ScoreAt, h.ManifestAt)
	}
	for _, f := range []struct {
		n string
		v int
	}{{"inner_steps", h.InnerSteps}, {"batch", h.Batch}, {"seq_len", h.SeqLen}, {"page_size", h.PageSize},
		{"pages_per_round", h.PagesPerRound}, {"max_contributions", h.MaxContributions}, {"eval_batches", h.EvalBatches},
		{"checkpoint_every", h.CheckpointEvery}, {"keep_rounds", h.KeepRounds}} {
		if err := pos(f.n, f.v); err != nil {
			return err
		}
	}
	if h.SampleSize < 0 {
		return fmt.Errorf("node: genesis params.sample_size = %d must be >= 0", h.SampleSize)
	}
	if h.PageSize < h.SeqLen+1 {
		return fmt.Errorf("node: genesis params.page_size = %d must exceed seq_len %d", h.PageSize, h.SeqLen)
	}
	if h.KeepRounds < 2*h.CheckpointEvery {
		return fmt.Errorf("node: genesis params.keep_rounds = %d must be at least 2*checkpoint_every (%d), so replays find their blobs", h.KeepRounds, 2*h.CheckpointEvery)
	}
	if err := h.AdamW.Validate(); err != nil {
		return fmt.Errorf("node: genesis params.adamw: %w", err)
	}
	if err := h.Replay.validate(h.InnerSteps); err != nil {
		return err
	}
	if h.ChunkSize < optimizer.MinChunkSize || h.ChunkSize > optimizer.MaxChunkSize {
		return fmt.Errorf("node: genesis params.chunk_size = %d out of range [%d, %d]", h.ChunkSize, optimizer.MinChunkSize, optimizer.MaxChunkSize)
	}
	if h.TopK < 1 || h.TopK > h.ChunkSize {
		return fmt.Errorf("node: genesis params.top_k = %d out of range [1, chunk_size %d]", h.TopK, h.ChunkSize)
	}
	if !(h.ErrorDecay >= 0 && h.ErrorDecay <= 1) {
		return fmt.Errorf("node: genesis params.error_decay = %v out of range [0, 1]", h.ErrorDecay)
	}
	if !(h.OuterLR > 0 && h.OuterLR <= 10) {
		return fmt.Errorf("node: genesis params.outer_lr = %v out of range (0, 10]", h.OuterLR)
	}
	if !(h.GapTolerance >= 0 && h.GapTolerance < 1e6) {
		return fmt.Errorf("node: genesis params.gap_tolerance = %v out of range [0, 1e6)", h.GapTolerance)
	}
	if !(h.GauntletStep > 0 && h.GauntletStep <= 1) {
		return fmt.Errorf("node: genesis params.gauntlet_step = %v out of range (0, 1]", h.GauntletStep)
	}
	if h.GauntletBatches < 1 || h.GauntletBatches > h.InnerSteps || h.GauntletBatches > maxGauntletBatches {
		return fmt.Errorf("node: genesis params.gauntlet_batches = %d out of range [1, min(inner_steps %d, %d)]", h.GauntletBatches, h.InnerSteps, maxGauntletBatches)
	}
	if !(h.MaxNorm >= 0 && h.MaxNorm < 1e30) {
		return fmt.Errorf("node: genesis params.max_norm = %v out of range [0, 1e30)", h.MaxNorm)
	}
	return nil
}

// Validate names the first unusable field.
func (g *Genesis) Validate() error {
	if g.Version != GenesisVersion {
		return fmt.Errorf("node: genesis version = %d, this build reads %d", g.Version, GenesisVersion)
	}
	if g.Network == "" || len(g.Network) > 64 {
		return fmt.Errorf("node: genesis network name must be 1-64 bytes, got %d", len(g.Network))
	}
	if g.Start.IsZero() {
		return fmt.Errorf("node: genesis start time is missing")
	}
	if err := g.Model.Validate(); err != nil {
		return fmt.Errorf("node: genesis model: %w", err)
	}
	if g.Model.Vocab < 256 {
		return fmt.Errorf("node: genesis model.vocab = %d; the byte tokenizer needs 256", g.Model.Vocab)
	}
	if err := g.Data.Validate(); err != nil {
		return fmt.Errorf("node: genesis data: %w", err)
	}
	if err := g.Params.Validate(); err != nil {
		return err
	}
	if err := g.validateStage(); err != nil {
		return err
	}
	if g.Params.SeqLen > g.Model.Context {
		return fmt.Errorf("node: genesis params.seq_len = %d exceeds model.context %d", g.Params.SeqLen, g.Model.Context)
	}
	if len(g.Validators) == 0 || len(g.Validators) > 256 {
		return fmt.Errorf("node: genesis validators: need 1-256, got %d", len(g.Validators))
	}
	seen := map[peer.ID]bool{}
	for i, v := range g.Validators {
		id, err := peer.Decode(v.Peer)
		if err != nil {
			return fmt.Errorf("node: genesis validators[%d].peer %q: %w", i, v.Peer, err)
		}
		if seen[id] {
			return fmt.Errorf("node: genesis validators[%d].peer %s is listed twice", i, v.Peer)
		}
		seen[id] = true
		if v.Stake == 0 {
			return fmt.Errorf("node: genesis validators[%d].stake must be positive", i)
		}
		if i > 0 && v.Stake > g.Validators[i-1].Stake {
			return fmt.Errorf("node: genesis validators[%d]: the set must be sorted by decreasing stake", i)
		}
	}
	return nil
}

// Canonical returns the canonical encoding: compact JSON of the struct in
// field order, start time in UTC. The network ID hashes these bytes, so
// whitespace or key order in a file does not change the network.
func (g *Genesis) Canonical() ([]byte, error) {
	c := *g
	c.Start = c.Start.UTC()
	b, err := json.Marshal(&c)
	if err != nil {
		return nil, fmt.Errorf("node: encoding genesis: %w", err)
	}
	return b, nil
}

// ID is the network ID: SHA-256 over a domain tag and the canonical encoding.
func (g *Genesis) ID() (p2p.NetworkID, error) {
	b, err := g.Canonical()
	if err != nil {
		return p2p.NetworkID{}, err
	}
	return p2p.NetworkID(sha256.Sum256(append([]byte("trinity/genesis/v1\x00"), b...))), nil
}

// ValidatorRank returns the lead priority of p (0 is the lead) or -1.
func (g *Genesis) ValidatorRank(p peer.ID) int {
	for i, v := range g.Validators {
		if v.Peer == p.String() {
			return i
		}
	}
	return -1
}

// ParseGenesis decodes and validates a genesis file. Unknown fields are
// errors: a field this build would silently drop could otherwise make two
// peers believe they share a network they read differently.
func ParseGenesis(b []byte) (*Genesis, error) {
	if len(b) > maxGenesisBytes {
		return nil, fmt.Errorf("node: genesis of %d bytes exceeds %d", len(b), maxGenesisBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var g Genesis
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("node: decoding genesis: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("node: decoding genesis: trailing data")
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return &g, nil
}

// LoadGenesis reads a genesis file.
func LoadGenesis(path string) (*Genesis, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("node: reading genesis: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxGenesisBytes+1))
	if err != nil {
		return nil, fmt.Errorf("node: reading genesis %s: %w", path, err)
	}
	g, err := ParseGenesis(b)
	if err != nil {
		return nil, fmt.Errorf("%w (in %s)", err, path)
	}
	return g, nil
}

// Save writes the genesis, indented for people, atomically.
func (g *Genesis) Save(path string) error {
	if err := g.Validate(); err != nil {
		return err
	}
	c := *g
	c.Start = c.Start.UTC()
	b, err := json.MarshalIndent(&c, "", "  ")
	if err != nil {
		return fmt.Errorf("node: encoding genesis: %w", err)
	}
	return atomicfile.WriteFile(path, append(b, '\n'))
}
