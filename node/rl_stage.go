package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/rl"
)

// TopicRollout carries rollout peers' announcements of their batches in the
// RL stage (an Announcement whose CID is an rl.Batch blob and whose Reward
// is the batch's mean claimed reward).
const TopicRollout p2p.Topic = "rollout"

// rlStage is the RL stage of the round protocol (Genesis.Stage == StageRL).
// The round is the pre-training round with other contents:
//
//   - rollout peers (rolloutRole) roll out their assigned tasks with the
//     state theta_r and announce the rl.Batch blob on TopicRollout;
//   - validators fetch each batch and check it with rl.Validator against
//     theta_r and the round's beacon (scoreNext); scores are published and
//     the lead's manifest lists the accepted batches, as in pre-training;
//   - every peer applies the manifest by rl.Policy.Update on the listed
//     batches and checks the result hash (applyManifest).
//
// The round's public randomness (beacon) hashes the network, the round, the
// base state and the CID of the previous manifest's envelope, which nobody
// knows before the lead validator signs it.
//
// The replicated state is the policy's parameters alone: each round's update
// starts from fresh optimizer moments (a first AdamW step is a per-coordinate
// step of about lr in the gradient's direction), so manifests, checkpoints,
// catch-up and persistence work unchanged from pre-training.
type rlStage struct {
	n       *Node
	cfg     rl.Config
	ts      *rl.TaskSet
	start   []float32 // theta_0, nil for Init(WeightSeed)
	maxBlob int64

	mu    sync.Mutex
	stats map[uint64]rl.UpdateStats // by round, the last few applied
	// seen holds, per round, the digests of the rollouts a validator
	// accepted: a rollout copied into two peers' batches of a round counts
	// once. Older rounds need no set: a rollout is bound to its round's
	// beacon, so a replay fails its binding whatever was seen.
	seen map[uint64]*rl.Seen
}

func newRLStage(n *Node, base string) (*rlStage, error) {
	p := n.gen.RL
	ts, err := p.loadTaskSet(base)
	if err != nil {
		return nil, err
	}
	start, err := p.loadStart(base, n.gen.Model, n.eng)
	if err != nil {
		return nil, err
	}
	cfg := p.Config()
	// Upper bound of a batch blob: header, then per rollout its reward,
	// length and a proof of a prompt and MaxNew tokens (4 bytes each, plus
	// a fixed part well under 1 KiB).
	maxPrompt := int64(len(cfg.Prefix) + maxPromptBytes(ts))
	perRollout := 12 + 1024 + 4*(maxPrompt+int64(cfg.MaxNew)) + 4*int64(cfg.MaxNew)
	maxBlob := 1024 + int64(cfg.Problems)*(4+int64(cfg.GroupSize)*perRollout)
	return &rlStage{n: n, cfg: cfg, ts: ts, start: start, maxBlob: min(maxBlob, rl.MaxBatchBytes),
		stats: map[uint64]rl.UpdateStats{}, seen: map[uint64]*rl.Seen{}}, nil
}

func maxPromptBytes(ts *rl.TaskSet) int {
	m := 0
	for _, t := range ts.Tasks {
		m = max(m, len(t.Prompt))
	}
	return m
}

// initState sets m to theta_0: the genesis's starting policy in the RL
// stage when it names one, else Init(WeightSeed).
func (n *Node) initState(m *model.GPT) {
	if n.rl != nil && n.rl.start != nil {
		copy(m.Params, n.rl.start)
		return
	}
	m.Init(n.gen.WeightSeed)
}

// stageTopics are the topics a node joins beyond the built-in ones.
func (n *Node) stageTopics() []p2p.Topic {
	if n.rl != nil {
		return []p2p.Topic{TopicRollout}
	}
	return nil
}

// wrongStageTopic reports whether an announcement on topic t belongs to
// another stage than the node's (and is dropped).
func (n *Node) wrongStageTopic(t p2p.Topic) bool {
	return (t == TopicRollout) != (n.rl != nil)
}

