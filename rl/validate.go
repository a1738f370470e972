package rl

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/verify/grail"
)

// Expect is what a validator requires of a peer's batch.
type Expect struct {
	Round Round
	Peer  [32]byte // the peer whose signed announcement carried the batch
	// Challenge, if not nil, is randomness revealed after the upload deadline:
	// it picks the groups that get full GRAIL verification and the challenged
	// positions of their proofs. Nil uses the round's beacon.
	Challenge []byte
}

// Seen is a set of rollout digests (proof commitments) shared by a
// validator's checks across peers and rounds: a rollout that appears twice,
// in one batch or in two, is refused the second time. Safe for concurrent use.
type Seen struct {
	mu sync.Mutex
	m  map[[32]byte]struct{}
}

// NewSeen returns an empty digest set.
func NewSeen() *Seen { return &Seen{m: make(map[[32]byte]struct{})} }

// addAll adds every digest or none: it fails if one is already present.
func (s *Seen) addAll(ds [][32]byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, d := range ds {
		if _, ok := s.m[d]; ok {
			return fmt.Errorf("%w: rollout %d (digest %x) seen before", ErrDuplicate, i, d[:8])
		}
	}
	for _, d := range ds {
		s.m[d] = struct{}{}
	}
	return nil
}

// Len is the number of digests held.
func (s *Seen) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.m)
}

// Validator checks rollout batches against the current policy. Like
// grail.Verifier it takes the policy's state hash once (recreate it when the
// policy changes) and is not safe for concurrent use.
type Validator struct {
	cfg    Config
	ts     *TaskSet
	enc    PromptEncoder
	ver    *grail.Verifier
	policy [32]byte
	config [32]byte
}

// NewValidator returns a validator for policy m.
func NewValidator(m *model.GPT, ts *TaskSet, cfg Config, opts ...grail.VerifyOption) (*Validator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ts == nil {
		return nil, errors.New("rl: validator: no task set")
	}
	v, err := grail.NewVerifier(m, opts...)
	if err != nil {
		return nil, fmt.Errorf("rl: validator: %w", err)
	}
	return &Validator{cfg: cfg, ts: ts, enc: PromptEncoder{Prefix: cfg.Prefix}, ver: v, policy: m.StateHash(), config: m.Config.Hash()}, nil
}

// Verdict is the outcome of checking one batch.
type Verdict struct {
	Rollouts int // rollouts in the batch
	Verified int // rollouts whose proofs were re-run
	Correct  int // rollouts with reward 1
}

