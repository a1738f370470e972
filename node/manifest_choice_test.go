package node

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/trinity-net/trinity/p2p"
)

// choiceBench is a round of three validators (stakes 100, 99, 98, the third
// dishonest) and four trainers: A and C pass everywhere, B is rejected by
// the two honest validators and passed by the third, D passes at the first
// validator only.
type choiceBench struct {
	g      *Genesis
	id     p2p.NetworkID
	keys   []crypto.PrivKey
	vecs   []SignedScores
	a, b   Contribution
	c, d   Contribution
	base   Hash
	round  uint64
	others []crypto.PrivKey // not validators
}

func newChoiceBench(t *testing.T) *choiceBench {
	t.Helper()
	keys, _, g := validatorGenesis(t, 3, 60)
	id, err := g.ID()
	if err != nil {
		t.Fatal(err)
	}
	outsiders, _ := testKeys(t, 1, 90)
	tr := testPeers(t, 4, 80)
	b := &choiceBench{g: g, id: id, keys: keys, base: Hash{7}, round: 5, others: outsiders}
	b.a = Contribution{Peer: tr[0].String(), CID: testCID("a")}
	b.b = Contribution{Peer: tr[1].String(), CID: testCID("b")}
	b.c = Contribution{Peer: tr[2].String(), CID: testCID("c")}
	b.d = Contribution{Peer: tr[3].String(), CID: testCID("d")}
	pass := func(c Contribution, s float64) ScoreEntry {
		return ScoreEntry{Trainer: c.Peer, CID: c.CID, Score: s, OK: true}
	}
	fail := func(c Contribution) ScoreEntry { return ScoreEntry{Trainer: c.Peer, CID: c.CID, Reason: "norm"} }
	b.vecs = []SignedScores{
		b.sign(t, 0, &Scores{Round: 5, Base: b.base, Entries: []ScoreEntry{pass(b.a, 0.3), fail(b.b), pass(b.c, 0.2), pass(b.d, 0.1)}}),
		b.sign(t, 1, &Scores{Round: 5, Base: b.base, Entries: []ScoreEntry{pass(b.a, 0.25), fail(b.b), pass(b.c, 0.2), fail(b.d)}}),
		b.sign(t, 2, &Scores{Round: 5, Base: b.base, Entries: []ScoreEntry{pass(b.a, 1), pass(b.b, 9), pass(b.c, 1), fail(b.d)}}),
	}
	return b
}

// sign is validator i's signed vector s.
func (b *choiceBench) sign(t *testing.T, i int, s *Scores) SignedScores {
	t.Helper()
	return b.signWith(t, b.keys[i], s, b.id, s.Round)
}

func (b *choiceBench) signWith(t *testing.T, k crypto.PrivKey, s *Scores, net p2p.NetworkID, round uint64) SignedScores {
	t.Helper()
	s.V = WireVersion
	payload, err := encodeMsg(s)
	if err != nil {
		t.Fatal(err)
	}
	env := &p2p.Envelope{Version: p2p.EnvelopeVersion, Network: net, Topic: p2p.TopicScore, Round: round, Timestamp: 42, Payload: payload}
	if err := env.Sign(k); err != nil {
		t.Fatal(err)
	}
	return SignedScores{Validator: env.Sender.String(), Time: env.Timestamp, Sig: env.Signature, Payload: env.Payload}
}

func (b *choiceBench) manifest(vecs []SignedScores, cs ...Contribution) *Manifest {
	return &Manifest{V: WireVersion, Round: b.round, Base: b.base, Result: Hash{8}, Contributions: cs, Scores: slices.Clone(vecs)}
}

