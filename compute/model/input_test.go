package model

import (
	"bytes"
	"context"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/trinity-net/trinity/compute/tensor"

	"github.com/trinity-net/trinity/compute/safetensors"
)

func TestConfigValidation(t *testing.T) {
	e := newEngine(t)
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"heads do not divide width", Config{Vocab: 10, Context: 8, Layers: 1, Heads: 3, Width: 8}, "divisible"},
		{"zero layers", Config{Vocab: 10, Context: 8, Layers: 0, Heads: 2, Width: 8}, "layers"},
		{"negative vocab", Config{Vocab: -1, Context: 8, Layers: 1, Heads: 2, Width: 8}, "vocab"},
		{"huge width", Config{Vocab: 10, Context: 8, Layers: 1, Heads: 2, Width: 1 << 21}, "width"},
		{"too many params", Config{Vocab: 1 << 20, Context: 1 << 20, Layers: 1, Heads: 1, Width: 1 << 12}, "parameters"},
	} {
		if _, err := New(tc.cfg, e); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: New error %v, want one mentioning %q", tc.name, err, tc.want)
		}
	}
	if _, err := New(tinyConfig, nil); err == nil {
		t.Error("New with a nil engine succeeded")
	}
}

func TestForwardBadInput(t *testing.T) {
	e := newEngine(t)
	m := newModel(t, tinyConfig, e)
	m.Init(1)
	ok := randomTokens(16, tinyConfig.Vocab, 1)
	bad := append([]int32(nil), ok...)
	bad[5] = int32(tinyConfig.Vocab)
	neg := append([]int32(nil), ok...)
	neg[0] = -1
	long := randomTokens(2*(tinyConfig.Context+1), tinyConfig.Vocab, 1)
	for _, tc := range []struct {
		name            string
		tokens, targets []int32
		B, T            int
		want            string
	}{
		{"token out of range", bad, ok, 2, 8, "token"},
		{"negative token", neg, nil, 2, 8, "token"},
		{"target out of range", ok, bad, 2, 8, "target"},
		{"T beyond context", long, nil, 2, tinyConfig.Context + 1, "context"},
		{"nil tokens", nil, nil, 2, 8, "tokens"},
		{"short tokens", ok[:15], nil, 2, 8, "tokens"},
		{"short targets", ok, ok[:10], 2, 8, "targets"},
		{"zero B", ok, ok, 0, 8, "positive"},
		{"negative T", ok, ok, 2, -8, "positive"},
		{"B*T overflow", ok, nil, math.MaxInt / 4, 8, "tokens"},
	} {
		if _, err := m.Forward(tc.tokens, tc.targets, tc.B, tc.T); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Forward error %v, want one mentioning %q", tc.name, err, tc.want)
		}
		if err := m.Backward(); err == nil {
			t.Errorf("%s: Backward after a failed Forward succeeded", tc.name)
		}
	}
	// Forward without targets leaves nothing to differentiate.
	if _, err := m.Forward(ok, nil, 2, 8); err != nil {
		t.Fatal(err)
	}
	if err := m.Backward(); err == nil {
		t.Error("Backward after a Forward without targets succeeded")
	}

	// Non-finite weights: an error, with and without targets, and from a
	// session or generation.
	for _, v := range []float32{float32(math.NaN()), float32(math.Inf(1))} {
		m.Init(1)
		w, _ := m.Param("h.1.mlp.c_fc.weight")
		w[3] = v
		if _, err := m.Forward(ok, ok, 2, 8); err == nil {
			t.Errorf("Forward with a %v weight succeeded", v)
		}
		if err := m.Backward(); err == nil {
			t.Errorf("Backward after a non-finite loss succeeded")
		}
		if _, err := m.Forward(ok, nil, 2, 8); err == nil {
			t.Errorf("Forward without targets with a %v weight succeeded", v)
		}
		s, err := m.NewSession(4)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Step(1); err == nil {
			t.Errorf("Session.Step with a %v weight succeeded", v)
		}
		if _, err := m.Generate(context.Background(), []int32{1}, 3, Sampler{Temperature: 1}, nil); err == nil {
			t.Errorf("Generate with a %v weight succeeded", v)
		}
	}
}

