package node

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/hw"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/attest"
	"github.com/trinity-net/trinity/verify/grail"
	"github.com/trinity-net/trinity/verify/replay"
)

// ComputeProvider offers a peer's hardware to the network: it publishes a
// signed capacity record (gossip on TopicCapacity, DHT under CapacityKey,
// and on request), answers attestation challenges with its GEMM, and runs
// leased jobs (GRAIL-proven generation, replay-checkable training steps) on
// the genesis model. Run drives it; it shares the caller's p2p node, which
// must list TopicCapacity in its ExtraTopics (NewComputeHost does).
type ComputeProvider struct {
	net    *p2p.Node
	gen    *Genesis
	netID  p2p.NetworkID
	priv   ed25519.PrivateKey
	eng    *tensor.Engine
	ds     *data.Dataset
	base   *model.GPT // the job model; read-only except by generate jobs
	baseH  Hash
	prover *attest.Prover
	cfg    computeConfig
	log    *slog.Logger

	profile hw.Profile
	gemm    hw.GemmResult
	train   hw.TrainResult

	jobs chan struct{} // one job at a time: jobs share base and the engine

	mu      sync.Mutex
	seq     uint64
	record  *attest.CapacityRecord
	atts    map[string]attest.Attestation // latest about us, by attester
	changed chan struct{}
	leased  map[Hash]*JobRequest // train jobs answered, for state requests
	expiry  map[Hash]time.Time
	// states of the last train job, encoded, when they fit maxKeptStates:
	// its client asks for some right away.
	keptJob Hash
	kept    [][]byte

	// cheat, set only by this package's tests, makes the provider lie
	// through its real code paths.
	cheat *computeCheat
}

type computeCheat struct {
	opening func(*attest.Opening)
	proof   func(*grail.Proof)
	step    func(j int) bool      // false: skip step j
	params  func([]float32)       // alters the final parameters sent
	state   func(j int, b []byte) // alters a state sent on request
}

type computeConfig struct {
	recordTTL   time.Duration
	republish   time.Duration
	claim       float64 // GFLOP/s claimed instead of the measured rate (0: measured)
	gemmN       int
	benchBudget time.Duration
	jobModel    *model.GPT
	retention   time.Duration
	maxN        int
	// minRepublish spaces the republications that attestations trigger.
	minRepublish time.Duration
}

// ComputeOption configures a ComputeProvider or a ComputeClient.
type ComputeOption func(*computeConfig) error

// WithRecordTTL sets how long a published record is valid (default 10
// minutes) and how often it is republished (default a third of it).
func WithRecordTTL(ttl time.Duration) ComputeOption {
	return func(c *computeConfig) error {
		if ttl <= 0 || ttl > attest.MaxRecordTTL {
			return fmt.Errorf("node: record TTL %v out of (0, %v]", ttl, attest.MaxRecordTTL)
		}
		c.recordTTL, c.republish = ttl, ttl/3
		return nil
	}
}

// WithClaim makes the provider claim gflops of GEMM instead of what it
// measured (attestation is what keeps claims honest; drills use this).
func WithClaim(gflops float64) ComputeOption {
	return func(c *computeConfig) error {
		if !(gflops > 0 && gflops <= attest.MaxGFLOPs) {
			return fmt.Errorf("node: claim %v GFLOP/s out of (0, %g]", gflops, float64(attest.MaxGFLOPs))
		}
		c.claim = gflops
		return nil
	}
}

// WithBenchmark sets the GEMM size and time budget of the provider's own
// benchmarks (default n = 1024, 2 s each for GEMM and training).
func WithBenchmark(n int, budget time.Duration) ComputeOption {
	return func(c *computeConfig) error {
		if n < 1 || n > hw.MaxGemmN || budget <= 0 {
			return fmt.Errorf("node: benchmark n = %d, budget %v", n, budget)
		}
		c.gemmN, c.benchBudget = n, budget
		return nil
	}
}

// WithJobModel runs (provider) or verifies (client) jobs on m instead of
// the genesis model theta_0 (e.g. a checkpoint both sides hold). Its config
// must be the genesis's.
func WithJobModel(m *model.GPT) ComputeOption {
	return func(c *computeConfig) error {
		if m == nil {
			return errors.New("node: nil job model")
		}
		c.jobModel = m
		return nil
	}
}

// WithMaxChallenge bounds the attestation size n the provider accepts
// (default attest.MaxN).
func WithMaxChallenge(n int) ComputeOption {
	return func(c *computeConfig) error {
		if n < attest.MinN || n > attest.MaxN {
			return fmt.Errorf("node: max challenge %d out of [%d, %d]", n, attest.MinN, attest.MaxN)
		}
		c.maxN = n
		return nil
	}
}

