package node

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestDishonestComposer runs three validators of which the lead (rank 0,
// stake 100 of 297) is a dishonest composer, beside three honest trainers, a
// poisoner and a noise trainer. The composer lists contributions the
// consensus rejected, or embeds only its own score vector. Every peer must
// reject those manifests (checkChoice) and apply the fallbacks' instead: no
// manifest in any honest peer's chain lists a contribution that every
// honest validator rejected (an adversary's blob can appear only when an
// honest validator's loss test passed it, which is logged); the peers agree
// every round, and the model still trains.
func TestDishonestComposer(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("end-to-end network test (slow under the race detector)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	g := testGenesis()
	g.Params.RoundMillis = 5000
	g.Params.FallbackStep = 0.08
	tn := startTestnet(ctx, t, TestnetConfig{Trainers: 3, Validators: 2, Model: g,
		Adversaries: []Adversary{AdversaryComposer, AdversaryPoisoner, AdversaryNoise}})
	ms := tn.Members()
	if ms[0].Adversary != AdversaryComposer || tn.Genesis.ValidatorRank(ms[0].Peer) != 0 {
		t.Fatalf("the dishonest composer is not the lead: %s", ms[0].Name)
	}
	composer := ms[0].Peer
	const rounds = 7
	first, last := waitRounds(ctx, t, tn, rounds)

	// The honest validators' verdicts, by round and trainer.
	passedBy := map[uint64]map[string]int{} // honest validators that passed (trainer, CID)
	adversaries := map[string]bool{}
	var honest []Member
	for _, m := range ms {
		switch {
		case m.Adversary != "":
			adversaries[m.Peer.String()] = true
		case m.Role == RoleValidator:
			book, err := loadScores(m.Dir)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range book.History {
				if passedBy[h.Round] == nil {
					passedBy[h.Round] = map[string]int{}
				}
				for _, e := range h.Scores {
					if e.OK {
						passedBy[h.Round][e.Trainer+"/"+e.CID]++
					}
				}
			}
			fallthrough
		default:
			honest = append(honest, m)
		}
	}

	// Every manifest in every honest peer's chain.
	byFallback, bytes, listed, count := 0, 0, 0, 0
	for i, m := range honest {
		for _, mm := range chainManifests(t, m.Node, m.Node.Status().Head) {
			if i == 0 {
				bytes, listed, count = bytes+len(mm.raw), listed+len(mm.m.Contributions), count+1
			}
			if mm.sender == composer && len(mm.m.Contributions) > 0 {
				t.Errorf("%s applied round %d from the dishonest composer with %d contributions", m.Name, mm.m.Round, len(mm.m.Contributions))
			}
			if i == 0 && mm.sender != composer {
				byFallback++
			}
			for _, c := range mm.m.Contributions {
				if adversaries[c.Peer] {
					// Legitimate under the rule when an honest validator
					// passed it (the check below): the dishonest validator
					// passes everything, so one honest pass makes a stake
					// majority. That is the loss test's rare escape
					// (verify's TestHonestWorkPasses), not the composer's.
					t.Logf("%s: round %d lists the adversary %s, passed by %d honest validator(s)", m.Name, mm.m.Round, c.Peer, passedBy[mm.m.Round][c.Peer+"/"+c.CID])
				}
				if passedBy[mm.m.Round][c.Peer+"/"+c.CID] == 0 {
					t.Errorf("%s: round %d lists %s, which every honest validator rejected", m.Name, mm.m.Round, c.Peer)
				}
			}
		}
	}
	if count > 0 {
		t.Logf("manifests in the chain: %d, mean %d bytes, %.1f contributions, %d score vectors of %d entries each at most",
			count, bytes/count, float64(listed)/float64(count), len(tn.Genesis.Validators), len(ms)-len(tn.Genesis.Validators))
	}
	if byFallback < rounds-2 {
		t.Errorf("fallback validators signed %d of the %d rounds", byFallback, rounds)
	}

	// The defence fired: honest peers refused the composer's manifests.
	refused := map[peer.ID]int{}
	for _, e := range tn.Events() {
		if e.Kind == EventRejected && e.Other == composer {
			refused[e.Peer]++
		}
	}
	for _, m := range honest {
		if refused[m.Peer] == 0 {
			t.Errorf("%s never refused a manifest of the dishonest composer", m.Name)
		}
	}
	t.Logf("manifests of the dishonest composer refused per honest peer: %v; fallback rounds %d", refused, byFallback)
	if !(last < first) {
		t.Errorf("validation loss did not fall: %.4f -> %.4f", first, last)
	}
}

// chainManifests walks the chain back from head through n's blob store.
func chainManifests(t *testing.T, n *Node, head string) []*manifestMsg {
	t.Helper()
	var out []*manifestMsg
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
		out = append(out, mm)
		cs = mm.m.Prev
	}
	return out
}

// TestTestnetComposerRank: a leading adversary takes rank 0, and a testnet
// where adversarial validators would hold a stake majority is refused.
func TestTestnetComposerRank(t *testing.T) {
	got, err := testnetAdversaries(TestnetConfig{Validators: 3, Trainers: 1, Adversaries: []Adversary{AdversaryValidator, AdversaryComposer}})
	if err != nil {
		t.Fatal(err)
	}
	if want := []Adversary{AdversaryComposer, "", "", "", AdversaryValidator}; !slices.Equal(got[RoleValidator], want) {
		t.Errorf("validators %v, want %v", got[RoleValidator], want)
	}
	if _, err := testnetAdversaries(TestnetConfig{Validators: 1, Trainers: 1, Adversaries: []Adversary{AdversaryComposer}}); err == nil {
		t.Error("a dishonest composer with a stake majority was accepted")
	}
}
