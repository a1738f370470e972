package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/p2p"
)

// Role is what a peer does in the round protocol. Every role holds the
// global state and applies manifests.
type Role string

// Roles.
const (
	RoleTrainer   Role = "trainer"
	RoleValidator Role = "validator"
)

// Config is the plain-data configuration of a Node.
type Config struct {
	Genesis     *Genesis
	Role        Role
	DataDir     string    // identity, state, blobs, scores
	ListenAddrs []string  // default: TCP and QUIC on port 4001
	Bootstrap   []string  // default: the genesis's
	MDNS        bool      // LAN discovery
	Threads     int       // compute threads; 0: all cores
	DataBaseDir string    // base of relative dataset paths; default "."
	Adversary   Adversary // a misbehaviour to play (tests and experiments); "" is honest
}

// Option configures what is not plain data.
type Option func(*options) error

type options struct {
	log     *slog.Logger
	key     crypto.PrivKey
	ds      *data.Dataset
	eng     *tensor.Engine
	p2pMod  func(*p2p.Config)
	observe func(Event)
	// attestCompute: see WithComputeAttestation (compute_attester.go).
	attestCompute *computeAttestConfig
}

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) error { o.log = l; return nil } }

// WithIdentity uses key as the peer identity instead of DataDir/identity.key
// (a validator's key must be the one the genesis lists).
func WithIdentity(k crypto.PrivKey) Option { return func(o *options) error { o.key = k; return nil } }

// WithDataset supplies the dataset already loaded (it must be the genesis's:
// in-process testnets share one copy).
func WithDataset(ds *data.Dataset) Option { return func(o *options) error { o.ds = ds; return nil } }

// WithEngine runs the model on e, which the caller keeps ownership of.
func WithEngine(e *tensor.Engine) Option { return func(o *options) error { o.eng = e; return nil } }

// WithP2PConfig edits the p2p configuration before the host starts.
func WithP2PConfig(f func(*p2p.Config)) Option {
	return func(o *options) error { o.p2pMod = f; return nil }
}

// WithObserver receives the node's events, on the node's own goroutine:
// it must return quickly.
func WithObserver(f func(Event)) Option { return func(o *options) error { o.observe = f; return nil } }

// Event reports something that happened to a node, for harnesses and tests.
type Event struct {
	Kind    EventKind
	Peer    peer.ID
	Round   uint64
	Hash    Hash    // state after the event (applied, caught-up)
	ValLoss float32 // validators, after applied; NaN otherwise
	Loss    float32 // trainers: mean inner loss (announced)
	Count   int     // contributions applied, or scored
	Bytes   int64   // blob size (announced, fetched)
	Other   peer.ID // fetched: the trainer whose blob it was; applied, rejected: the manifest's signer
	CID     cid.Cid // announced, fetched: the blob; applied, rejected: the manifest
}

// EventKind names an Event.
type EventKind string

// Event kinds.
const (
	EventApplied    EventKind = "applied"    // a manifest was applied
	EventCaughtUp   EventKind = "caught-up"  // state restored from the chain/checkpoint
	EventAnnounced  EventKind = "announced"  // a trainer announced its blob
	EventMissed     EventKind = "missed"     // a trainer missed a round's window
	EventFetched    EventKind = "fetched"    // a validator fetched a trainer's blob
	EventScored     EventKind = "scored"     // a validator published scores
	EventManifest   EventKind = "manifest"   // a validator published a manifest
	EventDiverged   EventKind = "diverged"   // the state hash did not match a manifest
	EventReorg      EventKind = "reorg"      // switched to a winning branch (fork choice)
	EventRejected   EventKind = "rejected"   // a manifest lost the fork choice
	EventTraffic    EventKind = "traffic"    // a round's libp2p bytes: Bytes in, Count out
	EventCheckpoint EventKind = "checkpoint" // a checkpoint blob was stored
	EventResumed    EventKind = "resumed"    // state loaded from disk at start
)

