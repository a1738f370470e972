package grail

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"slices"

	"github.com/trinity-net/trinity/compute/model"
)

// Verification defaults.
const (
	// DefaultChallenges is k, the number of positions whose sketches are
	// checked (GRAIL's k). All positions are checked when fewer.
	DefaultChallenges = 32
	// DefaultLogitTolerance bounds how far (max norm) the prover's logits may
	// be from the verifier's for the token check.
	DefaultLogitTolerance = 1e-3
	// DefaultFloor is the probability a token must have when it is accepted
	// only thanks to the logit tolerance. An honest token below it is drawn
	// with probability at most Vocab*DefaultFloor per position, which bounds
	// the false rejections it can cause on a backend whose logits are not
	// bit-identical to the verifier's (on trinity's engine they are, and the
	// floor never comes into play for honest proofs).
	DefaultFloor = 1e-9
	// DefaultBatch is how many proofs of the same length VerifyBatch runs in
	// one Forward.
	DefaultBatch = 8
)

// Rejection reasons; Verify's errors wrap exactly one of them.
var (
	ErrMalformed = errors.New("grail: malformed proof")
	ErrSignature = errors.New("grail: bad signature")
	ErrModel     = errors.New("grail: proof is for another model")
	ErrBinding   = errors.New("grail: proof is bound to other randomness, peer, prompt or sampling")
	ErrSketch    = errors.New("grail: hidden-state sketch mismatch")
	ErrToken     = errors.New("grail: implausible token")
)

// Expect is what the verifier requires a proof to be bound to.
type Expect struct {
	// Beacon is the randomness the prover had to use.
	Beacon [32]byte
	// Challenge is randomness revealed only after the proof was committed
	// (e.g. a later beacon); the challenged positions derive from it and the
	// proof's commitment. Nil derives them from Beacon instead
	// (non-interactive, see the package documentation on grinding).
	Challenge []byte
	// Peer, if not nil, is the public key the proof must be signed with.
	Peer []byte
	// Prompt, if not nil, is the prompt the proof must answer.
	Prompt []int32
	// Sampling, if not nil, are the sampling parameters the proof must use.
	Sampling *Sampling
}

// Report details a verification.
type Report struct {
	Tokens          int     // generated tokens (all token-checked)
	Challenged      []int   // positions whose sketches were checked
	SketchFailures  int     // challenged positions out of tolerance
	MaxSketchRatio  float64 // max over challenged positions of distance/tolerance
	MaxSketchDist   uint32  // max sketch distance over challenged positions
	MaxTolerance    uint32  // max tolerance over challenged positions
	TokenFailures   int     // generated tokens failing the token check
	FirstTokenError error   // the first token failure, if any
	FirstTokenAt    int     // its position (-1 if none)
}

// Verifier checks proofs against one model. It takes the model's state hash
// once: create a new Verifier after the weights change. It runs Forward on
// the model, so it is not safe for concurrent use, nor concurrently with
// other users of the model.
type Verifier struct {
	m      *model.GPT
	hash   [32]byte
	k      int
	delta  float64
	floor  float64
	batch  int
	tokens []int32
}

// VerifyOption configures a Verifier.
type VerifyOption func(*Verifier) error

// WithChallenges sets k, the number of challenged positions (0: all).
func WithChallenges(k int) VerifyOption {
	return func(v *Verifier) error {
		if k < 0 {
			return fmt.Errorf("challenges %d must be >= 0", k)
		}
		v.k = k
		return nil
	}
}

// WithLogitTolerance sets the token check's logit tolerance.
func WithLogitTolerance(delta float64) VerifyOption {
	return func(v *Verifier) error {
		if !(delta >= 0 && delta <= 1) {
			return fmt.Errorf("logit tolerance %v out of range [0, 1]", delta)
		}
		v.delta = delta
		return nil
	}
}

// WithFloor sets the probability floor of the token check.
func WithFloor(p float64) VerifyOption {
	return func(v *Verifier) error {
		if !(p >= 0 && p < 1) {
			return fmt.Errorf("floor %v out of range [0, 1)", p)
		}
		v.floor = p
		return nil
	}
}

