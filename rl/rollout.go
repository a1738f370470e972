package rl

import (
	"context"
	"crypto/ed25519"
	"fmt"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/verify/grail"
)

// Round is the public context of one RL round: every peer derives the same
// assignments and rollout randomness from it.
type Round struct {
	Index  uint64
	Beacon [32]byte // e.g. the previous round's manifest hash
}

// Roller is the rollout role: it generates the G proved rollouts of each task
// assigned to its peer with the current policy and claims their rewards.
// Like a grail.Prover it must be recreated when the policy changes.
type Roller struct {
	cfg    Config
	ts     *TaskSet
	enc    PromptEncoder
	prover *grail.Prover
	policy [32]byte
	peer   [32]byte
}

// NewRoller returns the rollout role for policy m, signing with key.
func NewRoller(m *model.GPT, key ed25519.PrivateKey, ts *TaskSet, cfg Config) (*Roller, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ts == nil {
		return nil, fmt.Errorf("rl: roller: no task set")
	}
	pr, err := grail.NewProver(m, key)
	if err != nil {
		return nil, fmt.Errorf("rl: roller: %w", err)
	}
	r := &Roller{cfg: cfg, ts: ts, enc: PromptEncoder{Prefix: cfg.Prefix}, prover: pr, policy: m.StateHash()}
	copy(r.peer[:], key.Public().(ed25519.PublicKey))
	return r, nil
}

// Peer is the roller's public key.
func (r *Roller) Peer() [32]byte { return r.peer }

// Roll produces the peer's batch for a round.
func (r *Roller) Roll(ctx context.Context, rd Round) (*Batch, error) {
	tasks := Assign(rd.Beacon, rd.Index, r.peer, len(r.ts.Tasks), r.cfg.Problems)
	b := &Batch{Round: rd.Index, Beacon: rd.Beacon, PolicyHash: r.policy, TaskSet: r.ts.Hash, Peer: r.peer}
	tok := data.ByteTokenizer{}
	for _, ti := range tasks {
		task := r.ts.Tasks[ti]
		prompt, err := r.enc.Encode(task)
		if err != nil {
			return nil, fmt.Errorf("rl: roll task %d: %w", ti, err)
		}
		g := Group{Task: uint32(ti), Rollouts: make([]Rollout, r.cfg.GroupSize)}
		for k := range g.Rollouts {
			p, err := r.prover.Prove(ctx, RolloutBeacon(rd.Beacon, rd.Index, uint32(ti), k), prompt, r.cfg.MaxNew, r.cfg.Sampling)
			if err != nil {
				return nil, fmt.Errorf("rl: roll task %d rollout %d: %w", ti, k, err)
			}
			g.Rollouts[k] = Rollout{Reward: r.cfg.Reward(task, tok.Decode(p.Tokens)), Proof: p}
		}
		b.Groups = append(b.Groups, g)
	}
	return b, nil
}
