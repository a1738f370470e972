package attest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trinity-net/trinity/compute/tensor"
)

// Transport carries one attestation's messages between a verifier and a
// prover. A *Prover is one in process; node/ implements it over streams,
// encoding the messages with their MarshalBinary.
type Transport interface {
	Commit(ctx context.Context, ch *Challenge) (*Commitment, error)
	Open(ctx context.Context, req *OpenRequest) (*Opening, error)
}

// Prover answers challenges with its engine's GEMM.
//
// Commit generates A and B from the nonce, multiplies them (e.Gemm), turns
// the exact float32 product into integers, and signs the Merkle root over
// its rows; Open serves rows of a committed product until it is released or
// its retention expires. One product is computed at a time (a second
// challenge meanwhile gets ErrBusy), and nonces are remembered so that a
// challenge is answered once.
type Prover struct {
	priv    ed25519.PrivateKey
	pub     ed25519.PublicKey
	e       *tensor.Engine
	network [32]byte
	cfg     proverConfig

	work chan struct{} // holds a token while a product is computed

	mu      sync.Mutex
	pending map[[32]byte]*proverJob
	seen    map[[32]byte]time.Time // nonce -> when it may be forgotten

	scratch []float32 // A, B and the float32 product; guarded by work

	// tamper, set only by this package's tests, alters the product before
	// it is committed: it plays a dishonest prover through the real code.
	tamper func(n int, c []int32)
}

type proverJob struct {
	n       int
	c       []int32
	tree    *merkleTree
	expires time.Time
}

type proverConfig struct {
	maxN       int
	maxPending int
	retention  time.Duration
	maxSkew    time.Duration
	accept     func(ed25519.PublicKey) bool
	now        func() time.Time
}

// ProverOption configures a Prover.
type ProverOption func(*proverConfig) error

// WithProverMaxN refuses challenges larger than n (default MaxN).
func WithProverMaxN(n int) ProverOption {
	return func(c *proverConfig) error {
		if n < MinN || n > MaxN {
			return fmt.Errorf("attest: prover max n %d out of [%d, %d]", n, MinN, MaxN)
		}
		c.maxN = n
		return nil
	}
}

// WithRetention keeps committed products for d after the commitment, for
// the verifier to open (default 2 minutes).
func WithRetention(d time.Duration) ProverOption {
	return func(c *proverConfig) error {
		if d <= 0 {
			return fmt.Errorf("attest: retention %v is not positive", d)
		}
		c.retention = d
		return nil
	}
}

// WithMaxPending bounds the committed products kept for opening (default 2;
// each is 4n^2 bytes). The oldest is dropped for a new one.
func WithMaxPending(k int) ProverOption {
	return func(c *proverConfig) error {
		if k < 1 {
			return fmt.Errorf("attest: max pending %d < 1", k)
		}
		c.maxPending = k
		return nil
	}
}

// WithAcceptVerifier answers only verifiers for which accept returns true
// (for example the network's validators; default: everyone).
func WithAcceptVerifier(accept func(ed25519.PublicKey) bool) ProverOption {
	return func(c *proverConfig) error {
		if accept == nil {
			return errors.New("attest: nil verifier filter")
		}
		c.accept = accept
		return nil
	}
}

// WithProverClock sets the prover's clock (default time.Now).
func WithProverClock(now func() time.Time) ProverOption {
	return func(c *proverConfig) error {
		if now == nil {
			return errors.New("attest: nil clock")
		}
		c.now = now
		return nil
	}
}

// maxSeen bounds the remembered nonces.
const maxSeen = 4096

// NewProver makes a prover that signs with priv and multiplies on e.
func NewProver(priv ed25519.PrivateKey, e *tensor.Engine, network [32]byte, opts ...ProverOption) (*Prover, error) {
	if err := checkPriv(priv); err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errors.New("attest: prover needs a tensor engine")
	}
	cfg := proverConfig{
		maxN: MaxN, maxPending: 2, retention: 2 * time.Minute, maxSkew: 5 * time.Minute,
		accept: func(ed25519.PublicKey) bool { return true }, now: time.Now,
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Prover{
		priv: priv, pub: priv.Public().(ed25519.PublicKey), e: e, network: network, cfg: cfg,
		work:    make(chan struct{}, 1),
		pending: map[[32]byte]*proverJob{},
		seen:    map[[32]byte]time.Time{},
	}, nil
}

// PublicKey is the prover's identity.
func (p *Prover) PublicKey() ed25519.PublicKey { return p.pub }

