package node

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify"
)

// validatorRole fetches and scores the round's contributions, publishes
// scores and, when it leads, the manifest.
type validatorRole struct {
	n      *Node
	rank   int
	eval   *model.GPT
	dense  []float32
	comp   *optimizer.Compressed
	book   *scoreBook
	rounds map[uint64]*valRound
	params verify.Params
	policy verify.Policy
	screen verify.Screen
	replay *validatorReplay // nil: the network does not use replay
}

// valRound is one round's work.
type valRound struct {
	anns      map[peer.ID]*Announcement
	order     map[peer.ID]int // arrival order of the announcements
	extra     map[peer.ID]int // further announcements with other CIDs (equivocation)
	blobs     map[peer.ID][]byte
	fetching  map[peer.ID]bool
	queue     []peer.ID // fetched, to score
	results   map[peer.ID]ScoreEntry
	outcome   map[peer.ID]verify.Outcome
	decoded   map[peer.ID]checked    // passed this validator's checks (verify.Check; in the RL stage, the batch check)
	vectors   map[peer.ID]heldScores // validators' signed score vectors, own included
	ref       *verify.Reference      // the round's random batch and its loss at refBase
	refBase   Hash
	sampled   bool
	published bool // scores
	manifest  bool // published by us
}

func newValidatorRole(n *Node) (*validatorRole, error) {
	eval, err := model.New(n.gen.Model, n.eng)
	if err != nil {
		return nil, err
	}
	book, err := loadScores(n.cfg.DataDir)
	if err != nil {
		n.log.Warn("ignoring unreadable score history", "err", err)
		book = &scoreBook{Standing: map[string]*verify.Standing{}}
	}
	hp := n.gen.Params
	v := &validatorRole{n: n, rank: n.gen.ValidatorRank(n.p2p.ID()), eval: eval,
		dense: make([]float32, n.ch.NumParams), comp: n.ch.NewCompressed(), book: book, rounds: map[uint64]*valRound{},
		params: hp.gauntletParams(),
		policy: verify.DefaultPolicy(hp.ScoreAlpha), screen: verify.DefaultScreen()}
	if v.replay, err = newValidatorReplay(v); err != nil {
		return nil, err
	}
	return v, nil
}

func (v *validatorRole) round(r uint64) *valRound {
	vr := v.rounds[r]
	if vr == nil {
		vr = &valRound{anns: map[peer.ID]*Announcement{}, order: map[peer.ID]int{}, extra: map[peer.ID]int{},
			blobs: map[peer.ID][]byte{}, fetching: map[peer.ID]bool{}, results: map[peer.ID]ScoreEntry{},
			outcome: map[peer.ID]verify.Outcome{}, decoded: map[peer.ID]checked{}, vectors: map[peer.ID]heldScores{}}
		v.rounds[r] = vr
	}
	return vr
}

// onAnnouncement records a trainer's claim for the current round and, unless
// the round samples at its deadline, fetches the blob at once.
func (v *validatorRole) onAnnouncement(ctx context.Context, from peer.ID, a *Announcement) {
	n := v.n
	now := time.Now()
	v.replay.noteAnnouncement(from, a)
	if a.Round != n.clock.Round(now) || now.After(n.clock.AnnounceBy(a.Round)) {
		return // late or early: not waited for
	}
	vr := v.round(a.Round)
	if prev, dup := vr.anns[from]; dup {
		if prev.CID != a.CID {
			vr.extra[from]++
		}
		return
	}
	vr.anns[from] = a
	vr.order[from] = len(vr.order)
	if st := v.book.Standing[from.String()]; st != nil && st.Banned(a.Round) {
		v.verdict(vr, from, fmt.Sprintf("banned until round %d", st.BannedUntil), verify.Missed)
		return
	}
	if n.gen.Params.SampleSize == 0 {
		v.fetch(ctx, a.Round, from)
	}
}

