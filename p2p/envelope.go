package p2p

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// EnvelopeVersion is the wire version this package writes and accepts.
const EnvelopeVersion = 1

// Wire limits of an envelope. MaxEnvelopeSize bounds everything, so that a
// decoder never allocates more than that for one message.
const (
	MaxEnvelopeSize = 4 << 20
	maxTopicLen     = 32
	maxSenderLen    = 64
	maxSigLen       = 128
)

// envelopeDomain separates envelope signatures from anything else the same
// key signs (libp2p records, pubsub messages).
const envelopeDomain = "trinity/envelope/v1\x00"

// ErrBadEnvelope is wrapped by every decoding and verification failure.
var ErrBadEnvelope = errors.New("p2p: bad envelope")

// Envelope is the signed wrapper of every gossip message.
//
// Wire format (version 1, big-endian, no padding, nothing after the end):
//
//	u8 version | [32]network | u8 len, topic | u64 round | i64 unix-nanos |
//	u8 len, sender peer ID | u32 len, payload | u8 len, signature
//
// The signature is Ed25519 over envelopeDomain followed by every byte before
// the signature's length field; the key is the one embedded in the sender's
// peer ID.
type Envelope struct {
	Version   uint8
	Network   NetworkID
	Topic     Topic
	Round     uint64
	Sender    peer.ID
	Timestamp int64 // Unix nanoseconds, as the sender's clock read it
	Payload   []byte
	Signature []byte
}

// Time returns the envelope's timestamp.
func (e *Envelope) Time() time.Time { return time.Unix(0, e.Timestamp) }

// ID is the SHA-256 of the complete encoding: a stable handle for
// deduplication and logging by the consumer.
func (e *Envelope) ID() ([32]byte, error) {
	b, err := e.MarshalBinary()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// signedBytes is the encoding up to (not including) the signature.
func (e *Envelope) signedBytes() ([]byte, error) {
	if err := validTopicName(string(e.Topic)); err != nil {
		return nil, err
	}
	sender := []byte(e.Sender)
	if len(sender) == 0 || len(sender) > maxSenderLen {
		return nil, fmt.Errorf("%w: sender ID of %d bytes", ErrBadEnvelope, len(sender))
	}
	n := 1 + 32 + 1 + len(e.Topic) + 8 + 8 + 1 + len(sender) + 4 + len(e.Payload)
	if n+1+maxSigLen > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: payload of %d bytes exceeds the envelope limit", ErrBadEnvelope, len(e.Payload))
	}
	b := make([]byte, 0, n+1+len(e.Signature))
	b = append(b, e.Version)
	b = append(b, e.Network[:]...)
	b = append(b, byte(len(e.Topic)))
	b = append(b, e.Topic...)
	b = binary.BigEndian.AppendUint64(b, e.Round)
	b = binary.BigEndian.AppendUint64(b, uint64(e.Timestamp))
	b = append(b, byte(len(sender)))
	b = append(b, sender...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(e.Payload)))
	b = append(b, e.Payload...)
	return b, nil
}

// MarshalBinary returns the wire encoding.
func (e *Envelope) MarshalBinary() ([]byte, error) {
	if len(e.Signature) > maxSigLen {
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrBadEnvelope, len(e.Signature))
	}
	b, err := e.signedBytes()
	if err != nil {
		return nil, err
	}
	b = append(b, byte(len(e.Signature)))
	return append(b, e.Signature...), nil
}

// Sign sets Sender from key and fills Signature.
func (e *Envelope) Sign(key crypto.PrivKey) error {
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return fmt.Errorf("p2p: signing envelope: %w", err)
	}
	e.Sender = id
	msg, err := e.signedBytes()
	if err != nil {
		return err
	}
	sig, err := key.Sign(append([]byte(envelopeDomain), msg...))
	if err != nil {
		return fmt.Errorf("p2p: signing envelope: %w", err)
	}
	e.Signature = sig
	return nil
}

