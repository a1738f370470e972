package node

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/p2p"
)

// TestnetConfig describes an in-process network on loopback.
type TestnetConfig struct {
	Dir         string        // data directories go under it (required)
	Trainers    int           // default 4 (rollout peers in the RL stage)
	Validators  int           // default 1
	Model       Genesis       // only Model, Data, Params, WeightSeed, Stage, RL are used; zero: defaults
	StartDelay  time.Duration // from now to round 0; default 2 s (time to connect)
	Threads     int           // compute threads per node; default 1
	Logger      *slog.Logger  // default: discard
	NetworkName string        // default "testnet"
	ListenAddrs []string      // of every peer; default TCP and QUIC on 127.0.0.1
	// Adversaries adds one peer per entry playing that mode: trainer modes
	// after the honest trainers, validator modes as the last validators
	// (except a mode that leads, dishonest-composer, which comes first).
	Adversaries []Adversary
}

// Testnet is a bootstrap node, validators and trainers in one process, each
// a full libp2p peer on 127.0.0.1. It is the harness of `trinity testnet` and
// of the end-to-end tests.
type Testnet struct {
	Genesis   *Genesis
	Bootstrap *p2p.Node
	cfg       TestnetConfig
	ds        *data.Dataset
	log       *slog.Logger

	mu      sync.Mutex
	members []*member
	applied map[uint64]map[peer.ID]Event // round -> peer -> applied event
	traffic map[uint64]map[peer.ID]Event // round -> peer -> traffic event
	events  []Event
	notify  chan struct{}
	runCtx  context.Context
	wg      sync.WaitGroup
}

type member struct {
	name   string
	role   Role
	dir    string
	key    crypto.PrivKey
	adv    Adversary
	node   *Node
	ctx    context.Context // its Run's
	cancel context.CancelFunc
	done   chan struct{}
	opts   []Option // beyond the harness's
}

// Member describes a testnet peer.
type Member struct {
	Name      string
	Role      Role
	Dir       string // data directory
	Peer      peer.ID
	Adversary Adversary // "" for an honest peer
	Running   bool
	Node      *Node // nil when stopped
}

// DefaultTestnetGenesis is the genesis template of `trinity testnet`: the tiny
// model on the embedded default corpus.
func DefaultTestnetGenesis() Genesis {
	return Genesis{Version: GenesisVersion, Network: "testnet", WeightSeed: 1, Model: TinyModel,
		Data:   data.Spec{Kind: data.KindDefault, Seed: 1, Bytes: 2 << 20, ValFraction: 0.05},
		Params: DefaultHyper()}
}

