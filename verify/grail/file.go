package grail

import (
	"fmt"
	"io"
	"os"

	"github.com/trinity-net/trinity/internal/atomicfile"
)

// maxProofBytes bounds a proof file: MaxTokens tokens of 3 bytes and their
// sketches, plus header and signature.
const maxProofBytes = headerLen + MaxTokens*(3+sketchBytes) + sigLen

// WriteFile writes the encoded proof to path atomically (temporary file in
// the same directory, fsync, rename).
func (p *Proof) WriteFile(path string) error {
	b, err := p.Encode()
	if err != nil {
		return err
	}
	if err := atomicfile.WriteFile(path, b); err != nil {
		return fmt.Errorf("grail: writing proof: %w", err)
	}
	return nil
}

// ReadFile reads and decodes a proof file, refusing files larger than any
// valid proof before reading them whole.
func ReadFile(path string) (*Proof, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("grail: reading proof: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProofBytes+1))
	if err != nil {
		return nil, fmt.Errorf("grail: reading proof %s: %w", path, err)
	}
	if len(b) > maxProofBytes {
		return nil, fmt.Errorf("grail: reading proof %s: larger than %d bytes", path, maxProofBytes)
	}
	p, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("grail: reading proof %s: %w", path, err)
	}
	return p, nil
}