// WithBatch sets how many same-length proofs VerifyBatch runs per Forward.
func WithBatch(b int) VerifyOption {
	return func(v *Verifier) error {
		if b < 1 {
			return fmt.Errorf("batch %d must be >= 1", b)
		}
		v.batch = b
		return nil
	}
}

// NewVerifier returns a verifier for m.
func NewVerifier(m *model.GPT, opts ...VerifyOption) (*Verifier, error) {
	if m == nil {
		return nil, errors.New("grail: new verifier: nil model")
	}
	v := &Verifier{m: m, hash: m.StateHash(), k: DefaultChallenges, delta: DefaultLogitTolerance, floor: DefaultFloor, batch: DefaultBatch}
	for _, o := range opts {
		if err := o(v); err != nil {
			return nil, fmt.Errorf("grail: new verifier: %w", err)
		}
	}
	return v, nil
}

// Verify checks p against the verifier's model and exp, and returns nil when
// it accepts. A rejection wraps one of the Err* reasons.
func (v *Verifier) Verify(ctx context.Context, p *Proof, exp Expect) error {
	_, err := v.Check(ctx, p, exp)
	return err
}

// Check is Verify with the details of the sketch and token checks (the
// report is empty when the proof fails before the forward pass).
func (v *Verifier) Check(ctx context.Context, p *Proof, exp Expect) (Report, error) {
	r, errs := v.CheckBatch(ctx, []*Proof{p}, []Expect{exp})
	return r[0], errs[0]
}

// VerifyBatch verifies proofs[i] against exps[i], running proofs of the same
// length together in one teacher-forced Forward. It returns one result per
// proof (nil: accepted).
func (v *Verifier) VerifyBatch(ctx context.Context, proofs []*Proof, exps []Expect) []error {
	_, errs := v.CheckBatch(ctx, proofs, exps)
	return errs
}

// CheckBatch is VerifyBatch with reports.
func (v *Verifier) CheckBatch(ctx context.Context, proofs []*Proof, exps []Expect) ([]Report, []error) {
	reports := make([]Report, len(proofs))
	errs := make([]error, len(proofs))
	if len(exps) != len(proofs) {
		for i := range errs {
			errs[i] = fmt.Errorf("grail: %d expectations for %d proofs", len(exps), len(proofs))
		}
		return reports, errs
	}
	// Cheap checks first; group the survivors by sequence length.
	byLen := map[int][]int{}
	var lens []int
	for i, p := range proofs {
		if errs[i] = v.bind(p, exps[i]); errs[i] != nil {
			continue
		}
		T := len(p.Prompt) + len(p.Tokens) - 1
		if byLen[T] == nil {
			lens = append(lens, T)
		}
		byLen[T] = append(byLen[T], i)
	}
	slices.Sort(lens)
	for _, T := range lens {
		idx := byLen[T]
		for len(idx) > 0 {
			b := min(len(idx), v.batch)
			v.runBatch(ctx, proofs, exps, idx[:b], T, reports, errs)
			idx = idx[b:]
		}
	}
	return reports, errs
}

