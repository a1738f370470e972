package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/trinity-net/trinity/node"
)

// adversaryNames lists the adversary modes of role (all when role is "").
func adversaryNames(role ...node.Role) string {
	r := node.Role("")
	if len(role) > 0 {
		r = role[0]
	}
	var names []string
	for _, a := range node.AdversaryKinds(r) {
		names = append(names, string(a))
	}
	return strings.Join(names, ", ")
}

// trainerAdversaries counts the trainer modes among advs.
func trainerAdversaries(advs []node.Adversary) int {
	n := 0
	for _, a := range advs {
		if a.Role() == node.RoleTrainer {
			n++
		}
	}
	return n
}

// parseAdversaries reads MODE[:N],... into one entry per adversarial peer.
func parseAdversaries(s string) ([]node.Adversary, error) {
	var out []node.Adversary
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		name, count, _ := strings.Cut(f, ":")
		a, err := node.ParseAdversary(name)
		if err != nil {
			return nil, err
		}
		k := 1
		if count != "" {
			if k, err = strconv.Atoi(count); err != nil || k < 1 || k > 64 {
				return nil, fmt.Errorf("--adversaries %q: count must be 1-64", f)
			}
		}
		for range k {
			out = append(out, a)
		}
	}
	return out, nil
}

// printAdversaries prints what became of every trainer, honest or not, as
// the lead validator saw it.
func printAdversaries(env *cliEnv, tn *node.Testnet) {
	reps, err := tn.Report()
	if err != nil {
		fmt.Fprintf(env.stdout, "no report: %v\n", err)
		return
	}
	fmt.Fprintf(env.stdout, "\n%-18s %-14s %9s %9s  %s\n", "trainer", "adversary", "standing", "manifests", "first rejected (lead validator)")
	for _, r := range reps {
		adv, det := string(r.Adversary), "never"
		if adv == "" {
			adv = "honest"
		}
		if r.Detected >= 0 {
			det = fmt.Sprintf("round %d: %s", r.Detected, r.Reason)
		}
		fmt.Fprintf(env.stdout, "%-18s %-14s %9.4f %9d  %s\n", r.Name, adv, r.Smoothed, len(r.Included), det)
	}
}

func runRobustnessExperiment(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "experiment robustness")
	dir := fs.String("dir", "", "data directories of the runs (default: a temporary directory, removed at the end)")
	cfg := node.DefaultRobustnessConfig("")
	fs.IntVar(&cfg.Rounds, "rounds", cfg.Rounds, "rounds of every run")
	fs.IntVar(&cfg.Honest, "honest", cfg.Honest, "honest trainers")
	fs.IntVar(&cfg.Each, "each", cfg.Each, "adversarial trainers of each mode")
	fs.IntVar(&cfg.GroupSize, "group-size", cfg.GroupSize, "adversary modes per run (0: all in one run)")
	fs.Int64Var(&cfg.Model.Params.RoundMillis, "round-ms", cfg.Model.Params.RoundMillis, "round length in milliseconds")
	modes := fs.String("modes", "", "comma-separated trainer adversary modes (default: all: "+adversaryNames(node.RoleTrainer)+")")
	verbose := fs.Bool("v", false, "log every node's events to stderr")
	if err := parse(fs, args); err != nil {
		return err
	}
	if cfg.Rounds < 1 || cfg.Honest < 1 || cfg.Each < 1 || cfg.GroupSize < 0 {
		return fmt.Errorf("--rounds, --honest and --each must be >= 1, --group-size >= 0")
	}
	advs, err := parseAdversaries(*modes)
	if err != nil {
		return err
	}
	for _, a := range advs {
		if a.Role() != node.RoleTrainer {
			return fmt.Errorf("--modes: %s is not a trainer mode (the dishonest validator is in every adversarial run)", a)
		}
	}
	cfg.Modes = advs
	runPath, cleanup, err := runDir(*dir, "trinity-robustness")
	if err != nil {
		return err
	}
	defer cleanup()
	cfg.Dir = runPath
	if *verbose {
		cfg.Logger = env.log
	}
	t0 := time.Now()
	runs, err := node.RunRobustness(ctx, cfg, env.stdout)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "\nwall time %v\n", time.Since(t0).Round(time.Second))
	base := node.HonestBaseline(runs)
	for _, r := range runs {
		if len(r.Modes) == 0 {
			continue
		}
		if rel := float64(r.ValLoss)/float64(base) - 1; !(rel <= 0.03) {
			fmt.Fprintf(env.stdout, "FAIL: %s: final validation loss %.2f%% above the all-honest run\n", r.Name, 100*rel)
		}
		for _, p := range r.Peers {
			if p.Adversary != "" && (p.Detected < 0 || p.IncludedAfter > 0) {
				fmt.Fprintf(env.stdout, "FAIL: %s: detected %d, %d blobs in manifests after detection\n", p.Name, p.Detected, p.IncludedAfter)
			}
		}
	}
	return nil
}
