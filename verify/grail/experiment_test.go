package grail

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
)

func shakespeare(t testing.TB) []byte {
	b, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "data", "tinyshakespeare.txt"))
	if err != nil {
		return nil
	}
	return b
}

// TestExperimentSmall runs the whole experiment at a small size and checks
// its verdicts; TRINITY_LONG=1 runs the full default evaluation.
func TestExperimentSmall(t *testing.T) {
	cfg := ExperimentConfig{
		Honest: 24, Trials: 4, TimingRuns: 1, TrainSteps: 10,
		Timing:    model.Config{Vocab: 256, Context: 64, Layers: 2, Heads: 2, Width: 64},
		TimingGen: 48,
	}
	var out strings.Builder
	var w io.Writer = &out
	if os.Getenv("TRINITY_LONG") == "1" {
		cfg = DefaultExperimentConfig()
		w = io.MultiWriter(&out, os.Stdout) // stream the long run
	}
	cfg.Text = shakespeare(t)
	x, err := runExperiment(context.Background(), cfg, w)
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("TRINITY_LONG") != "1" {
		t.Log("\n" + out.String())
	}
	if x.falseRejections != 0 || x.differingBits != 0 {
		t.Errorf("%d honest verifications rejected, %d differing bits", x.falseRejections, x.differingBits)
	}
	for name, n := range x.escapes {
		t.Errorf("attack %q: %d forgeries accepted", name, n)
	}
	if len(x.escapes) == 0 && !strings.Contains(out.String(), "int8") {
		t.Error("attack table missing")
	}
}
