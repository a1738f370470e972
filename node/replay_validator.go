package node

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/internal/atomicfile"
	"github.com/trinity-net/trinity/verify/replay"
)

// replayLedgerFile persists a validator's replay.Ledger.
const replayLedgerFile = "replay-ledger.json"

// Bounds of the validator's replay bookkeeping.
const (
	replayHistoryRounds = 64   // rounds of announced commitments kept per trainer (carry links)
	replayMaxOpen       = 1024 // challenges open at once
	replayMaxLog        = 8192 // records kept for ReplayLog
)

// validatorReplay is the validator's side of proof of training work. When a
// round's manifest arrives, it derives from the manifest's hash (the beacon,
// which no trainer knew when committing) whom to challenge at which steps,
// publishes the challenges, waits for each trainer's response until the end
// of the next round, fetches it (at most replay.MaxResponseSize bytes, one
// at a time, so at most two responses are in memory: one fetched, one being
// checked), and checks it as a compute job in the round's slack: before the
// announcement deadline with room for a whole check, or after the round's
// manifest. Failures (including silence) go into the ledger, are published
// as verdicts that every validator records, zero the trainer's smoothed
// score, and keep its contributions out of manifests while the ledger
// excludes it.
type validatorReplay struct {
	n      *Node
	v      *validatorRole
	policy replay.Policy
	ledger *replay.Ledger
	ck     *replay.Checker // made by the first check job, then owned by check jobs

	// Owned by the loop goroutine.
	anns     map[peer.ID]map[uint64]replay.Commitment // announced commitments, recent rounds
	open     []*openChallenge
	globals  map[uint64][]float32 // theta_r of rounds with open challenges
	fetching bool
	checkDur time.Duration // how long the last check took: the slack the next needs

	mu  sync.Mutex
	log []ReplayRecord
}

// openChallenge is one challenged step on its way to a verdict.
type openChallenge struct {
	ch       replay.Challenge
	blob     []byte           // the trainer's contribution
	due      time.Time        // its response must be announced by then
	msg      *ReplayChallenge // shared by the steps of one trainer's challenge
	repeated bool             // msg was published a second time
	resp     *ReplayResponse
	data     []byte // the fetched response
	stage    challengeStage
}

type challengeStage int

const (
	stageWaiting   challengeStage = iota // for the trainer's response message
	stageAnnounced                       // response named, not fetched yet
	stageFetching
	stageFetched
	stageChecking
	stageDone
)

// ReplayRecord is one event of a validator's replay work, for experiments
// and status: the gauntlet's verdict on a contribution (Kind "gauntlet"),
// a challenge issued ("challenge"), its outcome ("pass", "fail"), a verdict
// heard from another validator ("verdict") and a contribution kept out of
// the manifest ("excluded").
type ReplayRecord struct {
	Kind    string
	Round   uint64
	Trainer peer.ID
	Step    int
	Score   float64 // gauntlet
	OK      bool    // gauntlet
	Reason  string
	Took    time.Duration // pass/fail: the check's duration
	Bytes   int           // pass/fail: the response's size
}

func newValidatorReplay(v *validatorRole) (*validatorReplay, error) {
	n := v.n
	p := n.gen.Params.Replay
	if p == nil {
		return nil, nil
	}
	l, err := replay.NewLedger(p.penalty())
	if err != nil {
		return nil, err
	}
	if b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, replayLedgerFile)); err == nil {
		if err := json.Unmarshal(b, l); err != nil {
			n.log.Warn("replay: ignoring an unreadable ledger", "err", err)
			l, _ = replay.NewLedger(p.penalty())
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		n.log.Warn("replay: ignoring an unreadable ledger", "err", err)
	}
	return &validatorReplay{n: n, v: v, policy: p.policy(), ledger: l,
		anns: map[peer.ID]map[uint64]replay.Commitment{}, globals: map[uint64][]float32{}}, nil
}

// note appends to the record log (bounded).
func (x *validatorReplay) note(r ReplayRecord) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.log = append(x.log, r)
	if len(x.log) > replayMaxLog {
		x.log = slices.Delete(x.log, 0, len(x.log)-replayMaxLog)
	}
}

// ReplayLog returns a copy of a validator's replay records (nil for a
// trainer or a network without replay). Safe from any goroutine.
func (n *Node) ReplayLog() []ReplayRecord {
	if n.va == nil || n.va.replay == nil {
		return nil
	}
	x := n.va.replay
	x.mu.Lock()
	defer x.mu.Unlock()
	return slices.Clone(x.log)
}

