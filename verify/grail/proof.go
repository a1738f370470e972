package grail

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Encoding limits. A decoder checks every length against them and against
// the bytes actually present before it allocates anything.
const (
	// Version is the proof format version this package writes and reads.
	Version = 1
	// MaxTokens bounds prompt plus generated tokens.
	MaxTokens = 1 << 16
	// MaxVocab bounds the vocabulary (tokens take at most 3 bytes).
	MaxVocab = 1 << 24
)

const (
	magic     = "TGRL"
	headerLen = 4 + 1 + 4*32 + 5*4 // magic, version, 4 hashes/keys, 5 uint32
	sigLen    = ed25519.SignatureSize
)

// Proof is a GRAIL proof of one generation: the prompt and the generated
// tokens, one sketch per generated token, and everything the sketches and
// the sampling draws were derived from, signed by the generating peer.
type Proof struct {
	ModelHash  [32]byte // state hash of the model (model.GPT.StateHash)
	ConfigHash [32]byte // hash of its config (model.Config.Hash)
	Beacon     [32]byte // public randomness fixed before generation
	Peer       [32]byte // the prover's ed25519 public key
	Vocab      int
	Sampling   Sampling
	Prompt     []int32 // at least one token
	Tokens     []int32 // generated tokens, at least one
	// Sketches[j] is the sketch of the hidden state the logits of Tokens[j]
	// came from: sequence position len(Prompt)-1+j.
	Sketches  []uint32
	Signature [sigLen]byte
}

// tokenWidth is the number of bytes a token takes for a vocabulary size.
func tokenWidth(vocab int) int {
	switch {
	case vocab <= 1<<8:
		return 1
	case vocab <= 1<<16:
		return 2
	default:
		return 3
	}
}

// check validates the shape of p (not its signature).
func (p *Proof) check() error {
	if p.Vocab < 1 || p.Vocab > MaxVocab {
		return fmt.Errorf("grail: vocabulary %d out of range [1, %d]", p.Vocab, MaxVocab)
	}
	if err := p.Sampling.validate(p.Vocab); err != nil {
		return err
	}
	if len(p.Prompt) < 1 || len(p.Tokens) < 1 {
		return fmt.Errorf("grail: proof needs at least one prompt and one generated token (have %d and %d)", len(p.Prompt), len(p.Tokens))
	}
	if len(p.Prompt)+len(p.Tokens) > MaxTokens {
		return fmt.Errorf("grail: %d tokens exceed the limit %d", len(p.Prompt)+len(p.Tokens), MaxTokens)
	}
	if len(p.Sketches) != len(p.Tokens) {
		return fmt.Errorf("grail: %d sketches for %d generated tokens", len(p.Sketches), len(p.Tokens))
	}
	for i, s := range p.Sketches {
		if s >= SketchModulus {
			return fmt.Errorf("grail: sketch %d = %d out of range [0, 2^24)", i, s)
		}
	}
	for i, t := range p.Prompt {
		if t < 0 || int(t) >= p.Vocab {
			return fmt.Errorf("grail: prompt token %d = %d out of range [0, %d)", i, t, p.Vocab)
		}
	}
	for i, t := range p.Tokens {
		if t < 0 || int(t) >= p.Vocab {
			return fmt.Errorf("grail: generated token %d = %d out of range [0, %d)", i, t, p.Vocab)
		}
	}
	return nil
}

// encodedLen is the size of the encoding: fixed header, tokens, 3-byte
// sketches, signature.
func encodedLen(vocab, prompt, gen int) int {
	return headerLen + (prompt+gen)*tokenWidth(vocab) + sketchBytes*gen + sigLen
}

// appendBody encodes everything but the signature. With prefixOnly it stops
// after the prompt: that prefix is what the prover declares before it
// generates, and the seed is derived from it.
func (p *Proof) appendBody(b []byte, prefixOnly bool) []byte {
	b = append(b, magic...)
	b = append(b, Version)
	b = append(b, p.ModelHash[:]...)
	b = append(b, p.ConfigHash[:]...)
	b = append(b, p.Beacon[:]...)
	b = append(b, p.Peer[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Vocab))
	b = binary.LittleEndian.AppendUint32(b, math.Float32bits(p.Sampling.Temperature))
	b = binary.LittleEndian.AppendUint32(b, uint32(p.Sampling.TopK))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Prompt)))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(p.Tokens)))
	w := tokenWidth(p.Vocab)
	b = appendTokens(b, p.Prompt, w)
	if prefixOnly {
		return b
	}
	b = appendTokens(b, p.Tokens, w)
	for _, s := range p.Sketches {
		b = append(b, byte(s), byte(s>>8), byte(s>>16))
	}
	return b
}

func appendTokens(b []byte, toks []int32, w int) []byte {
	for _, t := range toks {
		for i := range w {
			b = append(b, byte(uint32(t)>>(8*i)))
		}
	}
	return b
}

// Encode returns the canonical encoding of p. It fails if p is malformed.
func (p *Proof) Encode() ([]byte, error) {
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("grail: encoding proof: %w", err)
	}
	b := make([]byte, 0, encodedLen(p.Vocab, len(p.Prompt), len(p.Tokens)))
	b = p.appendBody(b, false)
	return append(b, p.Signature[:]...), nil
}