// Verify checks the signature against the Ed25519 key in the sender's ID.
func (e *Envelope) Verify() error {
	pub, err := e.Sender.ExtractPublicKey()
	if err != nil {
		return fmt.Errorf("%w: sender %s carries no public key: %v", ErrBadEnvelope, e.Sender, err)
	}
	if pub.Type() != crypto.Ed25519 {
		return fmt.Errorf("%w: sender key type %v, want Ed25519", ErrBadEnvelope, pub.Type())
	}
	msg, err := e.signedBytes()
	if err != nil {
		return err
	}
	ok, err := pub.Verify(append([]byte(envelopeDomain), msg...), e.Signature)
	if err != nil || !ok {
		return fmt.Errorf("%w: signature does not verify for sender %s", ErrBadEnvelope, e.Sender)
	}
	return nil
}

// UnmarshalEnvelope decodes b strictly: unknown versions, fields out of
// range and trailing bytes are errors. It does not verify the signature.
func UnmarshalEnvelope(b []byte) (*Envelope, error) {
	if len(b) > MaxEnvelopeSize {
		return nil, fmt.Errorf("%w: %d bytes exceeds %d", ErrBadEnvelope, len(b), MaxEnvelopeSize)
	}
	r := wireReader{b: b}
	e := &Envelope{}
	e.Version = r.u8()
	if r.err == nil && e.Version != EnvelopeVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrBadEnvelope, e.Version, EnvelopeVersion)
	}
	copy(e.Network[:], r.bytes(32))
	e.Topic = Topic(r.bytes(int(r.u8())))
	e.Round = r.u64()
	e.Timestamp = int64(r.u64())
	e.Sender = peer.ID(r.bytes(int(r.u8())))
	pl := r.u32()
	if r.err == nil && int64(pl) > int64(len(b)) {
		return nil, fmt.Errorf("%w: payload length %d exceeds message", ErrBadEnvelope, pl)
	}
	e.Payload = r.bytes(int(pl))
	e.Signature = r.bytes(int(r.u8()))
	if r.err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEnvelope, r.err)
	}
	if r.off != len(b) {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrBadEnvelope, len(b)-r.off)
	}
	if err := validTopicName(string(e.Topic)); err != nil {
		return nil, err
	}
	if len(e.Sender) == 0 || len(e.Sender) > maxSenderLen {
		return nil, fmt.Errorf("%w: sender ID of %d bytes", ErrBadEnvelope, len(e.Sender))
	}
	if _, err := peer.IDFromBytes([]byte(e.Sender)); err != nil {
		return nil, fmt.Errorf("%w: sender: %v", ErrBadEnvelope, err)
	}
	if len(e.Signature) == 0 || len(e.Signature) > maxSigLen {
		return nil, fmt.Errorf("%w: signature of %d bytes", ErrBadEnvelope, len(e.Signature))
	}
	// Copy out of the caller's buffer so the envelope does not pin it.
	e.Payload = append([]byte(nil), e.Payload...)
	e.Signature = append([]byte(nil), e.Signature...)
	return e, nil
}

// validTopicName accepts 1-32 characters of [a-z0-9-].
func validTopicName(s string) error {
	if len(s) == 0 || len(s) > maxTopicLen {
		return fmt.Errorf("%w: topic name of %d bytes", ErrBadEnvelope, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("%w: topic name %q has a character outside [a-z0-9-]", ErrBadEnvelope, s)
		}
	}
	return nil
}

// wireReader reads big-endian fields from a byte slice, remembering the
// first error so that decoders read straight through and check once.
type wireReader struct {
	b   []byte
	off int
	err error
}

func (r *wireReader) bytes(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.err = fmt.Errorf("truncated at byte %d: need %d more", r.off, n)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *wireReader) u8() uint8 {
	s := r.bytes(1)
	if s == nil {
		return 0
	}
	return s[0]
}

func (r *wireReader) u32() uint32 {
	s := r.bytes(4)
	if s == nil {
		return 0
	}
	return binary.BigEndian.Uint32(s)
}

func (r *wireReader) u64() uint64 {
	s := r.bytes(8)
	if s == nil {
		return 0
	}
	return binary.BigEndian.Uint64(s)
}
