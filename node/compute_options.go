package node

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/trinity-net/trinity/compute/hw"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/attest"
)

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
