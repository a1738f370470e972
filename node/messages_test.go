package node

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"

	"github.com/trinity-net/trinity/p2p"
)

func testCID(s string) string { return p2p.CIDOf([]byte(s)).String() }

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
			Contributions: []Contribution{{Peer: p0, CID: testCID("a")}, {Peer: p1, CID: testCID("b")}}}),
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
		{"announcement", "version", `"v":1`, `"v":2`},
		{"announcement", "bad cid", testCID("a"), "bafy-not-a-cid"},
		{"announcement", "size", `"size":100`, `"size":0`},
		{"announcement", "unknown field", `"v":1`, `"v":1,"x":0`},
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
		{"replay-verdict", "unknown field", `"v":1`, `"v":1,"x":0`},
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