// Node is one peer of a network: a trainer or a validator. One goroutine
// (Run's) owns the round state; gossip readers and compute or fetch jobs
// report to it through events, and others read the Status snapshot it
// publishes.
type Node struct {
	cfg      Config
	gen      *Genesis
	netID    p2p.NetworkID
	clock    Clock
	log      *slog.Logger
	p2p      *p2p.Node
	eng      *tensor.Engine
	ownEng   bool
	ds       *data.Dataset
	ch       *optimizer.Chunking
	numPages int
	genesis  Hash // hash of theta_0
	observe  func(Event)
	events   chan func()
	status   atomic.Pointer[Status]
	metrics  metrics
	dash     *dashState
	wg       sync.WaitGroup // gossip readers and jobs
	ran      atomic.Bool
	runMu    sync.Mutex         // guards stopRun, runDone: Close stops a running Run
	stopRun  context.CancelFunc //
	runDone  chan struct{}      //

	// Owned by the loop goroutine.
	global     *model.GPT
	work       *model.GPT // scratch for apply/catch-up jobs (the job owns it while busy)
	hash       Hash
	next       uint64  // lowest manifest round not yet applied
	lastMan    cid.Cid // last manifest applied
	checkpoint CheckpointRef
	busy       string // name of the running compute job, "" when idle
	catching   bool
	pending    map[uint64][]*manifestMsg // candidates by round
	seenMan    map[uint64]bool           // rounds with a manifest applied or pending
	seenCID    map[cid.Cid]uint64        // manifests already filed, by round
	view       chainView                 // the applied chain, for the fork choice
	liveSince  time.Time                 // since when the loop has run without stalling
	planned    time.Time                 // when the loop last planned to wake
	quickFetch time.Duration             // how long a contributor gets to serve its blob
	traffic    roundTraffic
	lastLoss   float32
	valLoss    float32
	lastCount  int
	tr         *trainerRole
	va         *validatorRole
	ro         *rolloutRole // RL stage
	rl         *rlStage     // RL stage: task set, theta_0, update
	adv        *adversary   // nil: honest
	val        *data.Batcher
	lastGC     uint64
	resumed    bool // state loaded from disk

	attester *computeAttester // nil unless WithComputeAttestation
}

