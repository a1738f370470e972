package replay

import (
	"bytes"
	"context"
	"errors"
	"fmt"

	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
)

// Reason says why a challenge failed. Every reason is the trainer's fault and
// carries the same penalty (see the package documentation); the reasons
// exist for logs and tests.
type Reason uint8

// Failure reasons.
const (
	Unanswered     Reason = iota + 1 // no valid response before the deadline
	Malformed                        // response does not decode: bad format, wrong shape, oversized, non-finite
	WrongChallenge                   // response answers another round, step or commitment
	BadProof                         // a sent state does not open the committed root at its step
	WrongStart                       // leaf 0's parameters are not the round's global state
	Inconsistent                     // AdamW step counts or the error-feedback buffer disagree across the round
	StepMismatch                     // replaying step j does not give the committed state j+1
	BlobMismatch                     // the published blob is not the compression of the committed end state
	WrongCarry                       // the committed carry is not the end state's moments and post-compression error feedback
)

var reasonNames = [...]string{"", "unanswered", "malformed", "wrong-challenge", "bad-proof", "wrong-start", "inconsistent", "step-mismatch", "blob-mismatch", "wrong-carry"}

func (r Reason) String() string {
	if int(r) < len(reasonNames) && r > 0 {
		return reasonNames[r]
	}
	return fmt.Sprintf("reason(%d)", uint8(r))
}

// ErrFailed is wrapped by every *Failure: errors.Is(err, ErrFailed) tells a
// trainer's failed challenge from a validator-side error (a cancelled
// context, a wrong global state length), which must not be penalised.
var ErrFailed = errors.New("replay: challenge failed")

// Failure is a failed challenge: the trainer is penalised.
type Failure struct {
	Reason  Reason
	Trainer string
	Round   uint64
	Step    int
	Err     error // detail
}

func (f *Failure) Error() string {
	return fmt.Sprintf("replay: trainer %s round %d step %d failed its challenge (%s): %v", f.Trainer, f.Round, f.Step, f.Reason, f.Err)
}

// Unwrap gives ErrFailed and the detail.
func (f *Failure) Unwrap() []error { return []error{ErrFailed, f.Err} }

// NoResponse is the Failure of a challenge that went unanswered (no response,
// or none before the deadline the node sets).
func NoResponse(ch Challenge, err error) *Failure {
	if err == nil {
		err = errors.New("no response")
	}
	return &Failure{Reason: Unanswered, Trainer: ch.Trainer, Round: ch.Round, Step: ch.Step, Err: err}
}

// Checker is a validator's replay engine: a model, an AdamW and a SparseLoCo
// compressor of the network's shapes, and buffers for one response, all
// allocated once. Its memory is bounded by the model's size plus
// MaxResponseSize for the response bytes the caller holds. A Checker is not
// safe for concurrent use; make one per concurrent check.
type Checker struct {
	spec Spec
	st   *stepper
	slc  *optimizer.SparseLoCo
	comp *optimizer.Compressed
	d    []float32
	enc  []byte
	resp response
	zero [32]byte // VectorDigest of n zeros: the reset state's vectors
}

// NewChecker allocates a checker for spec on engine e.
func NewChecker(e *tensor.Engine, spec Spec) (*Checker, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	st, err := newStepper(e, spec)
	if err != nil {
		return nil, err
	}
	slc, err := optimizer.NewSparseLoCo(spec.Chunking, optimizer.WithErrorDecay(spec.ErrorDecay))
	if err != nil {
		return nil, fmt.Errorf("replay: sparseloco: %w", err)
	}
	n := spec.Model.NumParams()
	return &Checker{spec: spec, st: st, slc: slc, comp: spec.Chunking.NewCompressed(), d: make([]float32, n),
		zero: VectorDigest(make([]float32, n))}, nil
}

