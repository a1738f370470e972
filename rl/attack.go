package rl

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/trinity-net/trinity/compute/model"
)

// Attack is a way a dishonest rollout peer can cheat. The experiment's
// cheater cycles through them, the node's rollout adversaries play them, and
// the tests check each is rejected for its reason.
type Attack int

const (
	AttackOtherModel Attack = iota // roll out a cheaper/different model, claim the policy
	AttackRewards                  // claim reward 1 for every rollout
	AttackOwnTasks                 // roll out tasks of its own choosing
	AttackReplay                   // re-send an old batch under the new round's header
	AttackCopy                     // take another peer's batch and re-sign it
	NumAttacks
)

func (a Attack) String() string {
	if a < 0 || a >= NumAttacks {
		return fmt.Sprintf("attack(%d)", int(a))
	}
	return [...]string{"other model", "fabricated rewards", "own tasks", "replay", "copy"}[a]
}

// honestBatch rolls out the peer's assigned tasks honestly with m.
func honestBatch(ctx context.Context, m *model.GPT, key ed25519.PrivateKey, ts *TaskSet, cfg Config, rd Round) (*Batch, error) {
	rl, err := NewRoller(m, key, ts, cfg)
	if err != nil {
		return nil, err
	}
	return rl.Roll(ctx, rd)
}

// Forge builds a dishonest batch for round rd. policy is the honest policy
// replica the cheater holds, prev an old honest batch of its own (needed by
// AttackReplay), other another peer's batch of this round (needed by
// AttackCopy).
func Forge(ctx context.Context, a Attack, policy *model.GPT, key ed25519.PrivateKey, ts *TaskSet, cfg Config, rd Round, prev, other *Batch) (*Batch, error) {
	var pub [32]byte
	copy(pub[:], key.Public().(ed25519.PublicKey))
	switch a {
	case AttackOtherModel:
		// A model that is not the policy: the policy's weights with 1% noise.
		alt, err := model.New(policy.Config, policy.Engine())
		if err != nil {
			return nil, err
		}
		copy(alt.Params, policy.Params)
		st := prng{seed: [32]byte{1, 2, 3}}
		for i := range alt.Params {
			u := float32(st.next()>>40)/float32(1<<24) - 0.5
			alt.Params[i] *= 1 + 0.02*u
		}
		b, err := honestBatch(ctx, alt, key, ts, cfg, rd)
		if err != nil {
			return nil, err
		}
		// Claim the real policy everywhere and re-sign.
		b.PolicyHash = policy.StateHash()
		for _, g := range b.Groups {
			for _, r := range g.Rollouts {
				r.Proof.ModelHash = b.PolicyHash
				if err := r.Proof.Sign(key); err != nil {
					return nil, err
				}
			}
		}
		return b, nil
	case AttackRewards:
		b, err := honestBatch(ctx, policy, key, ts, cfg, rd)
		if err != nil {
			return nil, err
		}
		for _, g := range b.Groups {
			for k := range g.Rollouts {
				g.Rollouts[k].Reward = 1
			}
		}
		return b, nil
	case AttackOwnTasks:
		// The first tasks of the set instead of the assigned ones, each
		// rolled out honestly with correctly derived rollout randomness.
		cfg2 := cfg
		b, err := honestBatch(ctx, policy, key, ts, cfg2, rd)
		if err != nil {
			return nil, err
		}
		rl, err := NewRoller(policy, key, ts, cfg)
		if err != nil {
			return nil, err
		}
		for gi := range b.Groups {
			ti := uint32(gi)
			task := ts.Tasks[ti]
			prompt, err := rl.enc.Encode(task)
			if err != nil {
				return nil, err
			}
			g := Group{Task: ti, Rollouts: make([]Rollout, cfg.GroupSize)}
			for k := range g.Rollouts {
				p, err := rl.prover.Prove(ctx, RolloutBeacon(rd.Beacon, rd.Index, ti, k), prompt, cfg.MaxNew, cfg.Sampling)
				if err != nil {
					return nil, err
				}
				g.Rollouts[k] = Rollout{Reward: cfg.Reward(task, string(bytesOf(p.Tokens))), Proof: p}
			}
			b.Groups[gi] = g
		}
		return b, nil
	case AttackReplay:
		if prev == nil {
			return nil, fmt.Errorf("rl: replay attack needs an old batch")
		}
		b := *prev
		b.Round, b.Beacon = rd.Index, rd.Beacon
		b.PolicyHash = policy.StateHash()
		return &b, nil
	case AttackCopy:
		if other == nil {
			return nil, fmt.Errorf("rl: copy attack needs another batch")
		}
		blob, err := other.Encode()
		if err != nil {
			return nil, err
		}
		b, err := Decode(blob)
		if err != nil {
			return nil, err
		}
		b.Peer = pub
		for _, g := range b.Groups {
			for _, r := range g.Rollouts {
				if err := r.Proof.Sign(key); err != nil {
					return nil, err
				}
			}
		}
		return b, nil
	}
	return nil, fmt.Errorf("rl: unknown attack %d", a)
}

func bytesOf(toks []int32) []byte {
	b := make([]byte, len(toks))
	for i, t := range toks {
		b[i] = byte(t)
	}
	return b
}
