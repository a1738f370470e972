package grail

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"math"
	"os"
	"strings"
	"testing"
)

// sampleProof is a signed proof built without a model.
func sampleProof(t testing.TB, vocab, np, ng int, s Sampling) *Proof {
	t.Helper()
	p := &Proof{ModelHash: beaconOf(1), ConfigHash: beaconOf(2), Beacon: beaconOf(3), Vocab: vocab, Sampling: s}
	for i := range np {
		p.Prompt = append(p.Prompt, int32((i*7)%vocab))
	}
	for i := range ng {
		p.Tokens = append(p.Tokens, int32((i*13+vocab-1)%vocab))
		p.Sketches = append(p.Sketches, uint32(i*0x9e3779)&(SketchModulus-1))
	}
	if err := p.Sign(testKey(5)); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestProofRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		vocab, np, ng int
		s             Sampling
	}{
		{256, 1, 1, Sampling{}}, {256, 8, 256, Sampling{Temperature: 0.7, TopK: 40}},
		{2, 3, 5, Sampling{Temperature: 1}}, {50257, 10, 20, Sampling{Temperature: 1, TopK: 50}},
		{MaxVocab, 2, 3, Sampling{Temperature: MaxTemperature, TopK: MaxVocab}},
	} {
		p := sampleProof(t, tc.vocab, tc.np, tc.ng, tc.s)
		b, err := p.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != encodedLen(tc.vocab, tc.np, tc.ng) {
			t.Fatalf("encoding of %d bytes, want %d", len(b), encodedLen(tc.vocab, tc.np, tc.ng))
		}
		q, err := Decode(b)
		if err != nil {
			t.Fatalf("vocab %d: %v", tc.vocab, err)
		}
		if err := q.CheckSignature(); err != nil {
			t.Fatal(err)
		}
		b2, _ := q.Encode()
		if !bytes.Equal(b, b2) {
			t.Fatal("re-encoding differs")
		}
		if q.Seed() != p.Seed() || q.Commitment() != p.Commitment() {
			t.Fatal("seed or commitment changed in the round trip")
		}
	}
	// 256 tokens at vocab 256: 1 token byte + 3 sketch bytes each.
	if got := encodedLen(256, 1, 256) - headerLen - sigLen; got != 1+4*256 {
		t.Fatalf("body %d bytes", got)
	}
}

func TestDecodeRejects(t *testing.T) {
	good, err := sampleProof(t, 256, 4, 6, Sampling{Temperature: 1, TopK: 10}).Encode()
	if err != nil {
		t.Fatal(err)
	}
	put32 := func(off int, v uint32) func([]byte) []byte {
		return func(b []byte) []byte { binary.LittleEndian.PutUint32(b[off:], v); return b }
	}
	const vocabOff = 5 + 4*32
	tests := []struct {
		name string
		edit func([]byte) []byte
		want string
	}{
		{"empty", func([]byte) []byte { return nil }, "shorter"},
		{"truncated", func(b []byte) []byte { return b[:len(b)-1] }, "bytes, want"},
		{"trailing byte", func(b []byte) []byte { return append(b, 0) }, "bytes, want"},
		{"bad magic", func(b []byte) []byte { b[0] = 'X'; return b }, "magic"},
		{"version", func(b []byte) []byte { b[4] = 2; return b }, "version"},
		{"vocab 0", put32(vocabOff, 0), "vocabulary"},
		{"vocab huge", put32(vocabOff, MaxVocab+1), "vocabulary"},
		{"NaN temperature", put32(vocabOff+4, math.Float32bits(float32(math.NaN()))), "temperature"},
		{"negative temperature", put32(vocabOff+4, math.Float32bits(-1)), "temperature"},
		{"negative zero temperature", put32(vocabOff+4, 1<<31), "temperature"},
		{"Inf temperature", put32(vocabOff+4, math.Float32bits(float32(math.Inf(1)))), "temperature"},
		{"top-k above vocab", put32(vocabOff+8, 257), "top-k"},
		{"greedy with top-k", put32(vocabOff+4, 0), "greedy"},
		{"no prompt", put32(vocabOff+12, 0), "prompt"},
		{"no tokens", put32(vocabOff+16, 0), "generated"},
		{"too many tokens", put32(vocabOff+16, MaxTokens), "generated"},
		{"length mismatch", put32(vocabOff+16, 7), "bytes, want"},
		{"huge length", put32(vocabOff+12, math.MaxUint32), "prompt"},
	}
	for _, tc := range tests {
		b := tc.edit(bytes.Clone(good))
		if _, err := Decode(b); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", tc.name, err, tc.want)
		}
	}
	// A token outside a small vocabulary.
	small, _ := sampleProof(t, 100, 2, 2, Sampling{}).Encode()
	small[headerLen] = 100
	if _, err := Decode(small); err == nil || !strings.Contains(err.Error(), "out of range") {
		t.Errorf("out-of-range token: got %v", err)
	}
}

func TestSignature(t *testing.T) {
	p := sampleProof(t, 256, 3, 4, Sampling{})
	b, _ := p.Encode()
	for i := 0; i < len(b)-sigLen; i++ {
		c := bytes.Clone(b)
		c[i] ^= 1
		q, err := Decode(c)
		if err != nil {
			continue // the decoder already refuses it
		}
		if err := q.CheckSignature(); !errors.Is(err, ErrSignature) {
			t.Fatalf("byte %d flipped: signature check gave %v", i, err)
		}
	}
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sign(ec); err == nil {
		t.Fatal("ECDSA signer accepted")
	}
	p.Sketches = p.Sketches[:1]
	if err := p.Sign(testKey(1)); err == nil {
		t.Fatal("malformed proof signed")
	}
	if _, err := p.Encode(); err == nil {
		t.Fatal("malformed proof encoded")
	}
}

// FuzzDecode: Decode never panics, and whatever it accepts re-encodes to
// the same bytes (the encoding is canonical).
func FuzzDecode(f *testing.F) {
	for _, p := range []*Proof{
		sampleProof(f, 256, 1, 1, Sampling{}),
		sampleProof(f, 256, 5, 9, Sampling{Temperature: 0.8, TopK: 40}),
		sampleProof(f, 1000, 2, 3, Sampling{Temperature: 1}),
		sampleProof(f, 70000, 2, 2, Sampling{Temperature: 2, TopK: 3}),
	} {
		b, err := p.Encode()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Decode(b)
		if err != nil {
			return
		}
		out, err := p.Encode()
		if err != nil {
			t.Fatalf("decoded proof does not encode: %v", err)
		}
		if !bytes.Equal(out, b) {
			t.Fatal("decode/encode is not the identity")
		}
		_ = p.CheckSignature()
	})
}

func TestProofFile(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/p.grail"
	p := sampleProof(t, 256, 3, 10, Sampling{Temperature: 1})
	if err := p.WriteFile(path); err != nil {
		t.Fatal(err)
	}
	q, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if q.Commitment() != p.Commitment() || q.Signature != p.Signature {
		t.Fatal("file round trip changed the proof")
	}
	if err := os.WriteFile(path, make([]byte, maxProofBytes+1), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadFile(path); err == nil {
		t.Fatal("oversized file accepted")
	}
	if _, err := ReadFile(dir + "/missing"); err == nil {
		t.Fatal("missing file accepted")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("temporary files left behind: %v", entries)
	}
}