// New builds a node: it loads or creates the identity, restores the
// persisted state if there is one (else theta_0 from the weight seed), and
// starts the p2p host. Run drives the rounds; Close releases everything.
func New(ctx context.Context, cfg Config, opts ...Option) (_ *Node, err error) {
	o := options{log: slog.Default()}
	for _, f := range opts {
		if err := f(&o); err != nil {
			return nil, err
		}
	}
	g := cfg.Genesis
	if g == nil {
		return nil, errors.New("node: config has no genesis")
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	if cfg.Role != RoleTrainer && cfg.Role != RoleValidator && cfg.Role != RoleRollout {
		return nil, fmt.Errorf("node: unknown role %q", cfg.Role)
	}
	if cfg.DataDir == "" {
		return nil, errors.New("node: config has no data directory")
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("node: creating data directory: %w", err)
	}
	id, err := g.ID()
	if err != nil {
		return nil, err
	}
	n := &Node{cfg: cfg, gen: g, netID: id, clock: NewClock(g), log: o.log, observe: o.observe,
		events: make(chan func(), 256), pending: map[uint64][]*manifestMsg{}, seenMan: map[uint64]bool{}, seenCID: map[cid.Cid]uint64{},
		lastLoss: float32(math.NaN()), valLoss: float32(math.NaN()), dash: newDashState()}
	o.log = n.dash.errs.wrap(o.log, cfg.DataDir)
	n.log = o.log
	defer func() {
		if err != nil {
			_ = n.Close()
		}
	}()
	if o.eng != nil {
		n.eng = o.eng
	} else {
		var eopts []tensor.Option
		if cfg.Threads > 0 {
			eopts = append(eopts, tensor.WithThreads(cfg.Threads))
		}
		if n.eng, err = tensor.New(eopts...); err != nil {
			return nil, err
		}
		n.ownEng = true
	}
	n.ds = o.ds
	if n.ds == nil {
		base := cfg.DataBaseDir
		if base == "" {
			base = "."
		}
		if n.ds, err = data.Load(ctx, g.Data, g.Model.Vocab, base); err != nil {
			return nil, fmt.Errorf("node: loading the genesis dataset: %w", err)
		}
	}
	hp := g.Params
	n.numPages = data.NumPages(len(n.ds.Train), hp.PageSize)
	if n.numPages < 1 {
		return nil, fmt.Errorf("node: dataset of %d training tokens is shorter than one page of %d", len(n.ds.Train), hp.PageSize)
	}
	if n.val, err = data.NewValidationBatcher(n.ds.Val, hp.Batch, hp.SeqLen, hp.EvalBatches); err != nil {
		return nil, fmt.Errorf("node: validation batches: %w", err)
	}
	if n.ch, err = optimizer.NewChunking(g.Model, hp.ChunkSize, hp.TopK); err != nil {
		return nil, err
	}
	if g.stage() == StageRL {
		if n.rl, err = newRLStage(n, cfg.DataBaseDir); err != nil {
			return nil, err
		}
	}
	if n.global, err = model.New(g.Model, n.eng); err != nil {
		return nil, err
	}
	if n.work, err = model.New(g.Model, n.eng); err != nil {
		return nil, err
	}
	n.initState(n.global)
	n.genesis = n.global.StateHash()
	n.hash = n.genesis
	n.checkpoint = CheckpointRef{Round: 0, Hash: n.genesis}
	st, ok, err := loadState(cfg.DataDir, n.global, id.String())
	if err != nil {
		// A state file that cannot be read is not fatal: the chain and
		// checkpoints rebuild it, so start from genesis and say so.
		n.log.Warn("ignoring unreadable saved state; will catch up from the network", "err", err)
		n.initState(n.global)
	} else if ok {
		n.next, n.lastMan = st.Round, st.Manifest
		n.hash = n.global.StateHash()
		n.resumed = true
	}

	pc := p2p.Config{NetworkID: id, DataDir: cfg.DataDir, ListenAddrs: cfg.ListenAddrs, Bootstrap: cfg.Bootstrap,
		MDNS: cfg.MDNS, DHTMode: p2p.DHTAuto,
		// A peer that died but still looks connected costs one HeaderTimeout
		// before the next provider is asked; a fraction of a round keeps a
		// vanished contributor from stalling everyone's apply phase.
		HeaderTimeout: min(10*time.Second, max(2*time.Second, g.Params.RoundLength()/4)),
		// Every peer fetches every contribution; each one providing each on
		// the DHT made the DHT most of the traffic (N=16: two thirds). The
		// contributor provides its blob, the signer is always asked, and
		// manifests and checkpoints are provided by every peer that stores
		// them (Put).
		DisableProvideFetched: true,
		ExtraTopics:           replayTopics(g)}
	if pc.Bootstrap == nil {
		pc.Bootstrap = g.Bootstrap
	}
	pc.ExtraTopics = append(pc.ExtraTopics, n.stageTopics()...)
	if o.attestCompute != nil {
		pc.ExtraTopics = append(pc.ExtraTopics, TopicCapacity)
	}
	if o.p2pMod != nil {
		o.p2pMod(&pc)
	}
	popts := []p2p.Option{p2p.WithLogger(o.log), p2p.WithRoundWindow(n.roundWindow)}
	if o.key != nil {
		popts = append(popts, p2p.WithIdentity(o.key))
	}
	if n.p2p, err = p2p.New(ctx, pc, popts...); err != nil {
		return nil, err
	}
	// A tenth of a round: a live contributor serves a blob in milliseconds.
	n.quickFetch = min(pc.HeaderTimeout, max(500*time.Millisecond, g.Params.RoundLength()/10))
	n.view = loadView(n.p2p.Store(), g, n.lastMan)
	n.log = o.log.With("peer", n.p2p.ID().String(), "role", string(cfg.Role))
	// Before the roles: they may depend on the mode (replay's recorder).
	if cfg.Adversary != "" {
		if n.adv, err = newAdversary(n, cfg.Adversary); err != nil {
			return nil, err
		}
	}
	switch cfg.Role {
	case RoleRollout:
		if n.ro, err = newRolloutRole(n); err != nil {
			return nil, err
		}
	case RoleTrainer:
		if n.rl != nil {
			return nil, fmt.Errorf("node: role %q on a network of stage %q (use %q)", RoleTrainer, StageRL, RoleRollout)
		}
		if n.tr, err = newTrainerRole(n); err != nil {
			return nil, err
		}
	case RoleValidator:
		if g.ValidatorRank(n.p2p.ID()) < 0 {
			return nil, fmt.Errorf("node: peer %s is not in the genesis validator set (use the validator's key)", n.p2p.ID())
		}
		if n.va, err = newValidatorRole(n); err != nil {
			return nil, err
		}
	}
	if ok {
		n.log.Info("resumed saved state", "next_round", n.next, "state", n.hash.Short())
	}
	if o.attestCompute != nil {
		if n.attester, err = n.newComputeAttester(o.attestCompute, o.key); err != nil {
			return nil, err
		}
	}
	n.publishStatus()
	return n, nil
}

// roundWindow accepts gossip of the previous two rounds up to the next one:
// late messages of a round that is over are useless, early ones allow for
// small clock differences.
func (n *Node) roundWindow() (lo, hi uint64) {
	r := n.clock.Round(time.Now())
	if r >= 2 {
		lo = r - 2
	}
	return lo, r + 1
}

// ID is the node's peer ID.
func (n *Node) ID() peer.ID { return n.p2p.ID() }

// P2P exposes the network layer (addresses for tests and the CLI).
func (n *Node) P2P() *p2p.Node { return n.p2p }

// NetworkID is the hash of the genesis.
func (n *Node) NetworkID() p2p.NetworkID { return n.netID }

// Close stops Run if it is running and waits for it, then stops the p2p
// host and releases the engine.
func (n *Node) Close() error {
	n.runMu.Lock()
	stop, done := n.stopRun, n.runDone
	n.runMu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
	var errs []error
	if n.p2p != nil {
		errs = append(errs, n.p2p.Close())
		n.p2p = nil
	}
	if n.ownEng && n.eng != nil {
		n.eng.Close()
		n.eng = nil
	}
	return errors.Join(errs...)
}

// Run drives the round protocol until ctx ends. It returns ctx's error
// after every goroutine it started has stopped.
func (n *Node) Run(ctx context.Context) error {
	if !n.ran.CompareAndSwap(false, true) {
		return errors.New("node: Run called twice")
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	n.runMu.Lock()
	n.stopRun, n.runDone = cancel, done
	n.runMu.Unlock()
	defer close(done)
	defer func() {
		cancel()
		n.wg.Wait()
	}()
	if err := n.registerValidators(); err != nil {
		return err
	}
	for _, t := range append(append(p2p.BuiltinTopics(), replayTopics(n.gen)...), n.stageTopics()...) {
		sub, err := n.p2p.Subscribe(t)
		if err != nil {
			return err
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer sub.Cancel()
			n.readTopic(ctx, sub)
		}()
	}
	if n.attester != nil {
		n.spawn(func() { n.attester.run(ctx) })
	}
	n.log.Info("node running", "network", n.netID.Short(), "state", n.hash.Short(), "next_round", n.next)
	n.adv.start(ctx)
	if n.resumed {
		n.emit(Event{Kind: EventResumed, Round: n.next, Hash: n.hash})
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	n.liveSince = time.Now()
	for {
		now := time.Now()
		n.checkStall(now)
		wake := n.tick(ctx, now)
		n.publishStatus()
		n.planned = wake
		if !wake.After(now) {
			n.planned = now.Add(time.Millisecond)
		}
		timer.Reset(time.Until(n.planned))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case f := <-n.events:
			f()
		case <-timer.C:
		}
	}
}

// post hands f to the loop; it gives up when ctx ends (the loop is gone).
func (n *Node) post(ctx context.Context, f func()) {
	select {
	case n.events <- f:
	case <-ctx.Done():
	}
}

// startJob runs a compute job: work(ctx) runs on its own goroutine and
// returns the closure the loop runs when it is done. One job at a time, so
// the jobs may use the node's scratch model.
func (n *Node) startJob(ctx context.Context, name string, work func(context.Context) func()) {
	n.busy = name
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		done := work(ctx)
		n.post(ctx, func() {
			n.busy = ""
			if done != nil {
				done()
			}
		})
	}()
}

// spawn runs f on a tracked goroutine (fetches, puts).
func (n *Node) spawn(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

func (n *Node) emit(e Event) {
	n.dash.onEvent(e)
	if n.observe == nil {
		return
	}
	e.Peer = n.p2p.ID()
	n.observe(e)
}

// tick advances the state machine at time now and returns when it next
// needs to look again (events wake it earlier).
func (n *Node) tick(ctx context.Context, now time.Time) time.Time {
	r := n.clock.Round(now)
	wake := n.clock.RoundStart(r + 1)
	soon := func(t time.Time) {
		if t.After(now) && t.Before(wake) {
			wake = t
		}
	}
	n.processPending(ctx)
	n.trackTraffic(r)
	if n.tr != nil {
		soon(n.tr.tick(ctx, now, r))
	}
	if n.va != nil {
		soon(n.va.tick(ctx, now, r))
		soon(n.va.replay.tick(ctx, now, r))
	}
	if n.ro != nil {
		soon(n.ro.tick(ctx, now, r))
	}
	n.gcRounds(r)
	return wake
}

// gcRounds forgets per-round bookkeeping and old blobs.
func (n *Node) gcRounds(r uint64) {
	keep := uint64(n.gen.Params.KeepRounds)
	if r <= keep {
		return
	}
	lo := r - keep
	for k := range n.seenMan {
		if k < lo {
			delete(n.seenMan, k)
		}
	}
	for k := range n.pending {
		if k < lo {
			delete(n.pending, k)
		}
	}
	maps.DeleteFunc(n.seenCID, func(_ cid.Cid, k uint64) bool { return k < lo })
	if r%8 == 0 && r != n.lastGC && n.busy == "" {
		n.lastGC = r
		if removed, freed, err := n.p2p.GC(p2p.GCPolicy{BeforeRound: lo}); err == nil && removed > 0 {
			n.log.Debug("blob GC", "removed", removed, "bytes", freed)
		}
	}
}

// registerValidators installs the payload checks that run before gossip is
// delivered or forwarded: malformed payloads, and scores, manifests or
// checkpoints from peers outside the validator set, are rejected.
func (n *Node) registerValidators() error {
	checks := map[p2p.Topic]func(env *p2p.Envelope) error{
		p2p.TopicGradient: ofEnvelopeRound(DecodeAnnouncement),
		p2p.TopicScore:    n.fromValidator(ofEnvelopeRound(DecodeScores)),
		p2p.TopicManifest: n.fromValidator(ofEnvelopeRound(DecodeManifest)),
		// A checkpoint announcement names the round of its state, not its own.
		p2p.TopicCheckpoint: n.fromValidator(func(env *p2p.Envelope) error {
			_, err := DecodeCheckpointAnnouncement(env.Payload)
			return err
		}),
	}
	for _, t := range n.stageTopics() {
		checks[t] = checks[p2p.TopicGradient] // announcements of another kind of blob
	}
	n.replayChecks(checks)
	for t, f := range checks {
		if err := n.p2p.RegisterValidator(t, func(_ context.Context, _ peer.ID, env *p2p.Envelope) error { return f(env) }); err != nil {
			return err
		}
	}
	return nil
}

// fromValidator is a gossip check that admits only genesis validators as
// senders, then runs check.
func (n *Node) fromValidator(check func(*p2p.Envelope) error) func(*p2p.Envelope) error {
	return func(env *p2p.Envelope) error {
		if n.gen.ValidatorRank(env.Sender) < 0 {
			return fmt.Errorf("node: %s is not a genesis validator", env.Sender)
		}
		return check(env)
	}
}

// ofEnvelopeRound is a gossip check that the payload decodes and is of its
// envelope's round.
func ofEnvelopeRound[M interface{ round() uint64 }](decode func([]byte) (M, error)) func(*p2p.Envelope) error {
	return func(env *p2p.Envelope) error {
		m, err := decode(env.Payload)
		if err != nil {
			return err
		}
		if r := m.round(); r != env.Round {
			return fmt.Errorf("node: payload of round %d in an envelope of round %d", r, env.Round)
		}
		return nil
	}
}

func (a *Announcement) round() uint64 { return a.Round }
func (s *Scores) round() uint64       { return s.Round }
func (m *Manifest) round() uint64     { return m.Round }

// readTopic turns a subscription's messages into loop events.
func (n *Node) readTopic(ctx context.Context, sub *p2p.Subscription) {
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		env := msg.Envelope
		n.metrics.msgsIn.Add(1)
		n.metrics.bytesIn.Add(int64(len(env.Payload)))
		switch sub.Topic() {
		case p2p.TopicGradient, TopicRollout:
			a, err := DecodeAnnouncement(env.Payload)
			if err != nil || n.wrongStageTopic(sub.Topic()) {
				continue
			}
			n.adv.saw(env.Sender, a)
			n.post(ctx, func() {
				n.dash.onAnnouncement(env.Sender, a)
				if n.va != nil {
					n.va.onAnnouncement(ctx, env.Sender, a)
				}
			})
		case p2p.TopicScore:
			s, err := DecodeScores(env.Payload)
			if err != nil {
				continue
			}
			n.post(ctx, func() {
				n.dashScores(env.Sender, s)
				if n.va != nil {
					n.va.onScores(env, s)
				}
			})
		case p2p.TopicManifest:
			mm, err := decodeManifestEnvelope(env, n.gen)
			if err != nil {
				n.log.Warn("bad manifest", "err", err)
				continue
			}
			mm.from = msg.ReceivedFrom
			if err := mm.checkChoice(n.gen); err != nil {
				// Well formed and signed by a validator, but it lists what
				// its score vectors do not pass: counted like a manifest
				// that lost the fork choice, so a fallback's takes the round.
				n.post(ctx, func() { n.rejectChoice(mm, err) })
				continue
			}
			// Every peer keeps every manifest as a blob, so that peers that
			// fell behind can walk the chain back from any of them.
			n.spawn(func() {
				pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				if _, err := n.p2p.Put(pctx, mm.raw, p2p.WithRound(mm.m.Round)); err != nil && !n.p2p.Has(mm.cid) {
					n.log.Warn("storing manifest", "round", mm.m.Round, "err", err)
				}
			})
			n.post(ctx, func() { n.onManifest(ctx, mm) })
		case p2p.TopicCheckpoint:
			c, err := DecodeCheckpointAnnouncement(env.Payload)
			if err != nil {
				continue
			}
			n.post(ctx, func() {
				if c.Ref.Round > n.checkpoint.Round {
					n.log.Debug("checkpoint announced", "round", c.Ref.Round, "cid", c.Ref.CID, "by", env.Sender)
				}
			})
		default:
			n.readReplay(ctx, sub.Topic(), env)
		}
	}
}
