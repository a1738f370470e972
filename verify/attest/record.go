package attest

import (
	"crypto/ed25519"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math"
	"time"

	"github.com/trinity-net/trinity/compute/hw"
)

// Verdict is the outcome of one attestation.
type Verdict uint8

const (
	// VerdictPass: the product was right and the attested rate is at least
	// the claim divided by the over-claim factor.
	VerdictPass Verdict = 1
	// VerdictOverclaim: the product was right but the attested rate is
	// below claim / factor; records are downgraded to the attested rate.
	VerdictOverclaim Verdict = 2
	// VerdictWrong: the product, an opening or a proof was wrong, or the
	// prover committed and then did not open. The provider is marked faulty
	// until the attestation expires.
	VerdictWrong Verdict = 3
	// VerdictNoResponse: no valid commitment before the deadline. The
	// provider counts as offering nothing until a later attestation.
	VerdictNoResponse Verdict = 4
)

func (v Verdict) String() string {
	switch v {
	case VerdictPass:
		return "pass"
	case VerdictOverclaim:
		return "overclaim"
	case VerdictWrong:
		return "wrong"
	case VerdictNoResponse:
		return "no-response"
	}
	return fmt.Sprintf("verdict(%d)", uint8(v))
}

func (v Verdict) valid() bool { return v >= VerdictPass && v <= VerdictNoResponse }

// MaxGFLOPs bounds any rate on the wire (an exaFLOP/s).
const MaxGFLOPs = 1e9

// MaxTokensPerSec bounds a claimed training rate on the wire.
const MaxTokensPerSec = 1e12

// AttestationSize is the fixed wire size of an Attestation.
const AttestationSize = 1 + 32 + 32 + 32 + 32 + 4 + 2 + 8 + 8 + 8 + 1 + 1 + 8 + 8 + ed25519.SignatureSize

// Attestation is a verifier's signed statement of what a provider delivered
// on one challenge.
//
// Wire format (version 1, big-endian, fixed 241 bytes):
//
//	u8 version | [32]network | [32]attester key | [32]subject key | [32]nonce |
//	u32 n | u16 spot rows (0: full product, Freivalds) | i64 elapsed ns |
//	f64 claimed GFLOP/s | f64 attested GFLOP/s | u8 soundness bits |
//	u8 verdict | i64 issued-at | i64 expires-at | [64]signature
//
// The signature is the attester's Ed25519 over domainAttestation and every
// byte before it.
type Attestation struct {
	Network  [32]byte
	Attester ed25519.PublicKey
	Subject  ed25519.PublicKey
	Nonce    [32]byte
	N        int
	// Spot is the number of spot rows checked, 0 when the whole product
	// was checked with Freivalds.
	Spot int
	// Elapsed is from issuing the challenge to receiving the commitment,
	// on the attester's clock (0 without a commitment).
	Elapsed        time.Duration
	ClaimedGFLOPs  float64
	AttestedGFLOPs float64 // 2n^3 / Elapsed; 0 unless Pass or Overclaim
	// SoundnessBits: a wrong product passes with probability at most
	// 2^-SoundnessBits (full mode); 0 in spot mode, whose bound depends on
	// how much of the product is wrong (see the package doc).
	SoundnessBits int
	Verdict       Verdict
	IssuedAt      int64 // Unix ns
	ExpiresAt     int64 // Unix ns
	Signature     []byte
}

