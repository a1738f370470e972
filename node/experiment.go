package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// RobustnessConfig configures RunRobustness.
type RobustnessConfig struct {
	Dir       string        // data directories (required)
	Rounds    int           // rounds of every run
	Honest    int           // honest trainers
	Each      int           // adversarial trainers of each mode
	GroupSize int           // trainer modes per run (0: all in one run)
	Modes     []Adversary   // trainer modes (default: all)
	Model     Genesis       // the testnet template (zero: DefaultTestnetGenesis)
	Logger    *slog.Logger  // default: discard
	StartWait time.Duration // from testnet creation to round 0
}

// DefaultRobustnessConfig is the experiment of docs/verification.md: 4
// honest trainers and 2 of each adversary, 3 validators of which one
// dishonest, 12 rounds of 8 s, the adversaries in groups of 2 modes per
// run (so that a run trains at most 8 trainers on a shared 2-core machine).
func DefaultRobustnessConfig(dir string) RobustnessConfig {
	g := DefaultTestnetGenesis()
	g.Params.RoundMillis = 8000
	g.Params.InnerSteps = 8
	g.Params.FallbackStep = 0.08
	g.Params.EvalBatches = 8
	return RobustnessConfig{Dir: dir, Rounds: 12, Honest: 4, Each: 2, GroupSize: 2, Model: g, StartWait: 3 * time.Second}
}

// RobustnessRun is the outcome of one testnet run of the experiment.
type RobustnessRun struct {
	Name      string
	Modes     []Adversary
	ValLoss   float32   // of the global model after the last round (lead validator)
	Losses    []float32 // after each round (NaN: not reported)
	Counts    []int     // contributions in each round's manifest
	Wall      time.Duration
	Peers     []PeerReport
	Validate  PhaseStat // the lead validator's scoring of contributions
	Screen    PhaseStat // its round-wide screens
	Produce   PhaseStat // honest trainers' train + compress phases
	Agreement bool      // every round's state hashes agreed
	// Trust is each validator's agreement with the consensus, as the lead
	// validator tracks it, by member name.
	Trust map[string]float64
}

// RunRobustness runs an all-honest testnet (3 honest validators) and then,
// for each group of adversary modes, the same testnet with Each trainers of
// every mode of the group beside the honest ones and the third validator
// dishonest, all for Rounds rounds, and writes a table to w.
func RunRobustness(ctx context.Context, cfg RobustnessConfig, w io.Writer) ([]RobustnessRun, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	modes := cfg.Modes
	if len(modes) == 0 {
		// Every trainer mode but the lazy trainer, which the gauntlet
		// cannot see by design: `trinity experiment replay` shows replay
		// catching it.
		for _, a := range AdversaryKinds(RoleTrainer) {
			if a != AdversaryLazy {
				modes = append(modes, a)
			}
		}
	}
	size := cfg.GroupSize
	if size <= 0 {
		size = len(modes)
	}
	var plans [][]Adversary
	for i := 0; i < len(modes); i += size {
		plans = append(plans, modes[i:min(i+size, len(modes))])
	}
	// The all-honest run twice, first and last: their difference is the
	// run-to-run noise (peer IDs decide the data; the shared machine's load
	// decides which trainers make each window).
	plans = append([][]Adversary{nil}, append(plans, nil)...)
	var runs []RobustnessRun
	for i, group := range plans {
		run, err := robustnessRun(ctx, cfg, filepath.Join(cfg.Dir, fmt.Sprintf("run-%d", i)), group)
		if err != nil {
			return runs, err
		}
		runs = append(runs, run)
		fmt.Fprintf(w, "%s: final validation loss %.4f, %v; per round (loss/contributions):", run.Name, run.ValLoss, run.Wall.Round(time.Second))
		for i, l := range run.Losses {
			fmt.Fprintf(w, " %.3f/%d", l, run.Counts[i])
		}
		fmt.Fprintln(w)
		if len(run.Trust) > 0 {
			names := slices.Sorted(maps.Keys(run.Trust))
			fmt.Fprintf(w, "  validators' agreement with the consensus (lead's view):")
			for _, k := range names {
				fmt.Fprintf(w, " %s %.2f", k, run.Trust[k])
			}
			fmt.Fprintln(w)
		}
	}
	writeRobustness(w, cfg, runs)
	return runs, nil
}