// noteAnnouncement remembers a trainer's commitment, for the carry link of
// its later rounds. Every decoded announcement counts, even a late one.
func (x *validatorReplay) noteAnnouncement(from peer.ID, a *Announcement) {
	if x == nil || a.Replay == "" {
		return
	}
	c, err := a.commitment()
	if err != nil {
		return
	}
	m := x.anns[from]
	if m == nil {
		m = map[uint64]replay.Commitment{}
		x.anns[from] = m
	}
	m[a.Round] = c
	for k := range m {
		if k+replayHistoryRounds < a.Round {
			delete(m, k)
		}
	}
}

// prevFor is the commitment a trainer's round must continue: the latest one
// it announced in [ReplayPrev, r), so a trainer that names an older round
// than its latest fails the link; the reset state when it names none; nil
// (link not checked) when this validator saw no announcement in that range
// (it joined later, or missed it: never a false accusation).
func (x *validatorReplay) prevFor(p peer.ID, a *Announcement) *replay.Commitment {
	if a.ReplayPrev == nil {
		return replay.ResetCommitment(x.n.ch.NumParams)
	}
	var best *replay.Commitment
	var bestRound uint64
	for k, c := range x.anns[p] {
		if k >= *a.ReplayPrev && k < a.Round && (best == nil || k > bestRound) {
			c := c
			best, bestRound = &c, k
		}
	}
	return best
}

// excluded reports whether trainer p's contribution to round r must get
// score zero and stay out of the manifest: the ledger excludes it, or, on a
// network with replay, it came without a usable commitment.
func (v *validatorRole) replayExcluded(p peer.ID, r uint64) bool {
	x := v.replay
	if x == nil {
		return false
	}
	if x.ledger.Excluded(p.String(), r) {
		return true
	}
	a := v.round(r).anns[p]
	if a == nil {
		return false
	}
	c, err := a.commitment()
	return err != nil || c.Steps != v.n.gen.Params.InnerSteps
}

// adjust records the gauntlet's verdict on e and zeroes it when replay
// excludes the trainer (publishScores, before smoothing).
func (x *validatorReplay) adjust(r uint64, p peer.ID, e ScoreEntry) ScoreEntry {
	if x == nil {
		return e
	}
	x.note(ReplayRecord{Kind: "gauntlet", Round: r, Trainer: p, Score: e.Score, OK: e.OK, Reason: e.Reason})
	if x.v.replayExcluded(p, r) {
		x.note(ReplayRecord{Kind: "excluded", Round: r, Trainer: p})
		e.OK, e.Score = false, 0
		e.Reason = "replay: excluded (failed or unanswered challenge, or no commitment)"
	}
	return e
}

// onManifest issues this validator's challenges for the manifest's round.
// The beacon is the hash of the manifest's envelope: fixed after every
// commitment of the round was announced.
func (x *validatorReplay) onManifest(ctx context.Context, mm *manifestMsg) {
	if x == nil {
		return
	}
	n := x.n
	r := mm.m.Round
	vr := x.v.rounds[r]
	if vr == nil || n.hash != mm.m.Base {
		return // we do not hold theta_r: nothing to check against
	}
	beacon := sha256.Sum256(mm.raw)
	peers := make([]peer.ID, 0, len(vr.anns))
	for p := range vr.anns {
		peers = append(peers, p)
	}
	slices.Sort(peers)
	due := n.clock.RoundStart(r + 2)
	var opened bool
	for _, p := range peers {
		a, blob := vr.anns[p], vr.blobs[p]
		c, err := a.commitment()
		if err != nil || blob == nil || a.Base != mm.m.Base || len(x.open) >= replayMaxOpen {
			continue
		}
		chs, err := replay.Derive(beacon[:], r, n.p2p.ID().String(), p.String(), c, x.ledger.PolicyFor(x.policy, p.String(), r))
		if err != nil || len(chs) == 0 {
			continue
		}
		prev := x.prevFor(p, a)
		msg := &ReplayChallenge{V: WireVersion, Round: r, Trainer: p.String(), Beacon: beacon}
		for _, ch := range chs {
			ch.Prev = prev
			x.open = append(x.open, &openChallenge{ch: ch, blob: blob, due: due, msg: msg})
			msg.Steps = append(msg.Steps, ch.Step)
			x.note(ReplayRecord{Kind: "challenge", Round: r, Trainer: p, Step: ch.Step})
		}
		opened = true
		n.spawn(func() { n.publish(ctx, TopicReplayChallenge, r, msg) })
		n.log.Debug("replay: challenged", "round", r, "trainer", p, "steps", msg.Steps)
	}
	if opened {
		x.globals[r] = slices.Clone(n.global.Params)
	}
}