func (a *Attestation) body() ([]byte, error) {
	if a.N < MinN || a.N > MaxN || a.Spot < 0 || a.Spot > MaxSpotRows || a.Elapsed < 0 ||
		a.SoundnessBits < 0 || a.SoundnessBits > 255 || !a.Verdict.valid() || a.ExpiresAt <= a.IssuedAt ||
		!(a.ClaimedGFLOPs >= 0 && a.ClaimedGFLOPs <= MaxGFLOPs) || !(a.AttestedGFLOPs >= 0 && a.AttestedGFLOPs <= MaxGFLOPs) {
		return nil, fmt.Errorf("%w: attestation field out of range", ErrMalformed)
	}
	b := make([]byte, 0, AttestationSize)
	b = append(b, Version)
	b = append(b, a.Network[:]...)
	var err error
	if b, err = appendKey(b, a.Attester); err != nil {
		return nil, err
	}
	if b, err = appendKey(b, a.Subject); err != nil {
		return nil, err
	}
	b = append(b, a.Nonce[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(a.N))
	b = binary.BigEndian.AppendUint16(b, uint16(a.Spot))
	b = binary.BigEndian.AppendUint64(b, uint64(a.Elapsed))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(a.ClaimedGFLOPs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(a.AttestedGFLOPs))
	b = append(b, byte(a.SoundnessBits), byte(a.Verdict))
	b = binary.BigEndian.AppendUint64(b, uint64(a.IssuedAt))
	b = binary.BigEndian.AppendUint64(b, uint64(a.ExpiresAt))
	return b, nil
}

// Sign sets Attester to priv's public key and signs.
func (a *Attestation) Sign(priv ed25519.PrivateKey) error {
	if err := checkPriv(priv); err != nil {
		return err
	}
	a.Attester = priv.Public().(ed25519.PublicKey)
	b, err := a.body()
	if err != nil {
		return err
	}
	a.Signature = sign(priv, domainAttestation, b)
	return nil
}

// Verify checks the attester's signature.
func (a *Attestation) Verify() error {
	b, err := a.body()
	if err != nil {
		return err
	}
	if err := verifySig(a.Attester, domainAttestation, b, a.Signature); err != nil {
		return fmt.Errorf("attestation: %w", err)
	}
	return nil
}

// MarshalBinary encodes a signed attestation.
func (a *Attestation) MarshalBinary() ([]byte, error) {
	b, err := a.body()
	if err != nil {
		return nil, err
	}
	if len(a.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: attestation not signed", ErrMalformed)
	}
	return append(b, a.Signature...), nil
}

// UnmarshalBinary decodes an attestation; Verify checks its signature.
func (a *Attestation) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	q, err := readAttestation(&r)
	if err != nil {
		return err
	}
	if err := r.end("attestation"); err != nil {
		return err
	}
	*a = q
	return nil
}

func readAttestation(r *reader) (Attestation, error) {
	var a Attestation
	r.version("attestation")
	a.Network = r.h32("network")
	a.Attester = r.key("attester")
	a.Subject = r.key("subject")
	a.Nonce = r.h32("nonce")
	a.N = int(r.u32("n"))
	a.Spot = int(r.u16("spot rows"))
	a.Elapsed = time.Duration(r.i64("elapsed"))
	a.ClaimedGFLOPs = r.rate("claimed GFLOP/s", MaxGFLOPs)
	a.AttestedGFLOPs = r.rate("attested GFLOP/s", MaxGFLOPs)
	a.SoundnessBits = int(r.u8("soundness bits"))
	a.Verdict = Verdict(r.u8("verdict"))
	a.IssuedAt = r.i64("issued-at")
	a.ExpiresAt = r.i64("expires-at")
	a.Signature = r.sig()
	if r.err != nil {
		return Attestation{}, r.err
	}
	if a.N < MinN || a.N > MaxN || a.Spot > MaxSpotRows || a.Elapsed < 0 || !a.Verdict.valid() || a.ExpiresAt <= a.IssuedAt {
		r.fail("attestation field out of range")
		return Attestation{}, r.err
	}
	return a, nil
}

// Limits of a capacity record.
const (
	// MaxRecordAttestations bounds the attestations a record carries.
	MaxRecordAttestations = 16
	// MaxRecordTTL bounds a record's lifetime: a provider re-publishes.
	MaxRecordTTL = 24 * time.Hour
	// MaxRecordSize bounds a record's encoding.
	MaxRecordSize = 1 + 32 + 32 + 8 + 2 + hw.MaxProfileSize + 8 + 8 + 32 + 1 +
		MaxRecordAttestations*AttestationSize + 8 + 8 + ed25519.SignatureSize
)

