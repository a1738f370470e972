package node

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/attest"
)

// computeAttestConfig is WithComputeAttestation's configuration.
type computeAttestConfig struct {
	every time.Duration
	vopts []attest.VerifierOption
}

// WithComputeAttestation makes the node attest the network's compute
// providers: it joins TopicCapacity and, while it runs, challenges every
// provider it finds at most once per every, signs the attestations with
// its identity and gossips them. A validator's count in every client's
// book. vopts tune the challenges.
func WithComputeAttestation(every time.Duration, vopts ...attest.VerifierOption) Option {
	return func(o *options) error {
		if every <= 0 {
			return errors.New("node: compute attestation needs a positive period")
		}
		o.attestCompute = &computeAttestConfig{every: every, vopts: vopts}
		return nil
	}
}

// newComputeAttester builds the node's compute client for attestation, on
// the node's host, engine, dataset and identity (key, or the data
// directory's, which the p2p node has created by now).
func (n *Node) newComputeAttester(cfg *computeAttestConfig, key crypto.PrivKey) (*computeAttester, error) {
	var err error
	if key == nil {
		if key, err = p2p.LoadIdentity(filepath.Join(n.cfg.DataDir, p2p.IdentityFile)); err != nil {
			return nil, err
		}
	}
	priv, err := ed25519Key(key)
	if err != nil {
		return nil, err
	}
	c, err := NewComputeClient(n.p2p, n.gen, priv, n.eng, n.ds, n.log.With("part", "compute-attester"), nil, cfg.vopts...)
	if err != nil {
		return nil, err
	}
	return &computeAttester{c: c, every: cfg.every}, nil
}

// computeAttester attests providers periodically.
type computeAttester struct {
	c     *ComputeClient
	every time.Duration
}

// run files capacity gossip and attests each known provider once per
// period until ctx ends.
func (a *computeAttester) run(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = a.c.Run(ctx)
	}()
	defer func() { <-done }()
	last := map[peer.ID]time.Time{}
	period := min(a.every/4+time.Millisecond, 30*time.Second)
	for {
		dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		_, _ = a.c.Discover(dctx)
		cancel()
		for _, p := range a.c.List() {
			id, err := keyPeer(p.Peer)
			if err != nil || id == a.c.net.ID() || time.Since(last[id]) < a.every {
				continue
			}
			last[id] = time.Now()
			actx, cancel := context.WithTimeout(ctx, 5*time.Minute)
			at, err := a.c.Attest(actx, id)
			cancel()
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				a.c.log.Info("compute: attesting provider", "provider", id, "err", err)
				continue
			}
			a.c.log.Info("compute: attested provider", "provider", id, "verdict", at.Verdict.String(),
				"gflops", fmt.Sprintf("%.1f", at.AttestedGFLOPs), "claim", fmt.Sprintf("%.1f", at.ClaimedGFLOPs))
		}
		for id, t := range last {
			if time.Since(t) > 4*a.every {
				delete(last, id)
			}
		}
		// Until a provider is known, look again soon: a young network's
		// DHT and gossip take a few seconds to find anyone.
		wait := period
		if len(a.c.List()) == 0 {
			wait = min(period, 2*time.Second)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
	}
}

// ComputeClient is the node's compute client when it attests providers
// (WithComputeAttestation), nil otherwise.
func (n *Node) ComputeClient() *ComputeClient {
	if n.attester == nil {
		return nil
	}
	return n.attester.c
}
