// Package verify scores the contributions trainers send in a round: the
// loss-improvement gauntlet that validators run on every sampled blob, the
// round-wide screens and standing that stop dishonest trainers, and the
// consensus that stops a dishonest validator (docs/verification.md).
//
// A contribution is one SparseLoCo blob (see package optimizer): the
// compressed pseudo-gradient c of a trainer for round r, computed from the
// global state theta_r. The gauntlet has two stages.
//
// Checks (Check): the blob decodes strictly against the network's chunking,
// its round is r, its base state hash is the validator's own (the caller
// passes both from the signed announcement), every decompressed value is
// finite, and its L2 norm is at most Params.MaxNorm when that is set.
//
// Loss test (Gauntlet): with theta' = theta_r - s*eta*decompress(c), where
// eta is the network's outer learning rate and s is Params.StepScale,
//
//	dOwn  = L(theta_r; own)  - L(theta'; own)
//	dRand = L(theta_r; rand) - L(theta'; rand)
//
// where own holds sequences from batches the trainer was assigned (and so
// must have trained on) and rand sequences it could not predict (the caller
// decides how many batches each holds; node uses genesis gauntlet_batches of
// each). Then
//
//	Score = (dOwn + dRand) / 2          (the mean loss improvement, nats)
//	OK    = dOwn > 0 and dOwn >= dRand - Params.GapTolerance*|dOwn|
//
// The first condition rejects lazy or harmful contributions (a zero or random
// blob does not lower the loss on data the trainer was told to learn); the
// second asks that the trainer's own data benefit at least about as much as
// unseen data, which an honest trainer's does (it overfits its own batches
// slightly) and a contribution copied from another trainer's work, or trained
// on other data, does only by chance, so smoothing over rounds separates them.
// A contribution that fails gets Score 0.
//
// Why a fraction of the outer step: aggregation applies the mean of the
// round's contributions, so one contribution moves the model by eta/N of
// itself, not eta. Stepping by the whole of one contribution overshoots once
// the model is past its first rounds: in a simulation of the default
// testnet (verify/sim_test.go, 3 seeds, 440 honest contributions over 30-40
// rounds) the whole step with one batch each rejected 18% of honest work,
// half a step with one batch 5.7%, and half a step with two batches each
// 0.7%, while zero, tiny-noise, sign-flipped and random-noise contributions
// were rejected in 439 of 440 cases with either scale. The test then
// measures mostly the first-order effect (alignment with the gradient of
// each batch), which is what separates honest from dishonest work; a random
// direction still loses through curvature at half a step.
//
// The random batch's loss before the step is the same for every
// contribution of the round: NewReference measures it once.
//
// Round screens (ScreenRound), once the round's contributions are scored:
// copies (Cosine of the decoded sparse updates >= Screen.CopyCosine: the
// later-announced of the two fails), norm outliers (above
// Screen.NormOutlier times the round's median norm) and the bar (a passing
// score under Screen.MinScoreFrac of the round's median passing score).
//
// Standing (Standing.Record): per trainer, an exponential moving average of
// its round scores (Smooth; 0 for a round it missed, was late in or failed,
// so missing work decays its standing by alpha per round), and strikes: a
// failure bans the trainer for Policy.BanRounds rounds, doubling with each
// further strike up to Policy.MaxBan; Policy.Forgive consecutive passes
// remove a strike.
//
// Consensus (Consensus): with several validators, a contribution's score is
// the stake-weighted median of their votes, so validators with less than
// half of the voting stake cannot move it.
//
// Everything here is a pure function of its inputs: the model's kernels are
// deterministic, so every validator computes the same numbers.
package verify

import (
	"errors"
	"fmt"
	"math"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/optimizer"
)

// Params are the gauntlet's tunables.
type Params struct {
	OuterLR      float32 // eta, the network's outer learning rate (> 0)
	StepScale    float64 // s: the loss test steps by s*eta (0 < s <= 1)
	MaxNorm      float64 // largest accepted L2 norm of the contribution; 0: no bound
	GapTolerance float64 // see the package doc; 0 demands dOwn >= dRand
}

// Validate names the first bad field.
func (p Params) Validate() error {
	if !(p.OuterLR > 0) || math.IsInf(float64(p.OuterLR), 0) {
		return fmt.Errorf("verify: params outer_lr = %v must be positive and finite", p.OuterLR)
	}
	if !(p.StepScale > 0 && p.StepScale <= 1) {
		return fmt.Errorf("verify: params step_scale = %v out of range (0, 1]", p.StepScale)
	}
	if !(p.MaxNorm >= 0) || math.IsInf(p.MaxNorm, 0) {
		return fmt.Errorf("verify: params max_norm = %v must be finite and >= 0", p.MaxNorm)
	}
	if !(p.GapTolerance >= 0) || math.IsInf(p.GapTolerance, 0) {
		return fmt.Errorf("verify: params gap_tolerance = %v must be finite and >= 0", p.GapTolerance)
	}
	return nil
}

// Batch is B sequences of T tokens with their next-token targets.
type Batch struct {
	Inputs, Targets []int32
	B, T            int
}

// ErrRejected is wrapped by every failed check of Check.
var ErrRejected = errors.New("verify: contribution rejected")

// ErrStaleBase is wrapped (with ErrRejected) when the contribution was
// computed from another state than the round's: late work, not malice as
// such (an honest trainer that had not applied the last manifest yet sends
// one), so the caller counts it as a miss rather than a failure.
var ErrStaleBase = errors.New("verify: contribution computed from another state")

