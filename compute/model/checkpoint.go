package model

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"

	"github.com/trinity-net/trinity/compute/safetensors"
	"github.com/trinity-net/trinity/compute/tensor"
)

// Checkpoint metadata keys. The config is stored as JSON so that a file
// describes itself; the format version changes whenever the tensor layout
// or naming does.
const (
	MetaConfig        = "trinity.model.config"
	MetaFormat        = "trinity.model.format"
	CheckpointVersion = "1"
)

// Save writes the parameters to path as a safetensors file, atomically, one
// tensor per View, with the config and format version in the metadata next
// to meta (whose keys must not be the reserved Meta* keys).
func (m *GPT) Save(path string, meta map[string]string) error {
	ts, md, err := m.checkpoint(meta)
	if err != nil {
		return fmt.Errorf("model: saving %s: %w", path, err)
	}
	if err := safetensors.Write(path, ts, md); err != nil {
		return fmt.Errorf("model: saving checkpoint: %w", err)
	}
	return nil
}

// EncodeCheckpoint writes the bytes Save would write to w (for checkpoints
// that travel as blobs rather than files).
func (m *GPT) EncodeCheckpoint(w io.Writer, meta map[string]string) error {
	ts, md, err := m.checkpoint(meta)
	if err != nil {
		return fmt.Errorf("model: encoding checkpoint: %w", err)
	}
	if err := safetensors.Encode(w, ts, md); err != nil {
		return fmt.Errorf("model: encoding checkpoint: %w", err)
	}
	return nil
}

// checkpoint lists the tensors (views into Params, not copies) and the
// metadata of a checkpoint.
func (m *GPT) checkpoint(meta map[string]string) ([]safetensors.Tensor, map[string]string, error) {
	md := make(map[string]string, len(meta)+2)
	for k, v := range meta {
		if k == MetaConfig || k == MetaFormat {
			return nil, nil, fmt.Errorf("metadata key %q is reserved", k)
		}
		md[k] = v
	}
	cfg, err := json.Marshal(m.Config)
	if err != nil {
		return nil, nil, fmt.Errorf("encoding config: %w", err)
	}
	md[MetaConfig], md[MetaFormat] = string(cfg), CheckpointVersion
	ts := make([]safetensors.Tensor, len(m.views))
	for i, v := range m.views {
		ts[i] = safetensors.Tensor{Name: v.Name, Shape: v.Shape, Data: m.Params[v.Offset : v.Offset+v.Len]}
	}
	return ts, md, nil
}

// Load reads a checkpoint written by Save into a new model on engine e and
// returns it with the caller's metadata (reserved keys removed). Truncated or
// corrupt files, unknown format versions, invalid configs, missing, extra or
// misshapen tensors and non-finite values are errors.
func Load(path string, e *tensor.Engine) (*GPT, map[string]string, error) {
	f, err := safetensors.Read(path)
	if err != nil {
		return nil, nil, fmt.Errorf("model: loading checkpoint: %w", err)
	}
	m, meta, err := fromFile(f, e)
	if err != nil {
		return nil, nil, fmt.Errorf("model: loading %s: %w", path, err)
	}
	return m, meta, nil
}

// LoadBytes is Load for a checkpoint held in memory (for example one fetched
// from a peer, which must be treated as hostile).
func LoadBytes(data []byte, e *tensor.Engine) (*GPT, map[string]string, error) {
	f, err := safetensors.Decode(data)
	if err != nil {
		return nil, nil, fmt.Errorf("model: decoding checkpoint: %w", err)
	}
	m, meta, err := fromFile(f, e)
	if err != nil {
		return nil, nil, fmt.Errorf("model: decoding checkpoint: %w", err)
	}
	return m, meta, nil
}

func fromFile(f *safetensors.File, e *tensor.Engine) (*GPT, map[string]string, error) {
	cfg, err := checkpointConfig(f)
	if err != nil {
		return nil, nil, err
	}
	// Check the tensors against the config before allocating the model, so
	// that a small file claiming a huge config costs nothing.
	src, err := checkTensors(f, cfg)
	if err != nil {
		return nil, nil, err
	}
	m, err := New(cfg, e)
	if err != nil {
		return nil, nil, err
	}
	m.setParams(src)
	return m, userMeta(f), nil
}