func (v *validatorRole) fetch(ctx context.Context, r uint64, p peer.ID) {
	n := v.n
	vr := v.round(r)
	a := vr.anns[p]
	if vr.fetching[p] || a == nil {
		return
	}
	vr.fetching[p] = true
	if _, done := vr.results[p]; done {
		return // banned
	}
	if a.Size > n.maxBlob() {
		v.verdict(vr, p, fmt.Sprintf("announced size %d exceeds the codec's bound %d", a.Size, n.maxBlob()), verify.Failed)
		return
	}
	n.spawn(func() {
		t0 := time.Now()
		b, err := n.fetchBlob(ctx, a.CID, r, n.maxBlob(), p)
		n.metrics.observe(phaseFetch, time.Since(t0))
		n.post(ctx, func() {
			if err != nil {
				n.log.Warn("fetching contribution", "trainer", p, "round", r, "err", err)
				v.verdict(vr, p, reasonNotServed, verify.Missed)
				return
			}
			c, _ := parseCID(a.CID)
			n.emit(Event{Kind: EventFetched, Round: r, Other: p, Bytes: int64(len(b)), CID: c})
			vr.blobs[p] = b
			vr.queue = append(vr.queue, p)
		})
	})
}

// tick samples at the announcement deadline, scores fetched blobs, and
// publishes scores and the manifest on time.
func (v *validatorRole) tick(ctx context.Context, now time.Time, r uint64) time.Time {
	n := v.n
	c := n.clock
	for k := range v.rounds {
		if k+2 < r {
			delete(v.rounds, k)
		}
	}
	vr := v.round(r)
	if !now.Before(c.AnnounceBy(r)) && !vr.sampled && n.gen.Params.SampleSize > 0 {
		vr.sampled = true
		for _, p := range v.sample(r, vr) {
			v.fetch(ctx, r, p)
		}
	}
	if len(vr.queue) > 0 && n.busy == "" && !n.catching && now.Before(c.ScoreAt(r)) {
		v.scoreNext(ctx, r, vr)
	}
	if !now.Before(c.ScoreAt(r)) && !vr.published && n.busy != "score" {
		vr.published = true
		v.screenRound(r, vr)
		v.publishScores(ctx, r, vr)
	}
	at, wait := v.manifestAt(now, r, vr)
	// A validator that may be stale publishes later, or not at all.
	if slot, may := n.leadSlot(r, v.rank); !may || slot.After(at) {
		at, wait = slot, false
	}
	if !now.Before(at) && !wait && vr.published && !vr.manifest && !n.seenMan[r] && n.busy == "" && !n.catching && len(n.pending) == 0 {
		vr.manifest = true
		v.composeManifest(ctx, r, vr)
	}
	switch {
	case now.Before(c.AnnounceBy(r)):
		return c.AnnounceBy(r)
	case now.Before(c.ScoreAt(r)):
		return c.ScoreAt(r)
	case now.Before(at):
		return at
	}
	return c.RoundStart(r + 1)
}

// sample picks SampleSize trainers by a hash of (validator, round, trainer):
// unpredictable to trainers before the round, reproducible afterwards.
func (v *validatorRole) sample(r uint64, vr *valRound) []peer.ID {
	type kv struct {
		p peer.ID
		k [32]byte
	}
	var all []kv
	for p := range vr.anns {
		h := sha256.New()
		h.Write([]byte(v.n.p2p.ID()))
		binary.Write(h, binary.LittleEndian, r)
		h.Write([]byte(p))
		var k [32]byte
		h.Sum(k[:0])
		all = append(all, kv{p, k})
	}
	slices.SortFunc(all, func(a, b kv) int { return bytes.Compare(a.k[:], b.k[:]) })
	out := make([]peer.ID, 0, v.n.gen.Params.SampleSize)
	for i := 0; i < len(all) && i < v.n.gen.Params.SampleSize; i++ {
		out = append(out, all[i].p)
	}
	return out
}

// scoreNext runs the gauntlet on the next fetched blob.
func (v *validatorRole) scoreNext(ctx context.Context, r uint64, vr *valRound) {
	n := v.n
	if n.rl != nil {
		n.rl.scoreNext(ctx, vr, r)
		return
	}
	p := vr.queue[0]
	vr.queue = vr.queue[1:]
	a, blob := vr.anns[p], vr.blobs[p]
	base := n.hash
	copy(n.work.Params, n.global.Params) // base state, read by the job
	own := v.ownBatch(r, p)
	ref := vr.ref
	if ref != nil && vr.refBase != base {
		ref = nil
	}
	n.startJob(ctx, "score", func(ctx context.Context) func() {
		t0 := time.Now()
		var e ScoreEntry
		var dec checked
		var outcome verify.Outcome
		if ref == nil {
			if rr, err := verify.NewReference(v.eval, n.work.Params, v.randomBatch(r)); err != nil {
				e, outcome = ScoreEntry{Trainer: p.String(), CID: a.CID, Reason: err.Error()}, verify.Missed
			} else {
				ref = &rr
			}
		}
		if ref != nil {
			e, dec, outcome = v.scoreBlob(p, a, blob, r, base, own, *ref)
		}
		n.metrics.observe(phaseValidate, time.Since(t0))
		return func() {
			if len(e.Reason) > maxReasonLen {
				e.Reason = e.Reason[:maxReasonLen]
			}
			vr.results[p], vr.outcome[p] = e, outcome
			if ref != nil {
				vr.ref, vr.refBase = ref, base
			}
			if dec.c != nil {
				vr.decoded[p] = dec
			}
			if e.OK {
				n.log.Debug("scored", "round", r, "trainer", p, "score", e.Score, "d_own", e.DOwn, "d_rand", e.DRand)
			} else {
				n.log.Info("contribution rejected", "round", r, "trainer", p, "reason", e.Reason)
			}
		}
	})
}

