package node

import (
	"context"
	"fmt"
	"math"
	"os"
	"testing"
	"time"
)

// adversaryGroups are the trainer modes the end-to-end test runs together,
// beside four honest trainers and two honest validators and one dishonest
// one. The first group (the subtle ones) runs by default; TRINITY_LONG=1
// runs them all.
var adversaryGroups = [][]Adversary{
	{AdversaryCopier, AdversaryScaledCopier, AdversaryNoise, AdversaryFreeRider, AdversaryValidator},
	{AdversaryPoisoner, AdversarySignFlip, AdversaryStale, AdversaryWrongBase, AdversaryValidator},
	{AdversaryNaN, AdversaryMalformed, AdversaryOversized, AdversarySpam, AdversaryValidator},
}

// TestAdversaries runs four honest trainers beside adversaries and checks
// the defences: every adversary is detected and none of its blobs enters a
// manifest after that, every honest trainer contributes and keeps a higher
// standing than every adversary, the peers agree and the model trains.
func TestAdversaries(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("end-to-end network test (slow under the race detector)")
	}
	groups := adversaryGroups[:1]
	if os.Getenv("TRINITY_LONG") == "1" {
		groups = adversaryGroups
	}
	for _, advs := range groups {
		t.Run(fmt.Sprint(advs[:len(advs)-1]), func(t *testing.T) { runAdversaries(t, advs, 7) })
	}
}

func runAdversaries(t *testing.T, advs []Adversary, rounds int) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	g := testGenesis()
	g.Params.RoundMillis = 5000
	g.Params.FallbackStep = 0.08
	tn := startTestnet(ctx, t, TestnetConfig{Trainers: 4, Validators: 2, Model: g, Adversaries: advs})
	first, last := waitRounds(ctx, t, tn, rounds)
	reps, err := tn.Report()
	if err != nil {
		t.Fatal(err)
	}
	checkDefences(t, reps, rounds)
	if !(last < first) {
		t.Errorf("validation loss did not fall: %.4f -> %.4f", first, last)
	}
}

// waitRounds waits for rounds 0..rounds-1 of tn, logs each, fails the test
// for every round the peers disagree on, and returns the first and last
// validation losses it saw.
func waitRounds(ctx context.Context, t *testing.T, tn *Testnet, rounds int) (first, last float32) {
	t.Helper()
	L := tn.Genesis.Params.RoundLength()
	first, last = float32(math.NaN()), float32(math.NaN())
	for r := range uint64(rounds) {
		rep, err := tn.WaitRound(ctx, r, 4*L+20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: val loss %.4f, %d contributions, %d/%d peers, agree=%v", r, rep.ValLoss, rep.Contributors, rep.Peers, rep.Running, rep.HashesAgree)
		if !rep.HashesAgree {
			t.Errorf("round %d: peers disagree on the state", r)
		}
		if math.IsNaN(float64(first)) {
			first = rep.ValLoss
		}
		if !math.IsNaN(float64(rep.ValLoss)) {
			last = rep.ValLoss
		}
	}
	return first, last
}

// checkDefences asserts the defence properties on a run's reports.
func checkDefences(t *testing.T, reps []PeerReport, rounds int) {
	t.Helper()
	minHonest, maxAdv := math.Inf(1), math.Inf(-1)
	for _, r := range reps {
		t.Logf("%-16s announced %2d, in manifests %v, detected %d (%s), after detection %d, standing %.4f banned=%v",
			r.Name, r.Announced, r.Included, r.Detected, r.Reason, r.IncludedAfter, r.Smoothed, r.Banned)
		if r.Adversary == "" {
			minHonest = min(minHonest, r.Smoothed)
			if len(r.Included) < rounds/2 {
				t.Errorf("honest %s contributed in only %d of %d rounds", r.Name, len(r.Included), rounds)
			}
			continue
		}
		maxAdv = max(maxAdv, r.Smoothed)
		if r.Announced == 0 {
			t.Errorf("adversary %s never had a contribution recorded", r.Name)
			continue
		}
		if r.Detected < 0 {
			t.Errorf("adversary %s was never detected", r.Name)
		}
		if r.IncludedAfter > 0 {
			t.Errorf("adversary %s entered %d manifests after its detection in round %d", r.Name, r.IncludedAfter, r.Detected)
		}
	}
	if !(minHonest > maxAdv) {
		t.Errorf("lowest honest standing %.4f is not above the highest adversary's %.4f", minHonest, maxAdv)
	}
}