// TestCheckChoice feeds checkChoice honest and hostile manifests: it must
// accept exactly the lists that follow from validly signed vectors of the
// round's validators holding a stake majority.
func TestCheckChoice(t *testing.T) {
	b := newChoiceBench(t)
	v := b.vecs
	entries := func(es ...ScoreEntry) []ScoreEntry { return es }
	ok := func(c Contribution) ScoreEntry { return ScoreEntry{Trainer: c.Peer, CID: c.CID, Score: 0.3, OK: true} }
	tampered := slices.Clone(v)
	tampered[0].Payload = json.RawMessage(strings.Replace(string(v[0].Payload), `"score":0.3`, `"score":0.9`, 1))
	misattributed := slices.Clone(v)
	misattributed[0].Sig = v[1].Sig // validator 1's signature under validator 0's name
	outsider := b.signWith(t, b.others[0], &Scores{Round: 5, Base: b.base, Entries: entries(ok(b.b))}, b.id, 5)
	tests := []struct {
		name string
		m    *Manifest
		ok   bool
		why  string // in the error
	}{
		{"honest choice", b.manifest(v, b.a, b.c), true, ""},
		{"honest, in another order", b.manifest(v, b.c, b.a), true, ""},
		{"omission", b.manifest(v, b.c), true, ""},
		{"empty, no vectors", b.manifest(nil), true, ""},
		{"honest choice from the two honest vectors", b.manifest(v[:2], b.a, b.c), true, ""},
		{"lists what the honest rejected", b.manifest(v, b.a, b.b), false, "does not pass"},
		{"lists what a minority passed", b.manifest(v, b.d), false, "does not pass"},
		{"another blob of a passing trainer", b.manifest(v, Contribution{Peer: b.a.Peer, CID: testCID("a2")}), false, "does not pass"},
		{"without the vector that passed it", b.manifest([]SignedScores{v[1], v[2]}, b.d), false, "does not pass"},
		{"no stake majority", b.manifest(v[2:], b.b), false, "not a majority"},
		{"the lead's vector alone", b.manifest(v[:1], b.a), false, "not a majority"},
		{"no vectors", b.manifest(nil, b.a), false, "not a majority"},
		{"duplicate validator", b.manifest([]SignedScores{v[0], v[2], v[2]}, b.a), false, "twice"},
		{"more vectors than validators", b.manifest([]SignedScores{v[0], v[1], v[2], v[0]}, b.a), false, "score vectors from 3 validators"},
		{"wrong signer", b.manifest(misattributed, b.a), false, "signature"},
		{"tampered payload", b.manifest(tampered, b.a), false, "signature"},
		{"signed by a non-validator", b.manifest([]SignedScores{v[0], outsider}, b.a), false, "not a genesis validator"},
		{"vector of another round", b.manifest([]SignedScores{v[0], v[1], b.sign(t, 2, &Scores{Round: 4, Base: b.base, Entries: entries(ok(b.b))})}, b.a), false, "round 4"},
		{"vector signed for another round", b.manifest([]SignedScores{v[0], b.signWith(t, b.keys[1], &Scores{Round: 5, Base: b.base, Entries: entries(ok(b.a))}, b.id, 4)}, b.a), false, "signature"},
		{"vector of another network", b.manifest([]SignedScores{v[0], b.signWith(t, b.keys[1], &Scores{Round: 5, Base: b.base, Entries: entries(ok(b.a))}, p2p.NetworkID{1}, 5)}, b.a), false, "signature"},
		{"vector on another base", b.manifest([]SignedScores{v[0], b.sign(t, 1, &Scores{Round: 5, Base: Hash{9}, Entries: entries(ok(b.a))})}, b.a), false, "base"},
		{"vector that does not decode", b.manifest([]SignedScores{v[0], b.signWithPayload(t, 1, `{"v":2,"round":5}x`)}, b.a), false, "scores"},
	}
	for _, tc := range tests {
		err := checkChoice(b.g, b.id, tc.m)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if err != nil {
			if !errors.Is(err, errBadChoice) {
				t.Errorf("%s: error does not wrap errBadChoice: %v", tc.name, err)
			}
			if !strings.Contains(err.Error(), tc.why) {
				t.Errorf("%s: error %q does not say %q", tc.name, err, tc.why)
			}
		}
	}

	// max_contributions binds the check too.
	b.g.Params.MaxContributions = 1
	if err := checkChoice(b.g, b.id, b.manifest(v, b.a, b.c)); err == nil {
		t.Error("a manifest over max_contributions passed")
	}
}

// signWithPayload signs a raw payload as validator i's scores of the round.
func (b *choiceBench) signWithPayload(t *testing.T, i int, payload string) SignedScores {
	t.Helper()
	env := &p2p.Envelope{Version: p2p.EnvelopeVersion, Network: b.id, Topic: p2p.TopicScore, Round: b.round, Timestamp: 42, Payload: []byte(payload)}
	if err := env.Sign(b.keys[i]); err != nil {
		t.Fatal(err)
	}
	return SignedScores{Validator: env.Sender.String(), Time: env.Timestamp, Sig: env.Signature, Payload: env.Payload}
}

// TestConsensusPassedCopies: a CID that passes for two trainers passes for
// neither, so neither may be listed.
func TestConsensusPassedCopies(t *testing.T) {
	b := newChoiceBench(t)
	same := Contribution{Peer: b.d.Peer, CID: b.a.CID} // D announced A's blob
	var vecs []SignedScores
	for i := range 3 {
		vecs = append(vecs, b.sign(t, i, &Scores{Round: 5, Base: b.base, Entries: []ScoreEntry{
			{Trainer: b.a.Peer, CID: b.a.CID, Score: 0.3, OK: true}, {Trainer: same.Peer, CID: same.CID, Score: 0.3, OK: true},
			{Trainer: b.c.Peer, CID: b.c.CID, Score: 0.2, OK: true}}}))
	}
	for _, c := range []Contribution{b.a, same} {
		if err := checkChoice(b.g, b.id, b.manifest(vecs, c)); err == nil {
			t.Errorf("%s listed with a copied CID", c.Peer)
		}
	}
	if err := checkChoice(b.g, b.id, b.manifest(vecs, b.c)); err != nil {
		t.Error(err)
	}
}

