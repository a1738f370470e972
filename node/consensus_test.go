package node

import (
	"bytes"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify"
)

func testPeers(t *testing.T, n int, seed byte) []peer.ID {
	t.Helper()
	_, ids := testKeys(t, n, seed)
	return ids
}

// testKeys derives n Ed25519 keys from seed and their peer IDs.
// validatorGenesis is validGenesis with n validators of test keys (from
// seed), of stakes 100, 99, ...
func validatorGenesis(t testing.TB, n int, seed byte) ([]crypto.PrivKey, []peer.ID, *Genesis) {
	t.Helper()
	keys, vals := testKeys(t, n, seed)
	g := validGenesis(t)
	g.Validators = nil
	for i, p := range vals {
		g.Validators = append(g.Validators, ValidatorKey{Peer: p.String(), Stake: uint64(100 - i)})
	}
	return keys, vals, g
}

func testKeys(t testing.TB, n int, seed byte) ([]crypto.PrivKey, []peer.ID) {
	t.Helper()
	keys, ids := make([]crypto.PrivKey, n), make([]peer.ID, n)
	for i := range ids {
		k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed + byte(i)}, 64)))
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = k
		ids[i], _ = peer.IDFromPrivateKey(k)
	}
	return keys, ids
}

// signScores signs s as validator key would publish it on g's network, as
// the composer holds it.
func signScores(t testing.TB, g *Genesis, key crypto.PrivKey, s *Scores) heldScores {
	t.Helper()
	id, err := g.ID()
	if err != nil {
		t.Fatal(err)
	}
	if s.V == 0 {
		s.V = WireVersion
	}
	b, err := encodeMsg(s)
	if err != nil {
		t.Fatal(err)
	}
	env := &p2p.Envelope{Version: p2p.EnvelopeVersion, Network: id, Topic: p2p.TopicScore, Round: s.Round, Timestamp: 1, Payload: b}
	if err := env.Sign(key); err != nil {
		t.Fatal(err)
	}
	return heldScores{s: s, env: env}
}

