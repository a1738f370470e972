package node

import (
	"bytes"
	"context"
	"testing"
	"time"
)

// TestReplayCatchesLazyTrainer runs two honest trainers and a lazy one on a
// network where the validator challenges every trainer every round: the
// lazy trainer passes the gauntlet, fails its first challenge and is then
// kept out of the manifests; no honest trainer is ever flagged.
func TestReplayCatchesLazyTrainer(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end network test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	g := replayTestGenesis()
	var out bytes.Buffer
	res, err := RunReplayExperiment(ctx, ReplayExperimentConfig{Dir: t.TempDir(), Honest: 2, Rounds: 7, Genesis: &g, Logger: testLogger()}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if res.HonestFailures != 0 {
		t.Errorf("%d honest challenges failed (false positives)", res.HonestFailures)
	}
	if res.HonestChallenges == 0 {
		t.Errorf("no honest trainer was challenged")
	}
	if res.CaughtRound < 0 {
		t.Fatalf("the lazy trainer was never caught")
	}
	lazy := res.Trainers[len(res.Trainers)-1]
	for r, rows := range res.Rounds {
		row := rows[lazy]
		if row.Excluded && row.InManifest {
			t.Errorf("round %d: the excluded lazy trainer's blob is in the manifest", r)
		}
		if r > res.CaughtRound+1 && row.Announced && !row.Excluded {
			t.Errorf("round %d: the lazy trainer, caught in round %d, is not excluded", r, res.CaughtRound)
		}
	}
	if res.ExcludedRounds == 0 {
		t.Errorf("the lazy trainer was never excluded")
	}
}

// replayTestGenesis is the replay experiment's network with every trainer
// challenged every round (longer rounds under the race detector).
func replayTestGenesis() Genesis {
	g := ReplayExperimentGenesis()
	g.Params.Replay.Rate = 1
	if raceEnabled {
		g.Params.RoundMillis = 8000
		g.Params.InnerSteps = 4
	}
	return g
}
