package node

import (
	"context"
	"math"
	"testing"
	"time"
)

// TestLeadFailover runs three validators and three trainers, stops the lead
// validator at round 3, and checks that the second validator publishes the
// manifests from then on (after its fallback delay), that every peer keeps
// agreeing on the state and that the loss keeps falling. (Three: a
// manifest lists only contributions that validators holding a majority of
// the stake passed, so with two near-equal validators the second alone
// could publish only empty manifests.)
func TestLeadFailover(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("fail-over test: skipped in -short and under the race detector (timing)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tn := startTestnet(ctx, t, TestnetConfig{Validators: 3, Trainers: 3})
	L := tn.Genesis.Params.RoundLength()
	second := tn.Members()[1].Peer
	var before, after float32 = float32(math.NaN()), float32(math.NaN())
	for r := uint64(0); r < 9; r++ {
		if r == 3 {
			if err := tn.Stop(0); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := tn.WaitRound(ctx, r, 4*L+20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %d: val loss %.4f, %d contributions, %d/%d peers, agree=%v", r, rep.ValLoss, rep.Contributors, rep.Peers, rep.Running, rep.HashesAgree)
		if !rep.HashesAgree {
			t.Errorf("round %d: peers disagree", r)
		}
		if r == 2 {
			before = rep.ValLoss
		}
		if !math.IsNaN(float64(rep.ValLoss)) {
			after = rep.ValLoss
		}
	}
	var fallback int
	for _, e := range tn.Events() {
		if e.Kind == EventManifest && e.Peer == second && e.Round > 3 {
			fallback++
		}
	}
	if fallback < 3 {
		t.Errorf("the second validator published %d manifests after the lead stopped, want most of rounds 4-8", fallback)
	}
	if math.IsNaN(float64(before)) || !(after < before) {
		t.Errorf("validation loss did not keep falling after the fail-over: round 2 %.4f, round 8 %.4f", before, after)
	}
}
