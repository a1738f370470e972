package main

import (
	"flag"
	"fmt"
	"path/filepath"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/node"
	"github.com/trinity-net/trinity/rl"
)

// rlGenesisFlags are the genesis flags of the RL stage.
type rlGenesisFlags struct {
	stage      string
	checkpoint string
	tasks      string
	p          node.RLParams
}

func (f *rlGenesisFlags) register(fs *flag.FlagSet) {
	f.p = node.DefaultRLParams()
	fs.StringVar(&f.stage, "stage", node.StagePretrain, "round protocol stage: pretrain, or rl (post-training by GRPO on verified rollouts)")
	fs.StringVar(&f.checkpoint, "rl-checkpoint", "", "rl: starting policy checkpoint (its model shape overrides --layers etc.)")
	fs.StringVar(&f.tasks, "rl-tasks", "", "rl: task file, JSON Lines of {\"prompt\",\"answer\"} (default: the embedded arithmetic problems)")
	fs.IntVar(&f.p.GroupSize, "group-size", f.p.GroupSize, "rl: rollouts per task (G)")
	fs.IntVar(&f.p.Problems, "problems", f.p.Problems, "rl: tasks per rollout peer per round")
	fs.IntVar(&f.p.MaxNew, "max-new", f.p.MaxNew, "rl: tokens generated per rollout")
}

// apply sets the stage of g, written to out; file paths are stored
// relative to out's directory, where peers resolve them.
func (f *rlGenesisFlags) apply(g *node.Genesis, out string) error {
	switch f.stage {
	case node.StagePretrain:
		if f.checkpoint != "" || f.tasks != "" {
			return fmt.Errorf("--rl-checkpoint and --rl-tasks need --stage %s", node.StageRL)
		}
		return nil
	case node.StageRL:
	default:
		return fmt.Errorf("--stage %q: want %s or %s", f.stage, node.StagePretrain, node.StageRL)
	}
	p := f.p
	rel := func(path string) (string, error) {
		abs, err := filepath.Abs(path)
		if err != nil {
			return "", err
		}
		dir, err := filepath.Abs(filepath.Dir(out))
		if err != nil {
			return "", err
		}
		if r, err := filepath.Rel(dir, abs); err == nil {
			return r, nil
		}
		return abs, nil
	}
	if f.tasks != "" {
		ts, err := rl.LoadTaskSet(f.tasks, 64<<20)
		if err != nil {
			return err
		}
		path, err := rel(f.tasks)
		if err != nil {
			return err
		}
		p.Tasks = node.TaskSource{Kind: node.TasksFile, Path: path, Hash: node.Hash(ts.Hash)}
	}
	if f.checkpoint != "" {
		e, err := tensor.New(tensor.WithThreads(1))
		if err != nil {
			return err
		}
		defer e.Close()
		m, _, err := model.Load(f.checkpoint, e)
		if err != nil {
			return err
		}
		if p.Checkpoint, err = rel(f.checkpoint); err != nil {
			return err
		}
		p.CheckpointHash = node.Hash(m.StateHash())
		g.Model = m.Config
		g.Params.SeqLen = min(g.Params.SeqLen, m.Config.Context)
	}
	g.Stage, g.RL = node.StageRL, &p
	return nil
}
