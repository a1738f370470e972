package node

import (
	"context"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestPausedLeadResumes pauses the lead validator's loop (as docker pause
// or SIGSTOP would stop the process) from the start of round 3 until just
// after its manifest slot of round 6, with a second validator and three
// trainers running on. It checks that the fallback validator carries rounds
// 3-5, that the resumed lead, whose head is two rounds stale, publishes
// nothing on it but catches up, that no peer ever rolls back or switches
// branches, that every peer agrees after every round, and that the lead
// leads again from round 8. Without the fork choice the resumed lead
// publishes round 6 on its stale head and every peer rolls rounds 3-5 back.
func TestPausedLeadResumes(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("pause test: skipped in -short and under the race detector (timing)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	tn := startTestnet(ctx, t, TestnetConfig{Validators: 2, Trainers: 3, StartDelay: 3 * time.Second})
	clock := NewClock(tn.Genesis)
	L := clock.Length
	members := tn.Members()
	lead, fallback := members[0].Peer, members[1].Peer

	time.Sleep(time.Until(clock.At(3, 0.05)))
	resume, err := tn.Pause(0)
	if err != nil {
		t.Fatal(err)
	}
	// Resume between the lead's slot (0.75) and the fallback's (0.80).
	time.Sleep(time.Until(clock.At(6, 0.76)))
	resume()
	t.Log("lead paused from round 3 to round 6 at 0.76")

	const rounds = 12
	for r := uint64(0); r < rounds; r++ {
		rep, err := tn.WaitRound(ctx, r, 4*L+20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("round %2d: val loss %.4f, %d contributions, %d/%d peers, state %s agree=%v", r, rep.ValLoss, rep.Contributors, rep.Peers, rep.Running, rep.Hash.Short(), rep.HashesAgree)
		if !rep.HashesAgree {
			t.Errorf("round %d: peers disagree on the state", r)
		}
	}

	// No peer rolled back: each one's applied rounds only go forward (a
	// reorg may replace the round it holds with a sibling: the lead and
	// the fallback race now and then when the machine is loaded).
	last := map[peer.ID]uint64{}
	for _, e := range tn.Events() {
		switch e.Kind {
		case EventReorg:
			if r, ok := last[e.Peer]; ok && e.Round < r {
				t.Errorf("%s switched to a branch at round %d after applying round %d", e.Peer, e.Round, r)
			}
			last[e.Peer] = e.Round
		case EventApplied, EventCaughtUp:
			if r, ok := last[e.Peer]; ok && e.Round <= r {
				t.Errorf("%s applied round %d after round %d", e.Peer, e.Round, r)
			}
			last[e.Peer] = e.Round
		case EventManifest:
			if e.Peer == lead && e.Round >= 3 && e.Round <= 6 {
				t.Errorf("the lead published a manifest for round %d, while paused or stale", e.Round)
			}
		}
	}

	// Every peer holds one chain, which keeps the fallback's rounds 3-5 and
	// is led by the lead again from round 8.
	var signer map[uint64]peer.ID
	var chain map[uint64]string
	for i, m := range tn.Members() {
		c, s := manifestChain(t, m.Node, m.Node.Status().Head)
		if i == 0 {
			chain, signer = c, s
			continue
		}
		for r := uint64(0); r < rounds; r++ {
			if c[r] != chain[r] {
				t.Errorf("%s and %s hold different manifests for round %d", m.Name, tn.Members()[0].Name, r)
			}
		}
	}
	for r := uint64(3); r <= 5; r++ {
		if signer[r] != fallback {
			t.Errorf("round %d in the final chain: signed by %q, want the fallback validator", r, signer[r])
		}
	}
	led := 0
	for r := uint64(8); r < rounds; r++ {
		if signer[r] == lead {
			led++
		}
	}
	if led < 3 {
		t.Errorf("the resumed lead signed %d of rounds 8-%d in the final chain, want at least 3", led, rounds-1)
	}
}

// manifestChain walks the chain back from head through n's blob store and
// returns each round's manifest CID and signer.
func manifestChain(t *testing.T, n *Node, head string) (map[uint64]string, map[uint64]peer.ID) {
	t.Helper()
	cids, signers := map[uint64]string{}, map[uint64]peer.ID{}
	for cs := head; cs != ""; {
		c, err := cid.Decode(cs)
		if err != nil {
			t.Fatal(err)
		}
		b, err := n.P2P().Store().Get(c)
		if err != nil {
			break // collected
		}
		mm, err := parseManifestBlob(b, n.gen)
		if err != nil {
			t.Fatal(err)
		}
		cids[mm.m.Round], signers[mm.m.Round] = cs, mm.sender
		cs = mm.m.Prev
	}
	return cids, signers
}
