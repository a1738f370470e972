package rl

import (
	"bytes"
	"context"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/trinity-net/trinity/optimizer"
)

// TestExperimentSmall runs the whole experiment at toy size: pre-training,
// rounds with a cheater trying every attack, replica agreement (Experiment
// fails if any replica disagrees or a cheater's batch is accepted).
func TestExperimentSmall(t *testing.T) {
	ad := optimizer.DefaultAdamW()
	ad.LR = 1e-2
	cfg := ExperimentConfig{
		Model:      tinyCfg,
		Pretrain:   []PretrainConfig{{CorpusSeed: 1, CorpusBytes: 1 << 18, Steps: 40, B: 8, T: 32, AdamW: ad}},
		RL:         testConfig(),
		Peers:      2,
		Cheater:    true,
		Rounds:     int(NumAttacks) + 1,
		TrainTasks: 64,
		Heldout:    50,
		EvalEvery:  3,
		Seed:       2,
	}
	var out bytes.Buffer
	if err := Experiment(context.Background(), cfg, &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, a := range []Attack{AttackOtherModel, AttackRewards, AttackOwnTasks, AttackReplay, AttackCopy} {
		if !strings.Contains(s, a.String()+": ") {
			t.Errorf("attack %q not in the output", a)
		}
	}
	if !strings.Contains(s, "held-out greedy accuracy: before") {
		t.Errorf("no summary:\n%s", s)
	}
	t.Log("\n" + s)
}

// TestExperimentFull runs the documented experiment (several minutes):
// TRINITY_LONG=1, optionally TRINITY_RL_CHECKPOINT=path to skip pre-training
// and TRINITY_RL_ROUNDS=n.
func TestExperimentFull(t *testing.T) {
	if os.Getenv("TRINITY_LONG") == "" {
		t.Skip("set TRINITY_LONG=1 to run the full RL experiment (5-10 minutes on 2 cores)")
	}
	cfg := DefaultExperimentConfig()
	cfg.Checkpoint = os.Getenv("TRINITY_RL_CHECKPOINT")
	cfg.SaveAs = os.Getenv("TRINITY_RL_SAVE")
	if n, err := strconv.Atoi(os.Getenv("TRINITY_RL_ROUNDS")); err == nil {
		cfg.Rounds = n
	}
	if x, err := strconv.ParseFloat(os.Getenv("TRINITY_RL_LR"), 32); err == nil {
		cfg.RL.AdamW.LR = float32(x)
	}
	if x, err := strconv.ParseFloat(os.Getenv("TRINITY_RL_SGD"), 32); err == nil {
		cfg.RL.SGDLR = float32(x)
	}
	if n, err := strconv.Atoi(os.Getenv("TRINITY_RL_PROBLEMS")); err == nil {
		cfg.RL.Problems = n
	}
	if n, err := strconv.Atoi(os.Getenv("TRINITY_RL_EPOCHS")); err == nil {
		cfg.RL.Epochs = n
	}
	if n, err := strconv.Atoi(os.Getenv("TRINITY_RL_DRILL_STEPS")); err == nil {
		cfg.Pretrain[0].Steps, cfg.Pretrain[0].AdamW.TotalSteps = n, n
	}
	if os.Getenv("TRINITY_RL_CORPUS") != "" {
		// The mixed default corpus in two stages of 3,000 steps (the base of
		// the first documented run).
		stage := func(seed uint64, lr float32, warmup int) PretrainConfig {
			ad := optimizer.DefaultAdamW()
			ad.LR, ad.Warmup, ad.TotalSteps, ad.MinLRFrac = lr, warmup, 3000, 0.1
			return PretrainConfig{CorpusSeed: seed, CorpusBytes: 8 << 20, Steps: 3000, B: 32, T: 32, AdamW: ad}
		}
		cfg.Pretrain = []PretrainConfig{stage(1, 3e-3, 50), stage(9, 1.5e-3, 20)}
		cfg.Peers, cfg.Rounds = 4, 60
	}
	if n, err := strconv.Atoi(os.Getenv("TRINITY_RL_PEERS")); err == nil {
		cfg.Peers = n
	}
	if os.Getenv("TRINITY_RL_PERSIST") != "" {
		cfg.RL.FreshOptimizer = false
	}
	if x, err := strconv.ParseFloat(os.Getenv("TRINITY_RL_PARTIAL"), 64); err == nil {
		cfg.RL.PartialCredit = x
	}
	if err := Experiment(context.Background(), cfg, &testWriter{t}); err != nil {
		t.Fatal(err)
	}
}

type testWriter struct{ t *testing.T }

func (w *testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}