// Restore reads a checkpoint into m's Params, refusing one whose config is
// not m.Config; on error Params are unchanged.
func (m *GPT) Restore(path string) (map[string]string, error) {
	f, err := safetensors.Read(path)
	if err != nil {
		return nil, fmt.Errorf("model: restoring checkpoint: %w", err)
	}
	cfg, err := checkpointConfig(f)
	if err != nil {
		return nil, fmt.Errorf("model: restoring %s: %w", path, err)
	}
	if cfg != m.Config {
		return nil, fmt.Errorf("model: restoring %s: checkpoint is for %v, model is %v", path, cfg, m.Config)
	}
	src, err := checkTensors(f, cfg)
	if err != nil {
		return nil, fmt.Errorf("model: restoring %s: %w", path, err)
	}
	m.setParams(src)
	return userMeta(f), nil
}

func checkpointConfig(f *safetensors.File) (Config, error) {
	if v, ok := f.Metadata[MetaFormat]; !ok || v != CheckpointVersion {
		return Config{}, fmt.Errorf("checkpoint format %q, want %q", v, CheckpointVersion)
	}
	raw, ok := f.Metadata[MetaConfig]
	if !ok {
		return Config{}, fmt.Errorf("no %s in the metadata", MetaConfig)
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(raw)))
	dec.DisallowUnknownFields()
	var cfg Config
	if err := dec.Decode(&cfg); err != nil {
		return Config{}, fmt.Errorf("decoding config: %w", err)
	}
	if dec.More() {
		return Config{}, fmt.Errorf("trailing data after the config")
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// checkTensors matches the tensors of f with the layout of cfg (names,
// shapes, finite values) and returns their data in layout order.
func checkTensors(f *safetensors.File, cfg Config) ([][]float32, error) {
	// The count check comes first: it bounds the layout built next.
	if want := 4 + 12*cfg.Layers; len(f.Tensors) != want {
		return nil, fmt.Errorf("checkpoint has %d tensors, config %v needs %d", len(f.Tensors), cfg, want)
	}
	byName := make(map[string]int, len(f.Tensors))
	for i, t := range f.Tensors {
		byName[t.Name] = i
	}
	views := Layout(cfg)
	src := make([][]float32, len(views))
	for i, v := range views {
		j, ok := byName[v.Name]
		if !ok {
			return nil, fmt.Errorf("checkpoint lacks tensor %s", v.Name)
		}
		t := f.Tensors[j]
		if !slices.Equal(t.Shape, v.Shape) || len(t.Data) != v.Len {
			return nil, fmt.Errorf("tensor %s has shape %v, want %v", v.Name, t.Shape, v.Shape)
		}
		for j, x := range t.Data {
			if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
				return nil, fmt.Errorf("tensor %s has non-finite value %v at %d", v.Name, x, j)
			}
		}
		src[i] = t.Data
	}
	return src, nil
}

// setParams copies checked tensors (from checkTensors) into Params.
func (m *GPT) setParams(src [][]float32) {
	for i, v := range m.views {
		copy(m.Params[v.Offset:v.Offset+v.Len], src[i])
	}
	m.hasFwd, m.hasTgt = false, false
}

func userMeta(f *safetensors.File) map[string]string {
	md := maps.Clone(f.Metadata)
	if md == nil {
		md = map[string]string{}
	}
	delete(md, MetaConfig)
	delete(md, MetaFormat)
	return md
}

// StateHash identifies the model state: sha256 over the config hash and the
// parameters as little-endian float32 bytes, in flat order.
func (m *GPT) StateHash() [32]byte {
	h := sha256.New()
	ch := m.Config.Hash()
	h.Write(ch[:])
	var buf [4096]byte
	p := m.Params
	for len(p) > 0 {
		n := min(len(p), len(buf)/4)
		for i, x := range p[:n] {
			binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(x))
		}
		h.Write(buf[:4*n])
		p = p[n:]
	}
	var out [32]byte
	h.Sum(out[:0])
	return out
}
