package attest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"sort"
	"sync"
	"time"

	"github.com/trinity-net/trinity/compute/tensor"
)

// pendingGrace is how long past its deadline an unfinished challenge is
// kept before a new one may evict it.
const pendingGrace = 10 * time.Minute

// Verifier issues challenges, times commitments, checks openings and signs
// attestations. It is safe for concurrent use; each challenge is handled
// once.
type Verifier struct {
	priv    ed25519.PrivateKey
	pub     ed25519.PublicKey
	network [32]byte
	cfg     verifierConfig

	mu      sync.Mutex
	pending map[[32]byte]*verifierJob
}

type verifierJob struct {
	ch        Challenge
	chHash    [32]byte
	claim     float64
	issued    time.Time // verifier's clock when the challenge was made
	deadline  time.Time
	committed time.Time // zero until a valid commitment arrived in time
	root      hash
	late      bool
	spot      []int // rows asked for in spot mode
}

type verifierConfig struct {
	minN, maxN   int
	minGFLOPs    float64
	rttAllowance time.Duration
	overclaim    float64
	spotRows     int
	rBits        int
	securityBits int
	ttl          time.Duration
	maxPending   int
	engine       *tensor.Engine
	rand         io.Reader
	now          func() time.Time
	logger       *slog.Logger
}

// VerifierOption configures a Verifier.
type VerifierOption func(*verifierConfig) error

// WithSizes draws each challenge's n uniformly from [lo, hi]
// (default [1024, 2048]).
func WithSizes(lo, hi int) VerifierOption {
	return func(c *verifierConfig) error {
		if lo < MinN || hi > MaxN || lo > hi {
			return fmt.Errorf("attest: challenge sizes [%d, %d] not within [%d, %d]", lo, hi, MinN, MaxN)
		}
		c.minN, c.maxN = lo, hi
		return nil
	}
}

// WithDeadline sizes the commitment deadline: rtt (network allowance) plus
// the time 2n^3 FLOPs take at minGFLOPs, the slowest rate the network
// accepts (default 2 s and 1 GFLOP/s: 19 s for n = 2048). The deadline
// follows the network's floor, not the claim, so an over-claimer is
// measured and downgraded rather than cut off.
func WithDeadline(rtt time.Duration, minGFLOPs float64) VerifierOption {
	return func(c *verifierConfig) error {
		if rtt <= 0 || !(minGFLOPs > 0 && minGFLOPs <= MaxGFLOPs) {
			return fmt.Errorf("attest: deadline rtt %v and floor %v GFLOP/s must be positive", rtt, minGFLOPs)
		}
		c.rttAllowance, c.minGFLOPs = rtt, minGFLOPs
		return nil
	}
}

// WithOverclaimFactor sets the downgrade rule: an attested rate below
// claim/f is an over-claim (default 2).
func WithOverclaimFactor(f float64) VerifierOption {
	return func(c *verifierConfig) error {
		if !(f >= 1 && f <= 1000) {
			return fmt.Errorf("attest: over-claim factor %v out of [1, 1000]", f)
		}
		c.overclaim = f
		return nil
	}
}

// WithSpotRows switches to spot mode: instead of the whole product, s rows
// chosen after the commitment are opened with Merkle proofs and recomputed
// (default 0: full mode).
func WithSpotRows(s int) VerifierOption {
	return func(c *verifierConfig) error {
		if s < 0 || s > MaxSpotRows {
			return fmt.Errorf("attest: %d spot rows out of [0, %d]", s, MaxSpotRows)
		}
		c.spotRows = s
		return nil
	}
}

// WithFreivalds sets the bits of each entry of the secret vector (1..64;
// 1 gives 0/1 vectors) and the target error exponent (default 64 and 40).
func WithFreivalds(rBits, securityBits int) VerifierOption {
	return func(c *verifierConfig) error {
		if err := validFreivalds(rBits, securityBits); err != nil {
			return err
		}
		c.rBits, c.securityBits = rBits, securityBits
		return nil
	}
}