// CapacityRecord is what a provider offers to the network: its hardware,
// its own measured figures, and attestations it has received. It is
// published on the capacity gossip topic and provided on the DHT under
// RecordKey.
//
// Wire format (version 1, big-endian):
//
//	u8 version | [32]network | [32]peer key | u64 seq | u16 len, profile |
//	f64 claimed GEMM GFLOP/s | f64 claimed training tokens/s |
//	[32]model config hash the tokens/s refer to |
//	u8 count, attestation (241 bytes)... | i64 issued-at | i64 expires-at |
//	[64]signature
//
// The signature is the peer's Ed25519 over domainCapacity and every byte
// before it. Attestations keep their own attesters' signatures; they must
// name this peer and network.
type CapacityRecord struct {
	Network           [32]byte
	Peer              ed25519.PublicKey
	Seq               uint64 // higher replaces lower
	Profile           hw.Profile
	GemmGFLOPs        float64  // claimed, from hw.MeasureGemm
	TrainTokensPerSec float64  // claimed, from hw.MeasureTraining
	TrainConfig       [32]byte // model.Config.Hash() of that measurement
	Attestations      []Attestation
	IssuedAt          int64 // Unix ns
	ExpiresAt         int64 // Unix ns
	Signature         []byte
}

func (c *CapacityRecord) body() ([]byte, error) {
	if !(c.GemmGFLOPs >= 0 && c.GemmGFLOPs <= MaxGFLOPs) || !(c.TrainTokensPerSec >= 0 && c.TrainTokensPerSec <= MaxTokensPerSec) {
		return nil, fmt.Errorf("%w: claimed rate out of range", ErrMalformed)
	}
	if c.ExpiresAt <= c.IssuedAt || c.ExpiresAt-c.IssuedAt > int64(MaxRecordTTL) {
		return nil, fmt.Errorf("%w: record lifetime must be in (0, %v]", ErrMalformed, MaxRecordTTL)
	}
	if len(c.Attestations) > MaxRecordAttestations {
		return nil, fmt.Errorf("%w: %d attestations, at most %d", ErrMalformed, len(c.Attestations), MaxRecordAttestations)
	}
	prof, err := c.Profile.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("attest: record profile: %w", err)
	}
	b := make([]byte, 0, 256+len(prof)+len(c.Attestations)*AttestationSize)
	b = append(b, Version)
	b = append(b, c.Network[:]...)
	if b, err = appendKey(b, c.Peer); err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint64(b, c.Seq)
	b = binary.BigEndian.AppendUint16(b, uint16(len(prof)))
	b = append(b, prof...)
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.GemmGFLOPs))
	b = binary.BigEndian.AppendUint64(b, math.Float64bits(c.TrainTokensPerSec))
	b = append(b, c.TrainConfig[:]...)
	b = append(b, byte(len(c.Attestations)))
	for i := range c.Attestations {
		a := &c.Attestations[i]
		if a.Network != c.Network || !a.Subject.Equal(c.Peer) {
			return nil, fmt.Errorf("%w: attestation %d is about another peer or network", ErrMalformed, i)
		}
		ab, err := a.MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("attest: record attestation %d: %w", i, err)
		}
		b = append(b, ab...)
	}
	b = binary.BigEndian.AppendUint64(b, uint64(c.IssuedAt))
	b = binary.BigEndian.AppendUint64(b, uint64(c.ExpiresAt))
	return b, nil
}

// Sign sets Peer to priv's public key and signs the record.
func (c *CapacityRecord) Sign(priv ed25519.PrivateKey) error {
	if err := checkPriv(priv); err != nil {
		return err
	}
	c.Peer = priv.Public().(ed25519.PublicKey)
	b, err := c.body()
	if err != nil {
		return err
	}
	c.Signature = sign(priv, domainCapacity, b)
	return nil
}

// Verify checks the record's signature and every attestation's.
func (c *CapacityRecord) Verify() error {
	b, err := c.body()
	if err != nil {
		return err
	}
	if err := verifySig(c.Peer, domainCapacity, b, c.Signature); err != nil {
		return fmt.Errorf("capacity record: %w", err)
	}
	for i := range c.Attestations {
		if err := c.Attestations[i].Verify(); err != nil {
			return fmt.Errorf("capacity record attestation %d: %w", i, err)
		}
	}
	return nil
}

