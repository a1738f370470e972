// Package model is a GPT-2-style decoder-only transformer in pure Go on the
// kernels of package tensor: token and position embeddings, pre-LayerNorm
// blocks of causal multi-head attention and a GELU MLP, a final LayerNorm and
// an LM head tied to the token embedding.
//
// All parameters live in one flat []float32 with named views, because the
// optimizer and the pseudo-gradient codec work on the flat vector in fixed
// chunks; all activations live in one flat buffer sized once, so a training
// step does not allocate.
//
// Contract:
//   - Forward, Backward (the mean cross-entropy), BackwardWeighted (any
//     per-position weights; Backward is its uniform case, bit for bit) and
//     the Session give the same bits on every tensor ISA path and thread
//     count (the kernels' determinism contract, and this package's own
//     reductions run in a fixed order).
//   - A Session step returns bit for bit the logits and hidden state that a
//     Forward over the same prefix gives at that position, whatever the batch
//     shape, so a verifier's teacher-forced Forward reproduces a prover's
//     decoding.
//   - Init and Sampler use the package's own PRNG and platform-independent
//     arithmetic: a seed gives the same weights and tokens everywhere.
//   - Bad input (out-of-range tokens, T beyond the context, wrong lengths,
//     non-finite weights or checkpoint values, hostile checkpoint files) is
//     an error, never a panic.
package model

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Config is the shape of a model.
type Config struct {
	Vocab   int `json:"vocab"`   // vocabulary size
	Context int `json:"context"` // maximum sequence length
	Layers  int `json:"layers"`  // number of transformer blocks
	Heads   int `json:"heads"`   // attention heads per block
	Width   int `json:"width"`   // embedding width (channels)
}

// Reference is the reference configuration trinity benchmarks on.
var Reference = Config{Vocab: 256, Context: 256, Layers: 4, Heads: 4, Width: 256}

// maxDim bounds every dimension so that sizes cannot overflow and a hostile
// config cannot ask for unbounded memory.
const maxDim = 1 << 20

// Validate reports the first field that makes the config unusable.
func (c Config) Validate() error {
	for _, f := range []struct {
		name string
		v    int
	}{{"vocab", c.Vocab}, {"context", c.Context}, {"layers", c.Layers}, {"heads", c.Heads}, {"width", c.Width}} {
		if f.v < 1 || f.v > maxDim {
			return fmt.Errorf("model: config %s = %d out of range [1, %d]", f.name, f.v, maxDim)
		}
	}
	if c.Width%c.Heads != 0 {
		return fmt.Errorf("model: config width %d is not divisible by heads %d", c.Width, c.Heads)
	}
	if n := c.numParams(); n > 1<<31 {
		return fmt.Errorf("model: config has %d parameters, more than 2^31", n)
	}
	return nil
}

// NumParams is the number of float32 parameters.
func (c Config) NumParams() int { return int(c.numParams()) }

// numParams counts in int64 so that Validate can refuse an oversized config
// on 32-bit platforms too.
func (c Config) numParams() int64 {
	V, T, L, C := int64(c.Vocab), int64(c.Context), int64(c.Layers), int64(c.Width)
	n := V*C + T*C + // wte, wpe
		L*(2*C+ // ln1 w, b
			3*C*C+3*C+ // qkv w, b
			C*C+C+ // attn proj w, b
			2*C+ // ln2 w, b
			4*C*C+4*C+ // fc w, b
			4*C*C+C) + // fc proj w, b
		2*C // lnf w, b
	return n
}

// Hash identifies the config; blobs and checkpoints carry it so that a
// contribution for another model shape is rejected.
func (c Config) Hash() [32]byte {
	var b [5 * 8]byte
	for i, v := range []int{c.Vocab, c.Context, c.Layers, c.Heads, c.Width} {
		binary.LittleEndian.PutUint64(b[i*8:], uint64(v))
	}
	return sha256.Sum256(append([]byte("trinity/model-config/v1\x00"), b[:]...))
}

func (c Config) String() string {
	return fmt.Sprintf("L=%d C=%d heads=%d context=%d vocab=%d (%d params)", c.Layers, c.Width, c.Heads, c.Context, c.Vocab, c.NumParams())
}
