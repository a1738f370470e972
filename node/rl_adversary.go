package node

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/rl"
)

// Rollout peers' misbehaviours in the RL stage (see adversary.go): each
// rolls out honestly, then publishes something else.
const (
	AdversaryRLRewards Adversary = "rl-rewards"     // claims reward 1 for every rollout
	AdversaryRLModel   Adversary = "rl-other-model" // rolls out another model (the policy with 1% noise) and claims the policy
	AdversaryRLReplay  Adversary = "rl-replay"      // re-sends its previous round's batch under the new round's header
)

// rolloutInput is what a dishonest rollout peer has at hand.
type rolloutInput struct {
	round  rl.Round
	honest *rl.Batch
	policy *model.GPT // the current policy (owned by the rollout job)
	key    ed25519.PrivateKey
	ts     *rl.TaskSet
	cfg    rl.Config
}

func rlAdversaryModes() map[Adversary]adversaryMode {
	return map[Adversary]adversaryMode{
		AdversaryRLRewards: {role: RoleRollout, about: "claims reward 1 for every rollout",
			rollouts: func(_ *adversary, _ context.Context, in rolloutInput) (*rl.Batch, error) {
				for _, g := range in.honest.Groups {
					for k := range g.Rollouts {
						g.Rollouts[k].Reward = 1
					}
				}
				return in.honest, nil
			}},
		AdversaryRLModel:  {role: RoleRollout, about: "rolls out another model and claims the policy's hash", rollouts: (*adversary).otherModel},
		AdversaryRLReplay: {role: RoleRollout, about: "re-sends last round's batch under the new round's header", rollouts: (*adversary).replay},
	}
}

// rewriteRollouts is the batch a rollout peer publishes.
func (a *adversary) rewriteRollouts(ctx context.Context, in rolloutInput) (*rl.Batch, error) {
	if a == nil || a.mode.rollouts == nil {
		return in.honest, nil
	}
	return a.mode.rollouts(a, ctx, in)
}

// otherModel rolls out the policy with every weight scaled by up to 1%,
// then claims the real policy in the header and every proof, re-signed.
func (a *adversary) otherModel(ctx context.Context, in rolloutInput) (*rl.Batch, error) {
	alt, err := model.New(in.policy.Config, in.policy.Engine())
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	for i, x := range in.policy.Params {
		alt.Params[i] = x * (1 + 0.02*(a.rng.Float32()-0.5))
	}
	a.mu.Unlock()
	ro, err := rl.NewRoller(alt, in.key, in.ts, in.cfg)
	if err != nil {
		return nil, err
	}
	b, err := ro.Roll(ctx, in.round)
	if err != nil {
		return nil, err
	}
	b.PolicyHash = in.honest.PolicyHash
	for _, g := range b.Groups {
		for _, r := range g.Rollouts {
			r.Proof.ModelHash = b.PolicyHash
			if err := r.Proof.Sign(in.key); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// replay keeps this round's honest batch and publishes the previous one,
// re-headed for this round; with nothing older (its first round) it does
// not announce.
func (a *adversary) replay(_ context.Context, in rolloutInput) (*rl.Batch, error) {
	blob, err := in.honest.Encode()
	if err != nil {
		return nil, err
	}
	a.mu.Lock()
	prev, prevR := a.last, a.lastR
	a.last, a.lastR = blob, in.round.Index
	a.mu.Unlock()
	if prev == nil || prevR >= in.round.Index {
		return nil, fmt.Errorf("node: adversary %s: no older batch to replay in round %d", a.kind, in.round.Index)
	}
	b, err := rl.Decode(prev)
	if err != nil {
		return nil, err
	}
	b.Round, b.Beacon, b.PolicyHash = in.round.Index, in.round.Beacon, in.honest.PolicyHash
	return b, nil
}