// onResponse files a trainer's answer to one of our challenges.
func (x *validatorReplay) onResponse(from peer.ID, m *ReplayResponse) {
	if m.Validator != x.n.p2p.ID().String() {
		return
	}
	for _, oc := range x.open {
		if oc.stage == stageWaiting && oc.ch.Round == m.Round && oc.ch.Step == m.Step && oc.ch.Trainer == from.String() {
			if limit := int64(replay.MaxResponseSize(x.n.ch.NumParams)); m.Size > limit {
				x.fail(oc, &replay.Failure{Reason: replay.Malformed, Trainer: oc.ch.Trainer, Round: oc.ch.Round, Step: oc.ch.Step,
					Err: fmt.Errorf("%w: announced response of %d bytes exceeds %d", replay.ErrOversized, m.Size, limit)})
				return
			}
			oc.resp, oc.stage = m, stageAnnounced
			return
		}
	}
}

// onVerdict records another validator's verdict.
func (x *validatorReplay) onVerdict(from peer.ID, m *ReplayVerdict) {
	if from == x.n.p2p.ID() {
		return
	}
	x.note(ReplayRecord{Kind: "verdict", Round: m.Round, Trainer: peer.ID(m.Trainer), Step: m.Step, Reason: m.Reason})
	x.penalise(m.Trainer, m.Round)
}

// penalise applies a failure to the ledger and the score book, and persists
// the ledger.
func (x *validatorReplay) penalise(trainer string, r uint64) {
	x.ledger.Fail(trainer, r)
	x.v.zeroStanding(trainer)
	b, err := json.Marshal(x.ledger)
	if err == nil {
		err = atomicfile.WriteFile(filepath.Join(x.n.cfg.DataDir, replayLedgerFile), b)
	}
	if err != nil {
		x.n.log.Error("replay: saving the ledger", "err", err)
	}
}

// fail concludes a challenge against the trainer and tells the other
// validators.
func (x *validatorReplay) fail(oc *openChallenge, f *replay.Failure) { x.failCheck(oc, f, 0, 0) }

// failCheck is fail, recording how long the check took on how many bytes.
func (x *validatorReplay) failCheck(oc *openChallenge, f *replay.Failure, took time.Duration, size int) {
	n := x.n
	oc.stage, oc.data = stageDone, nil
	p, _ := peer.Decode(oc.ch.Trainer)
	reason := f.Reason.String()
	x.note(ReplayRecord{Kind: "fail", Round: oc.ch.Round, Trainer: p, Step: oc.ch.Step, Reason: reason, Took: took, Bytes: size})
	n.log.Warn("replay: trainer failed its challenge", "round", oc.ch.Round, "trainer", oc.ch.Trainer, "step", oc.ch.Step, "reason", reason, "err", f.Err)
	x.penalise(oc.ch.Trainer, oc.ch.Round)
	msg := &ReplayVerdict{V: WireVersion, Round: oc.ch.Round, Trainer: oc.ch.Trainer, Step: oc.ch.Step, Reason: reason}
	n.spawn(func() { n.publish(context.Background(), TopicReplayVerdict, oc.ch.Round, msg) })
}

// tick expires silent trainers, fetches the next response and starts a
// check when the round has slack. It returns when it next needs a look.
func (x *validatorReplay) tick(ctx context.Context, now time.Time, r uint64) time.Time {
	if x == nil {
		return time.Time{}
	}
	n := x.n
	wake := n.clock.RoundStart(r + 1)
	var fetched, next *openChallenge
	again := map[*ReplayChallenge]bool{}
	for _, oc := range x.open {
		switch oc.stage {
		case stageWaiting:
			// Gossip is not stored: a trainer that was restarting when the
			// challenge went out hears it again early in the next round.
			if at := n.clock.RoundStart(oc.ch.Round + 1).Add(n.clock.Length / 5); !now.Before(at) && !oc.repeated {
				again[oc.msg] = true
			} else if at.After(now) && at.Before(wake) {
				wake = at
			}
			if now.After(oc.due) {
				x.fail(oc, replay.NoResponse(oc.ch, fmt.Errorf("no response by %v", oc.due.Format(time.TimeOnly))))
			} else if oc.due.Before(wake) {
				wake = oc.due
			}
		case stageAnnounced:
			if next == nil {
				next = oc
			}
		case stageFetched:
			if fetched == nil {
				fetched = oc
			}
		}
	}
	for _, oc := range x.open {
		if again[oc.msg] {
			oc.repeated = true
		}
	}
	for m := range again {
		n.spawn(func() { n.publish(ctx, TopicReplayChallenge, m.Round, m) })
	}
	if next != nil && !x.fetching && fetched == nil {
		x.fetch(ctx, next)
	}
	if fetched != nil && x.slack(now, r) {
		x.check(ctx, fetched)
	}
	x.gc(r)
	return wake
}

