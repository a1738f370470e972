package node

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/verify"
)

func testPeers(t *testing.T, n int, seed byte) []peer.ID {
	t.Helper()
	out := make([]peer.ID, n)
	for i := range out {
		k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed + byte(i)}, 64)))
		if err != nil {
			t.Fatal(err)
		}
		out[i], _ = peer.IDFromPrivateKey(k)
	}
	return out
}

// TestConsensusChoice checks the manifest composition rule with three
// validators of nearly equal stake, the third dishonest (it inverts every
// verdict): whatever it says, a contribution goes in exactly when the
// honest majority of the voting stake passes it.
func TestConsensusChoice(t *testing.T) {
	vals := testPeers(t, 3, 10)
	g := validGenesis(t)
	g.Validators = nil
	for i, p := range vals {
		g.Validators = append(g.Validators, ValidatorKey{Peer: p.String(), Stake: uint64(100 - i)})
	}
	g.Params.MaxContributions = 3
	tr := testPeers(t, 7, 40)
	honestA, honestB, honestC, honestD, copier, unscored, equivocal := tr[0], tr[1], tr[2], tr[3], tr[4], tr[5], tr[6]
	v := &validatorRole{n: &Node{gen: g, clock: NewClock(g)}, rank: 0, rounds: map[uint64]*valRound{},
		book: &scoreBook{Standing: map[string]*verify.Standing{}}, policy: verify.DefaultPolicy(0.5)}
	vr := v.round(5)
	cid := func(p peer.ID) string { return testCID(p.String()) }
	ok := func(p peer.ID, s float64) ScoreEntry {
		return ScoreEntry{Trainer: p.String(), CID: cid(p), Score: s, OK: true}
	}
	bad := func(p peer.ID) ScoreEntry { return ScoreEntry{Trainer: p.String(), CID: cid(p), Reason: "copy"} }
	abstain := func(p peer.ID) ScoreEntry {
		return ScoreEntry{Trainer: p.String(), CID: cid(p), Reason: reasonNotScored}
	}
	for _, p := range tr {
		vr.anns[p] = &Announcement{CID: cid(p)}
		vr.blobs[p] = []byte("blob")
		vr.decoded[p] = checked{}
	}
	// The lead's own verdicts.
	vr.results[honestA], vr.results[honestB], vr.results[honestC] = ok(honestA, 0.3), ok(honestB, 0.2), ok(honestC, 0.1)
	vr.results[honestD] = abstain(honestD)
	vr.results[copier], vr.results[unscored], vr.results[equivocal] = bad(copier), abstain(unscored), abstain(equivocal)
	// The honest second validator.
	other := ScoreEntry{Trainer: equivocal.String(), CID: testCID("another blob"), Score: 0.5, OK: true}
	vr.others[vals[1]] = &Scores{Entries: []ScoreEntry{ok(honestA, 0.25), ok(honestB, 0.22), ok(honestC, 0.12),
		ok(honestD, 0.15), bad(copier), bad(unscored), other}}
	// The dishonest third: everything inverted, the copier boosted.
	vr.others[vals[2]] = &Scores{Entries: []ScoreEntry{bad(honestA), bad(honestB), bad(honestC), bad(honestD),
		ok(copier, 9), ok(unscored, 9), ok(equivocal, 9)}}

	got := v.choose(5, vr)
	// Ranked by consensus score (0.25, 0.2, 0.1). honestD: the lead had no
	// time to score it, so only 99 of 297 of the stake passed it: it waits.
	// unscored: the same, though the dishonest validator boosts it.
	// equivocal: the honest validator passed another blob of it, which is
	// a vote against the one the lead holds.
	want := []peer.ID{honestA, honestB, honestC}
	if !slices.Equal(got, want) {
		t.Fatalf("chosen %v, want %v", got, want)
	}
	for _, p := range []peer.ID{honestD, copier, unscored, equivocal} {
		if slices.Contains(got, p) {
			t.Errorf("%s chosen", p)
		}
	}

	// With the dishonest validator's vector missing (it stopped), the two
	// honest ones decide alone: honestD, unscored and equivocal stay out,
	// and a trainer missing from a vector gets that validator's 0.
	dishonest := vr.others[vals[2]]
	delete(vr.others, vals[2])
	if got := v.choose(5, vr); !slices.Equal(got, want) {
		t.Fatalf("without the third vector: chosen %v, want %v", got, want)
	}
	vr.others[vals[2]] = dishonest

	// The composer tracks how often each validator sides with the consensus.
	ag := v.book.Agreement
	if !(ag[vals[2].String()] < 0.6 && ag[vals[0].String()] > 0.85 && ag[vals[1].String()] > 0.85) {
		t.Errorf("agreement with the consensus: %v", ag)
	}

	// A contribution the composer could not check itself never goes in.
	delete(vr.decoded, honestA)
	if got := v.choose(5, vr); slices.Contains(got, honestA) {
		t.Errorf("a blob the lead did not decode was chosen")
	}
}

// TestManifestWaitsForScores checks that the composer waits for missing
// score vectors, but at most a quarter of the fallback step.
func TestManifestWaitsForScores(t *testing.T) {
	g := validGenesis(t) // two validators
	v := &validatorRole{n: &Node{gen: g, clock: NewClock(g)}, rank: 0, rounds: map[uint64]*valRound{}}
	vr := v.round(3)
	c := v.n.clock
	at := c.ManifestAt(3, 0)
	limit := at.Add(time.Duration(g.Params.FallbackStep / 4 * float64(c.Length)))
	tests := []struct {
		name   string
		now    time.Time
		others int
		when   time.Time
		wait   bool
	}{
		{"before, scores missing", at.Add(-time.Millisecond), 0, at, true},
		{"at, scores missing", at, 0, limit, true},
		{"at the limit", limit, 0, at, false},
		{"at, every vector in", at, 1, at, false},
	}
	for _, tc := range tests {
		clear(vr.others)
		if tc.others > 0 {
			vr.others["x"] = &Scores{}
		}
		when, wait := v.manifestAt(tc.now, 3, vr)
		if !when.Equal(tc.when) || wait != tc.wait {
			t.Errorf("%s: (%v, %v), want (%v, %v)", tc.name, when, wait, tc.when, tc.wait)
		}
	}
}
