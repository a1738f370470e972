package node

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/rl"
)

func rlGenesis(t testing.TB) *Genesis {
	g := validGenesis(t)
	p := DefaultRLParams()
	g.Stage, g.RL = StageRL, &p
	return g
}

func TestGenesisRLValidateNamesField(t *testing.T) {
	tests := []struct {
		field string
		edit  func(g *Genesis)
	}{
		{"stage", func(g *Genesis) { g.Stage = "finetune" }},
		{"rl parameters", func(g *Genesis) { g.RL = nil }},
		{"stage \"pretrain\"", func(g *Genesis) { g.Stage = StagePretrain }},
		{"group_size", func(g *Genesis) { g.RL.GroupSize = 1 }},
		{"problems", func(g *Genesis) { g.RL.Problems = 0 }},
		{"max_new", func(g *Genesis) { g.RL.MaxNew = g.Model.Context }},
		{"sampling", func(g *Genesis) { g.RL.Temperature = 0 }},
		{"clip_eps", func(g *Genesis) { g.RL.ClipEps = 2 }},
		{"epochs", func(g *Genesis) { g.RL.Epochs = 0 }},
		{"adamw", func(g *Genesis) { g.RL.AdamW.Beta2 = -1 }},
		{"rl.tasks", func(g *Genesis) { g.RL.Tasks.Count = 0 }},
		{"rl.tasks.kind", func(g *Genesis) { g.RL.Tasks.Kind = "web" }},
		{"rl.tasks", func(g *Genesis) { g.RL.Tasks = TaskSource{Kind: TasksFile, Path: "t.jsonl"} }},
		{"checkpoint_hash", func(g *Genesis) { g.RL.Checkpoint = "start.safetensors" }},
		{"checkpoint_hash", func(g *Genesis) { g.RL.CheckpointHash = Hash{1} }},
		{"params.replay", func(g *Genesis) { g.Params.Replay = DefaultReplayParams() }},
	}
	if err := rlGenesis(t).Validate(); err != nil {
		t.Fatalf("valid RL genesis rejected: %v", err)
	}
	for _, tc := range tests {
		g := rlGenesis(t)
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

// TestGenesisRLRoundTrip: an RL genesis survives the file format, and the
// stage is part of the network ID while a pre-training genesis's ID does
// not change by the new (omitted) fields.
func TestGenesisRLRoundTrip(t *testing.T) {
	g := rlGenesis(t)
	path := filepath.Join(t.TempDir(), "g.json")
	if err := g.Save(path); err != nil {
		t.Fatal(err)
	}
	back, err := LoadGenesis(path)
	if err != nil {
		t.Fatal(err)
	}
	id1, _ := g.ID()
	id2, _ := back.ID()
	if id1 != id2 || *back.RL != *g.RL {
		t.Fatalf("round trip changed the genesis: %+v", back.RL)
	}
	pre := validGenesis(t)
	idPre, _ := pre.ID()
	if idPre == id1 {
		t.Fatal("stage does not change the network ID")
	}
	b, _ := pre.Canonical()
	if strings.Contains(string(b), `"stage"`) || strings.Contains(string(b), `"rl"`) {
		t.Fatalf("pre-training genesis encodes the RL fields: %s", b)
	}
}

// TestRLStageInputs: the task file and starting checkpoint a genesis names
// are checked against their hashes, with errors that say which.
func TestRLStageInputs(t *testing.T) {
	dir := t.TempDir()
	e, err := tensor.New(tensor.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m, err := model.New(TinyModel, e)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(5)
	if err := m.Save(filepath.Join(dir, "start.safetensors"), nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tasks.jsonl"), []byte(`{"prompt":"1+1=","answer":"2"}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := DefaultRLParams()
	p.Checkpoint, p.CheckpointHash = "start.safetensors", Hash(m.StateHash())
	p.Tasks = TaskSource{Kind: TasksFile, Path: "tasks.jsonl"}
	ts, err := p.loadTaskSet(dir)
	if err == nil || !strings.Contains(err.Error(), "task-set hash") {
		t.Fatalf("task file with a wrong hash: %v", err)
	}
	p.Tasks.Hash = Hash(mustTaskHash(t, dir))
	if ts, err = p.loadTaskSet(dir); err != nil || len(ts.Tasks) != 1 {
		t.Fatalf("task file: %v", err)
	}
	start, err := p.loadStart(dir, TinyModel, e)
	if err != nil || len(start) != len(m.Params) || start[3] != m.Params[3] {
		t.Fatalf("starting checkpoint: %v", err)
	}
	bad := p
	bad.CheckpointHash[0] ^= 1
	if _, err := bad.loadStart(dir, TinyModel, e); err == nil || !strings.Contains(err.Error(), "hashes to") {
		t.Fatalf("checkpoint with a wrong hash: %v", err)
	}
	other := TinyModel
	other.Layers++
	if _, err := p.loadStart(dir, other, e); err == nil || !strings.Contains(err.Error(), "model") {
		t.Fatalf("checkpoint of another shape: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tasks.jsonl"), []byte("{\"prompt\":\"1+1=\"}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := p.loadTaskSet(dir); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("malformed task file: %v", err)
	}
}

func mustTaskHash(t *testing.T, dir string) [32]byte {
	t.Helper()
	ts, err := rl.LoadTaskSet(filepath.Join(dir, "tasks.jsonl"), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return ts.Hash
}

// TestRLMessages: the RL stage's fields of the wire messages decode
// strictly and round-trip; pre-training payloads are unchanged by them.
func TestRLMessages(t *testing.T) {
	msgs := sampleMessages(t)
	for _, k := range []string{"manifest", "announcement"} {
		if strings.Contains(string(msgs[k]), "stage") || strings.Contains(string(msgs[k]), "reward") {
			t.Fatalf("%s: pre-training payload carries an RL field: %s", k, msgs[k])
		}
	}
	man := strings.Replace(string(msgs["manifest"]), wireV+`,`, wireV+`,"stage":"rl",`, 1)
	m, err := DecodeManifest([]byte(man))
	if err != nil || m.Stage != StageRL {
		t.Fatalf("RL manifest: %v", err)
	}
	for _, bad := range []string{
		strings.Replace(man, `"stage":"rl"`, `"stage":"pretrain"`, 1),
		strings.Replace(man, `"stage":"rl"`, `"stage":7`, 1),
	} {
		if _, err := DecodeManifest([]byte(bad)); err == nil {
			t.Errorf("manifest %s accepted", bad)
		}
	}
	ann := strings.Replace(string(msgs["announcement"]), `"loss":2.5`, `"loss":0,"reward":0.25`, 1)
	a, err := DecodeAnnouncement([]byte(ann))
	if err != nil || a.Reward != 0.25 {
		t.Fatalf("rollout announcement: %v", err)
	}
	if _, err := DecodeAnnouncement([]byte(strings.Replace(ann, "0.25", "1e999", 1))); err == nil {
		t.Error("an infinite reward accepted")
	}
}

// TestRLBeacon: the round's randomness changes with the round, the base
// state and the previous manifest, so it is known to nobody before the lead
// signs the previous manifest.
func TestRLBeacon(t *testing.T) {
	g := rlGenesis(t)
	id, _ := g.ID()
	s := &rlStage{n: &Node{netID: id}}
	c1, c2 := p2p.CIDOf([]byte("m1")), p2p.CIDOf([]byte("m2"))
	base := s.beacon(5, Hash{1}, c1)
	for name, other := range map[string]rl.Round{
		"round":    s.beacon(6, Hash{1}, c1),
		"base":     s.beacon(5, Hash{2}, c1),
		"manifest": s.beacon(5, Hash{1}, c2),
		"no prev":  s.beacon(5, Hash{1}, cid.Undef),
	} {
		if other.Beacon == base.Beacon {
			t.Errorf("beacon does not depend on the %s", name)
		}
	}
	if again := s.beacon(5, Hash{1}, c1); again != base || base.Index != 5 {
		t.Errorf("beacon not a function of its inputs: %+v %+v", again, base)
	}
	// Per-round duplicate sets are dropped two rounds on.
	s.seen = map[uint64]*rl.Seen{}
	first := s.seenIn(1)
	if s.seenIn(1) != first {
		t.Fatal("one round, two sets")
	}
	s.seenIn(4)
	if _, ok := s.seen[1]; ok {
		t.Error("round 1's set kept at round 4")
	}
}