func TestSessionAndGenerateBadInput(t *testing.T) {
	e := newEngine(t)
	m := newModel(t, tinyConfig, e)
	m.Init(1)
	for _, n := range []int{0, -1, tinyConfig.Context + 1} {
		if _, err := m.NewSession(n); err == nil {
			t.Errorf("NewSession(%d) succeeded", n)
		}
	}
	s, _ := m.NewSession(2)
	for _, tok := range []int32{-1, int32(tinyConfig.Vocab)} {
		if _, _, err := s.Step(tok); err == nil {
			t.Errorf("Step(%d) succeeded", tok)
		}
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		prompt []int32
		n      int
		s      Sampler
	}{
		{"empty prompt", nil, 2, Sampler{}},
		{"negative n", []int32{1}, -1, Sampler{}},
		{"beyond context", []int32{1, 2}, tinyConfig.Context - 1, Sampler{}},
		{"huge n", []int32{1}, math.MaxInt, Sampler{}},
		{"bad prompt token", []int32{1, 99}, 2, Sampler{}},
		{"negative temperature", []int32{1}, 2, Sampler{Temperature: -1}},
		{"NaN temperature", []int32{1}, 2, Sampler{Temperature: float32(math.NaN())}},
		{"negative top-k", []int32{1}, 2, Sampler{Temperature: 1, TopK: -2}},
	} {
		if _, err := m.Generate(ctx, tc.prompt, tc.n, tc.s, nil); err == nil {
			t.Errorf("%s: Generate succeeded", tc.name)
		}
	}
}