func robustnessRun(ctx context.Context, cfg RobustnessConfig, dir string, group []Adversary) (RobustnessRun, error) {
	run := RobustnessRun{Name: "all honest", Modes: group, Agreement: true}
	tc := TestnetConfig{Dir: dir, Trainers: cfg.Honest, Validators: 3, Model: cfg.Model, Logger: cfg.Logger, StartDelay: cfg.StartWait}
	if len(group) > 0 {
		names := make([]string, len(group))
		for i, a := range group {
			names[i] = string(a)
			for range cfg.Each {
				tc.Adversaries = append(tc.Adversaries, a)
			}
		}
		run.Name = strings.Join(names, "+")
		tc.Validators = 2
		tc.Adversaries = append(tc.Adversaries, AdversaryValidator)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return run, err
	}
	t0 := time.Now()
	tn, err := NewTestnet(ctx, tc)
	if err != nil {
		return run, err
	}
	defer tn.Close()
	if err := tn.Run(ctx); err != nil {
		return run, err
	}
	timeout := 4*tn.Genesis.Params.RoundLength() + 30*time.Second
	run.ValLoss = float32(math.NaN())
	for r := range uint64(cfg.Rounds) {
		rep, err := tn.WaitRound(ctx, r, timeout)
		if err != nil {
			return run, err
		}
		run.Agreement = run.Agreement && rep.HashesAgree
		run.Losses = append(run.Losses, rep.ValLoss)
		run.Counts = append(run.Counts, rep.Contributors)
	}
	run.ValLoss = run.Losses[len(run.Losses)-1]
	if math.IsNaN(float64(run.ValLoss)) {
		run.ValLoss = finalLoss(ctx, tn, uint64(cfg.Rounds))
	}
	run.Wall = time.Since(t0)
	if run.Peers, err = tn.Report(); err != nil {
		return run, err
	}
	run.Trust = map[string]float64{}
	for _, m := range tn.Members() {
		if m.Node == nil {
			continue
		}
		if m.Role == RoleValidator {
			if a, ok := tn.Members()[0].Node.Status().ConsensusAgreement[m.Peer.String()]; ok {
				run.Trust[m.Name] = a
			}
		}
		if m.Adversary != "" {
			continue
		}
		ph := m.Node.Status().Phases
		switch {
		case m.Role == RoleValidator && run.Validate.Count == 0:
			run.Validate, run.Screen = ph[phaseValidate], ph[phaseScreen]
		case m.Role == RoleTrainer:
			for _, p := range []string{phaseTrain, phaseCompress} {
				run.Produce.Seconds += ph[p].Seconds
			}
			run.Produce.Count += ph[phaseTrain].Count
		}
	}
	return run, nil
}

// writeRobustness prints the experiment's tables.
func writeRobustness(w io.Writer, cfg RobustnessConfig, runs []RobustnessRun) {
	if len(runs) == 0 {
		return
	}
	base := HonestBaseline(runs)
	fmt.Fprintf(w, "\n%d rounds, %d honest trainers, %d of each adversary, 3 validators (the third dishonest in adversarial runs)\n\n", cfg.Rounds, cfg.Honest, cfg.Each)
	fmt.Fprintf(w, "| run | final val loss | vs all honest (mean) | adversaries detected | adversary blobs in manifests after detection | honest contributions | empty rounds | states agree | wall |\n|---|---|---|---|---|---|---|---|---|\n")
	for _, r := range runs {
		var advs, detected, after, honestIn, honestMax int
		for _, p := range r.Peers {
			if p.Adversary == "" {
				honestIn += len(p.Included)
				honestMax += cfg.Rounds
				continue
			}
			advs++
			if p.Detected >= 0 {
				detected++
			}
			after += p.IncludedAfter
		}
		empty := 0
		for _, c := range r.Counts {
			if c == 0 {
				empty++
			}
		}
		fmt.Fprintf(w, "| %s | %.4f | %+.2f%% | %d/%d | %d | %d/%d | %d | %v | %v |\n", r.Name, r.ValLoss, 100*(float64(r.ValLoss)/float64(base)-1),
			detected, advs, after, honestIn, honestMax, empty, r.Agreement, r.Wall.Round(time.Second))
	}
	fmt.Fprintf(w, "\n| adversary | detected in round | reason | blobs in manifests (before / after detection) | final standing |\n|---|---|---|---|---|\n")
	for _, r := range runs {
		for _, p := range r.Peers {
			if p.Adversary == "" {
				continue
			}
			before := len(p.Included) - p.IncludedAfter
			reason := p.Reason
			if i := strings.LastIndex(reason, ": "); i >= 0 && !strings.HasPrefix(reason, "copy") && !strings.HasPrefix(reason, "equivocation") {
				reason = reason[i+2:]
			}
			if len(reason) > 70 {
				reason = reason[:70] + "..."
			}
			fmt.Fprintf(w, "| %s | %d | %s | %d / %d | %.4f |\n", p.Name, p.Detected, reason, before, p.IncludedAfter, p.Smoothed)
		}
	}
	var val, scr, prod PhaseStat
	for _, r := range runs {
		val.Seconds += r.Validate.Seconds
		val.Count += r.Validate.Count
		scr.Seconds += r.Screen.Seconds
		scr.Count += r.Screen.Count
		prod.Seconds += r.Produce.Seconds
		prod.Count += r.Produce.Count
	}
	if val.Count > 0 && prod.Count > 0 {
		v, p := val.Seconds/float64(val.Count), prod.Seconds/float64(prod.Count)
		s := 0.0
		if scr.Count > 0 && val.Count > 0 {
			s = scr.Seconds / float64(val.Count) // screens amortised per contribution
		}
		fmt.Fprintf(w, "\nvalidator cost: %.1f ms to score one contribution (+%.2f ms of round screens) vs %.1f ms for an honest trainer to produce it (train + compress): %.1f%%\n",
			1000*v, 1000*s, 1000*p, 100*(v+s)/p)
	}
}

// finalLoss waits (a little) for an honest validator whose state is
// exactly theta_rounds and returns the validation loss it measured on it.
func finalLoss(ctx context.Context, tn *Testnet, rounds uint64) float32 {
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		for _, m := range tn.Members() {
			if m.Role != RoleValidator || m.Adversary != "" || m.Node == nil {
				continue
			}
			if s := m.Node.Status(); s.StateRound == rounds && s.ValLoss != nil {
				return float32(*s.ValLoss)
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return float32(math.NaN())
}

// HonestBaseline is the mean final validation loss of the all-honest runs.
func HonestBaseline(runs []RobustnessRun) float32 {
	var sum float64
	var n int
	for _, r := range runs {
		if len(r.Modes) == 0 {
			sum += float64(r.ValLoss)
			n++
		}
	}
	return float32(sum / float64(n))
}
