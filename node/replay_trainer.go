package node

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/replay"
)

// replayDir is the trainer's recorder directory inside its data directory.
const replayDir = "replay"

// trainerReplay is the trainer's side of proof of training work: it records
// every inner step's state with a replay.Recorder, commits, keeps the carry
// chain honest, and answers challenges.
//
// The carry chain: state 0 of a round is the global state plus the AdamW
// and error-feedback state the trainer carried out of the last round it
// announced (ReplayPrev), or the reset state. So a round that is not
// announced (deadline, error) must leave no trace: the optimizer and
// error-feedback state are snapshot before the round and restored if it is
// abandoned, and the trainer state on disk is written only at the point of
// no return, just before the announcement.
type trainerReplay struct {
	n   *Node
	tr  *trainerRole
	p   *ReplayParams
	rec *replay.Recorder

	// Owned by the loop goroutine, except during a train job, which owns
	// carry* and the snapshot.
	carryRound uint64 // the round whose carried state the trainer holds
	hasCarry   bool
	m, v, ef   []float32 // pre-round snapshot
	step       int
	round      uint64            // the round being trained
	begun      bool              // a snapshot of the round's start is held
	commit     replay.Commitment // of round committed, once committed
	committed  uint64

	hooks atomic.Pointer[replayHooks] // tests: hostile or failing trainers

	pending []pendingChallenge   // accepted, not yet answered (loop)
	seen    map[respKey]bool     // (round, validator) challenges accepted
	served  map[uint64][]cid.Cid // response blobs per round, deleted after the window
}

// replayHooks let tests make a trainer hostile: tamper rewrites a response
// (returning the bytes to serve, the size to announce, and whether to answer
// at all); abandon makes the round fail after its steps, before the
// announcement.
type replayHooks struct {
	tamper  func(round uint64, step int, resp []byte) (out []byte, size int64, send bool)
	abandon func(round uint64) bool
}

// pendingChallenge is one step a validator asked for.
type pendingChallenge struct {
	ch        replay.Challenge
	validator peer.ID
}

type respKey struct {
	round     uint64
	validator peer.ID
}

func newTrainerReplay(tr *trainerRole, carryRound uint64, hasCarry bool) (*trainerReplay, error) {
	n := tr.n
	p := n.gen.Params.Replay
	if p == nil {
		return nil, nil
	}
	every := 4
	if n.adv != nil && n.adv.kind == AdversaryLazy {
		// A cheater that answers every challenge (from its faked states)
		// rather than one whose recomputation disagrees with its own log.
		every = 1
	}
	rec, err := replay.NewRecorder(n.eng, n.replaySpec(), filepath.Join(n.cfg.DataDir, replayDir),
		replay.WithCheckpointEvery(every), replay.WithRetainRounds(4))
	if err != nil {
		return nil, err
	}
	np := n.ch.NumParams
	return &trainerReplay{n: n, tr: tr, p: p, rec: rec, carryRound: carryRound, hasCarry: hasCarry,
		m: make([]float32, np), v: make([]float32, np), ef: make([]float32, np),
		seen: map[respKey]bool{}, served: map[uint64][]cid.Cid{}}, nil
}

// begin snapshots the carried state and starts recording round r from
// state 0 (the trainer's model already holds theta_r). Train job.
func (x *trainerReplay) begin(r uint64) error {
	if x == nil {
		return nil
	}
	t := x.tr.t
	x.round, x.begun = r, true
	copy(x.m, t.Opt.M)
	copy(x.v, t.Opt.V)
	copy(x.ef, x.tr.slc.ErrorBuffer())
	x.step = t.Opt.Step
	st := replay.State{Params: t.Model.Params, M: t.Opt.M, V: t.Opt.V, AdamStep: t.Opt.Step, EF: x.tr.slc.ErrorBuffer()}
	if err := x.rec.Begin(r, x.n.p2p.ID().String(), &st); err != nil {
		return fmt.Errorf("node: replay: %w", err)
	}
	return nil
}

// record notes the state after an inner step. Train job.
func (x *trainerReplay) record() error {
	if x == nil {
		return nil
	}
	t := x.tr.t
	return x.rec.Record(t.Model.Params, t.Opt.M, t.Opt.V, t.Opt.Step)
}

// commitRound commits after compression. Train job.
func (x *trainerReplay) commitRound() error {
	if x == nil {
		return nil
	}
	c, err := x.rec.Commit(x.tr.slc.ErrorBuffer())
	if err != nil {
		return fmt.Errorf("node: replay: %w", err)
	}
	x.commit, x.committed = c, x.round
	if h := x.hooks.Load(); h != nil && h.abandon != nil && h.abandon(x.round) {
		return fmt.Errorf("node: replay: round abandoned by a test hook")
	}
	return nil
}