// beacon is round r's public randomness for a peer at state base whose last
// applied manifest is prev.
func (s *rlStage) beacon(r uint64, base Hash, prev cid.Cid) rl.Round {
	h := sha256.New()
	h.Write([]byte("trinity/node/rl-beacon/v1\x00"))
	h.Write(s.n.netID[:])
	h.Write(binary.LittleEndian.AppendUint64(nil, r))
	h.Write(base[:])
	if prev.Defined() {
		h.Write(prev.Bytes())
	}
	rd := rl.Round{Index: r}
	h.Sum(rd.Beacon[:0])
	return rd
}

// currentRound is round r's context at the node's current state.
func (s *rlStage) currentRound(r uint64) rl.Round { return s.beacon(r, s.n.hash, s.n.lastMan) }

// rolloutKey is the ed25519 key of a peer ID (rollout proofs are signed
// with the peer's libp2p identity).
func rolloutKey(p peer.ID) ([32]byte, error) {
	var out [32]byte
	pk, err := p.ExtractPublicKey()
	if err != nil {
		return out, fmt.Errorf("node: peer %s: %w", p, err)
	}
	raw, err := pk.Raw()
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return out, fmt.Errorf("node: peer %s has no ed25519 key", p)
	}
	copy(out[:], raw)
	return out, nil
}

// scoreNext checks the next fetched batch of round r (the RL counterpart of
// the gauntlet): accepted batches score 1, rejected ones 0 with the reason.
func (s *rlStage) scoreNext(ctx context.Context, vr *valRound, r uint64) {
	n := s.n
	p := vr.queue[0]
	vr.queue = vr.queue[1:]
	a, blob := vr.anns[p], vr.blobs[p]
	rd := s.currentRound(r)
	copy(n.work.Params, n.global.Params) // theta_r, read by the job
	n.startJob(ctx, "score", func(ctx context.Context) func() {
		t0 := time.Now()
		e := ScoreEntry{Trainer: p.String(), CID: a.CID}
		vd, err := s.check(ctx, n.work, blob, p, rd)
		if err != nil {
			e.Reason = err.Error()
		} else {
			e.OK, e.Score = true, 1
		}
		n.metrics.observe(phaseValidate, time.Since(t0))
		return func() {
			if len(e.Reason) > maxReasonLen {
				e.Reason = e.Reason[:maxReasonLen]
			}
			vr.results[p] = e
			if e.OK {
				vr.decoded[p] = checked{} // checked here: the composer may list it
				n.log.Debug("rollouts accepted", "round", r, "peer", p, "rollouts", vd.Rollouts, "correct", vd.Correct, "verified", vd.Verified)
			} else {
				n.log.Info("rollouts rejected", "round", r, "peer", p, "reason", e.Reason)
			}
		}
	})
}

// check decodes and validates one peer's batch against policy m.
func (s *rlStage) check(ctx context.Context, m *model.GPT, blob []byte, from peer.ID, rd rl.Round) (rl.Verdict, error) {
	pub, err := rolloutKey(from)
	if err != nil {
		return rl.Verdict{}, err
	}
	b, err := rl.Decode(blob)
	if err != nil {
		return rl.Verdict{}, err
	}
	v, err := rl.NewValidator(m, s.ts, s.cfg)
	if err != nil {
		return rl.Verdict{}, err
	}
	return v.Check(ctx, b, rl.Expect{Round: rd, Peer: pub}, s.seenIn(rd.Index))
}

// seenIn is round r's set of accepted rollouts (sets of rounds before r-2
// are dropped).
func (s *rlStage) seenIn(r uint64) *rl.Seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	for k := range s.seen {
		if k+2 < r {
			delete(s.seen, k)
		}
	}
	if s.seen[r] == nil {
		s.seen[r] = rl.NewSeen()
	}
	return s.seen[r]
}

