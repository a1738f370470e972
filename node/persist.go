package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/trinity-net/trinity/internal/atomicfile"

	"github.com/ipfs/go-cid"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/safetensors"
	"github.com/trinity-net/trinity/verify"
)

// Files of a node's data directory (beside p2p's identity.key and blobs/).
const (
	stateFile   = "state.safetensors"   // theta with its round and hash
	trainerFile = "trainer.safetensors" // error feedback and AdamW moments
	scoresFile  = "scores.json"         // validator score history
)

// Metadata keys of the state file.
const (
	metaRound    = "trinity.node.round"
	metaManifest = "trinity.node.manifest"
	metaNetwork  = "trinity.node.network"
)

// savedState is the global state as persisted: theta_round (the state after
// applying every manifest before round Round) and the CID of the last
// manifest applied.
type savedState struct {
	Round    uint64
	Manifest cid.Cid // cid.Undef before the first manifest
}

// saveState writes m's parameters with the state's position in the chain.
func saveState(dir string, m *model.GPT, netID string, s savedState) error {
	meta := map[string]string{metaRound: strconv.FormatUint(s.Round, 10), metaNetwork: netID}
	if s.Manifest.Defined() {
		meta[metaManifest] = s.Manifest.String()
	}
	if err := m.Save(filepath.Join(dir, stateFile), meta); err != nil {
		return fmt.Errorf("node: saving state: %w", err)
	}
	return nil
}

// loadState restores a saved state into m; ok is false when there is none.
func loadState(dir string, m *model.GPT, netID string) (s savedState, ok bool, err error) {
	path := filepath.Join(dir, stateFile)
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return savedState{}, false, nil
	}
	meta, err := m.Restore(path)
	if err != nil {
		return savedState{}, false, fmt.Errorf("node: loading state: %w", err)
	}
	if meta[metaNetwork] != netID {
		return savedState{}, false, fmt.Errorf("node: state %s belongs to network %s, not %s", path, meta[metaNetwork], netID)
	}
	if s.Round, err = strconv.ParseUint(meta[metaRound], 10, 64); err != nil {
		return savedState{}, false, fmt.Errorf("node: state %s has no valid round: %w", path, err)
	}
	if c := meta[metaManifest]; c != "" {
		if s.Manifest, err = cid.Decode(c); err != nil {
			return savedState{}, false, fmt.Errorf("node: state %s has a bad manifest CID: %w", path, err)
		}
	}
	return s, true, nil
}

// trainerState is what a trainer carries between rounds besides theta.
type trainerState struct {
	Round  uint64 // the last round whose compression is folded into EF
	EF     []float32
	M, V   []float32
	AdamSt int
}

func saveTrainerState(dir string, t trainerState) error {
	n := len(t.EF)
	tensors := []safetensors.Tensor{
		{Name: "ef", Shape: []int{n}, Data: t.EF},
		{Name: "adamw.m", Shape: []int{len(t.M)}, Data: t.M},
		{Name: "adamw.v", Shape: []int{len(t.V)}, Data: t.V},
	}
	meta := map[string]string{metaRound: strconv.FormatUint(t.Round, 10), "trinity.node.adamw-step": strconv.Itoa(t.AdamSt)}
	if err := safetensors.Write(filepath.Join(dir, trainerFile), tensors, meta); err != nil {
		return fmt.Errorf("node: saving trainer state: %w", err)
	}
	return nil
}

// loadTrainerState fills t's buffers (already sized) from disk.
func loadTrainerState(dir string, t *trainerState) (bool, error) {
	path := filepath.Join(dir, trainerFile)
	f, err := safetensors.Read(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("node: loading trainer state: %w", err)
	}
	for _, x := range []struct {
		name string
		dst  []float32
	}{{"ef", t.EF}, {"adamw.m", t.M}, {"adamw.v", t.V}} {
		src, ok := f.Tensor(x.name)
		if !ok || len(src.Data) != len(x.dst) {
			return false, fmt.Errorf("node: trainer state %s lacks %s of %d values", path, x.name, len(x.dst))
		}
		copy(x.dst, src.Data)
	}
	if t.Round, err = strconv.ParseUint(f.Metadata[metaRound], 10, 64); err != nil {
		return false, fmt.Errorf("node: trainer state %s has no valid round", path)
	}
	if t.AdamSt, err = strconv.Atoi(f.Metadata["trinity.node.adamw-step"]); err != nil || t.AdamSt < 0 {
		return false, fmt.Errorf("node: trainer state %s has no valid AdamW step", path)
	}
	return true, nil
}

// scoreBook is a validator's standing of each trainer (smoothed score,
// strikes, bans) and recent history.
type scoreBook struct {
	Standing  map[string]*verify.Standing `json:"standing"`
	Agreement map[string]float64          `json:"agreement,omitempty"` // validators' agreement with the consensus
	History   []ScoreRoundSummary         `json:"history"`             // most recent last
}

// ScoreRoundSummary is one round of a validator's scores.
type ScoreRoundSummary struct {
	Round  uint64       `json:"round"`
	Scores []ScoreEntry `json:"scores"`
}

const maxHistory = 64

func saveScores(dir string, b *scoreBook) error {
	data, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("node: encoding scores: %w", err)
	}
	return atomicfile.WriteFile(filepath.Join(dir, scoresFile), data)
}

func loadScores(dir string) (*scoreBook, error) {
	b := &scoreBook{Standing: map[string]*verify.Standing{}}
	data, err := os.ReadFile(filepath.Join(dir, scoresFile))
	if errors.Is(err, os.ErrNotExist) {
		return b, nil
	}
	if err != nil {
		return nil, fmt.Errorf("node: reading scores: %w", err)
	}
	if err := json.Unmarshal(data, b); err != nil {
		return nil, fmt.Errorf("node: decoding scores: %w", err)
	}
	if b.Standing == nil {
		b.Standing = map[string]*verify.Standing{}
	}
	for k, st := range b.Standing {
		if st == nil {
			delete(b.Standing, k)
		}
	}
	return b, nil
}