func newComputeConfig(opts []ComputeOption) (computeConfig, error) {
	c := computeConfig{recordTTL: 10 * time.Minute, republish: 10 * time.Minute / 3, gemmN: 1024,
		benchBudget: 2 * time.Second, retention: 10 * time.Minute, maxN: attest.MaxN, minRepublish: 5 * time.Second}
	for _, o := range opts {
		if err := o(&c); err != nil {
			return c, err
		}
	}
	return c, nil
}

// computeSetup is what providers and clients start from: their options,
// the network ID, and a key that must be net's identity (records,
// attestations and proofs are checked against the peer that sends them).
func computeSetup(net *p2p.Node, g *Genesis, key ed25519.PrivateKey, opts []ComputeOption) (computeConfig, p2p.NetworkID, error) {
	cfg, err := newComputeConfig(opts)
	if err != nil {
		return cfg, p2p.NetworkID{}, err
	}
	id, err := g.ID()
	if err != nil {
		return cfg, id, err
	}
	if len(key) != ed25519.PrivateKeySize {
		return cfg, id, errors.New("node: compute needs an Ed25519 key")
	}
	if pid, err := keyPeer(key.Public().(ed25519.PublicKey)); err != nil || pid != net.ID() {
		return cfg, id, errors.New("node: compute key is not the p2p node's identity")
	}
	return cfg, id, nil
}

// jobModel returns the model jobs run on: the configured one or theta_0.
func jobModel(g *Genesis, e *tensor.Engine, cfg computeConfig) (*model.GPT, error) {
	if cfg.jobModel != nil {
		if cfg.jobModel.Config.Hash() != g.Model.Hash() {
			return nil, errors.New("node: job model's config is not the genesis's")
		}
		return cfg.jobModel, nil
	}
	m, err := model.New(g.Model, e)
	if err != nil {
		return nil, err
	}
	m.Init(g.WeightSeed)
	return m, nil
}

// NewComputeProvider measures the machine (hw.Detect, MeasureGemm,
// MeasureTraining of the genesis model) and registers the provider's
// request handlers on net. key is net's identity; ds the genesis dataset.
func NewComputeProvider(ctx context.Context, net *p2p.Node, g *Genesis, key ed25519.PrivateKey, e *tensor.Engine,
	ds *data.Dataset, log *slog.Logger, opts ...ComputeOption) (*ComputeProvider, error) {
	cfg, id, err := computeSetup(net, g, key, opts)
	if err != nil {
		return nil, err
	}
	p := &ComputeProvider{net: net, gen: g, netID: id, priv: key, eng: e, ds: ds, cfg: cfg, log: log,
		jobs: make(chan struct{}, 1), atts: map[string]attest.Attestation{}, changed: make(chan struct{}, 1),
		leased: map[Hash]*JobRequest{}, expiry: map[Hash]time.Time{}, seq: uint64(time.Now().UnixNano())}
	if p.base, err = jobModel(g, e, cfg); err != nil {
		return nil, err
	}
	p.baseH = p.base.StateHash()
	if p.prover, err = attest.NewProver(key, e, id, attest.WithProverMaxN(cfg.maxN)); err != nil {
		return nil, err
	}
	if p.profile, err = hw.Detect(hw.WithLogger(log)); err != nil {
		return nil, err
	}
	if p.gemm, err = hw.MeasureGemm(ctx, e, cfg.gemmN, cfg.benchBudget); err != nil {
		return nil, err
	}
	if p.train, err = hw.MeasureTraining(ctx, e, g.Model, g.Params.Batch, g.Params.SeqLen, cfg.benchBudget); err != nil {
		return nil, err
	}
	if cfg.claim > 0 {
		p.gemm.GFLOPs = cfg.claim
	}
	if err := registerCapacityValidator(net, id); err != nil {
		return nil, err
	}
	handlers := []struct {
		name string
		hc   p2p.HandlerConfig
		h    p2p.RequestHandler
	}{
		{reqRecord, p2p.HandlerConfig{MaxRequest: 16}, p.serveRecord},
		// A commitment may take the network's floor rate's time for n = MaxN.
		{reqCommit, p2p.HandlerConfig{MaxRequest: attest.ChallengeSize, Timeout: 5 * time.Minute, MaxConcurrent: 2}, p.serveCommit},
		{reqOpen, p2p.HandlerConfig{MaxRequest: 2048, Timeout: time.Minute, MaxConcurrent: 2}, p.serveOpen},
		{reqJob, p2p.HandlerConfig{MaxRequest: 64 << 10, Timeout: 10 * time.Minute, MaxConcurrent: 2}, p.serveJob},
		{reqState, p2p.HandlerConfig{MaxRequest: 1024, Timeout: 10 * time.Minute, MaxConcurrent: 2}, p.serveState},
	}
	for _, h := range handlers {
		if err := net.HandleRequests(h.name, h.hc, h.h); err != nil {
			return nil, err
		}
	}
	if _, err := p.refreshRecord(time.Now()); err != nil {
		return nil, err
	}
	return p, nil
}