// NewTestnet creates validator keys, the genesis and a bootstrap node. Start
// the peers with Run.
func NewTestnet(ctx context.Context, cfg TestnetConfig) (*Testnet, error) {
	if cfg.Dir == "" {
		return nil, errors.New("node: testnet needs a directory")
	}
	if cfg.Trainers == 0 {
		cfg.Trainers = 4
	}
	if cfg.Validators == 0 {
		cfg.Validators = 1
	}
	if cfg.Trainers < 0 || cfg.Validators < 0 || cfg.Trainers > 256 || cfg.Validators > 16 {
		return nil, fmt.Errorf("node: testnet of %d trainers and %d validators out of range", cfg.Trainers, cfg.Validators)
	}
	if cfg.StartDelay == 0 {
		cfg.StartDelay = 2 * time.Second
	}
	if cfg.Threads == 0 {
		cfg.Threads = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.ListenAddrs == nil {
		cfg.ListenAddrs = loopbackAddrs()
	}
	tpl := cfg.Model
	if tpl.Model.Vocab == 0 {
		tpl = DefaultTestnetGenesis()
	}
	g := &Genesis{Version: GenesisVersion, Network: cfg.NetworkName, WeightSeed: tpl.WeightSeed, Model: tpl.Model, Data: tpl.Data, Params: tpl.Params,
		Stage: tpl.Stage, RL: tpl.RL}
	if g.Network == "" {
		g.Network = "testnet"
	}
	t := &Testnet{cfg: cfg, log: cfg.Logger, applied: map[uint64]map[peer.ID]Event{}, traffic: map[uint64]map[peer.ID]Event{}, notify: make(chan struct{}, 1)}
	advs, err := testnetAdversaries(cfg)
	if err != nil {
		return nil, err
	}
	for i, adv := range advs[RoleValidator] {
		k, _, err := crypto.GenerateEd25519Key(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("node: testnet key: %w", err)
		}
		id, err := peer.IDFromPrivateKey(k)
		if err != nil {
			return nil, err
		}
		g.Validators = append(g.Validators, ValidatorKey{Peer: id.String(), Stake: uint64(100 - i)})
		t.members = append(t.members, &member{name: testnetName("validator", adv, i), role: RoleValidator,
			dir: filepath.Join(cfg.Dir, fmt.Sprintf("validator-%d", i)), key: k, adv: adv})
	}
	worker, workers := g.workerRole(), advs[RoleTrainer]
	switch {
	case worker == RoleRollout:
		workers = append(workers, advs[RoleRollout]...)
	case len(advs[RoleRollout]) > 0:
		return nil, fmt.Errorf("node: testnet of stage %q has no rollout peers to play %s", g.stage(), advs[RoleRollout][0])
	}
	for i, adv := range workers {
		t.members = append(t.members, &member{name: testnetName(string(worker), adv, i), role: worker,
			dir: filepath.Join(cfg.Dir, fmt.Sprintf("%s-%d", worker, i)), adv: adv})
	}
	// The bootstrap node's address cannot be in the genesis (its listen
	// port is chosen at start, after the network ID is fixed), so the peers
	// are handed it directly.
	t.ds, err = data.Load(ctx, g.Data, g.Model.Vocab, ".")
	if err != nil {
		return nil, err
	}
	g.Start = time.Now().Add(cfg.StartDelay).Truncate(time.Millisecond)
	if err := g.Validate(); err != nil {
		return nil, err
	}
	t.Genesis = g
	id, err := g.ID()
	if err != nil {
		return nil, err
	}
	t.Bootstrap, err = p2p.New(ctx, p2p.Config{NetworkID: id, DataDir: filepath.Join(cfg.Dir, "bootstrap"),
		ListenAddrs: cfg.ListenAddrs, DHTMode: p2p.DHTServer, RelayService: true, ConnLow: 100, ConnHigh: 400},
		p2p.WithLogger(cfg.Logger.With("node", "bootstrap")))
	if err != nil {
		return nil, err
	}
	return t, nil
}

func loopbackAddrs() []string {
	return []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
}

// bootstrapAddrs are the bootstrap node's multiaddrs.
func (t *Testnet) bootstrapAddrs() []string {
	var out []string
	for _, a := range t.Bootstrap.Addrs() {
		out = append(out, a.String())
	}
	return out
}

// Run starts every configured peer; they run until ctx ends or Close.
func (t *Testnet) Run(ctx context.Context) error {
	t.mu.Lock()
	t.runCtx = ctx
	ms := slices.Clone(t.members)
	t.mu.Unlock()
	for _, m := range ms {
		if err := t.start(m); err != nil {
			return err
		}
	}
	return nil
}

// start launches member m (again, after Stop).
func (t *Testnet) start(m *member) error {
	ctx := t.runCtx
	if ctx == nil {
		return errors.New("node: testnet is not running")
	}
	opts := []Option{WithLogger(t.log.With("node", m.name)), WithDataset(t.ds),
		WithP2PConfig(func(c *p2p.Config) {
			c.DHTMode = p2p.DHTServer
			c.ConnLow, c.ConnHigh = 100, 400
		}),
		WithObserver(t.observe)}
	opts = append(opts, m.opts...)
	if m.key != nil {
		opts = append(opts, WithIdentity(m.key))
	}
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	n, err := New(sctx, Config{Genesis: t.Genesis, Role: m.role, DataDir: m.dir, ListenAddrs: t.cfg.ListenAddrs,
		Bootstrap: t.bootstrapAddrs(), Threads: t.cfg.Threads, Adversary: m.adv}, opts...)
	if err != nil {
		return fmt.Errorf("node: testnet %s: %w", m.name, err)
	}
	rctx, rcancel := context.WithCancel(ctx)
	done := make(chan struct{})
	t.mu.Lock()
	m.node, m.ctx, m.cancel, m.done = n, rctx, rcancel, done
	t.mu.Unlock()
	t.wg.Add(1)
	go func() {
		defer t.wg.Done()
		defer close(done)
		if err := n.Run(rctx); err != nil && !errors.Is(err, context.Canceled) {
			t.log.Error("node stopped", "node", m.name, "err", err)
		}
		if err := n.Close(); err != nil {
			t.log.Warn("closing node", "node", m.name, "err", err)
		}
	}()
	return nil
}

func (t *Testnet) observe(e Event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	if e.Kind == EventApplied || e.Kind == EventCaughtUp || e.Kind == EventReorg {
		if t.applied[e.Round] == nil {
			t.applied[e.Round] = map[peer.ID]Event{}
		}
		t.applied[e.Round][e.Peer] = e
	}
	if e.Kind == EventTraffic {
		if t.traffic[e.Round] == nil {
			t.traffic[e.Round] = map[peer.ID]Event{}
		}
		t.traffic[e.Round][e.Peer] = e
	}
	t.mu.Unlock()
	select {
	case t.notify <- struct{}{}:
	default:
	}
}

// AddTrainer adds and starts a new trainer (a late joiner).
func (t *Testnet) AddTrainer() (Member, error) { return t.addMember(RoleTrainer) }

// Stop ends member i abruptly (its context is cancelled mid-whatever; only
// what it had written atomically survives) and waits for it.
func (t *Testnet) Stop(i int) error {
	t.mu.Lock()
	if i < 0 || i >= len(t.members) || t.members[i].node == nil {
		t.mu.Unlock()
		return fmt.Errorf("node: testnet member %d is not running", i)
	}
	m := t.members[i]
	cancel, done := m.cancel, m.done
	t.mu.Unlock()
	cancel()
	<-done
	t.mu.Lock()
	m.node = nil
	t.mu.Unlock()
	return nil
}

// Restart starts a stopped member again from its data directory.
func (t *Testnet) Restart(i int) error {
	t.mu.Lock()
	if i < 0 || i >= len(t.members) || t.members[i].node != nil {
		t.mu.Unlock()
		return fmt.Errorf("node: testnet member %d is running or unknown", i)
	}
	m := t.members[i]
	t.mu.Unlock()
	return t.start(m)
}

func (t *Testnet) member(m *member) Member {
	mb := Member{Name: m.name, Role: m.role, Dir: m.dir, Adversary: m.adv, Running: m.node != nil, Node: m.node}
	if m.node != nil {
		mb.Peer = m.node.ID()
	}
	return mb
}

// Members lists the peers (validators first, then trainers in order).
func (t *Testnet) Members() []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Member, len(t.members))
	for i, m := range t.members {
		out[i] = t.member(m)
	}
	return out
}

