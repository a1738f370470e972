package node

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/trinity-net/trinity/p2p"
)

func testCID(s string) string { return p2p.CIDOf([]byte(s)).String() }

// sampleVectors are both validGenesis validators' signed score vectors of
// round 3 on base {1}, passing p0's "a" and p1's "b".
func sampleVectors(t testing.TB, g *Genesis) []SignedScores {
	p0, p1 := g.Validators[0].Peer, g.Validators[1].Peer
	var out []SignedScores
	for i := range 2 {
		k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{byte(i + 1)}, 64)))
		if err != nil {
			t.Fatal(err)
		}
		h := signScores(t, g, k, &Scores{Round: 3, Base: Hash{1}, Entries: []ScoreEntry{
			{Trainer: p0, CID: testCID("a"), Score: 0.1, OK: true}, {Trainer: p1, CID: testCID("b"), Score: 0.2 + float64(i)/100, OK: true}}})
		out = append(out, SignedScores{Validator: h.env.Sender.String(), Time: h.env.Timestamp, Sig: h.env.Signature, Payload: h.env.Payload})
	}
	return out
}

// wireV is the version field of a payload of this build, as JSON.
var wireV = fmt.Sprintf(`"v":%d`, WireVersion)

func sampleMessages(t testing.TB) map[string][]byte {
	g := validGenesis(t)
	p0, p1 := g.Validators[0].Peer, g.Validators[1].Peer
	enc := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	return map[string][]byte{
		"announcement": enc(&Announcement{V: WireVersion, Round: 3, Base: Hash{1}, CID: testCID("a"), Size: 100, Loss: 2.5}),
		"scores": enc(&Scores{V: WireVersion, Round: 3, Base: Hash{1}, Entries: []ScoreEntry{
			{Trainer: p0, CID: testCID("a"), Score: 0.1, Smoothed: 0.05, OK: true, DOwn: 0.2, DRand: 0.1}}}),
		"manifest": enc(&Manifest{V: WireVersion, Round: 3, Base: Hash{1}, Result: Hash{2}, Prev: testCID("m2"),
			Checkpoint:    CheckpointRef{Round: 3, Hash: Hash{1}, CID: testCID("c")},
			Contributions: []Contribution{{Peer: p0, CID: testCID("a")}, {Peer: p1, CID: testCID("b")}}, Scores: sampleVectors(t, g)}),
		"checkpoint": enc(&CheckpointAnnouncement{V: WireVersion, Ref: CheckpointRef{Round: 3, Hash: Hash{1}, CID: testCID("c")}, Size: 1000}),
		"announcement-replay": enc(&Announcement{V: WireVersion, Round: 3, Base: Hash{1}, CID: testCID("a"), Size: 100, Loss: 2.5,
			Replay: sampleCommitment, ReplayPrev: &prevRound}),
		"replay-challenge": enc(&ReplayChallenge{V: WireVersion, Round: 3, Trainer: p0, Beacon: Hash{7}, Steps: []int{5}}),
		"replay-response":  enc(&ReplayResponse{V: WireVersion, Round: 3, Validator: p1, Step: 5, CID: testCID("r"), Size: 1 << 20}),
		"replay-verdict":   enc(&ReplayVerdict{V: WireVersion, Round: 3, Trainer: p0, Step: 5, Reason: "step-mismatch"}),
	}
}

// sampleCommitment is a replay.Commitment of 8 steps, in hex.
var sampleCommitment = strings.Repeat("ab", 32) + "08000000" + strings.Repeat("cd", 32)

var prevRound = uint64(1)

func decodeAny(kind string, b []byte) (any, error) {
	switch kind {
	case "announcement":
		return DecodeAnnouncement(b)
	case "scores":
		return DecodeScores(b)
	case "manifest":
		return DecodeManifest(b)
	case "announcement-replay":
		return DecodeAnnouncement(b)
	case "replay-challenge":
		return DecodeReplayChallenge(b)
	case "replay-response":
		return DecodeReplayResponse(b)
	case "replay-verdict":
		return DecodeReplayVerdict(b)
	default:
		return DecodeCheckpointAnnouncement(b)
	}
}