// Measured returns the provider's own benchmark figures (GEMM with the
// claim, if one was set, in GFLOPs).
func (p *ComputeProvider) Measured() (hw.Profile, hw.GemmResult, hw.TrainResult) {
	return p.profile, p.gemm, p.train
}

// Record returns the provider's current signed record.
func (p *ComputeProvider) Record() *attest.CapacityRecord {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.record
}

// refreshRecord signs a new record with the attestations received so far.
func (p *ComputeProvider) refreshRecord(now time.Time) (*attest.CapacityRecord, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var atts []attest.Attestation
	for k, a := range p.atts {
		if !now.Before(time.Unix(0, a.ExpiresAt)) {
			delete(p.atts, k)
			continue
		}
		atts = append(atts, a)
	}
	p.seq = max(p.seq+1, uint64(now.UnixNano()))
	rec, err := attest.NewCapacityRecord(p.netID, p.seq, p.profile, p.gemm, p.train, atts, now, p.cfg.recordTTL)
	if err != nil {
		return nil, err
	}
	if err := rec.Sign(p.priv); err != nil {
		return nil, err
	}
	p.record = rec
	return rec, nil
}

// Run publishes the record (gossip and DHT) every republish interval and
// when an attestation about this provider arrives, until ctx ends.
func (p *ComputeProvider) Run(ctx context.Context) error {
	sub, err := p.net.Subscribe(TopicCapacity)
	if err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer sub.Cancel()
	wg.Add(1)
	go func() {
		defer wg.Done()
		p.readAttestations(ctx, sub)
	}()
	tick := time.NewTicker(p.cfg.republish)
	defer tick.Stop()
	// Until the DHT has peers the key cannot be provided: retry quickly.
	retry := time.NewTicker(2 * time.Second)
	defer retry.Stop()
	provided := false
	provide := func() {
		pctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if err := p.net.ProvideKey(pctx, CapacityKey(p.netID)); err == nil {
			provided = true
		} else if ctx.Err() == nil {
			p.log.Debug("compute: providing capacity key", "err", err)
		}
	}
	publish := func(fresh bool) {
		rec := p.Record()
		if fresh {
			var err error
			if rec, err = p.refreshRecord(time.Now()); err != nil {
				p.log.Warn("compute: signing record", "err", err)
				return
			}
		}
		if msg, err := encodeCapacity(capacityKindRecord, rec); err == nil {
			if err := p.net.Publish(ctx, TopicCapacity, 0, msg); err != nil && ctx.Err() == nil {
				p.log.Debug("compute: publishing record", "err", err)
			}
		}
	}
	publish(false)
	provide()
	// A new attestation about us is republished at once, but at most once
	// per minRepublish: whoever gossips attestations does not set our pace.
	minRepublish := p.cfg.minRepublish
	last, dirty := time.Now(), false
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
			publish(true)
			last, dirty = time.Now(), false
			provide()
			p.pruneJobs(time.Now())
		case <-p.changed:
			dirty = true
		case <-retry.C:
			if !provided {
				provide()
			}
		}
		if dirty && time.Since(last) >= minRepublish {
			publish(true)
			last, dirty = time.Now(), false
		}
	}
}

// readAttestations keeps the attestations others publish about us, for the
// next record: the latest per attester, at most MaxRecordAttestations, the
// genesis validators' first (they are what clients count), so that a crowd
// of other attesters cannot push them out.
func (p *ComputeProvider) readAttestations(ctx context.Context, sub *p2p.Subscription) {
	me := p.priv.Public().(ed25519.PublicKey)
	validators := validatorKeys(p.gen)
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return
		}
		_, a, err := decodeCapacity(msg.Envelope.Payload)
		if err != nil || a == nil || !a.Subject.Equal(me) || a.Network != p.netID {
			continue
		}
		p.mu.Lock()
		kept := p.keepAttestation(*a, validators)
		p.mu.Unlock()
		if kept {
			select {
			case p.changed <- struct{}{}:
			default:
			}
		}
	}
}