// update applies the GRPO step of round r's listed batch blobs to m, which
// holds the round's base state.
func (s *rlStage) update(ctx context.Context, m *model.GPT, r uint64, base Hash, blobs [][]byte) (rl.UpdateStats, error) {
	batches := make([]*rl.Batch, len(blobs))
	for i, blob := range blobs {
		b, err := rl.Decode(blob)
		if err != nil {
			return rl.UpdateStats{}, fmt.Errorf("node: round %d batch %d: %w", r, i, err)
		}
		// The manifest's signer checked everything; these cheap checks keep
		// a faulty manifest from feeding rollouts of another round, policy
		// or task set into the update.
		if b.Round != r || Hash(b.PolicyHash) != base || b.TaskSet != s.ts.Hash {
			return rl.UpdateStats{}, fmt.Errorf("node: round %d batch %d is for round %d, policy %s", r, i, b.Round, Hash(b.PolicyHash).Short())
		}
		batches[i] = b
	}
	pol, err := rl.NewPolicy(m, nil, s.ts, s.cfg)
	if err != nil {
		return rl.UpdateStats{}, err
	}
	st, err := pol.Update(ctx, batches)
	if err != nil {
		return st, fmt.Errorf("node: round %d: %w", r, err)
	}
	return st, nil
}

// applyManifest is applyManifest of the RL stage: fetch the listed batches,
// update, check the result hash.
func (n *Node) applyRLManifest(ctx context.Context, m *model.GPT, mm *manifestMsg) error {
	man := mm.m
	s := n.rl
	if s == nil || man.Stage != StageRL {
		return fmt.Errorf("node: round %d: manifest of stage %q on a network of stage %q", man.Round, man.Stage, n.gen.stage())
	}
	if len(man.Contributions) > 0 {
		blobs, err := n.fetchContributions(ctx, man, mm.sender)
		if err != nil {
			return err
		}
		t0 := time.Now()
		st, err := s.update(ctx, m, man.Round, man.Base, blobs)
		if err != nil {
			return err
		}
		n.metrics.observe(phaseAggregate, time.Since(t0))
		s.record(man.Round, st)
	}
	return checkResult(m, man)
}

// checkResult compares m's state hash with the manifest's result.
func checkResult(m *model.GPT, man *Manifest) error {
	if got := Hash(m.StateHash()); got != man.Result {
		return fmt.Errorf("node: round %d: state %s after applying, manifest says %s", man.Round, got.Short(), man.Result.Short())
	}
	return nil
}

// record keeps the statistics of the last rounds' updates (status, tests).
func (s *rlStage) record(r uint64, st rl.UpdateStats) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stats[r] = st
	for k := range s.stats {
		if k+64 < r {
			delete(s.stats, k)
		}
	}
}

// Stats returns the statistics of round r's update as this peer applied it.
func (s *rlStage) Stats(r uint64) (rl.UpdateStats, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, ok := s.stats[r]
	return st, ok
}

// composeManifest computes the result of manifest m, which lists the
// accepted batches, and publishes it (the lead validator's RL path).
func (s *rlStage) composeManifest(ctx context.Context, m *Manifest, blobs [][]byte) {
	n := s.n
	m.Stage = StageRL
	copy(n.work.Params, n.global.Params)
	n.startJob(ctx, "manifest", func(ctx context.Context) func() {
		m.Result = m.Base
		if len(blobs) > 0 {
			st, err := s.update(ctx, n.work, m.Round, m.Base, blobs)
			if err != nil {
				if !errors.Is(err, context.Canceled) {
					n.log.Error("computing the manifest's update", "round", m.Round, "err", err)
				}
				return nil
			}
			m.Result = Hash(n.work.StateHash())
			n.log.Info("policy update", "round", m.Round, "rollouts", st.Rollouts, "mean_reward", st.MeanReward,
				"informative_groups", st.Informative, "groups", st.Groups, "grad_norm", st.GradNorm)
		}
		n.publish(ctx, p2p.TopicManifest, m.Round, m)
		return func() {
			n.log.Info("manifest published", "round", m.Round, "batches", len(m.Contributions), "result", m.Result.Short())
			n.emit(Event{Kind: EventManifest, Round: m.Round, Count: len(m.Contributions), Hash: m.Result})
		}
	})
}
