package p2p

import (
	"bytes"
	"errors"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
)

func signedTestEnvelope(tb testing.TB) (*Envelope, crypto.PrivKey) {
	tb.Helper()
	k, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		tb.Fatal(err)
	}
	e := &Envelope{Version: EnvelopeVersion, Network: testNetID(), Topic: TopicGradient, Round: 42,
		Timestamp: 1_700_000_000_000_000_000, Payload: []byte("announcement")}
	if err := e.Sign(k); err != nil {
		tb.Fatal(err)
	}
	return e, k
}

func TestEnvelopeRoundTrip(t *testing.T) {
	e, _ := signedTestEnvelope(t)
	b, err := e.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	d, err := UnmarshalEnvelope(b)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Verify(); err != nil {
		t.Fatal(err)
	}
	b2, _ := d.MarshalBinary()
	if !bytes.Equal(b, b2) {
		t.Fatal("re-encoding differs")
	}
	if d.Round != 42 || d.Topic != TopicGradient || d.Sender != e.Sender || string(d.Payload) != "announcement" {
		t.Fatalf("decoded %+v", d)
	}
}

func TestEnvelopeTamperingBreaksSignature(t *testing.T) {
	other, _, _ := crypto.GenerateEd25519Key(nil)
	otherEnv := &Envelope{Version: 1, Network: testNetID(), Topic: TopicScore, Payload: []byte("x")}
	if err := otherEnv.Sign(other); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		mutate func(*Envelope)
	}{
		{"round", func(e *Envelope) { e.Round++ }},
		{"network", func(e *Envelope) { e.Network[31] ^= 1 }},
		{"topic", func(e *Envelope) { e.Topic = TopicScore }},
		{"timestamp", func(e *Envelope) { e.Timestamp++ }},
		{"payload", func(e *Envelope) { e.Payload = []byte("announcemenT") }},
		{"sender", func(e *Envelope) { e.Sender = otherEnv.Sender }},
		{"signature", func(e *Envelope) { e.Signature[0] ^= 1 }},
		{"other key's signature", func(e *Envelope) { e.Signature = otherEnv.Signature }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e, _ := signedTestEnvelope(t)
			tc.mutate(e)
			if err := e.Verify(); !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("Verify after tampering with %s: %v", tc.name, err)
			}
		})
	}
}

func TestUnmarshalEnvelopeRejects(t *testing.T) {
	e, _ := signedTestEnvelope(t)
	good, _ := e.MarshalBinary()
	with := func(f func(b []byte) []byte) []byte { return f(append([]byte(nil), good...)) }
	topicOff := 1 + 32
	cases := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"version 0", with(func(b []byte) []byte { b[0] = 0; return b })},
		{"version 2", with(func(b []byte) []byte { b[0] = 2; return b })},
		{"truncated by one", good[:len(good)-1]},
		{"truncated header", good[:10]},
		{"trailing byte", append(append([]byte(nil), good...), 0)},
		{"empty topic", with(func(b []byte) []byte { b[topicOff] = 0; return b })},
		{"bad topic char", with(func(b []byte) []byte { b[topicOff+1] = 'G'; return b })},
		{"oversize", make([]byte, MaxEnvelopeSize+1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := UnmarshalEnvelope(tc.b); !errors.Is(err, ErrBadEnvelope) {
				t.Fatalf("got %v, want ErrBadEnvelope", err)
			}
		})
	}
}

func FuzzUnmarshalEnvelope(f *testing.F) {
	e, _ := signedTestEnvelope(f)
	good, _ := e.MarshalBinary()
	f.Add(good)
	f.Add(good[:40])
	f.Add([]byte{1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := UnmarshalEnvelope(b)
		if err != nil {
			return
		}
		// Whatever decodes must re-encode to the same bytes: one message,
		// one encoding, so signatures and IDs are well defined.
		b2, err := d.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded envelope does not re-encode: %v", err)
		}
		if !bytes.Equal(b, b2) {
			t.Fatal("re-encoding differs from input")
		}
		_ = d.Verify()
	})
}
