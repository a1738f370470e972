package main

import (
	"context"
	"fmt"

	"github.com/trinity-net/trinity/node"
)

func runReplayExperiment(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "experiment replay")
	g := node.ReplayExperimentGenesis()
	cfg := node.ReplayExperimentConfig{Genesis: &g}
	fs.IntVar(&cfg.Honest, "honest", 3, "honest trainers (one lazy trainer is added)")
	fs.IntVar(&cfg.Validators, "validators", 1, "validators (each challenges independently)")
	fs.IntVar(&cfg.Rounds, "rounds", 16, "rounds reported")
	fs.Float64Var(&g.Params.Replay.Rate, "rate", g.Params.Replay.Rate, "probability that a validator challenges a trainer in a round")
	fs.IntVar(&g.Params.Replay.Checks, "checks", g.Params.Replay.Checks, "steps checked per challenge")
	fs.Int64Var(&g.Params.RoundMillis, "round-ms", g.Params.RoundMillis, "round length in milliseconds")
	fs.IntVar(&g.Params.InnerSteps, "inner-steps", g.Params.InnerSteps, "inner steps per round (H)")
	dir := fs.String("dir", "", "data directories of the peers (default: a temporary directory, removed at the end)")
	verbose := fs.Bool("v", false, "log every node's events to stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if cfg.Honest < 1 || cfg.Validators < 1 || cfg.Rounds < 1 {
		return fmt.Errorf("--honest, --validators and --rounds must be >= 1")
	}
	runPath, cleanup, err := runDir(*dir, "trinity-replay")
	if err != nil {
		return err
	}
	defer cleanup()
	cfg.Dir = runPath
	cfg.Logger = nodeLogger(env, *verbose)
	p := g.Params.Replay
	fmt.Fprintf(env.stdout, "replay experiment: %d honest trainers + 1 lazy (half the steps at double the learning rate), %d validator(s)\n", cfg.Honest, cfg.Validators)
	fmt.Fprintf(env.stdout, "model %v, rounds of %v, H=%d; challenge rate %g, %d step(s) per challenge, exclusion %d rounds (+ the failed one)\n",
		g.Model, g.Params.RoundLength(), g.Params.InnerSteps, p.Rate, p.Checks, p.ExcludeRounds)
	_, err = node.RunReplayExperiment(ctx, cfg, env.stdout)
	return err
}
