package attest

import (
	"crypto/ed25519"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"
)

// Status is a provider's standing in a Book.
type Status uint8

const (
	// StatusUnattested: no valid attestation yet; the claim stands.
	StatusUnattested Status = iota + 1
	// StatusAttested: attestations support the claim (within the factor).
	StatusAttested
	// StatusDowngraded: attested rate below claim/factor; the record is
	// taken at the attested rate.
	StatusDowngraded
	// StatusUnresponsive: the latest attestations got no commitment.
	StatusUnresponsive
	// StatusFaulty: a wrong product within the mark's lifetime.
	StatusFaulty
)

func (s Status) String() string {
	switch s {
	case StatusUnattested:
		return "unattested"
	case StatusAttested:
		return "attested"
	case StatusDowngraded:
		return "downgraded"
	case StatusUnresponsive:
		return "unresponsive"
	case StatusFaulty:
		return "faulty"
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Provider is a provider as a Book rates it.
type Provider struct {
	Peer   ed25519.PublicKey
	Record *CapacityRecord // nil if only attestations are known
	Status Status
	// AttestedGFLOPs is the median over attesters of their latest valid
	// attestation (0 for a no-response); 0 when none.
	AttestedGFLOPs float64
	Attesters      int
	// EffectiveGFLOPs and EffectiveTokensPerSec are what the network should
	// count on: the claim when attested or unattested, the attested rate
	// (tokens/s scaled by attested/claimed) when downgraded, 0 when faulty
	// or unresponsive.
	EffectiveGFLOPs       float64
	EffectiveTokensPerSec float64
}

// Book collects capacity records and attestations of one network and
// applies the downgrade rule; it backs `trinity compute list`. It is safe
// for concurrent use.
//
// Rule: per attester only its latest unexpired attestation of a subject
// counts, except that a VerdictWrong marks the subject faulty until that
// attestation expires, whatever follows. Without a mark, the median of the
// attesters' latest attested rates (a no-response counts as 0) is compared
// with the record's current claim: below claim/factor the provider is
// downgraded to that median.
type Book struct {
	network  [32]byte
	factor   float64
	maxPeers int
	accept   func(ed25519.PublicKey) bool

	mu    sync.Mutex
	peers map[string]*bookEntry
}

type bookEntry struct {
	rec    *CapacityRecord
	latest map[string]*Attestation // by attester
	marks  map[string]*Attestation // VerdictWrong, by attester
}

// maxAttestersPerPeer bounds per-subject state.
const maxAttestersPerPeer = 64

// BookOption configures a Book.
type BookOption func(*Book) error

// WithBookOverclaimFactor sets the downgrade factor (default 2).
func WithBookOverclaimFactor(f float64) BookOption {
	return func(b *Book) error {
		if !(f >= 1 && f <= 1000) {
			return fmt.Errorf("attest: over-claim factor %v out of [1, 1000]", f)
		}
		b.factor = f
		return nil
	}
}

// WithAttesters counts only attestations signed by keys accept approves
// (for example the validator set; default: any).
func WithAttesters(accept func(ed25519.PublicKey) bool) BookOption {
	return func(b *Book) error {
		if accept == nil {
			return errors.New("attest: nil attester filter")
		}
		b.accept = accept
		return nil
	}
}

// WithMaxProviders bounds the providers tracked (default 10,000).
func WithMaxProviders(n int) BookOption {
	return func(b *Book) error {
		if n < 1 {
			return fmt.Errorf("attest: max providers %d < 1", n)
		}
		b.maxPeers = n
		return nil
	}
}

// NewBook makes an empty book for network.
func NewBook(network [32]byte, opts ...BookOption) (*Book, error) {
	b := &Book{network: network, factor: 2, maxPeers: 10000,
		accept: func(ed25519.PublicKey) bool { return true }, peers: map[string]*bookEntry{}}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func (b *Book) entry(peer ed25519.PublicKey) (*bookEntry, error) {
	k := string(peer)
	e, ok := b.peers[k]
	if !ok {
		if len(b.peers) >= b.maxPeers {
			return nil, fmt.Errorf("%w: book holds %d providers", ErrBusy, b.maxPeers)
		}
		e = &bookEntry{latest: map[string]*Attestation{}, marks: map[string]*Attestation{}}
		b.peers[k] = e
	}
	return e, nil
}

// AddRecord verifies a record and keeps it if newer (by Seq) than the one
// held. Its attestations are added too.
func (b *Book) AddRecord(rec *CapacityRecord, now time.Time) error {
	if rec == nil {
		return fmt.Errorf("%w: nil record", ErrMalformed)
	}
	if rec.Network != b.network {
		return ErrWrongNetwork
	}
	if err := rec.Verify(); err != nil {
		return err
	}
	if !now.Before(unixTime(rec.ExpiresAt)) {
		return fmt.Errorf("%w: record expired", ErrExpired)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, err := b.entry(rec.Peer)
	if err != nil {
		return err
	}
	if e.rec != nil && e.rec.Seq >= rec.Seq && now.Before(unixTime(e.rec.ExpiresAt)) {
		return fmt.Errorf("%w: record seq %d not newer than %d", ErrReplay, rec.Seq, e.rec.Seq)
	}
	e.rec = rec
	for i := range rec.Attestations {
		b.addLocked(e, &rec.Attestations[i], now)
	}
	return nil
}

// AddAttestation verifies an attestation (from gossip, or one's own) and
// records it, so that a provider cannot hide a bad one by leaving it out
// of its record.
func (b *Book) AddAttestation(a *Attestation, now time.Time) error {
	if a == nil {
		return fmt.Errorf("%w: nil attestation", ErrMalformed)
	}
	if a.Network != b.network {
		return ErrWrongNetwork
	}
	if err := a.Verify(); err != nil {
		return err
	}
	if !now.Before(unixTime(a.ExpiresAt)) {
		return fmt.Errorf("%w: attestation expired", ErrExpired)
	}
	if !b.accept(a.Attester) {
		return ErrRejectedVerifier
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	e, err := b.entry(a.Subject)
	if err != nil {
		return err
	}
	b.addLocked(e, a, now)
	return nil
}

// addLocked files a verified attestation.
func (b *Book) addLocked(e *bookEntry, a *Attestation, now time.Time) {
	if !b.accept(a.Attester) || !now.Before(unixTime(a.ExpiresAt)) {
		return
	}
	k := string(a.Attester)
	if a.Verdict == VerdictWrong {
		if m, ok := e.marks[k]; !ok || m.ExpiresAt < a.ExpiresAt {
			if ok || len(e.marks) < maxAttestersPerPeer {
				e.marks[k] = a
			}
		}
	}
	if old, ok := e.latest[k]; ok {
		if old.IssuedAt >= a.IssuedAt {
			return
		}
	} else if len(e.latest) >= maxAttestersPerPeer {
		return
	}
	e.latest[k] = a
}

// Prune drops expired records, attestations and marks.
func (b *Book) Prune(now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for k, e := range b.peers {
		if e.rec != nil && !now.Before(unixTime(e.rec.ExpiresAt)) {
			e.rec = nil
		}
		for ak, a := range e.latest {
			if !now.Before(unixTime(a.ExpiresAt)) {
				delete(e.latest, ak)
			}
		}
		for ak, a := range e.marks {
			if !now.Before(unixTime(a.ExpiresAt)) {
				delete(e.marks, ak)
			}
		}
		if e.rec == nil && len(e.latest) == 0 && len(e.marks) == 0 {
			delete(b.peers, k)
		}
	}
}

// Provider rates one peer.
func (b *Book) Provider(peer ed25519.PublicKey, now time.Time) (Provider, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.peers[string(peer)]
	if !ok {
		return Provider{}, false
	}
	return b.rate(peer, e, now), true
}

// List rates every peer with an unexpired record, highest effective
// GFLOP/s first.
func (b *Book) List(now time.Time) []Provider {
	b.mu.Lock()
	var out []Provider
	for k, e := range b.peers {
		if e.rec == nil || !now.Before(unixTime(e.rec.ExpiresAt)) {
			continue
		}
		out = append(out, b.rate(ed25519.PublicKey(k), e, now))
	}
	b.mu.Unlock()
	sort.Slice(out, func(i, j int) bool {
		if out[i].EffectiveGFLOPs != out[j].EffectiveGFLOPs {
			return out[i].EffectiveGFLOPs > out[j].EffectiveGFLOPs
		}
		return string(out[i].Peer) < string(out[j].Peer)
	})
	return out
}

func (b *Book) rate(peer ed25519.PublicKey, e *bookEntry, now time.Time) Provider {
	p := Provider{Peer: append(ed25519.PublicKey(nil), peer...)}
	var claim, tokens float64
	if e.rec != nil && now.Before(unixTime(e.rec.ExpiresAt)) {
		p.Record = e.rec
		claim, tokens = e.rec.GemmGFLOPs, e.rec.TrainTokensPerSec
	}
	for _, m := range e.marks {
		if now.Before(unixTime(m.ExpiresAt)) {
			p.Status = StatusFaulty
			return p
		}
	}
	var rates []float64
	for _, a := range e.latest {
		if now.Before(unixTime(a.ExpiresAt)) && a.Verdict != VerdictWrong {
			rates = append(rates, a.AttestedGFLOPs) // 0 for no-response
		}
	}
	p.Attesters = len(rates)
	if len(rates) == 0 {
		p.Status = StatusUnattested
		p.EffectiveGFLOPs, p.EffectiveTokensPerSec = claim, tokens
		return p
	}
	sort.Float64s(rates)
	med := rates[len(rates)/2]
	if len(rates)%2 == 0 {
		med = (rates[len(rates)/2-1] + rates[len(rates)/2]) / 2
	}
	p.AttestedGFLOPs = med
	switch {
	case med == 0:
		p.Status = StatusUnresponsive
	case med < claim/b.factor:
		p.Status = StatusDowngraded
		p.EffectiveGFLOPs = med
		p.EffectiveTokensPerSec = tokens * med / claim
	default:
		p.Status = StatusAttested
		p.EffectiveGFLOPs, p.EffectiveTokensPerSec = claim, tokens
	}
	return p
}
