package attest

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"log/slog"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/trinity-net/trinity/compute/tensor"
)

var testNetwork = sha256.Sum256([]byte("trinity/test-network"))

// key derives a deterministic Ed25519 key from a label.
func key(label string) ed25519.PrivateKey {
	s := sha256.Sum256([]byte("attest-test-key/" + label))
	return ed25519.NewKeyFromSeed(s[:])
}

func pub(label string) ed25519.PublicKey { return key(label).Public().(ed25519.PublicKey) }

func newEngine(t testing.TB) *tensor.Engine {
	t.Helper()
	e, err := tensor.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

// seededRand is a repeatable randomness source for verifiers in tests.
type seededRand struct{ r *rand.ChaCha8 }

func newSeededRand(seed uint64) *seededRand {
	var s [32]byte
	for i := range 8 {
		s[i] = byte(seed >> (8 * i))
	}
	return &seededRand{rand.NewChaCha8(s)}
}

func (s *seededRand) Read(p []byte) (int, error) { return s.r.Read(p) }

func newProver(t testing.TB, e *tensor.Engine, label string, opts ...ProverOption) *Prover {
	t.Helper()
	p, err := NewProver(key(label), e, testNetwork, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func newVerifier(t testing.TB, label string, opts ...VerifierOption) *Verifier {
	t.Helper()
	opts = append([]VerifierOption{WithVerifierLogger(slog.New(slog.DiscardHandler))}, opts...)
	v, err := NewVerifier(key(label), testNetwork, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// fakeClock is a settable clock shared by a verifier and a transport.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// slowTransport relays to a real prover and advances a fake clock by
// delay while the prover computes: a prover of a known speed.
type slowTransport struct {
	p     *Prover
	clock *fakeClock
	delay time.Duration
}

func (s *slowTransport) Commit(ctx context.Context, ch *Challenge) (*Commitment, error) {
	cm, err := s.p.Commit(ctx, ch)
	s.clock.advance(s.delay)
	return cm, err
}

func (s *slowTransport) Open(ctx context.Context, req *OpenRequest) (*Opening, error) {
	return s.p.Open(ctx, req)
}

// silentTransport never answers a challenge before its context ends.
type silentTransport struct{ p *Prover }

func (s silentTransport) Commit(ctx context.Context, ch *Challenge) (*Commitment, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

func (s silentTransport) Open(ctx context.Context, req *OpenRequest) (*Opening, error) {
	return s.p.Open(ctx, req)
}

// noOpenTransport commits honestly and then refuses to open.
type noOpenTransport struct{ p *Prover }

func (s noOpenTransport) Commit(ctx context.Context, ch *Challenge) (*Commitment, error) {
	return s.p.Commit(ctx, ch)
}

func (s noOpenTransport) Open(ctx context.Context, req *OpenRequest) (*Opening, error) {
	return nil, ErrUnknownChallenge
}

// wireTransport passes every message through its binary encoding, as the
// network will.
type wireTransport struct {
	t     testing.TB
	p     *Prover
	bytes int // bytes moved, both directions
}

func (w *wireTransport) Commit(ctx context.Context, ch *Challenge) (*Commitment, error) {
	b, err := ch.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var got Challenge
	if err := got.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	cm, err := w.p.Commit(ctx, &got)
	if err != nil {
		return nil, err
	}
	cb, err := cm.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var out Commitment
	if err := out.UnmarshalBinary(cb); err != nil {
		return nil, err
	}
	w.bytes += len(b) + len(cb)
	return &out, nil
}

func (w *wireTransport) Open(ctx context.Context, req *OpenRequest) (*Opening, error) {
	b, err := req.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var got OpenRequest
	if err := got.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	op, err := w.p.Open(ctx, &got)
	if err != nil {
		return nil, err
	}
	ob, err := op.MarshalBinary()
	if err != nil {
		return nil, err
	}
	var out Opening
	if err := out.UnmarshalBinary(ob); err != nil {
		return nil, err
	}
	w.bytes += len(b) + len(ob)
	return &out, nil
}