// WithAttestationTTL sets how long attestations stay valid (default 24 h).
func WithAttestationTTL(d time.Duration) VerifierOption {
	return func(c *verifierConfig) error {
		if d <= 0 {
			return fmt.Errorf("attest: attestation TTL %v is not positive", d)
		}
		c.ttl = d
		return nil
	}
}

// WithVerifierEngine runs the checks over e's threads (default: the
// calling goroutine only).
func WithVerifierEngine(e *tensor.Engine) VerifierOption {
	return func(c *verifierConfig) error {
		c.engine = e
		return nil
	}
}

// WithRand sets the source of nonces, sizes and secret vectors (default
// crypto/rand). Tests make runs repeatable with it; production must not.
func WithRand(r io.Reader) VerifierOption {
	return func(c *verifierConfig) error {
		if r == nil {
			return errors.New("attest: nil random source")
		}
		c.rand = r
		return nil
	}
}

// WithClock sets the verifier's clock (default time.Now).
func WithClock(now func() time.Time) VerifierOption {
	return func(c *verifierConfig) error {
		if now == nil {
			return errors.New("attest: nil clock")
		}
		c.now = now
		return nil
	}
}

// WithVerifierLogger sets the logger (default slog.Default()).
func WithVerifierLogger(l *slog.Logger) VerifierOption {
	return func(c *verifierConfig) error {
		if l == nil {
			return errors.New("attest: nil logger")
		}
		c.logger = l
		return nil
	}
}

// NewVerifier makes a verifier that signs with priv.
func NewVerifier(priv ed25519.PrivateKey, network [32]byte, opts ...VerifierOption) (*Verifier, error) {
	if err := checkPriv(priv); err != nil {
		return nil, err
	}
	cfg := verifierConfig{
		minN: 1024, maxN: 2048, minGFLOPs: 1, rttAllowance: 2 * time.Second, overclaim: 2,
		rBits: DefaultRBits, securityBits: DefaultSecurityBits, ttl: 24 * time.Hour,
		maxPending: 64, rand: rand.Reader, now: time.Now, logger: slog.Default(),
	}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	return &Verifier{priv: priv, pub: priv.Public().(ed25519.PublicKey), network: network, cfg: cfg,
		pending: map[[32]byte]*verifierJob{}}, nil
}

// PublicKey is the verifier's identity.
func (v *Verifier) PublicKey() ed25519.PublicKey { return v.pub }

func (v *Verifier) random(b []byte) error {
	if _, err := io.ReadFull(v.cfg.rand, b); err != nil {
		return fmt.Errorf("attest: reading randomness: %w", err)
	}
	return nil
}

func (v *Verifier) uniform(lo, hi int) (int, error) {
	var b [8]byte
	if err := v.random(b[:]); err != nil {
		return 0, err
	}
	return lo + int(binary.BigEndian.Uint64(b[:])%uint64(hi-lo+1)), nil
}

// Challenge makes a fresh challenge for prover, whose claim (GFLOP/s) the
// attestation will be compared with. The clock starts now: send it at once.
func (v *Verifier) Challenge(prover ed25519.PublicKey, claimGFLOPs float64) (*Challenge, error) {
	if len(prover) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("attest: prover key of %d bytes", len(prover))
	}
	if !(claimGFLOPs >= 0 && claimGFLOPs <= MaxGFLOPs) {
		return nil, fmt.Errorf("attest: claim %v GFLOP/s out of [0, %g]", claimGFLOPs, float64(MaxGFLOPs))
	}
	n, err := v.uniform(v.cfg.minN, v.cfg.maxN)
	if err != nil {
		return nil, err
	}
	ch := &Challenge{Network: v.network, N: n, Verifier: v.pub, Prover: append(ed25519.PublicKey(nil), prover...)}
	if err := v.random(ch.Nonce[:]); err != nil {
		return nil, err
	}
	flops := 2 * math.Pow(float64(n), 3)
	budget := v.cfg.rttAllowance + time.Duration(flops/(v.cfg.minGFLOPs*1e9)*float64(time.Second))
	now := v.cfg.now()
	ch.IssuedAt = now.UnixNano()
	ch.Deadline = now.Add(budget).UnixNano()
	if err := ch.sign(v.priv); err != nil {
		return nil, err
	}
	h, err := ch.Hash()
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, j := range v.pending {
		// Forget challenges abandoned by their caller: the opening phase
		// is over long before pendingGrace past the deadline.
		if now.Sub(j.deadline) > pendingGrace {
			delete(v.pending, k)
		}
	}
	if len(v.pending) >= v.cfg.maxPending {
		return nil, ErrBusy
	}
	v.pending[ch.Nonce] = &verifierJob{ch: *ch, chHash: h, claim: claimGFLOPs, issued: now, deadline: now.Add(budget)}
	return ch, nil
}