// Decode parses an encoded proof strictly: wrong magic or version, a length
// that does not match the bytes present, trailing bytes, out-of-range tokens
// or sampling parameters are errors. It does not check the signature (Verify
// does).
func Decode(b []byte) (*Proof, error) {
	if len(b) < headerLen+sigLen {
		return nil, fmt.Errorf("grail: decoding proof: %d bytes, shorter than the minimum %d", len(b), headerLen+sigLen)
	}
	if string(b[:4]) != magic {
		return nil, errors.New("grail: decoding proof: bad magic")
	}
	if b[4] != Version {
		return nil, fmt.Errorf("grail: decoding proof: version %d, want %d", b[4], Version)
	}
	p := &Proof{}
	off := 5
	for _, h := range []*[32]byte{&p.ModelHash, &p.ConfigHash, &p.Beacon, &p.Peer} {
		copy(h[:], b[off:off+32])
		off += 32
	}
	u32 := func() uint32 {
		v := binary.LittleEndian.Uint32(b[off:])
		off += 4
		return v
	}
	vocab, temp, topk, np, ng := u32(), u32(), u32(), u32(), u32()
	if vocab < 1 || vocab > MaxVocab {
		return nil, fmt.Errorf("grail: decoding proof: vocabulary %d out of range [1, %d]", vocab, MaxVocab)
	}
	p.Vocab = int(vocab)
	p.Sampling = Sampling{Temperature: math.Float32frombits(temp), TopK: int(topk)}
	if topk > vocab {
		return nil, fmt.Errorf("grail: decoding proof: top-k %d exceeds the vocabulary %d", topk, vocab)
	}
	if err := p.Sampling.validate(p.Vocab); err != nil {
		return nil, fmt.Errorf("grail: decoding proof: %w", err)
	}
	if np < 1 || ng < 1 || uint64(np)+uint64(ng) > MaxTokens {
		return nil, fmt.Errorf("grail: decoding proof: %d prompt and %d generated tokens (need >= 1 each, <= %d in all)", np, ng, MaxTokens)
	}
	if want := encodedLen(p.Vocab, int(np), int(ng)); len(b) != want {
		return nil, fmt.Errorf("grail: decoding proof: %d bytes, want %d for %d+%d tokens", len(b), want, np, ng)
	}
	w := tokenWidth(p.Vocab)
	readTokens := func(n int, what string) ([]int32, error) {
		toks := make([]int32, n)
		for i := range toks {
			var v uint32
			for j := range w {
				v |= uint32(b[off+j]) << (8 * j)
			}
			off += w
			if v >= vocab {
				return nil, fmt.Errorf("grail: decoding proof: %s token %d = %d out of range [0, %d)", what, i, v, vocab)
			}
			toks[i] = int32(v)
		}
		return toks, nil
	}
	var err error
	if p.Prompt, err = readTokens(int(np), "prompt"); err != nil {
		return nil, err
	}
	if p.Tokens, err = readTokens(int(ng), "generated"); err != nil {
		return nil, err
	}
	p.Sketches = make([]uint32, ng)
	for i := range p.Sketches {
		p.Sketches[i] = uint32(b[off]) | uint32(b[off+1])<<8 | uint32(b[off+2])<<16
		off += sketchBytes
	}
	copy(p.Signature[:], b[off:])
	return p, nil
}

// Seed is the proof's randomness: a hash of everything the prover declares
// before generating (model, beacon, peer, sampling, prompt, length). The
// projection vectors and the sampling draws derive from it.
func (p *Proof) Seed() [32]byte {
	h := sha256.New()
	h.Write([]byte(domainSeed))
	h.Write(p.appendBody(nil, true))
	var s [32]byte
	h.Sum(s[:0])
	return s
}

// Commitment is the hash of the whole proof body (tokens and sketches
// included, signature excluded). Challenged positions are derived from it, so
// they are fixed only after everything they check is.
func (p *Proof) Commitment() [32]byte {
	h := sha256.New()
	h.Write([]byte(domainCommit))
	h.Write(p.appendBody(nil, false))
	var c [32]byte
	h.Sum(c[:0])
	return c
}

func (p *Proof) signedMessage() []byte {
	return p.appendBody([]byte(domainSign), false)
}

// Sign sets p.Peer to the signer's public key and signs the proof. The
// signer must hold an ed25519 key.
func (p *Proof) Sign(signer crypto.Signer) error {
	pub, ok := signer.Public().(ed25519.PublicKey)
	if !ok || len(pub) != ed25519.PublicKeySize {
		return fmt.Errorf("grail: signing proof: signer key is %T, want ed25519", signer.Public())
	}
	copy(p.Peer[:], pub)
	if err := p.check(); err != nil {
		return fmt.Errorf("grail: signing proof: %w", err)
	}
	sig, err := signer.Sign(rand.Reader, p.signedMessage(), crypto.Hash(0))
	if err != nil {
		return fmt.Errorf("grail: signing proof: %w", err)
	}
	if len(sig) != sigLen {
		return fmt.Errorf("grail: signing proof: signature of %d bytes, want %d", len(sig), sigLen)
	}
	copy(p.Signature[:], sig)
	return nil
}

// CheckSignature reports whether p carries a valid signature by p.Peer.
func (p *Proof) CheckSignature() error {
	if err := p.check(); err != nil {
		return err
	}
	if !ed25519.Verify(ed25519.PublicKey(p.Peer[:]), p.signedMessage(), p.Signature[:]) {
		return ErrSignature
	}
	return nil
}