// gauntletBatch is batches idx of a batcher over pages, as one batch of
// len(idx)*Batch sequences. A page list the dataset cannot serve gives a
// batch of zeros: the validator measures nothing useful, but the same for
// every contribution.
func (v *validatorRole) gauntletBatch(pages []int, idx []int) verify.Batch {
	hp := v.n.gen.Params
	bt, err := data.NewBatcher(v.n.ds.Train, hp.PageSize, pages, hp.Batch, hp.SeqLen)
	per := hp.Batch * hp.SeqLen
	b := verify.Batch{Inputs: make([]int32, len(idx)*per), Targets: make([]int32, len(idx)*per), B: len(idx) * hp.Batch, T: hp.SeqLen}
	if err == nil {
		for j, i := range idx {
			_ = bt.Fill(i, b.Inputs[j*per:(j+1)*per], b.Targets[j*per:(j+1)*per])
		}
	}
	return b
}

// ownBatch is the loss test's batch for trainer p in round r:
// GauntletBatches distinct ones of the H batches the trainer was assigned,
// which ones drawn from this validator's signature of (network, round,
// trainer). Ed25519 signatures are deterministic, so the validator draws the
// same ones every time, and unpredictable without its key, so a trainer
// cannot know which of its batches will be tested and train on only those.
func (v *validatorRole) ownBatch(r uint64, p peer.ID) verify.Batch {
	n := v.n
	hp := n.gen.Params
	msg := fmt.Appendf(nil, "trinity/gauntlet/%s/%d/%s", n.netID, r, p)
	seed := sha256.Sum256(msg)
	if key := n.p2p.Host().Peerstore().PrivKey(n.p2p.ID()); key != nil {
		if sig, err := key.Sign(msg); err == nil {
			seed = sha256.Sum256(sig)
		}
	}
	idx := rand.New(rand.NewChaCha8(seed)).Perm(hp.InnerSteps)[:hp.GauntletBatches]
	return v.gauntletBatch(data.AssignPages(n.gen.WeightSeed, p.String(), r, n.numPages, hp.PagesPerRound), idx)
}

// randomBatch is the loss test's random batch in round r, the same for
// every contribution: the first batch of each of GauntletBatches pages
// assigned to no trainer in particular.
func (v *validatorRole) randomBatch(r uint64) verify.Batch {
	n := v.n
	hp := n.gen.Params
	k := hp.GauntletBatches
	perPage := max(1, hp.PageSize/hp.SeqLen/hp.Batch) // batches in one page
	idx := make([]int, k)
	for j := range idx {
		idx[j] = j * perPage
	}
	return v.gauntletBatch(data.AssignPages(n.gen.WeightSeed, "validator/"+n.p2p.ID().String(), r, n.numPages, k), idx)
}