// Committed records a commitment. The arrival time is read first, so that
// checking it is not charged to the prover. A late commitment returns an
// error wrapping ErrExpired and the challenge then ends in NoResponse.
func (v *Verifier) Committed(cm *Commitment) error {
	at := v.cfg.now()
	if cm == nil {
		return fmt.Errorf("%w: nil commitment", ErrMalformed)
	}
	v.mu.Lock()
	j, ok := v.pending[cm.Nonce]
	v.mu.Unlock()
	if !ok {
		return ErrUnknownChallenge
	}
	if cm.Challenge != j.chHash || !cm.Prover.Equal(j.ch.Prover) {
		return fmt.Errorf("%w: commitment does not answer this challenge", ErrMalformed)
	}
	if err := cm.Verify(); err != nil {
		return err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	// A job's fields change only under v.mu while it is pending; Finish
	// owns it once removed.
	if v.pending[cm.Nonce] != j {
		return ErrUnknownChallenge
	}
	if !j.committed.IsZero() || j.late {
		return fmt.Errorf("%w: challenge already answered", ErrReplay)
	}
	if at.After(j.deadline) {
		j.late = true
		return fmt.Errorf("%w: commitment %v after the deadline", ErrExpired, at.Sub(j.deadline))
	}
	j.committed, j.root = at, cm.Root
	return nil
}

// Requests lists what to ask the prover to open, once committed: the whole
// product in range chunks (full mode), or s spot rows drawn now, after the
// commitment (spot mode).
func (v *Verifier) Requests(nonce [32]byte) ([]*OpenRequest, error) {
	v.mu.Lock()
	j, ok := v.pending[nonce]
	var committed bool
	var spot []int
	var n int
	if ok {
		committed, spot, n = !j.committed.IsZero(), j.spot, j.ch.N
	}
	v.mu.Unlock()
	if !ok {
		return nil, ErrUnknownChallenge
	}
	if !committed {
		return nil, fmt.Errorf("attest: challenge not committed")
	}
	if v.cfg.spotRows == 0 {
		var reqs []*OpenRequest
		step := rowsPerChunk(n)
		for lo := 0; lo < n; lo += step {
			reqs = append(reqs, &OpenRequest{Nonce: nonce, Kind: OpenRange, Lo: lo, Hi: min(n, lo+step)})
		}
		return reqs, nil
	}
	if spot == nil {
		// Distinct rows: s of n without replacement, so (1-f)^s bounds the
		// escape of a prover that skipped a fraction f of the rows. They
		// are drawn only now, after the commitment.
		set := map[int]bool{}
		for len(set) < min(v.cfg.spotRows, n) {
			i, err := v.uniform(0, n-1)
			if err != nil {
				return nil, err
			}
			set[i] = true
		}
		rows := make([]int, 0, len(set))
		for i := range set {
			rows = append(rows, i)
		}
		sort.Ints(rows)
		v.mu.Lock()
		if v.pending[nonce] != j {
			v.mu.Unlock()
			return nil, ErrUnknownChallenge
		}
		if j.spot == nil {
			j.spot = rows
		}
		spot = j.spot
		v.mu.Unlock()
	}
	return []*OpenRequest{{Nonce: nonce, Kind: OpenSpot, Indices: append([]int(nil), spot...)}}, nil
}

// Finish checks the openings that answer Requests and signs the
// attestation, which always comes back for a known challenge (the error
// reports only operational failures). Missing, malformed or wrong openings
// of a committed product give VerdictWrong; no commitment in time gives
// VerdictNoResponse.
func (v *Verifier) Finish(ctx context.Context, nonce [32]byte, openings []*Opening) (*Attestation, error) {
	v.mu.Lock()
	j, ok := v.pending[nonce]
	if ok {
		delete(v.pending, nonce)
	}
	v.mu.Unlock()
	if !ok {
		return nil, ErrUnknownChallenge
	}
	a := v.newAttestation(j)
	switch {
	case j.committed.IsZero():
		a.Verdict = VerdictNoResponse
	default:
		elapsed := j.committed.Sub(j.issued)
		a.Elapsed = max(elapsed, time.Nanosecond)
		if err := v.check(ctx, j, openings); err != nil {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("attest: checking openings: %w", ctx.Err())
			}
			v.cfg.logger.Info("attest: wrong product", "n", j.ch.N, "err", err)
			a.Verdict = VerdictWrong
			break
		}
		a.AttestedGFLOPs = min(MaxGFLOPs, 2*math.Pow(float64(j.ch.N), 3)/a.Elapsed.Seconds()/1e9)
		a.Verdict = VerdictPass
		if a.AttestedGFLOPs < j.claim/v.cfg.overclaim {
			a.Verdict = VerdictOverclaim
		}
	}
	if err := a.Sign(v.priv); err != nil {
		return nil, err
	}
	return a, nil
}