// Check decodes blob into c (from ch.NewCompressed) and runs the format
// checks: strict decoding, the round, the base state hash (claimed, from the
// trainer's announcement, against want, the validator's own), finiteness and
// the norm bound. It writes the decompressed contribution into dense (length
// ch.NumParams) and returns its L2 norm.
func Check(ch *optimizer.Chunking, blob []byte, round uint64, claimed, want [32]byte, p Params, c *optimizer.Compressed, dense []float32) (float64, error) {
	if len(dense) != ch.NumParams {
		return 0, fmt.Errorf("verify: dense buffer has %d entries, want %d", len(dense), ch.NumParams)
	}
	if claimed != want {
		return 0, fmt.Errorf("%w: %w: base state %x, want %x", ErrRejected, ErrStaleBase, claimed[:8], want[:8])
	}
	if err := ch.Decode(blob, c); err != nil {
		return 0, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	if c.Round != round {
		return 0, fmt.Errorf("%w: blob for round %d, want %d", ErrRejected, c.Round, round)
	}
	ch.Decompress(c, dense)
	var ss float64
	for _, v := range dense {
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return 0, fmt.Errorf("%w: non-finite value", ErrRejected)
		}
		ss += f * f
	}
	norm := math.Sqrt(ss)
	if math.IsInf(norm, 0) {
		return 0, fmt.Errorf("%w: norm overflows", ErrRejected)
	}
	if p.MaxNorm > 0 && norm > p.MaxNorm {
		return 0, fmt.Errorf("%w: norm %.4g exceeds %.4g", ErrRejected, norm, p.MaxNorm)
	}
	return norm, nil
}

// Result is the outcome of the loss test.
type Result struct {
	OwnBefore, OwnAfter   float32 // loss on the trainer's own batch
	RandBefore, RandAfter float32 // loss on the random batch
	Norm                  float64 // L2 norm of the decompressed contribution
	Score                 float64 // (dOwn + dRand)/2 when OK, else 0
	OK                    bool
	Reason                string // why not OK ("" when OK)
}

// DOwn is the improvement on the trainer's own batch.
func (r Result) DOwn() float64 { return float64(r.OwnBefore) - float64(r.OwnAfter) }

// DRand is the improvement on the random batch.
func (r Result) DRand() float64 { return float64(r.RandBefore) - float64(r.RandAfter) }

// Reference is the round's random batch with its loss at the round's base
// state, shared by the loss tests of all the round's contributions.
type Reference struct {
	Batch Batch
	Loss  float32
	Base  []float32 // the state Loss was measured at (not copied: do not modify)
}

// NewReference loads base into m and measures b's loss there.
func NewReference(m *model.GPT, base []float32, b Batch) (Reference, error) {
	if len(base) != len(m.Params) {
		return Reference{}, fmt.Errorf("verify: state of %d values for a model of %d", len(base), len(m.Params))
	}
	copy(m.Params, base)
	l, err := loss(m, b)
	if err != nil {
		return Reference{}, err
	}
	return Reference{Batch: b, Loss: l, Base: base}, nil
}

// Gauntlet runs the loss test of a checked contribution (dense, as Check
// wrote it, with its norm) against the global state ref.Base: it loads the
// state into m, measures the own batch, steps m by -StepScale*OuterLR*dense
// and measures both batches again. m's parameters are left at the stepped
// state; the state is not modified.
func Gauntlet(m *model.GPT, dense []float32, norm float64, own Batch, ref Reference, p Params) (Result, error) {
	if err := p.Validate(); err != nil {
		return Result{}, err
	}
	base := ref.Base
	if len(base) != len(m.Params) || len(dense) != len(m.Params) {
		return Result{}, fmt.Errorf("verify: state of %d and contribution of %d values for a model of %d", len(base), len(dense), len(m.Params))
	}
	copy(m.Params, base)
	r := Result{Norm: norm, RandBefore: ref.Loss}
	var err error
	if r.OwnBefore, err = loss(m, own); err != nil {
		return Result{}, err
	}
	if err := optimizer.OuterStep(m.Params, dense, float32(float64(p.OuterLR)*p.StepScale)); err != nil {
		return Result{}, err
	}
	// A finite contribution can still drive the loss to NaN or overflow:
	// that is the contribution's fault, not an error of the validator.
	if r.OwnAfter, err = loss(m, own); err != nil {
		r.Reason = "loss after the contribution is not finite"
		return r, nil
	}
	if r.RandAfter, err = loss(m, ref.Batch); err != nil {
		r.Reason = "loss after the contribution is not finite"
		return r, nil
	}
	dOwn, dRand := r.DOwn(), r.DRand()
	switch {
	case !(dOwn > 0):
		r.Reason = fmt.Sprintf("no improvement on its own batch (%.4g nats)", dOwn)
	case dOwn < dRand-p.GapTolerance*math.Abs(dOwn):
		r.Reason = fmt.Sprintf("own batch improves less than a random one (%.4g < %.4g)", dOwn, dRand)
	default:
		r.OK = true
		r.Score = (dOwn + dRand) / 2
	}
	return r, nil
}

func loss(m *model.GPT, b Batch) (float32, error) {
	l, err := m.Forward(b.Inputs, b.Targets, b.B, b.T)
	if err != nil {
		return 0, fmt.Errorf("verify: evaluating: %w", err)
	}
	return l, nil
}

// Smooth folds a round's score into a peer's running score: an exponential
// moving average with weight alpha on the past, so one lucky or unlucky round
// moves a peer's standing only by 1-alpha of the difference.
func Smooth(prev, score, alpha float64) float64 {
	return alpha*prev + (1-alpha)*score
}
