package node

import (
	"fmt"
	"path/filepath"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/rl"
	"github.com/trinity-net/trinity/verify/grail"
)

// Stages of the round protocol a genesis can run.
const (
	// StagePretrain (also the empty string): trainers announce SparseLoCo
	// pseudo-gradients, the manifest's result is their aggregated outer step.
	StagePretrain = "pretrain"
	// StageRL: rollout peers announce GRAIL-proved rollout batches (package
	// rl), the manifest lists the accepted ones, and every peer applies the
	// same GRPO update to them.
	StageRL = "rl"
)

// maxTaskFileBytes bounds a genesis's task file.
const maxTaskFileBytes = 64 << 20

// RLParams configures the RL stage (Genesis.RL). Every field is explicit in
// the genesis, so the network ID commits to the whole update rule.
type RLParams struct {
	GroupSize     int     `json:"group_size"`               // G, rollouts per task (default 16)
	Problems      int     `json:"problems"`                 // tasks per rollout peer per round
	MaxNew        int     `json:"max_new"`                  // tokens generated per rollout
	Temperature   float32 `json:"temperature"`              // rollout sampling
	TopK          int     `json:"top_k,omitempty"`          // rollout sampling; 0: full vocabulary
	Prefix        string  `json:"prefix"`                   // prepended to every prompt
	FormatBonus   float64 `json:"format_bonus,omitempty"`   // reward of an answered, wrong completion
	PartialCredit float64 `json:"partial_credit,omitempty"` // see rl.Config.Reward
	VerifyGroups  int     `json:"verify_groups,omitempty"`  // groups re-verified per batch; 0: all
	ClipEps       float64 `json:"clip_eps"`
	AdvEps        float64 `json:"adv_eps"`
	Epochs        int     `json:"epochs"`
	// AdamW is the policy optimizer, with fresh moments every round (see
	// the rlStage doc); SGDLR > 0 replaces it by plain SGD.
	AdamW optimizer.AdamWConfig `json:"adamw"`
	SGDLR float32               `json:"sgd_lr,omitempty"`

	Tasks TaskSource `json:"tasks"`
	// Checkpoint is the starting policy theta_0 (a model checkpoint file,
	// relative to the genesis file's directory), whose state hash must be
	// CheckpointHash. Empty: theta_0 = Init(WeightSeed), as in pre-training.
	Checkpoint     string `json:"checkpoint,omitempty"`
	CheckpointHash Hash   `json:"checkpoint_hash,omitzero"`
}

// TaskSource names the problems rollout peers are assigned from.
type TaskSource struct {
	// Kind is "arithmetic" (Count problems of the default corpus's training
	// split, drawn from Seed) or "file" (JSON Lines of {"prompt","answer"},
	// Path relative to the genesis file's directory, whose rl.TaskSet hash
	// must be Hash).
	Kind  string `json:"kind"`
	Seed  uint64 `json:"seed,omitempty"`
	Count int    `json:"count,omitempty"`
	Path  string `json:"path,omitempty"`
	Hash  Hash   `json:"hash,omitzero"`
}

// Task source kinds.
const (
	TasksArithmetic = "arithmetic"
	TasksFile       = "file"
)

// DefaultRLParams is rl.DefaultConfig on the arithmetic task set, from
// theta_0 = Init(WeightSeed) (set Checkpoint to start from a pre-trained
// policy).
func DefaultRLParams() RLParams {
	c := rl.DefaultConfig()
	return RLParams{GroupSize: c.GroupSize, Problems: c.Problems, MaxNew: c.MaxNew, Temperature: c.Sampling.Temperature,
		TopK: c.Sampling.TopK, Prefix: c.Prefix, FormatBonus: c.FormatBonus, PartialCredit: c.PartialCredit,
		VerifyGroups: c.VerifyGroups, ClipEps: c.ClipEps, AdvEps: c.AdvEps, Epochs: c.Epochs, AdamW: c.AdamW, SGDLR: c.SGDLR,
		Tasks: TaskSource{Kind: TasksArithmetic, Seed: 1, Count: 4096}}
}

// Config is the rl package's view of the parameters.
func (p RLParams) Config() rl.Config {
	return rl.Config{GroupSize: p.GroupSize, Problems: p.Problems, MaxNew: p.MaxNew,
		Sampling: grail.Sampling{Temperature: p.Temperature, TopK: p.TopK}, Prefix: p.Prefix,
		FormatBonus: p.FormatBonus, PartialCredit: p.PartialCredit, VerifyGroups: p.VerifyGroups,
		ClipEps: p.ClipEps, AdvEps: p.AdvEps, Epochs: p.Epochs, AdamW: p.AdamW, SGDLR: p.SGDLR,
		// The replicated state is the parameters alone (see rlStage).
		FreshOptimizer: true}
}

