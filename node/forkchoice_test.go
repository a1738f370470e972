package node

import (
	"bytes"
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/trinity-net/trinity/p2p"
)

// chainOf builds a view from links given as (cid, round, rank), each built
// on the one before it, the first on root.
func chainOf(root string, ls ...chainLink) chainView {
	v := chainView{root: root}
	prev := root
	for _, l := range ls {
		l.prev = prev
		v.links = append(v.links, l)
		prev = l.cid
	}
	return v
}

func TestForkChoiceClassify(t *testing.T) {
	// The network applied M2 (lead), then F3, F4, F5 (fallback, rank 1)
	// while the lead was paused.
	v := chainOf("M1",
		chainLink{cid: "M2", round: 2, rank: 0},
		chainLink{cid: "F3", round: 3, rank: 1},
		chainLink{cid: "F4", round: 4, rank: 1},
		chainLink{cid: "F5", round: 5, rank: 1})
	for _, tc := range []struct {
		name string
		l    chainLink
		want verdict
	}{
		{"next manifest on the head", chainLink{cid: "F6", prev: "F5", round: 6, rank: 1}, extendsHead},
		{"resumed lead on its stale head M2", chainLink{cid: "L6", prev: "M2", round: 6, rank: 0}, losesFork},
		{"resumed lead on F4, a round behind", chainLink{cid: "L6", prev: "F4", round: 6, rank: 0}, losesFork},
		{"lower rank sibling of the head", chainLink{cid: "M5", prev: "F4", round: 5, rank: 0}, winsFork},
		{"higher rank sibling of the head", chainLink{cid: "G5", prev: "F4", round: 5, rank: 2}, losesFork},
		{"lower rank sibling of a buried round", chainLink{cid: "M4", prev: "F3", round: 4, rank: 0}, losesFork},
		{"a manifest we applied", chainLink{cid: "F4", prev: "F3", round: 4, rank: 1}, alreadyHeld},
		{"a chain going backwards", chainLink{cid: "X", prev: "F4", round: 4, rank: 0}, losesFork},
		{"unknown parent", chainLink{cid: "F7", prev: "F6", round: 7, rank: 1}, unknownFork},
		{"unknown parent, older than the view", chainLink{cid: "Z1", prev: "Z0", round: 1, rank: 0}, losesFork},
		{"built on the root", chainLink{cid: "M2b", prev: "M1", round: 3, rank: 0}, losesFork},
	} {
		if got := v.classify(tc.l); got != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, got, tc.want)
		}
	}
	// Equal rank and round (one validator signed two manifests): the lower
	// CID wins, whichever arrived first.
	a := chainLink{cid: "A5", prev: "F4", round: 5, rank: 1}
	if v.classify(a) != winsFork {
		t.Errorf("equivocation: the lower CID does not win")
	}
	w := chainOf("M1", chainLink{cid: "M2", round: 2}, chainLink{cid: "A5", round: 5, rank: 1})
	if w.classify(chainLink{cid: "F5", prev: "M2", round: 5, rank: 1}) != losesFork {
		t.Errorf("equivocation: the higher CID wins")
	}
	// An empty view (genesis) takes the first manifest of the network.
	var g chainView
	if g.classify(chainLink{cid: "M0", round: 0}) != extendsHead {
		t.Errorf("genesis view does not take the first manifest")
	}
}

func TestForkChoiceWalk(t *testing.T) {
	v := chainOf("M1",
		chainLink{cid: "M2", round: 2, rank: 0},
		chainLink{cid: "F3", round: 3, rank: 1},
		chainLink{cid: "F4", round: 4, rank: 1})
	for _, tc := range []struct {
		name           string
		count          int
		cur            chainLink
		join           int
		decided, reorg bool
		lost           bool
	}{
		{"descends from the head", 3, chainLink{cid: "F5", prev: "F4", round: 5, rank: 1}, 2, true, false, false},
		{"stale lead's two manifests on M2", 2, chainLink{cid: "L5", prev: "M2", round: 5, rank: 0}, 0, true, false, true},
		{"a longer branch on M2", 3, chainLink{cid: "G3", prev: "M2", round: 3, rank: 2}, 0, true, true, false},
		{"equal length, earlier first round", 2, chainLink{cid: "G3", prev: "M2", round: 3, rank: 0}, 0, true, true, false},
		{"not met yet", 1, chainLink{cid: "F6", prev: "F5", round: 6, rank: 1}, 0, false, false, false},
		{"forked before the view, shorter", 2, chainLink{cid: "Z", prev: "Y", round: 1}, 0, true, false, true},
		{"forked before the view, longer", 4, chainLink{cid: "Z", prev: "Y", round: 1}, -2, true, true, false},
	} {
		join, decided, reorg, err := v.judgeWalk(tc.count, tc.cur)
		if lost := errors.Is(err, errForkLost); lost != tc.lost || decided != tc.decided || (!lost && (join != tc.join || reorg != tc.reorg)) {
			t.Errorf("%s: join %d decided %v reorg %v err %v; want join %d decided %v reorg %v lost %v",
				tc.name, join, decided, reorg, err, tc.join, tc.decided, tc.reorg, tc.lost)
		}
	}
}