// Check verifies a trainer's response to ch. global is the round's global
// parameters (theta_r, which the validator holds) and blob the contribution
// the trainer published for the round (fetched by its CID from the signed
// announcement). It returns nil when the trainer passes, a *Failure (wrapping
// ErrFailed) when it must be penalised, and any other error for a problem on
// the validator's side.
//
// In order, cheapest first: the response decodes strictly for this model and
// answers ch; state j, state 0's digests and state H's parameters open the
// committed root at their steps; state 0's parameters are global; AdamW step
// counts advance by one per step and the error-feedback digest is the same in
// every opened state; state 0 continues ch.Prev's carry (when given);
// replaying step j (optimizer.InnerStep on the batch
// StepBatch gives) from state j yields committed state j+1; and compressing
// global - params_H with the committed error-feedback buffer, encoded, is
// byte for byte the published blob, and the commitment's carry is the end
// state's moments and step with the error feedback that compression leaves.
func (c *Checker) Check(ctx context.Context, ch Challenge, resp []byte, global []float32, blob []byte) error {
	n := c.spec.Model.NumParams()
	if len(global) != n {
		return fmt.Errorf("replay: check: global state of %d values, want %d", len(global), n)
	}
	if ch.Commitment.Steps != c.spec.Steps || ch.Step < 0 || ch.Step >= ch.Commitment.Steps {
		return fmt.Errorf("replay: check: challenge of step %d of %d, network has %d steps", ch.Step, ch.Commitment.Steps, c.spec.Steps)
	}
	fail := func(r Reason, format string, args ...any) error {
		return &Failure{Reason: r, Trainer: ch.Trainer, Round: ch.Round, Step: ch.Step, Err: fmt.Errorf(format, args...)}
	}
	r := &c.resp
	if err := decodeResponse(resp, n, r); err != nil {
		return fail(Malformed, "%w", err)
	}
	if r.round != ch.Round || r.steps != ch.Commitment.Steps || r.step != ch.Step || r.root != ch.Commitment.Root {
		return fail(WrongChallenge, "response for round %d step %d of %d root %x", r.round, r.step, r.steps, r.root[:6])
	}
	cm, j, H := ch.Commitment, ch.Step, ch.Commitment.Steps

	// Openings.
	if err := VerifyProof(cm, j, r.dJ.Hash(), r.proofJ); err != nil {
		return fail(BadProof, "state %d: %w", j, err)
	}
	if r.hasStart {
		if err := VerifyProof(cm, 0, r.d0.Hash(), r.proof0); err != nil {
			return fail(BadProof, "state 0: %w", err)
		}
	}
	if r.hasEnd {
		if err := VerifyProof(cm, H, r.dH.Hash(), r.proofH); err != nil {
			return fail(BadProof, "state %d: %w", H, err)
		}
	}
	// The start is the round's global state, and what the trainer carried
	// out of its previous round (or the reset state).
	if r.d0.Params != VectorDigest(global) {
		return fail(WrongStart, "state 0's parameters are not the round's global state")
	}
	if ch.Prev != nil && r.d0.Carry() != ch.Prev.Carry && !(r.d0.M == c.zero && r.d0.V == c.zero && r.d0.EF == c.zero && r.d0.AdamStep == 0) {
		return fail(WrongStart, "state 0's moments and error feedback are neither the previous round's carry nor the reset state")
	}
	// Consistency across the round.
	if r.dJ.AdamStep != r.d0.AdamStep+uint64(j) {
		return fail(Inconsistent, "adam step %d at step %d, start was %d", r.dJ.AdamStep, j, r.d0.AdamStep)
	}
	if r.dJ.EF != r.d0.EF || (r.hasEnd && r.dH.EF != r.d0.EF) {
		return fail(Inconsistent, "error-feedback buffer changed during the round")
	}
	if r.hasEnd && r.dH.AdamStep != r.d0.AdamStep+uint64(H) {
		return fail(Inconsistent, "adam step %d at the end, start was %d", r.dH.AdamStep, r.d0.AdamStep)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("replay: check: %w", err)
	}

	// Replay step j.
	b, err := c.spec.Data.RoundBatcher(ch.Trainer, ch.Round)
	if err != nil {
		return fmt.Errorf("replay: check: %w", err)
	}
	c.st.load(r.stateJ.Params, r.stateJ.M, r.stateJ.V, r.stateJ.AdamStep)
	if err := c.st.step(b, j); err != nil {
		// From a finite committed state an honest step cannot fail: the
		// trainer's own run would have failed the same way.
		return fail(StepMismatch, "replaying from the committed state: %w", err)
	}
	next := c.st.digests(r.dJ.EF)
	if err := VerifyProof(cm, j+1, next.Hash(), r.proofNext); err != nil {
		return fail(StepMismatch, "replayed state %d is not the committed one: %w", j+1, err)
	}

	// The end: the blob is the compression of the committed end state.
	paramsH := r.endParams
	if !r.hasEnd {
		paramsH = c.st.m.Params
	}
	for i := range c.d {
		c.d[i] = global[i] - paramsH[i]
	}
	copy(c.slc.ErrorBuffer(), r.stateJ.EF)
	if err := c.slc.Compress(ch.Round, c.d, c.comp); err != nil {
		return fail(BlobMismatch, "compressing the committed end state: %w", err)
	}
	if c.enc, err = c.spec.Chunking.Encode(c.enc[:0], c.comp); err != nil {
		return fail(BlobMismatch, "encoding the committed end state: %w", err)
	}
	if !bytes.Equal(c.enc, blob) {
		return fail(BlobMismatch, "published blob (%d bytes) is not the compression of the committed end state (%d bytes)", len(blob), len(c.enc))
	}
	end := r.dH
	if !r.hasEnd {
		end = next
	}
	end.EF = VectorDigest(c.slc.ErrorBuffer())
	if end.Carry() != cm.Carry {
		return fail(WrongCarry, "committed carry is not the end state's")
	}
	return nil
}
