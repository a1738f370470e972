package replay_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/verify"
	"github.com/trinity-net/trinity/verify/replay"
	"github.com/trinity-net/trinity/verify/replay/internal/fixture"
)

// The lazy trainer of issue 13: it computes only half its steps, at double
// the learning rate, and fakes the rest of its commitment. Its contribution
// improves the loss about as much as an honest one, so the loss-based
// gauntlet passes it; replay fails it at every step.
func TestLazyTrainerPassesGauntletNotReplay(t *testing.T) {
	e := engine(t)
	n := tinyNet(t, e)
	ck := newChecker(t, e, n)
	spec := n.Spec()
	H := spec.Steps
	lazy := fixture.Attack{LRScale: map[int]float32{}, Skip: map[int]bool{}}
	for j := range H {
		if j%2 == 0 {
			lazy.LRScale[j] = 2
		} else {
			lazy.Skip[j] = true
		}
	}
	evalModel, err := model.New(spec.Model, e)
	if err != nil {
		t.Fatal(err)
	}
	batch := func(peer string, r uint64, j int) verify.Batch {
		b := verify.Batch{Inputs: make([]int32, spec.Data.Batch*spec.Data.SeqLen), B: spec.Data.Batch, T: spec.Data.SeqLen}
		b.Targets = make([]int32, len(b.Inputs))
		if err := replay.StepBatch(spec.Data, peer, r, j, b.Inputs, b.Targets); err != nil {
			t.Fatal(err)
		}
		return b
	}
	gp := verify.Params{OuterLR: 0.7, StepScale: 0.5, GapTolerance: 0.5}
	const rounds = 6
	for _, who := range []struct {
		name string
		a    fixture.Attack
	}{{"honest", fixture.Attack{}}, {"lazy", lazy}} {
		tr := newTrainer(t, e, n, who.name, replay.WithCheckpointEvery(1))
		global := slices.Clone(n.Init)
		passed, flaggedSteps, score := 0, 0, 0.0
		for r := range uint64(rounds) {
			p := playRound(t, tr, r, global, who.a)
			dense := make([]float32, len(global))
			c := n.Chunking.NewCompressed()
			norm, err := verify.Check(n.Chunking, p.blob, r, [32]byte{}, [32]byte{}, gp, c, dense)
			if err != nil {
				t.Fatal(err)
			}
			ref, err := verify.NewReference(evalModel, global, batch(fmt.Sprintf("random-%d", r), r, 0))
			if err != nil {
				t.Fatal(err)
			}
			res, err := verify.Gauntlet(evalModel, dense, norm, batch(who.name, r, 0), ref, gp)
			if err != nil {
				t.Fatal(err)
			}
			if res.OK {
				passed++
				score += res.Score
			}
			flaggedSteps += len(p.failing(t, ck))
			if err := n.Apply(global, p.blob, r); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: gauntlet passed %d/%d rounds (mean score %.4f nats), replay flagged %d/%d steps",
			who.name, passed, rounds, score/float64(max(passed, 1)), flaggedSteps, rounds*H)
		switch who.name {
		case "honest":
			if passed != rounds || flaggedSteps != 0 {
				t.Fatalf("honest trainer: gauntlet %d/%d, %d steps flagged", passed, rounds, flaggedSteps)
			}
		case "lazy":
			if passed < rounds-1 {
				t.Errorf("the lazy trainer was meant to pass the gauntlet; it passed %d/%d rounds", passed, rounds)
			}
			if flaggedSteps != rounds*H {
				t.Fatalf("replay flagged %d of the lazy trainer's %d steps", flaggedSteps, rounds*H)
			}
		}
	}
}
