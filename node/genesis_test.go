package node

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

func validGenesis(t testing.TB) *Genesis {
	t.Helper()
	g := DefaultTestnetGenesis()
	g.Start = time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for i := range 2 {
		k, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{byte(i + 1)}, 64)))
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		g.Validators = append(g.Validators, ValidatorKey{Peer: id.String(), Stake: uint64(10 - i)})
	}
	g.Bootstrap = []string{"/ip4/127.0.0.1/tcp/4001/p2p/" + g.Validators[0].Peer}
	return &g
}

func TestGenesisValidateNamesField(t *testing.T) {
	tests := []struct {
		field string
		edit  func(g *Genesis)
	}{
		{"version", func(g *Genesis) { g.Version = 1 }},
		{"network", func(g *Genesis) { g.Network = "" }},
		{"start", func(g *Genesis) { g.Start = time.Time{} }},
		{"model", func(g *Genesis) { g.Model.Heads = 3 }},
		{"vocab", func(g *Genesis) { g.Model.Vocab = 100 }},
		{"data", func(g *Genesis) { g.Data.Kind = "nope" }},
		{"round_ms", func(g *Genesis) { g.Params.RoundMillis = 5 }},
		{"announce_by", func(g *Genesis) { g.Params.AnnounceBy = 1.5 }},
		{"score_at", func(g *Genesis) { g.Params.ScoreAt = 0.1 }},
		{"inner_steps", func(g *Genesis) { g.Params.InnerSteps = 0 }},
		{"top_k", func(g *Genesis) { g.Params.TopK = 1 << 20 }},
		{"chunk_size", func(g *Genesis) { g.Params.ChunkSize = 3 }},
		{"outer_lr", func(g *Genesis) { g.Params.OuterLR = -1 }},
		{"error_decay", func(g *Genesis) { g.Params.ErrorDecay = 2 }},
		{"keep_rounds", func(g *Genesis) { g.Params.KeepRounds = 1 }},
		{"gauntlet_step", func(g *Genesis) { g.Params.GauntletStep = 0 }},
		{"gauntlet_step", func(g *Genesis) { g.Params.GauntletStep = 1.5 }},
		{"gauntlet_batches", func(g *Genesis) { g.Params.GauntletBatches = 0 }},
		{"gauntlet_batches", func(g *Genesis) { g.Params.GauntletBatches = g.Params.InnerSteps + 1 }},
		{"seq_len", func(g *Genesis) { g.Params.SeqLen = 1000; g.Params.PageSize = 4096 }},
		{"adamw", func(g *Genesis) { g.Params.AdamW.Beta1 = 7 }},
		{"validators", func(g *Genesis) { g.Validators = nil }},
		{"validators[1].peer", func(g *Genesis) { g.Validators[1].Peer = "bogus" }},
		{"validators[1].stake", func(g *Genesis) { g.Validators[1].Stake = 0 }},
		{"listed twice", func(g *Genesis) { g.Validators[1] = g.Validators[0] }},
		{"sorted", func(g *Genesis) { g.Validators[1].Stake = 100 }},
	}
	if err := validGenesis(t).Validate(); err != nil {
		t.Fatalf("valid genesis rejected: %v", err)
	}
	for _, tc := range tests {
		g := validGenesis(t)
		tc.edit(g)
		err := g.Validate()
		if err == nil {
			t.Errorf("%s: accepted", tc.field)
			continue
		}
		if !strings.Contains(err.Error(), tc.field) {
			t.Errorf("%s: error %q does not name the field", tc.field, err)
		}
	}
}

func TestGenesisIDCanonical(t *testing.T) {
	g := validGenesis(t)
	id1, err := g.ID()
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "genesis.json")
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	g2, err := LoadGenesis(path)
	if err != nil {
		t.Fatal(err)
	}
	if id2, _ := g2.ID(); id2 != id1 {
		t.Fatal("network ID changed through a save and load")
	}
	// Whitespace and time zone do not change the network; a field does.
	b, _ := json.Marshal(g)
	var buf bytes.Buffer
	if err := json.Indent(&buf, b, "", "\t\t"); err != nil {
		t.Fatal(err)
	}
	g3, err := ParseGenesis(buf.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	g3.Start = g3.Start.In(time.FixedZone("X", 3600))
	if id3, _ := g3.ID(); id3 != id1 {
		t.Fatal("network ID depends on formatting or time zone")
	}
	g3.Params.OuterLR = 0.9
	if id4, _ := g3.ID(); id4 == id1 {
		t.Fatal("network ID ignores a hyper-parameter")
	}
}

func TestParseGenesisRejects(t *testing.T) {
	b, _ := json.Marshal(validGenesis(t))
	for name, in := range map[string][]byte{
		"unknown field": bytes.Replace(b, []byte(`"network"`), []byte(`"extra":1,"network"`), 1),
		"trailing data": append(append([]byte{}, b...), []byte(`{}`)...),
		"truncated":     b[:len(b)/2],
		"oversized":     bytes.Repeat([]byte(" "), maxGenesisBytes+1),
		"not json":      []byte("genesis"),
	} {
		if _, err := ParseGenesis(in); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestClock(t *testing.T) {
	g := validGenesis(t)
	c := NewClock(g)
	L := g.Params.RoundLength()
	if c.Round(g.Start.Add(-time.Hour)) != 0 || c.Phase(g.Start.Add(-time.Second)) != "waiting" {
		t.Fatal("before the start it is round 0, waiting")
	}
	for _, tc := range []struct {
		off   time.Duration
		round uint64
		phase string
	}{
		{0, 0, "train"}, {L / 4, 0, "train"}, {L*55/100 + L/20, 0, "validate"}, {L * 72 / 100, 0, "score"},
		{L * 9 / 10, 0, "apply"}, {L, 1, "train"}, {7*L + L/2 + 1, 7, "validate"},
	} {
		at := g.Start.Add(tc.off)
		if r, p := c.Round(at), c.Phase(at); r != tc.round || p != tc.phase {
			t.Errorf("at %v: round %d phase %s, want %d %s", tc.off, r, p, tc.round, tc.phase)
		}
	}
	if !c.ManifestAt(3, 1).After(c.ManifestAt(3, 0)) || !c.ManifestAt(3, 0).Before(c.RoundStart(4)) {
		t.Fatal("fallback manifests come after the lead's, within the round")
	}
}