// publishScores smooths and publishes the round's results.
func (v *validatorRole) publishScores(ctx context.Context, r uint64, vr *valRound) {
	n := v.n
	// Known trainers that announced nothing (or too late) missed the round;
	// those long gone (standing decayed away, no ban or strike for a long
	// time) are forgotten, so the book does not grow without bound.
	for id, st := range v.book.Standing {
		if p, err := peer.Decode(id); err == nil && vr.anns[p] == nil {
			v.record(r, id, verify.Missed, 0)
		}
		if st.Smoothed < 1e-9 && !st.Banned(r+1) && r > st.LastFailed+uint64(v.policy.MaxBan)*4 {
			delete(v.book.Standing, id)
		}
	}
	if len(vr.anns) == 0 {
		return
	}
	s := &Scores{V: WireVersion, Round: r, Base: n.hash}
	for p, a := range vr.anns {
		e, ok := vr.results[p]
		if !ok {
			if n.gen.Params.SampleSize > 0 && !vr.fetching[p] {
				continue // not sampled
			}
			e = ScoreEntry{Trainer: p.String(), CID: a.CID, Reason: reasonNotScored}
			vr.outcome[p] = verify.Missed
		}
		if wasOK := e.OK; wasOK {
			// Replay's own ledger bans for failed challenges; here the
			// round only earns nothing.
			if e = v.replay.adjust(r, p, e); !e.OK {
				vr.outcome[p] = verify.Missed
			}
		} else {
			e = v.replay.adjust(r, p, e)
		}
		if !e.OK {
			e.Score = 0
		}
		e.Smoothed = v.record(r, p.String(), vr.outcome[p], e.Score)
		vr.results[p] = e
		s.Entries = append(s.Entries, e)
	}
	slices.SortFunc(s.Entries, func(a, b ScoreEntry) int { return strings.Compare(a.Trainer, b.Trainer) })
	v.book.History = append(v.book.History, ScoreRoundSummary{Round: r, Scores: s.Entries})
	if len(v.book.History) > maxHistory {
		v.book.History = v.book.History[len(v.book.History)-maxHistory:]
	}
	if err := saveScores(n.cfg.DataDir, v.book); err != nil {
		n.log.Error("saving scores", "err", err)
	}
	n.adv.rewriteScores(s)
	n.spawn(func() { n.publish(ctx, p2p.TopicScore, r, s) })
	n.emit(Event{Kind: EventScored, Round: r, Count: len(s.Entries)})
}

// onScores records a validator's signed scores (its own too, as gossip
// delivers them back: a manifest embeds the signed vector).
func (v *validatorRole) onScores(env *p2p.Envelope, s *Scores) {
	if s.Base != v.n.hash || v.n.gen.ValidatorRank(env.Sender) < 0 {
		return
	}
	v.round(s.Round).vectors[env.Sender] = heldScores{s: s, env: env}
}

// composeManifest chooses the round's contributions, computes the state
// they lead to, and publishes the manifest.
func (v *validatorRole) composeManifest(ctx context.Context, r uint64, vr *valRound) {
	n := v.n
	chosen, vecs := v.choose(r, vr)
	chosen, vecs = n.adv.rewriteComposition(r, vr, chosen, vecs)
	m := &Manifest{V: WireVersion, Round: r, Base: n.hash, Checkpoint: n.checkpoint, Scores: vecs}
	if n.lastMan.Defined() {
		m.Prev = n.lastMan.String()
	}
	blobs := make([][]byte, 0, len(chosen))
	for _, p := range chosen {
		m.Contributions = append(m.Contributions, Contribution{Peer: p.String(), CID: vr.anns[p].CID})
		blobs = append(blobs, vr.blobs[p])
	}
	if n.rl != nil {
		n.rl.composeManifest(ctx, m, blobs)
		return
	}
	copy(n.work.Params, n.global.Params)
	n.startJob(ctx, "manifest", func(ctx context.Context) func() {
		m.Result = m.Base
		if len(blobs) > 0 {
			upd := make([]float32, n.ch.NumParams)
			if _, err := n.ch.Aggregate(upd, blobs, r, optimizer.WithNormClip(n.gen.Params.NormClip)); err != nil {
				n.log.Error("aggregating the manifest", "round", r, "err", err)
				return nil
			}
			if err := optimizer.OuterStep(n.work.Params, upd, n.gen.Params.OuterLR); err != nil {
				return nil
			}
			m.Result = Hash(n.work.StateHash())
		}
		n.publish(ctx, p2p.TopicManifest, r, m)
		return func() {
			n.log.Info("manifest published", "round", r, "contributions", len(m.Contributions), "result", m.Result.Short())
			n.emit(Event{Kind: EventManifest, Round: r, Count: len(m.Contributions), Hash: m.Result})
		}
	})
}

// scoresSnapshot copies the smoothed scores for the status endpoint.
func (v *validatorRole) scoresSnapshot() map[string]float64 {
	out := make(map[string]float64, len(v.book.Standing))
	for k, s := range v.book.Standing {
		if !math.IsNaN(s.Smoothed) {
			out[k] = s.Smoothed
		}
	}
	return out
}
