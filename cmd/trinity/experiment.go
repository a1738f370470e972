package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/trinity-net/trinity/verify/grail"
)

// experiments are the measurement runs whose tables go into docs/.
var experiments = map[string]struct {
	summary string
	run     func(ctx context.Context, env *cliEnv, args []string) error
}{
	"grail": {"GRAIL proofs: honest acceptance, attacks rejected, cost", runGrailExperiment},
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

// shakespeare finds ../shared/data/tinyshakespeare.txt from the working
// directory or the given path; it returns nil when absent.
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