func (v *Verifier) newAttestation(j *verifierJob) *Attestation {
	now := v.cfg.now()
	a := &Attestation{
		Network: v.network, Subject: j.ch.Prover, Nonce: j.ch.Nonce, N: j.ch.N,
		ClaimedGFLOPs: j.claim, IssuedAt: now.UnixNano(), ExpiresAt: now.Add(v.cfg.ttl).UnixNano(),
	}
	if v.cfg.spotRows > 0 {
		a.Spot = min(v.cfg.spotRows, j.ch.N)
	} else {
		a.SoundnessBits = SoundnessBits(j.ch.N, v.cfg.rBits, v.cfg.securityBits)
	}
	return a
}

// check verifies the openings against the commitment.
func (v *Verifier) check(ctx context.Context, j *verifierJob, openings []*Opening) error {
	n := j.ch.N
	a := make([]int8, n*n)
	b := make([]int8, n*n)
	genMatrices(v.cfg.engine, j.ch.Nonce, n, a, b)
	if err := ctx.Err(); err != nil {
		return err
	}
	if v.cfg.spotRows > 0 {
		return v.checkSpot(j, a, b, openings)
	}
	// Full mode: reassemble C from range chunks covering every row once.
	c := make([]int32, n*n)
	got := make([]bool, n)
	for _, op := range openings {
		if op == nil || op.Nonce != j.ch.Nonce || op.Kind != OpenRange || op.N != n ||
			op.Rows() == 0 || len(op.Values) != op.Rows()*n || op.Lo < 0 || op.Lo+op.Rows() > n {
			return errors.New("opening does not fit the challenge")
		}
		for i := op.Lo; i < op.Lo+op.Rows(); i++ {
			if got[i] {
				return fmt.Errorf("row %d opened twice", i)
			}
			got[i] = true
		}
		copy(c[op.Lo*n:], op.Values)
	}
	for i, ok := range got {
		if !ok {
			return fmt.Errorf("row %d not opened", i)
		}
	}
	if !inRange(c, n) {
		return fmt.Errorf("product entry beyond ±%d", EntryBound(n))
	}
	if root := buildTree(v.cfg.engine, c, n).root(); root != j.root {
		return errors.New("opened rows do not match the committed root")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// The secret vectors are drawn only now, after C is bound, and never
	// leave the verifier.
	reps := repetitions(n, v.cfg.rBits, v.cfg.securityBits)
	var seed [32]byte
	if err := v.random(seed[:]); err != nil {
		return err
	}
	rs := secretVectors(seed, n, reps, v.cfg.rBits)
	if !freivalds(v.cfg.engine, a, b, c, n, rs) {
		return errors.New("Freivalds check failed: C != A·B")
	}
	return nil
}

// secretVectors draws reps vectors of n entries uniform in [0, 2^rBits).
func secretVectors(seed [32]byte, n, reps, rBits int) [][]uint64 {
	rng := mrand.NewChaCha8(seed)
	rs := make([][]uint64, reps)
	for k := range rs {
		rs[k] = make([]uint64, n)
		for i := range rs[k] {
			rs[k][i] = rng.Uint64() >> (64 - rBits)
		}
	}
	return rs
}

func (v *Verifier) checkSpot(j *verifierJob, a, b []int8, openings []*Opening) error {
	n := j.ch.N
	if len(openings) != 1 || openings[0] == nil {
		return fmt.Errorf("%d openings for one spot request", len(openings))
	}
	op := openings[0]
	if op.Nonce != j.ch.Nonce || op.Kind != OpenSpot || op.N != n || len(op.Indices) != len(j.spot) ||
		len(op.Values) != len(j.spot)*n || len(op.Proofs) != len(j.spot) {
		return errors.New("opening does not fit the spot request")
	}
	want := make([]int32, n)
	buf := make([]byte, 0, 5+4*n)
	for k, i := range j.spot {
		if op.Indices[k] != i {
			return fmt.Errorf("row %d opened instead of %d", op.Indices[k], i)
		}
		row := op.Values[k*n : (k+1)*n]
		if err := verifyProof(j.root, leafHash(buf, i, row), i, n, op.Proofs[k]); err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
		productRow(a, b, n, i, want)
		for c := range want {
			if want[c] != row[c] {
				return fmt.Errorf("row %d differs from A·B at column %d", i, c)
			}
		}
	}
	return nil
}

// Attest runs one attestation of prover over t: challenge, commitment
// within the deadline, openings, check. It returns the signed attestation
// whatever the verdict; the error reports only failures of the verifier
// itself (randomness, cancelled ctx).
func (v *Verifier) Attest(ctx context.Context, t Transport, prover ed25519.PublicKey, claimGFLOPs float64) (*Attestation, error) {
	ch, err := v.Challenge(prover, claimGFLOPs)
	if err != nil {
		return nil, err
	}
	// The deadline is on the verifier's clock; the context counts the same
	// span on the real one.
	cctx, cancel := context.WithTimeout(ctx, unixTime(ch.Deadline).Sub(v.cfg.now()))
	cm, err := t.Commit(cctx, ch)
	cancel()
	if err == nil {
		err = v.Committed(cm)
	}
	if err != nil {
		if ctx.Err() != nil {
			v.drop(ch.Nonce)
			return nil, fmt.Errorf("attest: %w", ctx.Err())
		}
		v.cfg.logger.Info("attest: no valid commitment", "err", err)
		return v.Finish(ctx, ch.Nonce, nil)
	}
	reqs, err := v.Requests(ch.Nonce)
	if err != nil {
		v.drop(ch.Nonce)
		return nil, err
	}
	var ops []*Opening
	for _, q := range reqs {
		op, err := t.Open(ctx, q)
		if err != nil {
			if ctx.Err() != nil {
				v.drop(ch.Nonce)
				return nil, fmt.Errorf("attest: %w", ctx.Err())
			}
			// Committed but not opened: counts as a wrong product, or a
			// cheater would simply refuse to open.
			v.cfg.logger.Info("attest: opening failed", "err", err)
			break
		}
		ops = append(ops, op)
	}
	return v.Finish(ctx, ch.Nonce, ops)
}

func (v *Verifier) drop(nonce [32]byte) {
	v.mu.Lock()
	delete(v.pending, nonce)
	v.mu.Unlock()
}