func TestMessagesRoundTrip(t *testing.T) {
	for kind, b := range sampleMessages(t) {
		v, err := decodeAny(kind, b)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		again, _ := json.Marshal(v)
		if !bytes.Equal(again, b) {
			t.Fatalf("%s: re-encoding differs:\n%s\n%s", kind, again, b)
		}
	}
}

func TestMessagesReject(t *testing.T) {
	msgs := sampleMessages(t)
	tests := []struct {
		kind, name, from, to string
	}{
		{"announcement", "version", wireV, `"v":1`},
		{"manifest", "version 1", wireV, `"v":1`},
		{"scores", "duplicate trainer", `}]`, `},{"trainer":"` + validGenesis(t).Validators[0].Peer + `","cid":"` + testCID("x") + `","score":0,"smoothed":0,"ok":false,"d_own":0,"d_rand":0}]`},
		{"announcement", "bad cid", testCID("a"), "bafy-not-a-cid"},
		{"announcement", "size", `"size":100`, `"size":0`},
		{"announcement", "unknown field", wireV, wireV + `,"x":0`},
		{"announcement", "short hash", `"base":"01`, `"base":"1`},
		{"scores", "bad trainer", `"trainer":"`, `"trainer":"x`},
		{"manifest", "duplicate peer", `"peer":"` + validGenesis(t).Validators[1].Peer, `"peer":"` + validGenesis(t).Validators[0].Peer},
		{"manifest", "checkpoint after round", `"checkpoint":{"round":3`, `"checkpoint":{"round":4`},
		{"checkpoint", "no cid", `"cid":"` + testCID("c") + `"`, `"cid":""`},
		{"announcement-replay", "short commitment", `"replay":"abab`, `"replay":"ab`},
		{"announcement-replay", "zero steps", `08000000`, `00000000`},
		{"announcement-replay", "prev not before round", `"replay_prev":1`, `"replay_prev":3`},
		{"announcement-replay", "prev without commitment", `"replay":"` + sampleCommitment + `",`, ``},
		{"replay-challenge", "no steps", `"steps":[5]`, `"steps":[]`},
		{"replay-challenge", "negative step", `"steps":[5]`, `"steps":[-1]`},
		{"replay-challenge", "bad trainer", `"trainer":"`, `"trainer":"x`},
		{"replay-response", "size", `"size":1048576`, `"size":0`},
		{"replay-response", "bad cid", testCID("r"), "bafy-not-a-cid"},
		{"replay-response", "step", `"step":5`, `"step":-5`},
		{"replay-verdict", "long reason", `"reason":"`, `"reason":"` + strings.Repeat("x", 300)},
		{"replay-verdict", "unknown field", wireV, wireV + `,"x":0`},
	}
	for _, tc := range tests {
		in := bytes.Replace(msgs[tc.kind], []byte(tc.from), []byte(tc.to), 1)
		if bytes.Equal(in, msgs[tc.kind]) {
			t.Fatalf("%s/%s: edit did not apply", tc.kind, tc.name)
		}
		if _, err := decodeAny(tc.kind, in); err == nil {
			t.Errorf("%s/%s: accepted %s", tc.kind, tc.name, in)
		}
	}
	empty := &Manifest{V: WireVersion, Round: 1, Base: Hash{1}, Result: Hash{2}}
	b, _ := json.Marshal(empty)
	if _, err := DecodeManifest(b); err == nil {
		t.Error("a manifest without contributions whose result differs from its base was accepted")
	}
	// A version 1 manifest (no score vectors) is refused with a clear error.
	old := bytes.Replace(msgs["manifest"], []byte(wireV), []byte(`"v":1`), 1)
	if _, err := DecodeManifest(old); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("wire version 1, want %d", WireVersion)) {
		t.Errorf("version 1 manifest: %v", err)
	}
	// Bounds on the embedded vectors: count, sizes.
	edits := map[string]func(m *Manifest){
		"too many vectors": func(m *Manifest) { m.Scores = slices.Repeat(m.Scores[:1], maxManifestVectors+1) },
		"vectors too large": func(m *Manifest) {
			m.Scores[1].Payload = json.RawMessage(`{"x":"` + strings.Repeat("x", maxEmbeddedScoreBytes) + `"}`)
		},
		"no signature":   func(m *Manifest) { m.Scores[0].Sig = nil },
		"long signature": func(m *Manifest) { m.Scores[0].Sig = make([]byte, maxSignatureLen+1) },
		"no validator":   func(m *Manifest) { m.Scores[0].Validator = "" },
		"long validator": func(m *Manifest) { m.Scores[0].Validator = strings.Repeat("1", maxPeerIDLen+1) },
		"no payload":     func(m *Manifest) { m.Scores[1].Payload = nil },
	}
	for name, edit := range edits {
		var m Manifest
		if err := json.Unmarshal(msgs["manifest"], &m); err != nil {
			t.Fatal(err)
		}
		edit(&m)
		b, err := json.Marshal(&m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeManifest(b); err == nil || !strings.Contains(err.Error(), "score vector") {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

func FuzzDecodeMessages(f *testing.F) {
	for _, b := range sampleMessages(f) {
		f.Add(b)
	}
	f.Add([]byte(`{"v":1}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, kind := range []string{"announcement", "scores", "manifest", "checkpoint", "replay-challenge", "replay-response", "replay-verdict"} {
			v, err := decodeAny(kind, b)
			if err != nil {
				continue
			}
			// Whatever decodes must re-encode and decode to the same value.
			again, err := json.Marshal(v)
			if err != nil {
				t.Fatalf("%s: re-encoding: %v", kind, err)
			}
			v2, err := decodeAny(kind, again)
			if err != nil {
				t.Fatalf("%s: re-decoding %s: %v", kind, again, err)
			}
			again2, _ := json.Marshal(v2)
			if !bytes.Equal(again, again2) {
				t.Fatalf("%s: not stable: %s vs %s", kind, again, again2)
			}
		}
	})
}

func FuzzParseManifestBlob(f *testing.F) {
	g := validGenesis(f)
	k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{1}, 64)))
	if err != nil {
		f.Fatal(err)
	}
	id, _ := g.ID()
	env := &p2p.Envelope{Version: p2p.EnvelopeVersion, Network: id, Topic: p2p.TopicManifest, Round: 3,
		Timestamp: 1, Payload: sampleMessages(f)["manifest"]}
	if err := env.Sign(k); err != nil {
		f.Fatal(err)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		f.Fatal(err)
	}
	if _, err := parseManifestBlob(raw, g); err != nil {
		f.Fatalf("seed manifest rejected: %v", err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Fuzz(func(t *testing.T, b []byte) {
		mm, err := parseManifestBlob(b, g)
		if err != nil {
			return
		}
		if g.ValidatorRank(mm.sender) < 0 || mm.cid != p2p.CIDOf(mm.raw) {
			t.Fatalf("accepted a manifest from %s", mm.sender)
		}
	})
}

func TestManifestFromEnvelope(t *testing.T) {
	g := validGenesis(t)
	id, _ := g.ID()
	validator, _, _ := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{1}, 64)))
	outsider, _, _ := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{9}, 64)))
	payload := sampleMessages(t)["manifest"]
	tests := []struct {
		name    string
		key     crypto.PrivKey
		network p2p.NetworkID
		topic   p2p.Topic
		round   uint64
		ok      bool
	}{
		{"from a validator", validator, id, p2p.TopicManifest, 3, true},
		{"from a non-validator", outsider, id, p2p.TopicManifest, 3, false},
		{"another network", validator, p2p.NetworkID{1}, p2p.TopicManifest, 3, false},
		{"another topic", validator, id, p2p.TopicScore, 3, false},
		{"round differs from the payload's", validator, id, p2p.TopicManifest, 4, false},
	}
	for _, tc := range tests {
		env := &p2p.Envelope{Version: p2p.EnvelopeVersion, Network: tc.network, Topic: tc.topic, Round: tc.round, Timestamp: 1, Payload: payload}
		if err := env.Sign(tc.key); err != nil {
			t.Fatal(err)
		}
		mm, err := manifestFromEnvelope(env, g)
		if (err == nil) != tc.ok {
			t.Errorf("%s: err = %v", tc.name, err)
			continue
		}
		if tc.ok {
			raw, _ := env.MarshalBinary()
			if mm.cid != p2p.CIDOf(raw) || !bytes.Equal(mm.raw, raw) {
				t.Errorf("%s: CID is not that of the envelope bytes", tc.name)
			}
		}
	}
}
