package data

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Dataset kinds a Spec can name.
const (
	KindDefault = "default" // the generated default corpus
	KindText    = "text"    // a text file or folder, byte-tokenized
	KindShards  = "shards"  // an llm.c token shard, or a folder of *.bin shards
)

// Spec names a dataset in a way every peer can reproduce, for a network's
// genesis file. Hash, when set, pins the exact token sequence so that peers
// holding different files under the same path are caught at load time.
type Spec struct {
	Kind        string  `json:"kind"`
	Seed        uint64  `json:"seed,omitempty"`  // default corpus seed
	Bytes       int     `json:"bytes,omitempty"` // default corpus size
	Path        string  `json:"path,omitempty"`  // text or shard file or folder
	ValFraction float64 `json:"val_fraction"`    // fraction held out for validation, in (0, 1)
	Hash        string  `json:"hash,omitempty"`  // hex TokensHash of the whole sequence
}

// Validate reports the first field that makes the spec unusable.
func (s Spec) Validate() error {
	switch s.Kind {
	case KindDefault:
		if s.Bytes < 1 || s.Bytes > MaxCorpusBytes {
			return fmt.Errorf("data: spec bytes = %d out of range [1, %d]", s.Bytes, MaxCorpusBytes)
		}
		if s.Path != "" {
			return fmt.Errorf("data: spec path is set for the %q kind, which reads no files", s.Kind)
		}
	case KindText, KindShards:
		if s.Path == "" {
			return fmt.Errorf("data: spec path is required for the %q kind", s.Kind)
		}
	default:
		return fmt.Errorf("data: spec kind %q unknown (want %q, %q or %q)", s.Kind, KindDefault, KindText, KindShards)
	}
	if !(s.ValFraction > 0 && s.ValFraction < 1) {
		return fmt.Errorf("data: spec val_fraction = %v out of range (0, 1)", s.ValFraction)
	}
	if s.Hash != "" {
		if b, err := hex.DecodeString(s.Hash); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("data: spec hash %q is not 64 hex digits", s.Hash)
		}
	}
	return nil
}

// TokensHash identifies a token sequence: SHA-256 over a domain tag and
// the tokens as little-endian int32.
func TokensHash(tokens []int32) [32]byte {
	h := sha256.New()
	h.Write([]byte("trinity/tokens/v1\x00"))
	buf := make([]byte, 0, 64<<10)
	for _, t := range tokens {
		buf = binary.LittleEndian.AppendUint32(buf, uint32(t))
		if len(buf) == cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

// Load builds the dataset a spec names, for a model with vocabulary vocab.
// Relative paths are taken relative to baseDir.
func Load(ctx context.Context, s Spec, vocab int, baseDir string) (*Dataset, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	path := s.Path
	if path != "" && !filepath.IsAbs(path) {
		path = filepath.Join(baseDir, path)
	}
	var tokens []int32
	switch s.Kind {
	case KindDefault:
		c, err := DefaultCorpus(s.Seed, s.Bytes)
		if err != nil {
			return nil, err
		}
		tokens = c.Tokens()
	case KindText:
		text, err := LoadText(path)
		if err != nil {
			return nil, err
		}
		tokens = ByteTokenizer{}.EncodeBytes(text)
	case KindShards:
		var err error
		if tokens, err = LoadShards(ctx, path, vocab); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("data: loading dataset: %w", err)
	}
	if s.Hash != "" {
		if got := TokensHash(tokens); hex.EncodeToString(got[:]) != strings.ToLower(s.Hash) {
			return nil, fmt.Errorf("data: dataset hash %x does not match the spec's %s", got, s.Hash)
		}
	}
	return NewDataset(tokens, vocab, s.ValFraction)
}

// LoadShards reads one shard file, or every *.bin file of a folder (not
// recursively) in lexical order, concatenated.
func LoadShards(ctx context.Context, path string, vocab int) ([]int32, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	files := []string{path}
	if st.IsDir() {
		entries, err := os.ReadDir(path) // sorted by name
		if err != nil {
			return nil, fmt.Errorf("data: listing %s: %w", path, err)
		}
		files = files[:0]
		for _, e := range entries {
			if e.Type().IsRegular() && strings.HasSuffix(e.Name(), ".bin") && !strings.HasPrefix(e.Name(), ".") {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("data: folder %s holds no .bin shards: %w", path, fs.ErrNotExist)
		}
	}
	var tokens []int32
	for _, f := range files {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("data: loading shards: %w", err)
		}
		t, err := ReadShard(f, vocab)
		if err != nil {
			return nil, err
		}
		tokens = append(tokens, t...)
	}
	return tokens, nil
}
