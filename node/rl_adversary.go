package node

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/rl"
)

// Rollout peers' misbehaviours in the RL stage (see adversary.go), played
// with rl.Forge.
const (
	AdversaryRLRewards  Adversary = "rl-rewards"     // claims reward 1 for every rollout
	AdversaryRLModel    Adversary = "rl-other-model" // rolls out another model (the policy with 1% noise) and claims the policy
	AdversaryRLOwnTasks Adversary = "rl-own-tasks"   // rolls out tasks of its own choosing
	AdversaryRLReplay   Adversary = "rl-replay"      // re-sends its previous round's batch under the new round's header
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
	mode := func(atk rl.Attack, about string) adversaryMode {
		return adversaryMode{role: RoleRollout, about: about,
			rollouts: func(a *adversary, ctx context.Context, in rolloutInput) (*rl.Batch, error) {
				return a.forge(ctx, atk, in)
			}}
	}
	return map[Adversary]adversaryMode{
		AdversaryRLRewards:  mode(rl.AttackRewards, "claims reward 1 for every rollout"),
		AdversaryRLModel:    mode(rl.AttackOtherModel, "rolls out another model and claims the policy's hash"),
		AdversaryRLOwnTasks: mode(rl.AttackOwnTasks, "rolls out tasks of its own choosing"),
		AdversaryRLReplay:   mode(rl.AttackReplay, "re-sends last round's batch under the new round's header"),
	}
}

// rewriteRollouts is the batch a rollout peer publishes.
func (a *adversary) rewriteRollouts(ctx context.Context, in rolloutInput) (*rl.Batch, error) {
	if a == nil || a.mode.rollouts == nil {
		return in.honest, nil
	}
	return a.mode.rollouts(a, ctx, in)
}

// forge plays atk. A replayer keeps each round's honest batch to re-send
// the next round; with nothing older (its first round) it does not announce.
func (a *adversary) forge(ctx context.Context, atk rl.Attack, in rolloutInput) (*rl.Batch, error) {
	var prev *rl.Batch
	if atk == rl.AttackReplay {
		blob, err := in.honest.Encode()
		if err != nil {
			return nil, err
		}
		a.mu.Lock()
		old, oldR := a.last, a.lastR
		a.last, a.lastR = blob, in.round.Index
		a.mu.Unlock()
		if old == nil || oldR >= in.round.Index {
			return nil, fmt.Errorf("node: adversary %s: no older batch to replay in round %d", a.kind, in.round.Index)
		}
		if prev, err = rl.Decode(old); err != nil {
			return nil, err
		}
	}
	return rl.Forge(ctx, atk, in.policy, in.key, in.ts, in.cfg, in.round, prev, nil)
}