// Events returns a copy of every event observed so far.
func (t *Testnet) Events() []Event {
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Clone(t.events)
}

// RoundReport summarises one round across the network.
type RoundReport struct {
	Round        uint64
	ValLoss      float32 // of the global model, by the lead validator (NaN if unknown)
	Contributors int     // contributions in the manifest
	Peers        int     // peers that applied the round's manifest (0: the round had none)
	Running      int     // peers running
	HashesAgree  bool    // every peer that reached the round has the same state
	Hash         Hash
	BlobBytes    int64 // mean contribution blob size
	NetBytes     int64 // mean bytes a peer received on libp2p streams in the round (gossip, blobs, DHT, protocol)
	DenseBytes   int64 // the same pseudo-gradient as dense fp32
}

// WaitRound blocks until every running peer has applied round r or a later
// one (a round whose manifest never came is skipped by everyone) and has
// counted the round's traffic (or half of the next round has passed), or
// ctx ends, or timeout passes, and reports it.
func (t *Testnet) WaitRound(ctx context.Context, r uint64, timeout time.Duration) (RoundReport, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		rep, complete := t.report(r)
		if complete {
			return rep, nil
		}
		select {
		case <-ctx.Done():
			return rep, ctx.Err()
		case <-deadline.C:
			return rep, fmt.Errorf("node: testnet: round %d: %d of %d running peers applied it in %v", r, rep.Peers, rep.Running, timeout)
		case <-t.notify:
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// report builds round r's report; complete when every running peer has it.
func (t *Testnet) report(r uint64) (RoundReport, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rep := RoundReport{Round: r, ValLoss: float32(math.NaN()), HashesAgree: true}
	got := t.applied[r]
	complete := true
	for _, m := range t.members {
		if m.node == nil {
			continue
		}
		rep.Running++
		if _, ok := got[m.node.ID()]; !ok && !t.hasLater(m.node.ID(), r) {
			complete = false
		}
	}
	first := true
	var lead peer.ID
	if len(t.Genesis.Validators) > 0 {
		lead, _ = peer.Decode(t.Genesis.Validators[0].Peer)
	}
	for p, e := range got {
		rep.Peers++
		if first {
			rep.Hash, first = e.Hash, false
		} else if e.Hash != rep.Hash {
			rep.HashesAgree = false
		}
		if e.Kind == EventApplied && (p == lead || math.IsNaN(float64(rep.ValLoss))) && !math.IsNaN(float64(e.ValLoss)) {
			rep.ValLoss = e.ValLoss
		}
		if e.Kind == EventApplied {
			rep.Contributors = max(rep.Contributors, e.Count)
		}
	}
	var sum, cnt int64
	for _, e := range t.events {
		if e.Kind == EventAnnounced && e.Round == r {
			sum += e.Bytes
			cnt++
		}
	}
	if cnt > 0 {
		rep.BlobBytes = sum / cnt
	}
	rep.DenseBytes = 4 * int64(t.Genesis.Model.NumParams())
	if tr := t.traffic[r]; len(tr) > 0 {
		var sum int64
		for _, e := range tr {
			sum += e.Bytes
		}
		rep.NetBytes = sum / int64(len(tr))
	}
	// Peers count a round's traffic when the next one begins.
	c := NewClock(t.Genesis)
	if len(t.traffic[r]) < rep.Running && time.Now().Before(c.At(r+1, 0.5)) {
		complete = false
	}
	return rep, complete
}

func (t *Testnet) hasLater(p peer.ID, r uint64) bool {
	for rr, m := range t.applied {
		if rr > r {
			if _, ok := m[p]; ok {
				return true
			}
		}
	}
	return false
}

// Close stops every peer and the bootstrap node.
func (t *Testnet) Close() error {
	t.mu.Lock()
	for _, m := range t.members {
		if m.cancel != nil {
			m.cancel()
		}
	}
	t.mu.Unlock()
	t.wg.Wait()
	var err error
	if t.Bootstrap != nil {
		err = t.Bootstrap.Close()
	}
	return err
}

// Pause freezes member i's event loop, as a stopped process (SIGSTOP,
// docker pause) would: it stops following rounds, applying manifests and
// publishing, while its timers run on and its gossip queues up; its host
// stays up. Resume lets it go on from where it stood, with a stale view of
// the network. Resume is safe to call more than once.
func (t *Testnet) Pause(i int) (resume func(), err error) {
	t.mu.Lock()
	if i < 0 || i >= len(t.members) || t.members[i].node == nil {
		t.mu.Unlock()
		return nil, fmt.Errorf("node: testnet member %d is not running", i)
	}
	n, mctx := t.members[i].node, t.members[i].ctx
	t.mu.Unlock()
	release := make(chan struct{})
	frozen := make(chan struct{})
	n.post(mctx, func() {
		close(frozen)
		select {
		case <-release:
		case <-mctx.Done(): // stopped while paused
		}
	})
	select {
	case <-frozen:
	case <-mctx.Done():
		return nil, fmt.Errorf("node: testnet member %d stopped", i)
	}
	var once sync.Once
	return func() { once.Do(func() { close(release) }) }, nil
}