// keepAttestation files a in p.atts (p.mu held) and says whether it did.
func (p *ComputeProvider) keepAttestation(a attest.Attestation, validators map[string]bool) bool {
	k := string(a.Attester)
	if old, ok := p.atts[k]; ok {
		if old.IssuedAt >= a.IssuedAt {
			return false
		}
		p.atts[k] = a
		return true
	}
	if len(p.atts) >= attest.MaxRecordAttestations {
		// Evict the oldest non-validator attestation, for a validator's or
		// a newer one.
		victim, found := "", false
		for vk, v := range p.atts {
			if !validators[vk] && (!found || v.IssuedAt < p.atts[victim].IssuedAt) {
				victim, found = vk, true
			}
		}
		if !found || (!validators[k] && p.atts[victim].IssuedAt >= a.IssuedAt) {
			return false
		}
		delete(p.atts, victim)
	}
	p.atts[k] = a
	return true
}

func (p *ComputeProvider) serveRecord(_ context.Context, _ peer.ID, _ []byte) ([]byte, error) {
	return p.Record().MarshalBinary()
}

func (p *ComputeProvider) serveCommit(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) {
	var ch attest.Challenge
	if err := ch.UnmarshalBinary(req); err != nil {
		return nil, err
	}
	cm, err := p.prover.Commit(ctx, &ch)
	if err != nil {
		return nil, err
	}
	return cm.MarshalBinary()
}

func (p *ComputeProvider) serveOpen(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) {
	var q attest.OpenRequest
	if err := q.UnmarshalBinary(req); err != nil {
		return nil, err
	}
	op, err := p.prover.Open(ctx, &q)
	if err != nil {
		return nil, err
	}
	if p.cheat != nil && p.cheat.opening != nil {
		p.cheat.opening(op)
	}
	return op.MarshalBinary()
}

// jobID names a leased job: the client and its request.
func jobID(from peer.ID, req []byte) Hash {
	h := sha256.New()
	h.Write([]byte("trinity/compute-job/v1\x00"))
	h.Write([]byte(from))
	h.Write([]byte{0})
	h.Write(req)
	return Hash(h.Sum(nil))
}