// TestParseManifestRejectsChoice: a manifest signed by a validator whose
// list does not follow from its vectors is refused wherever it enters
// (gossip, chain walk, the stored chain at start-up).
func TestParseManifestRejectsChoice(t *testing.T) {
	b := newChoiceBench(t)
	for _, tc := range []struct {
		m  *Manifest
		ok bool
	}{{b.manifest(b.vecs, b.a), true}, {b.manifest(b.vecs, b.a, b.b), false}} {
		payload, err := encodeMsg(tc.m)
		if err != nil {
			t.Fatal(err)
		}
		env := &p2p.Envelope{Version: p2p.EnvelopeVersion, Network: b.id, Topic: p2p.TopicManifest, Round: b.round, Timestamp: 1, Payload: payload}
		if err := env.Sign(b.keys[0]); err != nil {
			t.Fatal(err)
		}
		raw, err := env.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		_, err = parseManifestBlob(raw, b.g)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, errBadChoice)) {
			t.Errorf("manifest of %d contributions: err = %v, want ok=%v", len(tc.m.Contributions), err, tc.ok)
		}
	}
}

// TestManifestSize measures a manifest's gossip message (the signed
// envelope) without and with its embedded score vectors, for three
// validators and N trainers that all pass, with scores as the gauntlet
// writes them (full float64 precision), and checks that the largest
// vector set the bounds admit still fits in a gossip message.
func TestManifestSize(t *testing.T) {
	keys, _, g := validatorGenesis(t, 3, 60)
	id, _ := g.ID()
	size := func(m *Manifest) int {
		payload, err := encodeMsg(m)
		if err != nil {
			t.Fatal(err)
		}
		env := &p2p.Envelope{Version: p2p.EnvelopeVersion, Network: id, Topic: p2p.TopicManifest, Round: m.Round, Timestamp: time.Now().UnixNano(), Payload: payload}
		if err := env.Sign(keys[0]); err != nil {
			t.Fatal(err)
		}
		raw, err := env.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		return len(raw)
	}
	for _, n := range []int{4, 16, 32} {
		trainers := testPeers(t, n, 120)
		m := &Manifest{V: WireVersion, Round: 1234, Base: Hash{1}, Result: Hash{2}, Prev: testCID("prev"),
			Checkpoint: CheckpointRef{Round: 1230, Hash: Hash{3}, CID: testCID("cp")}}
		for _, p := range trainers {
			m.Contributions = append(m.Contributions, Contribution{Peer: p.String(), CID: testCID(p.String() + "blob")})
		}
		before := size(m)
		for v := range 3 {
			s := &Scores{Round: m.Round, Base: m.Base}
			for i, c := range m.Contributions {
				x := 0.1 + float64(i*7+v)/997 // full-precision values, as the gauntlet writes them
				s.Entries = append(s.Entries, ScoreEntry{Trainer: c.Peer, CID: c.CID, Score: x / 3, Smoothed: x / 7, OK: true, DOwn: x / 11, DRand: x / 13})
			}
			h := signScores(t, g, keys[v], s)
			m.Scores = append(m.Scores, SignedScores{Validator: h.env.Sender.String(), Time: time.Now().UnixNano(), Sig: h.env.Signature, Payload: h.env.Payload})
		}
		after := size(m)
		t.Logf("3 validators, %2d trainers: manifest message %6d bytes without score vectors, %6d with (x%.1f; %d bytes per score entry)",
			n, before, after, float64(after)/float64(before), (after-before)/(3*n))
		if after > 1<<20 {
			t.Errorf("%d trainers: manifest of %d bytes exceeds the gossip limit", n, after)
		}
	}
	// The bounds: vectors of at most maxEmbeddedScoreBytes, contributions
	// at most maxManifestEntries, leave room in a 1 MiB message.
	worst := maxEmbeddedScoreBytes + maxManifestEntries*(2+len(`{"peer":"","cid":""}`)+maxPeerIDLen+64) + maxManifestVectors*(64+maxPeerIDLen+4*maxSignatureLen/3+64) + 4096
	if worst > 1<<20 {
		t.Errorf("a manifest within the bounds may take %d bytes, over the 1 MiB gossip limit", worst)
	}
}

// BenchmarkCheckChoice is a peer's check of a manifest of 16 contributions
// with the vectors of 3 validators.
func BenchmarkCheckChoice(b *testing.B) {
	keys, _, g := validatorGenesis(b, 3, 60)
	id, _ := g.ID()
	m := &Manifest{V: WireVersion, Round: 9, Base: Hash{1}, Result: Hash{2}}
	_, trainers := testKeys(b, 16, 150)
	for _, p := range trainers {
		m.Contributions = append(m.Contributions, Contribution{Peer: p.String(), CID: testCID(p.String())})
	}
	for v := range 3 {
		s := &Scores{Round: 9, Base: m.Base}
		for i, c := range m.Contributions {
			s.Entries = append(s.Entries, ScoreEntry{Trainer: c.Peer, CID: c.CID, Score: 0.1 + float64(i)/1000, OK: true})
		}
		h := signScores(b, g, keys[v], s)
		m.Scores = append(m.Scores, SignedScores{Validator: h.env.Sender.String(), Time: h.env.Timestamp, Sig: h.env.Signature, Payload: h.env.Payload})
	}
	b.ResetTimer()
	for range b.N {
		if err := checkChoice(g, id, m); err != nil {
			b.Fatal(err)
		}
	}
}
