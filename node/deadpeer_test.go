package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// TestDeadContributor kills (SIGKILL) two trainers that run as processes
// of their own and reach the network over QUIC only, so that their
// connections still look alive to everyone after the kill. Trainer A dies
// right after it announces a contribution and before the validator fetches
// it (validators sample, hence fetch, at the announcement deadline);
// trainer B right after the validator fetched its blob, so that B's blob is
// in the round's manifest and every other peer must get it from the
// manifest's signer after asking B in vain. It checks that the remaining
// peers get each of those rounds' manifests and apply them with agreeing
// hashes, in time for the trainers to contribute on the new state in the
// next round: nobody stalls on a dead peer.
func TestDeadContributor(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("dead contributor test: skipped in -short and under the race detector (timing)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	g := testGenesis()
	g.Params.SampleSize = 8 // every trainer, fetched at the announcement deadline
	tn := startTestnet(ctx, t, TestnetConfig{Trainers: 2, Model: g, StartDelay: 4 * time.Second})
	L := tn.Genesis.Params.RoundLength()
	validator := tn.Members()[0].Peer
	a, b := newChildTrainer(t, tn, true), newChildTrainer(t, tn, true)
	a.start(t)
	b.start(t)

	ka := a.waitAnnounced(t, 2, 12*L)
	a.kill()
	t.Logf("trainer A killed right after announcing in round %d", ka)

	kb := b.waitAnnounced(t, ka+2, 12*L)
	fetched := func(p peer.ID, r uint64) bool {
		return slices.ContainsFunc(tn.Events(), func(e Event) bool {
			return e.Kind == EventFetched && e.Peer == validator && e.Other == p && e.Round == r
		})
	}
	for !fetched(b.id, kb) {
		if time.Now().After(NewClock(tn.Genesis).RoundStart(kb + 1)) {
			t.Fatalf("the validator did not fetch trainer B's blob of round %d", kb)
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.kill()
	t.Logf("trainer B killed right after the validator fetched its blob of round %d", kb)

	for r := uint64(1); r <= kb+2; r++ {
		rep, err := tn.WaitRound(ctx, r, 4*L+20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %2d: %d contributions, %d/%d peers, state %s agree=%v", r, rep.Contributors, rep.Peers, rep.Running, rep.Hash.Short(), rep.HashesAgree)
		if !rep.HashesAgree {
			t.Errorf("round %d: peers disagree on the state", r)
		}
		if (r == ka || r == ka+1 || r == kb || r == kb+1) && rep.Contributors == 0 {
			t.Errorf("round %d: no manifest with the live trainers' contributions: the network stalled on a dead trainer", r)
		}
	}
	if fetched(a.id, ka) {
		t.Errorf("the validator fetched trainer A's blob of round %d after A was killed", ka)
	}
	contributed := contributions(tn)
	if slices.Contains(contributed[a.id], ka) {
		t.Errorf("trainer A's unfetchable blob of round %d is in the manifest", ka)
	}
	if !slices.Contains(contributed[b.id], kb) {
		// It failed the gauntlet (honest blobs do, now and then): the
		// others never had to fetch it, so this run did not test that path.
		t.Logf("trainer B's blob of round %d is not in the manifest; the fetch-from-a-dead-contributor path was not exercised", kb)
	}
}