func TestChainViewAttach(t *testing.T) {
	v := chainOf("M1", chainLink{cid: "M2", round: 2}, chainLink{cid: "F3", round: 3}, chainLink{cid: "F4", round: 4})
	// A reorg at M2 with a replay from a checkpoint that also re-applied M2.
	v.attach(0, []chainLink{{cid: "M2", prev: "M1", round: 2}, {cid: "G3", prev: "M2", round: 3}, {cid: "G4", prev: "G3", round: 4}, {cid: "G5", prev: "G4", round: 5}})
	var got []string
	for _, l := range v.links {
		got = append(got, l.cid)
	}
	if want := "M2 G3 G4 G5"; strings.Join(got, " ") != want || v.root != "M1" {
		t.Errorf("after reorg: root %s, links %s, want M1, %s", v.root, strings.Join(got, " "), want)
	}
	// Replacing everything moves the root.
	v.attach(-2, []chainLink{{cid: "X9", prev: "X8", round: 9}})
	if v.root != "X8" || len(v.links) != 1 {
		t.Errorf("replace: root %s, %d links", v.root, len(v.links))
	}
	// The view stays bounded and the root follows.
	for i := range 2 * maxChainView {
		prev := v.links[len(v.links)-1].cid
		v.attach(v.headPos(), []chainLink{{cid: string(rune('a'+i%26)) + prev, prev: prev, round: uint64(10 + i)}})
	}
	if len(v.links) != maxChainView || v.root != v.links[0].prev {
		t.Errorf("bounded view: %d links, root %q, first builds on %q", len(v.links), v.root, v.links[0].prev)
	}
}

// TestLoadView rebuilds the applied chain from signed manifests in a blob
// store, as a restarted node does, and stops where a link is missing.
func TestLoadView(t *testing.T) {
	g := validGenesis(t)
	id, _ := g.ID()
	k, _, _ := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{1}, 64)))
	st, err := p2p.OpenStore(t.TempDir(), 1<<20, 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	var cids []cid.Cid
	prev := ""
	for r := uint64(0); r < 4; r++ {
		b, err := encodeMsg(&Manifest{V: WireVersion, Round: r, Prev: prev, Contributions: []Contribution{}})
		if err != nil {
			t.Fatal(err)
		}
		env := &p2p.Envelope{Version: p2p.EnvelopeVersion, Network: id, Topic: p2p.TopicManifest, Round: r, Timestamp: 1, Payload: b}
		if err := env.Sign(k); err != nil {
			t.Fatal(err)
		}
		raw, _ := env.MarshalBinary()
		c, err := st.Put(raw)
		if err != nil {
			t.Fatal(err)
		}
		cids = append(cids, c)
		prev = c.String()
	}
	v := loadView(st, g, cids[3])
	if len(v.links) != 4 || v.root != "" || v.links[3].cid != cids[3].String() || v.links[0].round != 0 {
		t.Fatalf("full chain: root %q, %d links", v.root, len(v.links))
	}
	if v.classify(chainLink{cid: "next", prev: cids[3].String(), round: 4}) != extendsHead {
		t.Errorf("the next manifest does not extend the rebuilt head")
	}
	if err := st.Delete(cids[1]); err != nil {
		t.Fatal(err)
	}
	v = loadView(st, g, cids[3])
	if len(v.links) != 2 || v.root != cids[1].String() {
		t.Errorf("chain with round 1 missing: root %q, %d links; want root %s, 2 links", v.root, len(v.links), cids[1])
	}
	if v = loadView(st, g, cid.Undef); len(v.links) != 0 || v.root != "" {
		t.Errorf("no manifest applied: root %q, %d links", v.root, len(v.links))
	}
}