// TestConsensusChoice checks the manifest composition rule with three
// validators of nearly equal stake, the third dishonest (it inverts every
// verdict): whatever it says, a contribution goes in exactly when honest
// validators holding more than half of the stake pass it, and the choice
// passes the peers' check (checkChoice).
func TestConsensusChoice(t *testing.T) {
	keys, vals, g := validatorGenesis(t, 3, 10)
	g.Params.MaxContributions = 3
	id, _ := g.ID()
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
	vector := func(i int, es ...ScoreEntry) {
		vr.vectors[vals[i]] = signScores(t, g, keys[i], &Scores{Round: 5, Entries: es})
	}
	// The lead's own verdicts.
	vector(0, ok(honestA, 0.3), ok(honestB, 0.2), ok(honestC, 0.1), abstain(honestD), bad(copier), abstain(unscored), abstain(equivocal))
	// The honest second validator.
	other := ScoreEntry{Trainer: equivocal.String(), CID: testCID("another blob"), Score: 0.5, OK: true}
	vector(1, ok(honestA, 0.25), ok(honestB, 0.22), ok(honestC, 0.12), ok(honestD, 0.15), bad(copier), bad(unscored), other)
	// The dishonest third: everything inverted, the copier boosted.
	vector(2, bad(honestA), bad(honestB), bad(honestC), bad(honestD), ok(copier, 9), ok(unscored, 9), ok(equivocal, 9))

	check := func(chosen []peer.ID, vecs []SignedScores) error {
		m := &Manifest{Round: 5, Scores: vecs}
		for _, p := range chosen {
			m.Contributions = append(m.Contributions, Contribution{Peer: p.String(), CID: cid(p)})
		}
		return checkChoice(g, id, m)
	}
	got, vecs := v.choose(5, vr)
	// Ranked by consensus score (0.25, 0.2, 0.1). honestD: the lead had no
	// time to score it, so only 99 of 297 of the stake passed it: it waits.
	// unscored: the same, though the dishonest validator boosts it.
	// equivocal: the honest validator passed another blob of it, which is
	// a vote against the one the lead holds.
	want := []peer.ID{honestA, honestB, honestC}
	if !slices.Equal(got, want) {
		t.Fatalf("chosen %v, want %v", got, want)
	}
	if len(vecs) != 3 {
		t.Fatalf("%d vectors embedded, want 3", len(vecs))
	}
	if err := check(got, vecs); err != nil {
		t.Fatalf("the composer's own choice fails the check: %v", err)
	}
	for _, p := range []peer.ID{honestD, copier, unscored, equivocal} {
		if slices.Contains(got, p) {
			t.Errorf("%s chosen", p)
		}
		// Nor may a composer list it.
		if err := check(append(slices.Clone(got[:2]), p), vecs); err == nil {
			t.Errorf("a manifest listing %s passed the check", p)
		}
	}

	// With the dishonest validator's vector missing (it stopped), the two
	// honest ones decide alone: honestD, unscored and equivocal stay out,
	// and a trainer missing from a vector gets that validator's 0.
	dishonest := vr.vectors[vals[2]]
	delete(vr.vectors, vals[2])
	if got, vecs := v.choose(5, vr); !slices.Equal(got, want) || check(got, vecs) != nil {
		t.Fatalf("without the third vector: chosen %v, want %v", got, want)
	}
	// The composer tracks how often each validator sides with the consensus.
	ag := v.book.Agreement
	if !(ag[vals[2].String()] < 0.6 && ag[vals[0].String()] > 0.85 && ag[vals[1].String()] > 0.85) {
		t.Errorf("agreement with the consensus: %v", ag)
	}

	// With only one honest vector nothing passes: 100 of 297 is no majority.
	second := vr.vectors[vals[1]]
	delete(vr.vectors, vals[1])
	if got, vecs := v.choose(5, vr); len(got) != 0 || check(want, vecs) == nil {
		t.Fatalf("with the lead's vector alone: chosen %v", got)
	}
	vr.vectors[vals[1]], vr.vectors[vals[2]] = second, dishonest

	// A contribution the composer could not check itself never goes in.
	delete(vr.decoded, honestA)
	if got, _ := v.choose(5, vr); slices.Contains(got, honestA) {
		t.Errorf("a blob the lead did not decode was chosen")
	}
}

// TestManifestWaitsForScores checks that the composer waits for missing
// score vectors (its own included), but at most a quarter of the fallback
// step.
func TestManifestWaitsForScores(t *testing.T) {
	g := validGenesis(t) // two validators
	v := &validatorRole{n: &Node{gen: g, clock: NewClock(g)}, rank: 0, rounds: map[uint64]*valRound{}}
	vr := v.round(3)
	c := v.n.clock
	at := c.ManifestAt(3, 0)
	limit := at.Add(time.Duration(g.Params.FallbackStep / 4 * float64(c.Length)))
	tests := []struct {
		name    string
		now     time.Time
		vectors int
		when    time.Time
		wait    bool
	}{
		{"before, scores missing", at.Add(-time.Millisecond), 0, at, true},
		{"at, scores missing", at, 0, limit, true},
		{"at, one vector of two", at, 1, limit, true},
		{"at the limit", limit, 1, at, false},
		{"at, every vector in", at, 2, at, false},
	}
	for _, tc := range tests {
		clear(vr.vectors)
		for i := range tc.vectors {
			vr.vectors[peer.ID(rune('a'+i))] = heldScores{}
		}
		when, wait := v.manifestAt(tc.now, 3, vr)
		if !when.Equal(tc.when) || wait != tc.wait {
			t.Errorf("%s: (%v, %v), want (%v, %v)", tc.name, when, wait, tc.when, tc.wait)
		}
	}
}