// announce puts the commitment and the carry link into a, and makes this
// round the carried one: called at the point of no return (the trainer
// state is saved and a is about to be published). Train job.
func (x *trainerReplay) announce(a *Announcement) error {
	if x == nil || x.commit.Steps == 0 || x.committed != a.Round {
		return nil // a round not trained (a producing adversary): no commitment
	}
	s, err := encodeCommitment(x.commit)
	if err != nil {
		return err
	}
	a.Replay = s
	if x.hasCarry {
		prev := x.carryRound
		a.ReplayPrev = &prev
	}
	x.carryRound, x.hasCarry, x.begun = a.Round, true, false
	return nil
}

// abandon restores the pre-round state of a round that was not announced,
// so that the next round starts from the last announced round's carry.
// Train job (after trainRound failed).
func (x *trainerReplay) abandon() {
	if x == nil || !x.begun {
		return // nothing of the round touched the carried state
	}
	x.begun = false
	t := x.tr.t
	copy(t.Opt.M, x.m)
	copy(t.Opt.V, x.v)
	copy(x.tr.slc.ErrorBuffer(), x.ef)
	t.Opt.Step = x.step
}

// onChallenge accepts a validator's challenge to this trainer when its
// steps are the ones the beacon gives (a validator cannot demand more work
// than the policy allows). Loop goroutine.
func (x *trainerReplay) onChallenge(from peer.ID, c *ReplayChallenge) {
	n := x.n
	key := respKey{c.Round, from}
	if x.seen[key] {
		return
	}
	cm, err := x.rec.Committed(c.Round)
	if err != nil {
		n.log.Warn("replay: challenged for a round without a record", "round", c.Round, "validator", from, "err", err)
		return
	}
	want, err := replay.Derive(c.Beacon[:], c.Round, from.String(), n.p2p.ID().String(), cm, replay.Policy{Rate: 1, Checks: x.p.Checks})
	if err != nil || len(want) != len(c.Steps) {
		n.log.Warn("replay: refusing a challenge of the wrong shape", "round", c.Round, "validator", from, "steps", len(c.Steps), "err", err)
		return
	}
	for i, ch := range want {
		if ch.Step != c.Steps[i] {
			n.log.Warn("replay: refusing a challenge whose steps the beacon does not give", "round", c.Round, "validator", from)
			return
		}
	}
	x.seen[key] = true
	for _, ch := range want {
		x.pending = append(x.pending, pendingChallenge{ch: ch, validator: from})
	}
}

// respond starts a job answering the pending challenges when the node is
// idle, and reports whether it did. Answering comes before training: it is
// short (at most k-1 recomputed steps per challenge) and has a deadline.
// Loop goroutine.
func (x *trainerReplay) respond(ctx context.Context, r uint64) bool {
	if x == nil || len(x.pending) == 0 || x.n.busy != "" {
		return false
	}
	n := x.n
	x.forget(r)
	todo := x.pending
	x.pending = nil
	n.startJob(ctx, "replay-respond", func(ctx context.Context) func() {
		var out []servedResponse
		for _, pc := range todo {
			t0 := time.Now()
			b, err := x.rec.Respond(ctx, pc.ch)
			if err != nil {
				n.log.Warn("replay: cannot answer a challenge", "round", pc.ch.Round, "step", pc.ch.Step, "validator", pc.validator, "err", err)
				continue
			}
			size := int64(len(b))
			if h := x.hooks.Load(); h != nil && h.tamper != nil {
				var send bool
				if b, size, send = h.tamper(pc.ch.Round, pc.ch.Step, b); !send {
					continue
				}
			}
			c, err := n.p2p.Store().Put(b, p2p.WithRound(pc.ch.Round))
			if err != nil {
				n.log.Warn("replay: storing a response", "round", pc.ch.Round, "err", err)
				continue
			}
			msg := &ReplayResponse{V: WireVersion, Round: pc.ch.Round, Validator: pc.validator.String(), Step: pc.ch.Step, CID: c.String(), Size: size}
			n.publish(ctx, TopicReplayResponse, pc.ch.Round, msg)
			n.metrics.observe(phaseReplayRespond, time.Since(t0))
			out = append(out, servedResponse{round: pc.ch.Round, cid: c})
		}
		return func() {
			for _, s := range out {
				x.served[s.round] = append(x.served[s.round], s.cid)
			}
		}
	})
	return true
}

type servedResponse struct {
	round uint64
	cid   cid.Cid
}

// forget deletes response blobs and challenge bookkeeping of rounds whose
// challenge window has closed (responses are due by the end of the round
// after the challenged one).
func (x *trainerReplay) forget(r uint64) {
	for k, cs := range x.served {
		if k+3 < r {
			for _, c := range cs {
				_ = x.n.p2p.Store().Delete(c)
			}
			delete(x.served, k)
		}
	}
	for k := range x.seen {
		if k.round+3 < r {
			delete(x.seen, k)
		}
	}
}

// pendingSteps lists the challenged steps waiting for an answer (tests).
func (x *trainerReplay) pendingSteps() []int {
	var out []int
	for _, p := range x.pending {
		out = append(out, p.ch.Step)
	}
	slices.Sort(out)
	return out
}