// MarshalBinary encodes a signed record.
func (c *CapacityRecord) MarshalBinary() ([]byte, error) {
	b, err := c.body()
	if err != nil {
		return nil, err
	}
	if len(c.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: record not signed", ErrMalformed)
	}
	return append(b, c.Signature...), nil
}

// UnmarshalBinary decodes a record; Verify checks the signatures.
func (c *CapacityRecord) UnmarshalBinary(data []byte) error {
	if len(data) > MaxRecordSize {
		return fmt.Errorf("%w: record of %d bytes exceeds %d", ErrMalformed, len(data), MaxRecordSize)
	}
	r := reader{b: data}
	var q CapacityRecord
	r.version("capacity record")
	q.Network = r.h32("network")
	q.Peer = r.key("peer")
	q.Seq = r.u64("seq")
	pl := int(r.u16("profile length"))
	if pb := r.take(pl, "profile"); r.err == nil {
		if err := q.Profile.UnmarshalBinary(pb); err != nil {
			return fmt.Errorf("%w: %w", ErrMalformed, err)
		}
	}
	q.GemmGFLOPs = r.rate("claimed GFLOP/s", MaxGFLOPs)
	q.TrainTokensPerSec = r.rate("claimed tokens/s", MaxTokensPerSec)
	q.TrainConfig = r.h32("model config hash")
	na := int(r.u8("attestation count"))
	if r.err == nil && na > MaxRecordAttestations {
		r.fail("%d attestations, at most %d", na, MaxRecordAttestations)
	}
	for k := 0; k < na && r.err == nil; k++ {
		a, err := readAttestation(&r)
		if err != nil {
			return err
		}
		if a.Network != q.Network || !a.Subject.Equal(q.Peer) {
			r.fail("attestation %d is about another peer or network", k)
		}
		q.Attestations = append(q.Attestations, a)
	}
	q.IssuedAt = r.i64("issued-at")
	q.ExpiresAt = r.i64("expires-at")
	if r.err == nil && (q.ExpiresAt <= q.IssuedAt || q.ExpiresAt-q.IssuedAt > int64(MaxRecordTTL)) {
		r.fail("record lifetime must be in (0, %v]", MaxRecordTTL)
	}
	q.Signature = r.sig()
	if err := r.end("capacity record"); err != nil {
		return err
	}
	*c = q
	return nil
}

// NewCapacityRecord assembles an unsigned record from a profile, measured
// figures and attestations received, valid for ttl (at most MaxRecordTTL)
// from now. Sign it before publishing.
func NewCapacityRecord(network [32]byte, seq uint64, p hw.Profile, gemm hw.GemmResult, train hw.TrainResult,
	atts []Attestation, now time.Time, ttl time.Duration) (*CapacityRecord, error) {
	if ttl <= 0 || ttl > MaxRecordTTL {
		return nil, fmt.Errorf("attest: record TTL %v out of (0, %v]", ttl, MaxRecordTTL)
	}
	if len(atts) > MaxRecordAttestations {
		atts = atts[len(atts)-MaxRecordAttestations:] // keep the latest
	}
	rec := &CapacityRecord{
		Network: network, Seq: seq, Profile: p,
		GemmGFLOPs: gemm.GFLOPs, TrainTokensPerSec: train.TokensPerSec,
		Attestations: append([]Attestation(nil), atts...),
		IssuedAt:     now.UnixNano(), ExpiresAt: now.Add(ttl).UnixNano(),
	}
	if train.Steps > 0 {
		rec.TrainConfig = train.Config.Hash()
	}
	return rec, nil
}

// RecordKey is the well-known DHT key under which a peer's capacity record
// is provided: /trinity-capacity/<network hex>/<peer key hex>.
func RecordKey(network [32]byte, peer ed25519.PublicKey) string {
	return "/trinity-capacity/" + hex.EncodeToString(network[:]) + "/" + hex.EncodeToString(peer)
}