// stage is the genesis's stage, StagePretrain for the empty string.
func (g *Genesis) stage() string {
	if g.Stage == "" {
		return StagePretrain
	}
	return g.Stage
}

// validateStage checks the stage and, for the RL stage, its parameters.
func (g *Genesis) validateStage() error {
	switch g.stage() {
	case StagePretrain:
		if g.RL != nil {
			return fmt.Errorf("node: genesis rl parameters given for stage %q (set stage %q)", g.stage(), StageRL)
		}
		return nil
	case StageRL:
	default:
		return fmt.Errorf("node: genesis stage %q (want %q or %q)", g.Stage, StagePretrain, StageRL)
	}
	p := g.RL
	if p == nil {
		return fmt.Errorf("node: genesis stage %q needs rl parameters", StageRL)
	}
	if g.Params.Replay != nil {
		return fmt.Errorf("node: genesis params.replay replays trainers' inner steps; stage %q has no trainers", StageRL)
	}
	if err := p.Config().Validate(); err != nil {
		return fmt.Errorf("node: genesis rl: %w", err)
	}
	if len(p.Prefix) > data.MaxTaskBytes {
		return fmt.Errorf("node: genesis rl.prefix of %d bytes", len(p.Prefix))
	}
	// A rollout is fed prompt+MaxNew-1 tokens and the update prompt+MaxNew:
	// leave room for a prompt.
	if p.MaxNew >= g.Model.Context {
		return fmt.Errorf("node: genesis rl.max_new = %d leaves no room for a prompt in model.context %d", p.MaxNew, g.Model.Context)
	}
	switch t := p.Tasks; t.Kind {
	case TasksArithmetic:
		if t.Count < 1 || t.Count > 1<<20 || t.Path != "" || t.Hash != (Hash{}) {
			return fmt.Errorf("node: genesis rl.tasks: arithmetic needs a count in [1, 2^20] and no path or hash")
		}
	case TasksFile:
		if t.Path == "" || t.Hash == (Hash{}) || t.Count != 0 || t.Seed != 0 {
			return fmt.Errorf("node: genesis rl.tasks: a task file needs a path and its task-set hash, and no count or seed")
		}
	default:
		return fmt.Errorf("node: genesis rl.tasks.kind %q (want %q or %q)", t.Kind, TasksArithmetic, TasksFile)
	}
	if (p.Checkpoint == "") != (p.CheckpointHash == Hash{}) {
		return fmt.Errorf("node: genesis rl: checkpoint and checkpoint_hash go together")
	}
	return nil
}

// loadTaskSet builds the genesis's task set; relative paths are under base.
func (p RLParams) loadTaskSet(base string) (*rl.TaskSet, error) {
	t := p.Tasks
	if t.Kind == TasksArithmetic {
		return rl.ArithmeticTaskSet(t.Seed, t.Count)
	}
	ts, err := rl.LoadTaskSet(resolve(base, t.Path), maxTaskFileBytes)
	if err != nil {
		return nil, fmt.Errorf("node: genesis rl task file: %w", err)
	}
	if Hash(ts.Hash) != t.Hash {
		return nil, fmt.Errorf("node: genesis rl task file %s has task-set hash %s, the genesis says %s", t.Path, Hash(ts.Hash).Short(), t.Hash.Short())
	}
	return ts, nil
}

// loadStart returns theta_0's parameters from the starting checkpoint, or
// nil when the genesis has none.
func (p RLParams) loadStart(base string, cfg model.Config, e *tensor.Engine) ([]float32, error) {
	if p.Checkpoint == "" {
		return nil, nil
	}
	path := resolve(base, p.Checkpoint)
	m, _, err := model.Load(path, e)
	if err != nil {
		return nil, fmt.Errorf("node: genesis rl checkpoint: %w", err)
	}
	if m.Config != cfg {
		return nil, fmt.Errorf("node: genesis rl checkpoint %s is a %v model, the genesis says %v", path, m.Config, cfg)
	}
	if h := Hash(m.StateHash()); h != p.CheckpointHash {
		return nil, fmt.Errorf("node: genesis rl checkpoint %s hashes to %s, the genesis says %s", path, h.Short(), p.CheckpointHash.Short())
	}
	return m.Params, nil
}

func resolve(base, path string) string {
	if filepath.IsAbs(path) || base == "" {
		return path
	}
	return filepath.Join(base, path)
}

// workerRole is the role of the peers that produce a round's blobs.
func (g *Genesis) workerRole() Role {
	if g.stage() == StageRL {
		return RoleRollout
	}
	return RoleTrainer
}
