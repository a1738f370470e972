package attest

import (
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Version is the wire version of every message this package writes and
// accepts.
const Version = 1

// Named errors. Decoding failures wrap ErrMalformed; the others say which
// rule a well-formed message broke.
var (
	ErrMalformed        = errors.New("attest: malformed message")
	ErrBadSignature     = errors.New("attest: bad signature")
	ErrWrongNetwork     = errors.New("attest: message for another network")
	ErrNotForUs         = errors.New("attest: challenge addressed to another prover")
	ErrReplay           = errors.New("attest: challenge nonce already seen")
	ErrBusy             = errors.New("attest: prover busy")
	ErrExpired          = errors.New("attest: expired")
	ErrUnknownChallenge = errors.New("attest: unknown challenge")
	ErrRejectedVerifier = errors.New("attest: verifier not accepted")
)

// Signature domains: each signed message type has its own, so a signature
// over one can never be replayed as another or as anything else the key
// signs.
const (
	domainChallenge   = "trinity/attest/challenge/v1\x00"
	domainCommitment  = "trinity/attest/commitment/v1\x00"
	domainAttestation = "trinity/attest/attestation/v1\x00"
	domainCapacity    = "trinity/attest/capacity/v1\x00"
)

func sign(priv ed25519.PrivateKey, domain string, body []byte) []byte {
	msg := make([]byte, 0, len(domain)+len(body))
	msg = append(append(msg, domain...), body...)
	return ed25519.Sign(priv, msg)
}

func verifySig(pub ed25519.PublicKey, domain string, body, sig []byte) error {
	if len(pub) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize {
		return ErrBadSignature
	}
	msg := make([]byte, 0, len(domain)+len(body))
	msg = append(append(msg, domain...), body...)
	if !ed25519.Verify(pub, msg, sig) {
		return ErrBadSignature
	}
	return nil
}

func checkPriv(priv ed25519.PrivateKey) error {
	if len(priv) != ed25519.PrivateKeySize {
		return fmt.Errorf("attest: private key of %d bytes, want %d", len(priv), ed25519.PrivateKeySize)
	}
	return nil
}

func appendKey(b []byte, k ed25519.PublicKey) ([]byte, error) {
	if len(k) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key of %d bytes", ErrMalformed, len(k))
	}
	return append(b, k...), nil
}

// reader is a bounds-checked cursor over untrusted bytes that keeps the
// first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail("truncated at %s (offset %d)", what, r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) u8(what string) uint8 {
	if s := r.take(1, what); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if s := r.take(2, what); s != nil {
		return binary.BigEndian.Uint16(s)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if s := r.take(4, what); s != nil {
		return binary.BigEndian.Uint32(s)
	}
	return 0
}

func (r *reader) u64(what string) uint64 {
	if s := r.take(8, what); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

func (r *reader) i64(what string) int64 { return int64(r.u64(what)) }

func (r *reader) h32(what string) (h [32]byte) {
	if s := r.take(32, what); s != nil {
		copy(h[:], s)
	}
	return h
}

func (r *reader) key(what string) ed25519.PublicKey {
	if s := r.take(ed25519.PublicKeySize, what); s != nil {
		return ed25519.PublicKey(append([]byte(nil), s...))
	}
	return nil
}

func (r *reader) sig() []byte {
	if s := r.take(ed25519.SignatureSize, "signature"); s != nil {
		return append([]byte(nil), s...)
	}
	return nil
}

// rate reads a float64 rate that must be finite and within [0, MaxGFLOPs]
// (or [0, max] as given).
func (r *reader) rate(what string, max float64) float64 {
	v := math.Float64frombits(r.u64(what))
	if r.err == nil && !(v >= 0 && v <= max) { // also rejects NaN
		r.fail("%s = %v out of [0, %g]", what, v, max)
		return 0
	}
	return v
}

func (r *reader) version(what string) uint8 {
	v := r.u8(what + " version")
	if r.err == nil && v != Version {
		r.fail("%s version %d, want %d", what, v, Version)
	}
	return v
}

func (r *reader) end(what string) error {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes after %s", len(r.b)-r.off, what)
	}
	return r.err
}

// zigzag varints carry product entries: honest entries are a few thousand
// in magnitude, so most take two bytes instead of four.
func appendEntry(b []byte, v int32) []byte {
	return binary.AppendUvarint(b, uint64(uint32(v<<1)^uint32(v>>31)))
}

// entry reads one minimal zigzag varint within ±lim.
func (r *reader) entry(lim int64) int32 {
	if r.err != nil {
		return 0
	}
	u, n := binary.Uvarint(r.b[r.off:])
	if n <= 0 || n > 5 {
		r.fail("bad varint at offset %d", r.off)
		return 0
	}
	if n > 1 && r.b[r.off+n-1] == 0 {
		r.fail("non-minimal varint at offset %d", r.off)
		return 0
	}
	r.off += n
	if u > math.MaxUint32 {
		r.fail("entry out of range")
		return 0
	}
	v := int64(int32(uint32(u)>>1) ^ -int32(uint32(u)&1))
	if v > lim || v < -lim {
		r.fail("entry %d beyond ±%d", v, lim)
		return 0
	}
	return int32(v)
}

// entryLen is the longest varint an entry within ±lim takes.
func entryLen(lim int64) int {
	return len(binary.AppendUvarint(nil, uint64(2*lim)))
}