// bind checks everything that needs no forward pass: shape, signature, model
// and the expected bindings.
func (v *Verifier) bind(p *Proof, exp Expect) error {
	if p == nil {
		return fmt.Errorf("%w: nil", ErrMalformed)
	}
	if err := p.check(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := p.CheckSignature(); err != nil {
		return err
	}
	cfg := v.m.Config
	if p.ModelHash != v.hash || p.ConfigHash != cfg.Hash() || p.Vocab != cfg.Vocab {
		return fmt.Errorf("%w: state hash %x, want %x", ErrModel, p.ModelHash[:6], v.hash[:6])
	}
	if T := len(p.Prompt) + len(p.Tokens) - 1; T > cfg.Context {
		return fmt.Errorf("%w: sequence of %d tokens exceeds the context %d", ErrMalformed, T, cfg.Context)
	}
	if p.Beacon != exp.Beacon {
		return fmt.Errorf("%w: beacon %x, want %x", ErrBinding, p.Beacon[:6], exp.Beacon[:6])
	}
	if exp.Peer != nil && subtle.ConstantTimeCompare(exp.Peer, p.Peer[:]) != 1 {
		return fmt.Errorf("%w: signed by peer %x, want %x", ErrBinding, p.Peer[:6], exp.Peer[:min(6, len(exp.Peer))])
	}
	if exp.Prompt != nil && !slices.Equal(exp.Prompt, p.Prompt) {
		return fmt.Errorf("%w: prompt differs from the expected one", ErrBinding)
	}
	if exp.Sampling != nil && *exp.Sampling != p.Sampling {
		return fmt.Errorf("%w: sampling %v, want %v", ErrBinding, p.Sampling, *exp.Sampling)
	}
	return nil
}

// runBatch runs one Forward over the proofs idx (all of sequence length T)
// and checks each.
func (v *Verifier) runBatch(ctx context.Context, proofs []*Proof, exps []Expect, idx []int, T int, reports []Report, errs []error) {
	if err := ctx.Err(); err != nil {
		for _, i := range idx {
			errs[i] = fmt.Errorf("grail: verify: %w", err)
		}
		return
	}
	B := len(idx)
	v.tokens = slices.Grow(v.tokens[:0], B*T)[:0]
	for _, i := range idx {
		p := proofs[i]
		v.tokens = append(v.tokens, p.Prompt...)
		v.tokens = append(v.tokens, p.Tokens[:len(p.Tokens)-1]...)
	}
	if _, err := v.m.Forward(v.tokens, nil, B, T); err != nil {
		for _, i := range idx {
			errs[i] = fmt.Errorf("grail: verify: forward: %w", err)
		}
		return
	}
	C, V := v.m.Config.Width, v.m.Config.Vocab
	logits, hidden := v.m.Logits(), v.m.Hidden()
	for b, i := range idx {
		reports[i], errs[i] = v.checkSequence(proofs[i], exps[i], logits[b*T*V:(b+1)*T*V], hidden[b*T*C:(b+1)*T*C])
	}
}

// checkSequence checks one proof against the verifier's logits [T*V] and
// hidden states [T*C] of its sequence.
func (v *Verifier) checkSequence(p *Proof, exp Expect, logits, hidden []float32) (Report, error) {
	C, V := v.m.Config.Width, v.m.Config.Vocab
	P, n := len(p.Prompt), len(p.Tokens)
	seed := p.Seed()
	randomness := exp.Challenge
	if randomness == nil {
		randomness = exp.Beacon[:]
	}
	rep := Report{Tokens: n, FirstTokenAt: -1}
	rep.Challenged = challengePositions(challengeKey(randomness, p.Commitment()), n, v.k)
	st := newStream(seed, 0, 0)
	r := make([]int8, C)
	for _, j := range rep.Challenged {
		row := P - 1 + j
		projection(seed, j, r, st)
		sk, mass, err := sketchOf(hidden[row*C:(row+1)*C], r)
		if err != nil {
			return rep, fmt.Errorf("grail: verify at token %d: %w", j, err)
		}
		d, tol := sketchDistance(sk, p.Sketches[j]), tolerance(mass)
		rep.MaxSketchDist = max(rep.MaxSketchDist, d)
		rep.MaxTolerance = max(rep.MaxTolerance, tol)
		rep.MaxSketchRatio = max(rep.MaxSketchRatio, float64(d)/float64(tol))
		if d > tol {
			rep.SketchFailures++
		}
	}
	sp := newSampler(V)
	for j := range n {
		row := P - 1 + j
		err := sp.checkToken(logits[row*V:(row+1)*V], p.Sampling, uniform(seed, j, st), p.Tokens[j], v.delta, v.floor)
		if err != nil {
			rep.TokenFailures++
			if rep.FirstTokenError == nil {
				rep.FirstTokenError, rep.FirstTokenAt = err, j
			}
		}
	}
	switch {
	case rep.SketchFailures > 0:
		return rep, fmt.Errorf("%w at %d of %d challenged positions", ErrSketch, rep.SketchFailures, len(rep.Challenged))
	case rep.TokenFailures > 0:
		return rep, fmt.Errorf("%w: %d of %d tokens, first at %d: %v", ErrToken, rep.TokenFailures, n, rep.FirstTokenAt, rep.FirstTokenError)
	}
	return rep, nil
}
