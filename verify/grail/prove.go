package grail

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"fmt"
	"time"

	"github.com/trinity-net/trinity/compute/model"
)

// Prover generates text with a model and proves it. It reads the model's
// parameters; the model must not change while a Prover uses it (create a new
// Prover after the weights change: the state hash is taken once). A Prover is
// not safe for concurrent use.
type Prover struct {
	m      *model.GPT
	signer crypto.Signer
	hash   [32]byte
	full   bool
	// observe, if set, sees every generated position's logits and hidden
	// state (experiments use it to measure honest differences).
	observe func(j int, logits, hidden []float32)
	// timed makes Prove add the time of its proof-specific work (projection,
	// sketch, draw, signature) to work, so that the experiment can report
	// the overhead without comparing two noisy generation runs.
	timed bool
	work  time.Duration
}

// ProveOption configures a Prover.
type ProveOption func(*Prover) error

// WithFullRecompute makes the prover generate without a KV cache, running a
// full Forward over the prefix for every new token (quadratic cost; for
// cross-checking the cached path).
func WithFullRecompute() ProveOption {
	return func(p *Prover) error { p.full = true; return nil }
}

// NewProver returns a prover for m that signs with signer, which must hold
// an ed25519 key (the peer's identity key).
func NewProver(m *model.GPT, signer crypto.Signer, opts ...ProveOption) (*Prover, error) {
	if m == nil || signer == nil {
		return nil, fmt.Errorf("grail: new prover: nil model or signer")
	}
	if pub, ok := signer.Public().(ed25519.PublicKey); !ok || len(pub) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("grail: new prover: signer key is %T, want ed25519", signer.Public())
	}
	p := &Prover{m: m, signer: signer, hash: m.StateHash()}
	for _, o := range opts {
		if err := o(p); err != nil {
			return nil, fmt.Errorf("grail: new prover: %w", err)
		}
	}
	return p, nil
}

// Prove generates n tokens after prompt and returns the signed proof. The
// beacon is public randomness the prover could not know before this round
// (e.g. the current round's manifest hash); the projection vectors and the
// sampling draws derive from it, the peer key, the model and the prompt, so
// the output is a deterministic function of them. The sequence fed to the
// model, len(prompt)+n-1 tokens, must fit in its context.
func (pr *Prover) Prove(ctx context.Context, beacon [32]byte, prompt []int32, n int, s Sampling) (*Proof, error) {
	cfg := pr.m.Config
	p := &Proof{
		ModelHash: pr.hash, ConfigHash: cfg.Hash(), Beacon: beacon,
		Vocab: cfg.Vocab, Sampling: s,
		Prompt: append([]int32(nil), prompt...), Tokens: make([]int32, n), Sketches: make([]uint32, n),
	}
	copy(p.Peer[:], pr.signer.Public().(ed25519.PublicKey))
	if n < 1 || len(prompt) < 1 || len(prompt)+n-1 > cfg.Context {
		return nil, fmt.Errorf("grail: prove: prompt of %d tokens and %d new ones do not fit the context %d", len(prompt), n, cfg.Context)
	}
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("grail: prove: %w", err)
	}
	seed := p.Seed()
	st := newStream(seed, 0, 0)
	r := make([]int8, cfg.Width)
	sp := newSampler(cfg.Vocab)
	// emit turns position j's logits and hidden state into its sketch and
	// token.
	emit := func(j int, logits, hidden []float32) error {
		if pr.observe != nil {
			pr.observe(j, logits, hidden)
		}
		var t0 time.Time
		if pr.timed {
			t0 = time.Now()
		}
		projection(seed, j, r, st)
		sk, _, err := sketchOf(hidden, r)
		if err != nil {
			return fmt.Errorf("grail: prove at token %d: %w", j, err)
		}
		u := uniform(seed, j, st)
		if pr.timed {
			pr.work += time.Since(t0)
		}
		tok, err := sp.sample(logits, s, u)
		if err != nil {
			return fmt.Errorf("grail: prove at token %d: %w", j, err)
		}
		p.Sketches[j], p.Tokens[j] = sk, tok
		return nil
	}
	var err error
	if pr.full {
		err = pr.generateFull(ctx, p, emit)
	} else {
		err = pr.generateCached(ctx, p, emit)
	}
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	if err := p.Sign(pr.signer); err != nil {
		return nil, err
	}
	if pr.timed {
		pr.work += time.Since(t0)
	}
	return p, nil
}

func (pr *Prover) generateCached(ctx context.Context, p *Proof, emit func(int, []float32, []float32) error) error {
	P, n := len(p.Prompt), len(p.Tokens)
	sess, err := pr.m.NewSession(P + n - 1)
	if err != nil {
		return fmt.Errorf("grail: prove: %w", err)
	}
	var logits, hidden []float32
	for i, t := range p.Prompt {
		if logits, hidden, err = sess.Step(t); err != nil {
			return fmt.Errorf("grail: prove: prompt token %d: %w", i, err)
		}
	}
	for j := range n {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("grail: prove: %w", err)
		}
		if err := emit(j, logits, hidden); err != nil {
			return err
		}
		if j == n-1 {
			break
		}
		if logits, hidden, err = sess.Step(p.Tokens[j]); err != nil {
			return fmt.Errorf("grail: prove: token %d: %w", j, err)
		}
	}
	return nil
}

func (pr *Prover) generateFull(ctx context.Context, p *Proof, emit func(int, []float32, []float32) error) error {
	P, n := len(p.Prompt), len(p.Tokens)
	C, V := pr.m.Config.Width, pr.m.Config.Vocab
	seq := make([]int32, 0, P+n-1)
	seq = append(seq, p.Prompt...)
	for j := range n {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("grail: prove: %w", err)
		}
		T := len(seq)
		if _, err := pr.m.Forward(seq, nil, 1, T); err != nil {
			return fmt.Errorf("grail: prove: forward at token %d: %w", j, err)
		}
		if err := emit(j, pr.m.Logits()[(T-1)*V:T*V], pr.m.Hidden()[(T-1)*C:T*C]); err != nil {
			return err
		}
		seq = append(seq, p.Tokens[j])
	}
	return nil
}
