package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/trinity-net/trinity/optimizer/experiment"
	"github.com/trinity-net/trinity/rl"
	"github.com/trinity-net/trinity/verify/grail"
)

// experiments are the measurement runs whose tables go into docs/.
var experiments = map[string]struct {
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}{
	"grail":      {"GRAIL proofs: honest acceptance, attacks rejected, cost", runGrailExperiment},
	"sparseloco": {"SparseLoCo vs DiLoCo, DeMo and DDP: loss and bytes per round", runSparseLoCoExperiment},
	"rl":         {"GRPO post-training on verified rollouts: held-out accuracy before and after", runRLExperiment},
	"robustness": {"honest trainers beside adversaries and a dishonest validator vs an all-honest run", runRobustnessExperiment},
	"replay":     {"proof of training work on the testnet: a lazy trainer passes the gauntlet, replay catches it", runReplayExperiment},
}

func runExperiment(ctx context.Context, env *cliEnv, args []string) error {
	if len(args) == 0 {
		for name, x := range experiments {
			fmt.Fprintf(env.stderr, "  %-12s %s\n", name, x.summary)
		}
		return fmt.Errorf("name an experiment")
	}
	x, ok := experiments[args[0]]
	if !ok {
		return fmt.Errorf("unknown experiment %q", args[0])
	}
	return x.run(ctx, env, args[1:])
}

// readOptional returns the file's bytes, or nil when it cannot be read.
func readOptional(path string) []byte {
	b, err := os.ReadFile(filepath.Clean(path))
	if err != nil {
		return nil
	}
	return b
}

func runGrailExperiment(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "experiment grail")
	cfg := grail.DefaultExperimentConfig()
	fs.IntVar(&cfg.Honest, "honest", cfg.Honest, "honest sequences proved")
	fs.IntVar(&cfg.Trials, "trials", cfg.Trials, "trials per attack")
	fs.IntVar(&cfg.TrainSteps, "train-steps", cfg.TrainSteps, "training steps before the sweep")
	text := fs.String("text", "../shared/data/tinyshakespeare.txt", "text for prompts and training (random prompts if absent)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Text = readOptional(*text)
	return grail.Experiment(ctx, cfg, env.stdout)
}

func runSparseLoCoExperiment(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "experiment sparseloco")
	dataPath := fs.String("data", "../shared/data/tinyshakespeare.txt", "text file to train on")
	cfg := experiment.DefaultConfig("")
	fs.IntVar(&cfg.Workers, "workers", cfg.Workers, "simulated workers (R)")
	fs.IntVar(&cfg.InnerSteps, "inner-steps", cfg.InnerSteps, "inner steps per round (H)")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "outer rounds")
	fs.IntVar(&cfg.Batch, "batch", cfg.Batch, "sequences per worker step")
	fs.IntVar(&cfg.EvalEvery, "eval-every", cfg.EvalEvery, "print validation loss every this many rounds (0: only at the end)")
	methods := fs.String("methods", "", "comma-separated subset of methods (default: all)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.DataPath = *dataPath
	if *methods != "" {
		cfg.Methods = strings.Split(*methods, ",")
	}
	_, err := experiment.Run(ctx, cfg, env.stdout)
	return err
}

func runRLExperiment(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "experiment rl")
	cfg := rl.DefaultExperimentConfig()
	fs.StringVar(&cfg.Checkpoint, "checkpoint", "", "pre-trained policy to start from (default: pre-train one on the embedded corpus first)")
	fs.StringVar(&cfg.SaveAs, "save", "", "save the policy pre-trained here to this file")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "RL rounds")
	fs.IntVar(&cfg.Peers, "peers", cfg.Peers, "honest rollout peers")
	fs.BoolVar(&cfg.Cheater, "cheater", cfg.Cheater, "add a rollout peer that cheats a different way each round")
	fs.IntVar(&cfg.Pretrain[0].Steps, "pretrain-steps", cfg.Pretrain[0].Steps, "pre-training steps (arithmetic drill, cosine schedule over them)")
	fs.IntVar(&cfg.RL.Problems, "problems", cfg.RL.Problems, "tasks per rollout peer per round")
	lr := fs.Float64("lr", float64(cfg.RL.AdamW.LR), "AdamW learning rate of the policy update")
	fs.BoolVar(&cfg.RL.FreshOptimizer, "fresh-optimizer", cfg.RL.FreshOptimizer, "start every round's update from zero AdamW moments (as the network does)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg.Pretrain[0].AdamW.TotalSteps = cfg.Pretrain[0].Steps
	cfg.RL.AdamW.LR = float32(*lr)
	return rl.Experiment(ctx, cfg, env.stdout)
}