// Check validates batch b from exp.Peer for the round: header binding
// (round, beacon, policy, task set, peer), assignment, group size and
// generation length, each proof's binding (rollout beacon, prompt, sampling,
// signature), duplicates (within the batch and against seen, if not nil),
// recomputed rewards, and full GRAIL verification of VerifyGroups groups
// chosen by the challenge randomness. It returns nil only if the whole batch
// is acceptable; a batch with one bad rollout is rejected whole, so cheating
// on part of a batch forfeits all of it. seen gets the batch's digests only
// when it is accepted.
func (v *Validator) Check(ctx context.Context, b *Batch, exp Expect, seen *Seen) (Verdict, error) {
	var vd Verdict
	switch {
	case b == nil:
		return vd, fmt.Errorf("%w: nil batch", ErrMalformed)
	case b.Round != exp.Round.Index || b.Beacon != exp.Round.Beacon:
		return vd, fmt.Errorf("%w: batch for round %d, expected %d", ErrStale, b.Round, exp.Round.Index)
	case b.PolicyHash != v.policy:
		return vd, fmt.Errorf("%w: %x, current %x", ErrPolicy, b.PolicyHash[:8], v.policy[:8])
	case b.TaskSet != v.ts.Hash:
		return vd, fmt.Errorf("%w", ErrTaskSet)
	case b.Peer != exp.Peer:
		return vd, fmt.Errorf("%w: batch names %x, announced by %x", ErrPeer, b.Peer[:8], exp.Peer[:8])
	}
	want := Assign(b.Beacon, b.Round, b.Peer, len(v.ts.Tasks), v.cfg.Problems)
	if len(b.Groups) != len(want) {
		return vd, fmt.Errorf("%w: %d groups, %d tasks assigned", ErrAssignment, len(b.Groups), len(want))
	}
	for i, g := range b.Groups {
		if int(g.Task) != want[i] {
			return vd, fmt.Errorf("%w: group %d is task %d, assigned %d", ErrAssignment, i, g.Task, want[i])
		}
		if len(g.Rollouts) != v.cfg.GroupSize {
			return vd, fmt.Errorf("%w: group %d has %d rollouts, want %d", ErrShape, i, len(g.Rollouts), v.cfg.GroupSize)
		}
	}

	// Cheap checks on every rollout.
	tok := data.ByteTokenizer{}
	digests := make([][32]byte, 0, len(b.Groups)*v.cfg.GroupSize)
	prompts := make([][]int32, len(b.Groups))
	for gi, g := range b.Groups {
		task := v.ts.Tasks[g.Task]
		prompt, err := v.enc.Encode(task)
		if err != nil {
			return vd, fmt.Errorf("rl: validator: task %d: %w", g.Task, err)
		}
		prompts[gi] = prompt
		for k, r := range g.Rollouts {
			p := r.Proof
			where := fmt.Sprintf("group %d (task %d) rollout %d", gi, g.Task, k)
			switch {
			case p == nil:
				return vd, fmt.Errorf("%w: %s: no proof", ErrMalformed, where)
			case p.Peer != b.Peer:
				return vd, fmt.Errorf("%w: %s: proof by %x", ErrPeer, where, p.Peer[:8])
			case p.ModelHash != v.policy || p.ConfigHash != v.config:
				return vd, fmt.Errorf("%w: %s: proof for model %x", ErrPolicy, where, p.ModelHash[:8])
			case p.Beacon != RolloutBeacon(b.Beacon, b.Round, g.Task, k):
				return vd, fmt.Errorf("%w: %s: proof beacon %x is not the rollout's", ErrBinding, where, p.Beacon[:8])
			case !slices.Equal(p.Prompt, prompt):
				return vd, fmt.Errorf("%w: %s: proof answers another prompt", ErrBinding, where)
			case p.Sampling != v.cfg.Sampling:
				return vd, fmt.Errorf("%w: %s: sampling %v, want %v", ErrBinding, where, p.Sampling, v.cfg.Sampling)
			case len(p.Tokens) != v.cfg.MaxNew:
				return vd, fmt.Errorf("%w: %s: %d generated tokens, want %d", ErrShape, where, len(p.Tokens), v.cfg.MaxNew)
			}
			if err := p.CheckSignature(); err != nil {
				return vd, fmt.Errorf("%w: %s: %w", ErrPeer, where, err)
			}
			want := v.cfg.Reward(task, tok.Decode(p.Tokens))
			if r.Reward != want {
				return vd, fmt.Errorf("%w: %s: claims %v, earns %v", ErrReward, where, r.Reward, want)
			}
			if want == 1 {
				vd.Correct++
			}
			digests = append(digests, p.Commitment())
		}
	}
	vd.Rollouts = len(digests)
	sorted := slices.Clone(digests)
	slices.SortFunc(sorted, func(a, b [32]byte) int { return bytes.Compare(a[:], b[:]) })
	for i := 1; i < len(sorted); i++ {
		if sorted[i] == sorted[i-1] {
			return vd, fmt.Errorf("%w: digest %x twice in the batch", ErrDuplicate, sorted[i][:8])
		}
	}

	// Full GRAIL verification of the challenged groups.
	chal := exp.Challenge
	if chal == nil {
		chal = exp.Round.Beacon[:]
	}
	groups := v.sample(chal, b, len(b.Groups))
	var proofs []*grail.Proof
	var exps []grail.Expect
	for _, gi := range groups {
		g := b.Groups[gi]
		s := v.cfg.Sampling
		for _, r := range g.Rollouts {
			proofs = append(proofs, r.Proof)
			exps = append(exps, grail.Expect{Beacon: r.Proof.Beacon, Challenge: exp.Challenge, Peer: b.Peer[:], Prompt: prompts[gi], Sampling: &s})
		}
	}
	if err := ctx.Err(); err != nil {
		return vd, fmt.Errorf("rl: validator: %w", err)
	}
	for i, err := range v.ver.VerifyBatch(ctx, proofs, exps) {
		if err != nil {
			if ctx.Err() != nil {
				return vd, fmt.Errorf("rl: validator: %w", ctx.Err())
			}
			return vd, fmt.Errorf("%w: rollout %d of the sample: %w", ErrProof, i, err)
		}
	}
	vd.Verified = len(proofs)
	if seen != nil {
		if err := seen.addAll(digests); err != nil {
			return vd, err
		}
	}
	return vd, nil
}

// sample picks the groups to verify in full: all of them, or VerifyGroups
// distinct ones drawn from SHA-256 of the challenge and the batch header.
func (v *Validator) sample(chal []byte, b *Batch, n int) []int {
	if v.cfg.VerifyGroups == 0 || v.cfg.VerifyGroups >= n {
		out := make([]int, n)
		for i := range out {
			out[i] = i
		}
		return out
	}
	h := sha256.New()
	h.Write([]byte("trinity/rl/v1/sample\x00"))
	h.Write(chal)
	h.Write(b.Peer[:])
	h.Write(binary.LittleEndian.AppendUint64(nil, b.Round))
	var beacon [32]byte
	h.Sum(beacon[:0])
	idx := Assign(beacon, b.Round, b.Peer, n, v.cfg.VerifyGroups)
	slices.Sort(idx)
	return idx
}