func (p *ComputeProvider) acquire(ctx context.Context) error {
	select {
	case p.jobs <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *ComputeProvider) serveJob(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
	j, err := DecodeJobRequest(req)
	if err != nil {
		return nil, err
	}
	if err := j.check(p.gen.Model.Vocab, p.gen.Model.Context, data.NumPages(len(p.ds.Train), p.gen.Params.PageSize)); err != nil {
		return nil, err
	}
	if j.Model != p.baseH {
		return nil, fmt.Errorf("node: this provider runs model %s, not %s", p.baseH.Short(), j.Model.Short())
	}
	if j.Kind == JobTrain {
		p.pruneJobs(time.Now())
		p.mu.Lock()
		full := len(p.leased) >= maxLeasedJobs
		p.mu.Unlock()
		if full {
			return nil, fmt.Errorf("node: %d train jobs awaiting checks, try later", maxLeasedJobs)
		}
	}
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer func() { <-p.jobs }()
	switch j.Kind {
	case JobGenerate:
		return p.generate(ctx, j)
	default:
		id := jobID(from, req)
		out, err := p.trainJob(ctx, j, id)
		if err == nil {
			p.mu.Lock()
			p.leased[id], p.expiry[id] = j, time.Now().Add(p.cfg.retention)
			p.mu.Unlock()
		}
		return out, err
	}
}

// maxLeasedJobs bounds the train jobs kept for state requests.
const maxLeasedJobs = 256

func (p *ComputeProvider) generate(ctx context.Context, j *JobRequest) ([]byte, error) {
	pr, err := grail.NewProver(p.base, p.priv)
	if err != nil {
		return nil, err
	}
	proof, err := pr.Prove(ctx, j.Beacon, j.Prompt, j.Tokens, j.sampling())
	if err != nil {
		return nil, err
	}
	if p.cheat != nil && p.cheat.proof != nil {
		p.cheat.proof(proof)
		if err := proof.Sign(p.priv); err != nil {
			return nil, err
		}
	}
	return proof.Encode()
}

// runSteps runs the first k steps of job j from the job model's state.
func (p *ComputeProvider) runSteps(ctx context.Context, j *JobRequest, k int, each func(int, *trainRun)) (*trainRun, error) {
	r, err := newTrainRun(p.eng, p.gen, p.ds, j.Pages)
	if err != nil {
		return nil, err
	}
	r.reset(p.base.Params, nil, nil, 0)
	if each != nil {
		each(0, r)
	}
	for s := range k {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if p.cheat == nil || p.cheat.step == nil || p.cheat.step(s) {
			if err := r.step(s); err != nil {
				return nil, err
			}
		}
		if each != nil {
			each(s+1, r)
		}
	}
	return r, nil
}

// maxKeptStates bounds the memory of the last train job's kept states;
// beyond it a state request recomputes.
const maxKeptStates = 256 << 20

func (p *ComputeProvider) trainJob(ctx context.Context, j *JobRequest, id Hash) ([]byte, error) {
	res := TrainJobResult{V: WireVersion, Job: id, States: make([]StateDigests, j.Steps+1)}
	n := len(p.base.Params)
	var kept [][]byte
	keep := (j.Steps+1)*replay.SnapshotSize(n, stateParts) <= maxKeptStates
	var kerr error
	r, err := p.runSteps(ctx, j, j.Steps, func(s int, r *trainRun) {
		d := r.digests()
		res.States[s] = toStateDigests(d)
		if keep && kerr == nil {
			var b []byte
			b, kerr = replay.AppendSnapshot(nil, r.state(), replay.Digests{EF: d.EF}, stateParts, n)
			kept = append(kept, b)
		}
	})
	if err == nil {
		err = kerr
	}
	if err != nil {
		return nil, err
	}
	res.Params = floatsLE(r.m.Params)
	if p.cheat != nil && p.cheat.params != nil {
		x := append([]float32(nil), r.m.Params...)
		p.cheat.params(x)
		res.Params = floatsLE(x)
	}
	p.mu.Lock()
	p.keptJob, p.kept = id, nil
	if keep {
		p.kept = kept
	}
	p.mu.Unlock()
	return encodeMsg(res)
}

// serveState answers a state request of a train job answered earlier: from
// the states kept of the last job, or else by recomputing its first Step
// steps (deterministic: the same bits as the job), so that the provider
// keeps only the requests of older jobs.
func (p *ComputeProvider) serveState(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) {
	var q StateRequest
	if err := decodeStrict(req, &q); err != nil {
		return nil, fmt.Errorf("node: decoding state request: %w", err)
	}
	if err := checkVersion(q.V); err != nil {
		return nil, err
	}
	p.mu.Lock()
	j, ok := p.leased[q.Job]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("node: unknown or expired job %s", q.Job.Short())
	}
	if q.Step < 0 || q.Step > j.Steps {
		return nil, fmt.Errorf("node: state %d of a %d-step job", q.Step, j.Steps)
	}
	p.mu.Lock()
	var b []byte
	if p.keptJob == q.Job && p.kept != nil {
		b = p.kept[q.Step]
	}
	p.mu.Unlock()
	if b != nil {
		if p.cheat != nil && p.cheat.state != nil {
			b = append([]byte(nil), b...)
			p.cheat.state(q.Step, b)
		}
		return b, nil
	}
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer func() { <-p.jobs }()
	r, err := p.runSteps(ctx, j, q.Step, nil)
	if err != nil {
		return nil, err
	}
	d := r.digests()
	return replay.AppendSnapshot(nil, r.state(), replay.Digests{EF: d.EF}, stateParts, len(r.m.Params))
}

func (p *ComputeProvider) pruneJobs(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, t := range p.expiry {
		if now.After(t) {
			delete(p.expiry, id)
			delete(p.leased, id)
		}
	}
}

// registerCapacityValidator checks capacity gossip before it is delivered
// or forwarded: it must decode and verify, and a record must be signed by
// the peer that publishes it.
func registerCapacityValidator(net *p2p.Node, id p2p.NetworkID) error {
	return net.RegisterValidator(TopicCapacity, func(_ context.Context, _ peer.ID, env *p2p.Envelope) error {
		rec, a, err := decodeCapacity(env.Payload)
		if err != nil {
			return err
		}
		if (rec != nil && rec.Network != id) || (a != nil && a.Network != id) {
			return fmt.Errorf("node: capacity message of another network")
		}
		if rec != nil {
			id, err := keyPeer(rec.Peer)
			if err != nil || id != env.Sender {
				return fmt.Errorf("node: capacity record of %s published by %s", id, env.Sender)
			}
		}
		return nil
	})
}
