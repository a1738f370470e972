package experiment

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
)

// dataPath finds tinyshakespeare next to the module root (../shared/data
// from the checkout), skipping the test when it is absent.
func dataPath(t *testing.T) string {
	t.Helper()
	p := filepath.Join("..", "..", "..", "shared", "data", "tinyshakespeare.txt")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("tinyshakespeare not found at %s: %v", p, err)
	}
	return p
}

func tinyConfig(t *testing.T) Config {
	cfg := DefaultConfig(dataPath(t))
	cfg.Model = model.Config{Vocab: 256, Context: 32, Layers: 1, Heads: 2, Width: 64}
	cfg.Workers, cfg.InnerSteps, cfg.Rounds = 2, 4, 6
	cfg.Batch, cfg.SeqLen, cfg.PageSize, cfg.ValBatches = 2, 32, 256, 4
	cfg.Inner.Warmup = 2
	cfg.ChunkSize = 256
	cfg.Densities = []int{16}
	cfg.DeMo.BlockDim = 16
	cfg.DeMo.K = 8
	return cfg
}

func TestRunTiny(t *testing.T) {
	cfg := tinyConfig(t)
	var out bytes.Buffer
	tab, err := Run(context.Background(), cfg, &out)
	if err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + out.String())
	if len(tab.Rows) != 4 {
		t.Fatalf("%d rows", len(tab.Rows))
	}
	dense := 4 * cfg.Model.NumParams()
	for _, r := range tab.Rows {
		if math.IsNaN(r.ValLoss) || r.ValLoss >= tab.InitValLoss {
			t.Errorf("%s: val loss %.4f did not improve on %.4f", r.Method, r.ValLoss, tab.InitValLoss)
		}
		switch {
		case r.Method == MethodDDP && r.BytesPerRound != cfg.InnerSteps*dense,
			r.Method == MethodDiLoCo && r.BytesPerRound != dense,
			strings.HasPrefix(r.Method, MethodSparseLoCo) && r.BytesPerRound*10 > dense:
			t.Errorf("%s: %d bytes per round (dense %d)", r.Method, r.BytesPerRound, dense)
		}
	}
	// Deterministic: the same config gives the same losses.
	cfg.Methods = []string{"sparseloco-1/16"}
	again, err := Run(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again.Rows[0].ValLoss != tab.Rows[3].ValLoss || again.Rows[0].BytesPerRound != tab.Rows[3].BytesPerRound {
		t.Fatalf("rerun gave %+v, first %+v", again.Rows[0], tab.Rows[3])
	}
}

func TestRunRejects(t *testing.T) {
	cfg := tinyConfig(t)
	for name, edit := range map[string]func(c *Config){
		"no workers":     func(c *Config) { c.Workers = 0 },
		"seq > context":  func(c *Config) { c.SeqLen = 64 },
		"bad densities":  func(c *Config) { c.Densities = []int{3} },
		"unknown method": func(c *Config) { c.Methods = []string{"diloco", "sgd"} },
		"bad density":    func(c *Config) { c.Methods = []string{"sparseloco-1/3"} },
		"bad inner lr":   func(c *Config) { c.Inner.LR = -1 },
		"bad outer lr":   func(c *Config) { c.DiLoCoLR = 0 },
		"bad decay":      func(c *Config) { c.ErrorDecay = 2 },
		"bad demo k":     func(c *Config) { c.DeMo.K = 0 },
	} {
		c := cfg
		edit(&c)
		if _, err := Run(context.Background(), c, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Run(ctx, cfg, nil); err == nil {
		t.Error("cancelled context ignored")
	}
}

// TestReferenceExperiment runs the full reference experiment (minutes on 2
// cores): only with TRINITY_LONG=1. TRINITY_EXP_ROUNDS, _H, _B (batch), _EVAL,
// _LR (inner), _SPARSE_LR, _BETA (error decay) and _METHODS
// (comma-separated) override the defaults.
func TestReferenceExperiment(t *testing.T) {
	if os.Getenv("TRINITY_LONG") != "1" {
		t.Skip("set TRINITY_LONG=1 to run the reference experiment")
	}
	cfg := DefaultConfig(dataPath(t))
	for _, o := range []struct {
		env string
		dst *int
	}{{"TRINITY_EXP_ROUNDS", &cfg.Rounds}, {"TRINITY_EXP_H", &cfg.InnerSteps}, {"TRINITY_EXP_B", &cfg.Batch}, {"TRINITY_EXP_EVAL", &cfg.EvalEvery}} {
		if v := os.Getenv(o.env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s: %v", o.env, err)
			}
			*o.dst = n
		}
	}
	for _, o := range []struct {
		env string
		dst *float32
	}{{"TRINITY_EXP_SPARSE_LR", &cfg.SparseLR}, {"TRINITY_EXP_BETA", &cfg.ErrorDecay}, {"TRINITY_EXP_LR", &cfg.Inner.LR}} {
		if v := os.Getenv(o.env); v != "" {
			f, err := strconv.ParseFloat(v, 32)
			if err != nil {
				t.Fatalf("%s: %v", o.env, err)
			}
			*o.dst = float32(f)
		}
	}
	if v := os.Getenv("TRINITY_EXP_METHODS"); v != "" {
		cfg.Methods = strings.Split(v, ",")
	}
	tab, err := Run(context.Background(), cfg, os.Stdout)
	if err != nil {
		t.Fatal(err)
	}
	var diloco float64
	for _, r := range tab.Rows {
		if r.Method == MethodDiLoCo {
			diloco = r.ValLoss
		}
	}
	for _, r := range tab.Rows {
		if !strings.HasPrefix(r.Method, MethodSparseLoCo) {
			continue
		}
		if r.Ratio < 100 {
			t.Errorf("%s sends %d bytes per round, not 99%% fewer than dense %d", r.Method, r.BytesPerRound, tab.DenseBytes)
		}
		if diloco > 0 {
			t.Logf("%s: val loss %.4f vs DiLoCo %.4f (%+.2f%%)", r.Method, r.ValLoss, diloco, 100*(r.ValLoss/diloco-1))
			if r.ValLoss > 1.02*diloco {
				t.Errorf("%s: val loss %.4f more than 2%% above DiLoCo's %.4f", r.Method, r.ValLoss, diloco)
			}
		}
	}
}
