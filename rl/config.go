package rl

import (
	"errors"
	"fmt"
	"math"

	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/verify/grail"
)

// Config holds the RL hyper-parameters a network's genesis fixes: every
// rollout peer, validator and policy updater must use the same values.
type Config struct {
	GroupSize   int            // G: rollouts per task (Grail: 16)
	Problems    int            // tasks assigned to each rollout peer per round
	MaxNew      int            // tokens generated per rollout
	Sampling    grail.Sampling // sampling of rollouts (temperature 1: on-policy)
	Prefix      string         // prompt prefix (PromptEncoder)
	FormatBonus float64        // reward of an answered but wrong completion
	// PartialCredit is the most a wrong answer earns for matching bytes of
	// the right one (see Config.Reward); 0 grades by exact match alone.
	PartialCredit float64

	// VerifyGroups is how many groups of a batch a validator re-runs GRAIL
	// verification on (0: all); the cheap checks run on every rollout.
	VerifyGroups int

	// GRPO.
	ClipEps float64               // PPO ratio clip
	KLCoef  float64               // weight of the k3 KL estimate to the reference policy (0: off)
	AdvEps  float64               // advantage = (r - mean)/(std + AdvEps)
	Epochs  int                   // optimizer steps per round on the same rollouts
	AdamW   optimizer.AdamWConfig // the policy optimizer (its GradClip also bounds SGD)
	// SGDLR, when positive, replaces AdamW by plain SGD with this rate.
	SGDLR float32
	// FreshOptimizer starts every Update from zero AdamW moments, so the
	// policy's state is its parameters alone: what a network replicates
	// through manifests, checkpoints and catch-up (the node's RL stage runs
	// this way). The first AdamW step from zero moments moves each
	// parameter by about lr in the sign of its gradient.
	FreshOptimizer bool
}

// DefaultConfig is the configuration the experiment and the tests start from.
func DefaultConfig() Config {
	ad := optimizer.DefaultAdamW()
	ad.LR = 3e-5
	ad.Warmup = 0
	ad.TotalSteps = 0
	ad.WeightDecay = 0
	ad.GradClip = 1
	return Config{
		GroupSize: 16, Problems: 4, MaxNew: 5,
		Sampling: grail.Sampling{Temperature: 1},
		Prefix:   "\n",
		ClipEps:  0.2, AdvEps: 1e-4, Epochs: 1,
		AdamW: ad, FreshOptimizer: true,
	}
}

// Validate names the first unusable field.
func (c Config) Validate() error {
	switch {
	case c.GroupSize < 2 || c.GroupSize > MaxGroupSize:
		return fmt.Errorf("rl: config: group_size %d (2..%d: advantages are relative to the group)", c.GroupSize, MaxGroupSize)
	case c.Problems < 1 || c.Problems > MaxGroups:
		return fmt.Errorf("rl: config: problems %d (1..%d)", c.Problems, MaxGroups)
	case c.MaxNew < 1 || c.MaxNew > grail.MaxTokens:
		return fmt.Errorf("rl: config: max_new %d", c.MaxNew)
	case c.Sampling.Temperature <= 0 || c.Sampling.Temperature > grail.MaxTemperature || c.Sampling.TopK < 0:
		return fmt.Errorf("rl: config: sampling %v (rollouts must sample: temperature in (0, %d], top-k >= 0)", c.Sampling, grail.MaxTemperature)
	case !finite(c.FormatBonus) || c.FormatBonus < 0 || c.FormatBonus >= 1:
		return fmt.Errorf("rl: config: format_bonus %v (in [0, 1))", c.FormatBonus)
	case !finite(c.PartialCredit) || c.PartialCredit < 0 || c.FormatBonus+c.PartialCredit >= 1:
		return fmt.Errorf("rl: config: partial_credit %v (>= 0, and format_bonus + partial_credit < 1)", c.PartialCredit)
	case c.VerifyGroups < 0:
		return fmt.Errorf("rl: config: verify_groups %d", c.VerifyGroups)
	case !finite(c.ClipEps) || c.ClipEps <= 0 || c.ClipEps >= 1:
		return fmt.Errorf("rl: config: clip_eps %v (in (0, 1))", c.ClipEps)
	case !finite(c.KLCoef) || c.KLCoef < 0:
		return fmt.Errorf("rl: config: kl_coef %v", c.KLCoef)
	case !finite(c.AdvEps) || c.AdvEps <= 0:
		return fmt.Errorf("rl: config: adv_eps %v", c.AdvEps)
	case !finite(float64(c.SGDLR)) || c.SGDLR < 0:
		return fmt.Errorf("rl: config: sgd_lr %v", c.SGDLR)
	case c.Epochs < 1 || c.Epochs > 64:
		return fmt.Errorf("rl: config: epochs %d (1..64)", c.Epochs)
	}
	if err := c.AdamW.Validate(); err != nil {
		return fmt.Errorf("rl: config: adamw: %w", err)
	}
	return nil
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Rejection reasons: Validator.Check's errors wrap exactly one of them (or
// ErrMalformed), so a node can score the peer and log why.
var (
	ErrStale      = errors.New("rl: batch is for another round or beacon")
	ErrPolicy     = errors.New("rl: batch rolls out another policy state")
	ErrTaskSet    = errors.New("rl: batch is for another task set")
	ErrPeer       = errors.New("rl: batch or proof signed by another peer")
	ErrAssignment = errors.New("rl: batch does not roll out the assigned tasks")
	ErrShape      = errors.New("rl: wrong group size or generation length")
	ErrBinding    = errors.New("rl: rollout bound to other randomness, prompt or sampling")
	ErrDuplicate  = errors.New("rl: duplicated or already seen rollout")
	ErrReward     = errors.New("rl: claimed reward differs from the recomputed one")
	ErrProof      = errors.New("rl: GRAIL proof rejected")
)
