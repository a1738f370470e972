package node

import (
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/hw"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/attest"
	"github.com/trinity-net/trinity/verify/grail"
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
	cheat atomic.Pointer[computeCheat]
}

type computeCheat struct {
	opening func(*attest.Opening)
	proof   func(*grail.Proof)
	step    func(j int) bool      // false: skip step j
	params  func([]float32)       // alters the final parameters sent
	state   func(j int, b []byte) // alters a state sent on request
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
		{reqCommit, p2p.HandlerConfig{MaxRequest: attest.ChallengeSize, Timeout: 5 * time.Minute, MaxConcurrent: 2, MaxPerPeer: 1}, p.serveCommit},
		{reqOpen, p2p.HandlerConfig{MaxRequest: 2048, Timeout: time.Minute, MaxConcurrent: 2, MaxPerPeer: 1}, p.serveOpen},
		{reqJob, p2p.HandlerConfig{MaxRequest: 64 << 10, Timeout: 10 * time.Minute, MaxConcurrent: 2, MaxPerPeer: 1}, p.serveJob},
		{reqState, p2p.HandlerConfig{MaxRequest: 1024, Timeout: 10 * time.Minute, MaxConcurrent: 2, MaxPerPeer: 1}, p.serveState},
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
			if err := p.net.Publish(ctx, TopicCapacity, capacityRound(p.gen), msg); err != nil && ctx.Err() == nil {
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
	if c := p.cheat.Load(); c != nil && c.opening != nil {
		c.opening(op)
	}
	return op.MarshalBinary()
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