// slack reports whether a check may start now without making the
// validator late for scoring or the manifest: the node is idle with nothing
// to score, and either the whole check fits before the announcement
// deadline or the round's manifest is out.
func (x *validatorReplay) slack(now time.Time, r uint64) bool {
	n := x.n
	if n.busy != "" || n.catching || len(n.pending) > 0 || len(x.v.round(r).queue) > 0 {
		return false
	}
	est := max(x.checkDur*3/2, 50*time.Millisecond)
	return now.Add(est).Before(n.clock.AnnounceBy(r)) || n.seenMan[r] || x.v.round(r).manifest && !now.Before(n.clock.ManifestAt(r, x.v.rank))
}

// fetch gets a response blob from its trainer, bounded in size and time.
func (x *validatorReplay) fetch(ctx context.Context, oc *openChallenge) {
	n := x.n
	x.fetching, oc.stage = true, stageFetching
	limit := int64(replay.MaxResponseSize(n.ch.NumParams))
	from, _ := peer.Decode(oc.ch.Trainer)
	m := oc.resp
	n.spawn(func() {
		b, err := n.fetchBlob(ctx, m.CID, m.Round, limit, from)
		if err == nil {
			// Checked once, never served: keep it out of the store.
			if c, perr := parseCID(m.CID); perr == nil {
				_ = n.p2p.Store().Delete(c)
			}
		}
		n.post(ctx, func() {
			x.fetching = false
			if oc.stage != stageFetching {
				return
			}
			if err != nil {
				x.fail(oc, replay.NoResponse(oc.ch, fmt.Errorf("response %s not served: %w", m.CID, err)))
				return
			}
			oc.data, oc.stage = b, stageFetched
		})
	})
}

// check runs Checker.Check on a fetched response as a compute job.
func (x *validatorReplay) check(ctx context.Context, oc *openChallenge) {
	n := x.n
	global := x.globals[oc.ch.Round]
	oc.stage = stageChecking
	data := oc.data
	n.startJob(ctx, "replay-check", func(ctx context.Context) func() {
		t0 := time.Now()
		var err error
		if x.ck == nil {
			x.ck, err = replay.NewChecker(n.eng, n.replaySpec())
		}
		if err == nil {
			err = x.ck.Check(ctx, oc.ch, data, global, oc.blob)
		}
		took := time.Since(t0)
		n.metrics.observe(phaseReplayCheck, took)
		return func() {
			x.checkDur = took
			p, _ := peer.Decode(oc.ch.Trainer)
			var f *replay.Failure
			switch {
			case err == nil:
				oc.stage, oc.data = stageDone, nil
				x.note(ReplayRecord{Kind: "pass", Round: oc.ch.Round, Trainer: p, Step: oc.ch.Step, Took: took, Bytes: len(data)})
				n.log.Debug("replay: challenge passed", "round", oc.ch.Round, "trainer", p, "step", oc.ch.Step, "took", took)
			case errors.As(err, &f):
				x.failCheck(oc, f, took, len(data))
			default:
				// Our own problem (cancelled, out of memory): no verdict.
				oc.stage, oc.data = stageDone, nil
				if ctx.Err() == nil {
					n.log.Warn("replay: could not check a response", "round", oc.ch.Round, "trainer", p, "err", err)
				}
			}
		}
	})
}

// gc drops concluded challenges, those too old to matter, and the global
// states no open challenge needs.
func (x *validatorReplay) gc(r uint64) {
	x.open = slices.DeleteFunc(x.open, func(oc *openChallenge) bool {
		stale := oc.ch.Round+4 < r && oc.stage != stageChecking && oc.stage != stageFetching
		return oc.stage == stageDone || stale
	})
	need := map[uint64]bool{}
	for _, oc := range x.open {
		need[oc.ch.Round] = true
	}
	for k := range x.globals {
		if !need[k] {
			delete(x.globals, k)
		}
	}
	for p, m := range x.anns {
		for k := range m {
			if k+replayHistoryRounds < r {
				delete(m, k)
			}
		}
		if len(m) == 0 {
			delete(x.anns, p)
		}
	}
	if r > uint64(replayHistoryRounds) {
		x.ledger.Forget(r - uint64(replayHistoryRounds))
	}
}