// admit checks a challenge and records its nonce.
func (p *Prover) admit(ch *Challenge) error {
	if ch.Network != p.network {
		return ErrWrongNetwork
	}
	if !ch.Prover.Equal(p.pub) {
		return ErrNotForUs
	}
	if ch.N > p.cfg.maxN {
		return fmt.Errorf("attest: challenge n = %d above this prover's %d", ch.N, p.cfg.maxN)
	}
	if !p.cfg.accept(ch.Verifier) {
		return ErrRejectedVerifier
	}
	if err := ch.Verify(); err != nil {
		return err
	}
	now := p.cfg.now()
	// Clocks differ between peers: the prover only refuses what is stale
	// beyond any plausible skew. The verifier times on its own clock.
	if unixTime(ch.IssuedAt).After(now.Add(p.cfg.maxSkew)) {
		return fmt.Errorf("%w: challenge issued in the future", ErrExpired)
	}
	forget := unixTime(ch.Deadline).Add(p.cfg.maxSkew)
	if now.After(forget) {
		return fmt.Errorf("%w: challenge deadline passed", ErrExpired)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, t := range p.seen {
		if now.After(t) {
			delete(p.seen, k)
		}
	}
	if _, ok := p.seen[ch.Nonce]; ok {
		return ErrReplay
	}
	if len(p.seen) >= maxSeen {
		return ErrBusy
	}
	p.seen[ch.Nonce] = forget
	return nil
}

// Commit computes the challenged product and returns the signed
// commitment. It returns ErrBusy while another product is being computed.
func (p *Prover) Commit(ctx context.Context, ch *Challenge) (*Commitment, error) {
	if ch == nil {
		return nil, fmt.Errorf("%w: nil challenge", ErrMalformed)
	}
	select {
	case p.work <- struct{}{}:
	default:
		return nil, ErrBusy
	}
	defer func() { <-p.work }()
	if err := p.admit(ch); err != nil {
		return nil, err
	}
	chHash, err := ch.Hash()
	if err != nil {
		return nil, err
	}
	c, err := p.multiply(ctx, ch.Nonce, ch.N)
	if err != nil {
		return nil, err
	}
	if p.tamper != nil {
		p.tamper(ch.N, c)
	}
	tree := buildTree(p.e, c, ch.N)
	cm := &Commitment{Challenge: chHash, Nonce: ch.Nonce, Root: tree.root(), Prover: p.pub}
	body, err := cm.body()
	if err != nil {
		return nil, err
	}
	cm.Signature = sign(p.priv, domainCommitment, body)

	now := p.cfg.now()
	p.mu.Lock()
	for k, j := range p.pending {
		if now.After(j.expires) {
			delete(p.pending, k)
		}
	}
	for len(p.pending) >= p.cfg.maxPending {
		var oldest [32]byte
		var t time.Time
		for k, j := range p.pending {
			if t.IsZero() || j.expires.Before(t) {
				oldest, t = k, j.expires
			}
		}
		delete(p.pending, oldest)
	}
	p.pending[ch.Nonce] = &proverJob{n: ch.N, c: c, tree: tree, expires: now.Add(p.cfg.retention)}
	p.mu.Unlock()
	return cm, nil
}

// multiply returns the exact integer product of the challenge matrices.
// The GEMM runs in row blocks so that a cancelled context stops it. Only
// Commit calls it, holding the work token, so the float32 scratch is reused
// from one challenge to the next (page faults of fresh 16 MiB buffers would
// otherwise be charged to the attested time).
func (p *Prover) multiply(ctx context.Context, nonce [32]byte, n int) ([]int32, error) {
	if cap(p.scratch) < 3*n*n {
		p.scratch = make([]float32, 3*n*n)
	}
	a, b, cf := p.scratch[:n*n], p.scratch[n*n:2*n*n], p.scratch[2*n*n:3*n*n]
	genMatrices(p.e, nonce, n, a, b)
	block := max(256, (n+3)/4)
	for lo := 0; lo < n; lo += block {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("attest: computing product: %w", err)
		}
		hi := min(n, lo+block)
		p.e.Gemm(false, false, hi-lo, n, n, a[lo*n:], n, b, n, cf[lo*n:], n, false)
	}
	c := make([]int32, n*n)
	lim := float32(EntryBound(n))
	var bad atomic.Int64
	bad.Store(-1)
	p.e.ParallelGrain(n, 16, func(_ tensor.Kernels, lo, hi int) {
		for i := lo * n; i < hi*n; i++ {
			v := cf[i]
			// Exact by construction (see MaxN); anything else means a
			// broken kernel, which must not be committed.
			if !(v >= -lim && v <= lim) || v != float32(int32(v)) {
				bad.CompareAndSwap(-1, int64(i))
				return
			}
			c[i] = int32(v)
		}
	})
	if i := bad.Load(); i >= 0 {
		return nil, fmt.Errorf("attest: product entry %d = %v is not an exact integer within ±%v: GEMM kernel fault", i, cf[i], lim)
	}
	return c, nil
}

// Open serves rows of a committed product.
func (p *Prover) Open(ctx context.Context, req *OpenRequest) (*Opening, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil open request", ErrMalformed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.mu.Lock()
	j, ok := p.pending[req.Nonce]
	if ok && p.cfg.now().After(j.expires) {
		delete(p.pending, req.Nonce)
		ok = false
	}
	p.mu.Unlock()
	if !ok {
		return nil, ErrUnknownChallenge
	}
	n := j.n
	op := &Opening{Nonce: req.Nonce, Kind: req.Kind, N: n}
	switch req.Kind {
	case OpenRange:
		if req.Lo < 0 || req.Hi <= req.Lo || req.Hi > n {
			return nil, fmt.Errorf("%w: rows [%d, %d) of %d", ErrMalformed, req.Lo, req.Hi, n)
		}
		if req.Hi-req.Lo > rowsPerChunk(n) {
			return nil, fmt.Errorf("%w: %d rows exceed one opening (%d)", ErrMalformed, req.Hi-req.Lo, rowsPerChunk(n))
		}
		op.Lo = req.Lo
		op.Values = append([]int32(nil), j.c[req.Lo*n:req.Hi*n]...)
	case OpenSpot:
		if err := checkIndices(req.Indices, n); err != nil {
			return nil, err
		}
		op.Indices = append([]int(nil), req.Indices...)
		op.Values = make([]int32, 0, len(req.Indices)*n)
		for _, i := range req.Indices {
			op.Values = append(op.Values, j.c[i*n:(i+1)*n]...)
			op.Proofs = append(op.Proofs, j.tree.proof(i))
		}
	default:
		return nil, fmt.Errorf("%w: open kind %d", ErrMalformed, req.Kind)
	}
	return op, nil
}

// Release drops a committed product once its verifier is done.
func (p *Prover) Release(nonce [32]byte) {
	p.mu.Lock()
	delete(p.pending, nonce)
	p.mu.Unlock()
}