func TestCheckpoint(t *testing.T) {
	e := newEngine(t)
	m := newModel(t, detConfig, e)
	m.Init(41)
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	if err := m.Save(path, map[string]string{"round": "17"}); err != nil {
		t.Fatal(err)
	}
	got, meta, err := Load(path, e)
	if err != nil {
		t.Fatal(err)
	}
	if got.Config != m.Config || got.StateHash() != m.StateHash() || meta["round"] != "17" || len(meta) != 1 {
		t.Fatalf("loaded %v with metadata %v, not what was saved", got.Config, meta)
	}
	other := newModel(t, detConfig, e)
	if _, err := other.Restore(path); err != nil || other.StateHash() != m.StateHash() {
		t.Fatalf("Restore: %v", err)
	}
	if err := m.Save(path, map[string]string{MetaConfig: "x"}); err == nil {
		t.Error("Save accepted a reserved metadata key")
	}

	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// Files that are valid safetensors but not valid checkpoints.
	tensorsOf := func(m *GPT) []safetensors.Tensor {
		var ts []safetensors.Tensor
		for _, v := range m.Views() {
			ts = append(ts, safetensors.Tensor{Name: v.Name, Shape: v.Shape, Data: m.Params[v.Offset : v.Offset+v.Len]})
		}
		return ts
	}
	meta1 := func(cfg string) map[string]string {
		return map[string]string{MetaConfig: cfg, MetaFormat: CheckpointVersion}
	}
	goodCfg := `{"vocab":61,"context":24,"layers":2,"heads":3,"width":48}`
	writeST := func(name string, ts []safetensors.Tensor, md map[string]string) string {
		p := filepath.Join(dir, name)
		if err := safetensors.Write(p, ts, md); err != nil {
			t.Fatal(err)
		}
		return p
	}
	ts := tensorsOf(m)
	nanTS := tensorsOf(m)
	nanTS[3] = safetensors.Tensor{Name: nanTS[3].Name, Shape: nanTS[3].Shape, Data: append([]float32{float32(math.NaN())}, nanTS[3].Data[1:]...)}
	shapeTS := tensorsOf(m)
	shapeTS[0].Shape = []int{detConfig.Width, detConfig.Vocab}
	renamed := tensorsOf(m)
	renamed[5].Name = "h.0.attn.c_attn.bogus"

	for _, tc := range []struct {
		name, path, want string
	}{
		{"truncated", write("trunc", raw[:len(raw)-7]), ""},
		{"header only", write("hdr", raw[:100]), ""},
		{"empty", write("empty", nil), ""},
		{"missing", filepath.Join(dir, "nope"), ""},
		{"no format", writeST("nofmt", ts, map[string]string{MetaConfig: goodCfg}), "format"},
		{"wrong format", writeST("v2", ts, map[string]string{MetaConfig: goodCfg, MetaFormat: "2"}), "format"},
		{"no config", writeST("nocfg", ts, map[string]string{MetaFormat: CheckpointVersion}), "config"},
		{"bad config json", writeST("badjson", ts, meta1(`{"vocab":61,`)), "config"},
		{"unknown config field", writeST("unk", ts, meta1(`{"vocab":61,"context":24,"layers":2,"heads":3,"width":48,"x":1}`)), "config"},
		{"invalid config", writeST("inv", ts, meta1(`{"vocab":61,"context":24,"layers":2,"heads":5,"width":48}`)), "divisible"},
		{"config mismatch", writeST("mis", ts, meta1(`{"vocab":61,"context":24,"layers":2,"heads":3,"width":24}`)), "shape"},
		{"fewer layers", writeST("few", ts[:len(ts)-14], meta1(`{"vocab":61,"context":24,"layers":2,"heads":3,"width":48}`)), "tensors"},
		{"NaN value", writeST("nan", nanTS, meta1(goodCfg)), "non-finite"},
		{"transposed", writeST("shape", shapeTS, meta1(goodCfg)), "shape"},
		{"renamed", writeST("renamed", renamed, meta1(goodCfg)), "lacks"},
	} {
		before := other.StateHash()
		if _, _, err := Load(tc.path, e); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: Load error %v, want one mentioning %q", tc.name, err, tc.want)
		}
		if _, err := other.Restore(tc.path); err == nil {
			t.Errorf("%s: Restore succeeded", tc.name)
		}
		if other.StateHash() != before {
			t.Errorf("%s: failed Restore changed the parameters", tc.name)
		}
	}
	// A valid checkpoint of another config: Load takes it, Restore refuses.
	small := newModel(t, tinyConfig, e)
	small.Init(1)
	sp := filepath.Join(dir, "small")
	if err := small.Save(sp, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := other.Restore(sp); err == nil || !strings.Contains(err.Error(), "checkpoint is for") {
		t.Errorf("Restore of another config: %v", err)
	}
	if l, _, err := Load(sp, e); err != nil || l.Config != tinyConfig {
		t.Errorf("Load of the small checkpoint: %v", err)
	}
}

// FuzzLoadBytes feeds hostile bytes to the checkpoint decoder: it must
// return an error or a model that saves back to the same state, never panic.
func FuzzLoadBytes(f *testing.F) {
	e := newEngine(f, tensor.WithThreads(1))
	m := newModel(f, tinyConfig, e)
	m.Init(1)
	path := filepath.Join(f.TempDir(), "seed")
	if err := m.Save(path, map[string]string{"k": "v"}); err != nil {
		f.Fatal(err)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Add(raw[:9])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		got, meta, err := LoadBytes(data, e)
		if err != nil {
			return
		}
		var buf bytes.Buffer
		if err := got.EncodeCheckpoint(&buf, meta); err != nil {
			t.Fatal(err)
		}
		again, _, err := LoadBytes(buf.Bytes(), e)
		if err != nil || again.StateHash() != got.StateHash() {
			t.Fatalf("loaded checkpoint does not round-trip: %v", err)
		}
	})
}
