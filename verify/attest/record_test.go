package attest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"testing"
	"time"

	"github.com/trinity-net/trinity/compute/hw"
	"github.com/trinity-net/trinity/compute/model"
)

var testProfile = hw.Profile{OS: "linux", Arch: "amd64", CPUVendor: "AuthenticAMD", CPUModel: "AMD EPYC",
	CPUFamily: 25, LogicalCPUs: 2, PhysicalCores: 2, Sockets: 1, Features: []string{"avx2", "fma"}, ISA: "avx2",
	MemTotal: 24 << 30}

// signedRecord makes a record of the peer `label`, valid for an hour from
// now.
func signedRecord(t testing.TB, label string, gflops, tokens float64, atts []Attestation) *CapacityRecord {
	t.Helper()
	now := time.Now()
	rec := &CapacityRecord{
		Network: testNetwork, Seq: 1, Profile: testProfile, GemmGFLOPs: gflops, TrainTokensPerSec: tokens,
		TrainConfig: model.Reference.Hash(), Attestations: atts,
		IssuedAt: now.Add(-time.Minute).UnixNano(), ExpiresAt: now.Add(time.Hour).UnixNano(),
	}
	if err := rec.Sign(key(label)); err != nil {
		t.Fatal(err)
	}
	return rec
}

// signedAttestation makes an attestation of subject by attester.
func signedAttestation(t testing.TB, attester, subject string, v Verdict, attested float64, issued time.Time) *Attestation {
	t.Helper()
	a := &Attestation{
		Network: testNetwork, Subject: pub(subject), Nonce: [32]byte{byte(v), byte(attested)},
		N: 1024, Elapsed: time.Second, ClaimedGFLOPs: 100, AttestedGFLOPs: attested, SoundnessBits: 48,
		Verdict: v, IssuedAt: issued.UnixNano(), ExpiresAt: issued.Add(time.Hour).UnixNano(),
	}
	if err := a.Sign(key(attester)); err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRecordSignVerify(t *testing.T) {
	now := time.Now()
	att := signedAttestation(t, "val1", "peer", VerdictPass, 90, now)
	rec := signedRecord(t, "peer", 100, 1500, []Attestation{*att})
	if err := rec.Verify(); err != nil {
		t.Fatal(err)
	}
	b, err := rec.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var got CapacityRecord
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	if err := got.Verify(); err != nil {
		t.Fatalf("decoded record: %v", err)
	}
	// Any change breaks a signature: the record's or the attester's.
	changes := map[string]func(r *CapacityRecord){
		"claim":       func(r *CapacityRecord) { r.GemmGFLOPs *= 2 },
		"profile":     func(r *CapacityRecord) { r.Profile.LogicalCPUs = 64 },
		"seq":         func(r *CapacityRecord) { r.Seq++ },
		"attestation": func(r *CapacityRecord) { r.Attestations[0].AttestedGFLOPs = 1000 },
		"expiry":      func(r *CapacityRecord) { r.ExpiresAt-- },
	}
	for name, change := range changes {
		var r CapacityRecord
		if err := r.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		change(&r)
		if err := r.Verify(); !errors.Is(err, ErrBadSignature) {
			t.Errorf("%s changed: %v", name, err)
		}
	}
	// Re-signing by the peer cannot repair an altered attestation.
	var r CapacityRecord
	_ = r.UnmarshalBinary(b)
	r.Attestations[0].AttestedGFLOPs = 1000
	if err := r.Sign(key("peer")); err != nil {
		t.Fatal(err)
	}
	if err := r.Verify(); !errors.Is(err, ErrBadSignature) {
		t.Errorf("re-signed record with forged attestation: %v", err)
	}
	// An attestation about someone else cannot be carried.
	other := signedAttestation(t, "val1", "someone", VerdictPass, 90, now)
	bad := &CapacityRecord{Network: testNetwork, Profile: testProfile, Attestations: []Attestation{*other},
		IssuedAt: now.UnixNano(), ExpiresAt: now.Add(time.Hour).UnixNano()}
	if err := bad.Sign(key("peer")); err == nil {
		t.Error("record with another peer's attestation signed")
	}
	long := &CapacityRecord{Network: testNetwork, IssuedAt: now.UnixNano(), ExpiresAt: now.Add(MaxRecordTTL + 1).UnixNano()}
	if err := long.Sign(key("peer")); err == nil {
		t.Error("record beyond MaxRecordTTL signed")
	}
	if RecordKey(testNetwork, pub("peer")) == RecordKey(testNetwork, pub("other")) {
		t.Error("record keys collide")
	}
}

func TestBook(t *testing.T) {
	now := time.Now()
	book, err := NewBook(testNetwork)
	if err != nil {
		t.Fatal(err)
	}
	peer := pub("peer")
	if err := book.AddRecord(signedRecord(t, "peer", 100, 1000, nil), now); err != nil {
		t.Fatal(err)
	}
	status := func() Provider {
		p, ok := book.Provider(peer, now)
		if !ok {
			t.Fatal("peer missing")
		}
		return p
	}
	if p := status(); p.Status != StatusUnattested || p.EffectiveGFLOPs != 100 {
		t.Fatalf("fresh record: %+v", p)
	}
	steps := []struct {
		name      string
		att       *Attestation
		status    Status
		effective float64
	}{
		{"one pass", signedAttestation(t, "v1", "peer", VerdictPass, 80, now.Add(-3*time.Minute)), StatusAttested, 100},
		// Median of 80 and 10 is 45 < 50: downgraded to 45.
		{"low second", signedAttestation(t, "v2", "peer", VerdictOverclaim, 10, now.Add(-3*time.Minute)), StatusDowngraded, 45},
		{"third pass", signedAttestation(t, "v3", "peer", VerdictPass, 90, now.Add(-3*time.Minute)), StatusAttested, 100},
		// v1's newer no-response replaces its pass: median of 0, 10, 90.
		{"no response", signedAttestation(t, "v1", "peer", VerdictNoResponse, 0, now.Add(-2*time.Minute)), StatusDowngraded, 10},
		{"older ignored", signedAttestation(t, "v1", "peer", VerdictPass, 95, now.Add(-4*time.Minute)), StatusDowngraded, 10},
		{"wrong", signedAttestation(t, "v2", "peer", VerdictWrong, 0, now.Add(-time.Minute)), StatusFaulty, 0},
		// A later pass by the same attester does not lift the mark.
		{"pass after wrong", signedAttestation(t, "v2", "peer", VerdictPass, 100, now.Add(-30*time.Second)), StatusFaulty, 0},
	}
	for _, s := range steps {
		if err := book.AddAttestation(s.att, now); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if p := status(); p.Status != s.status || p.EffectiveGFLOPs != s.effective {
			t.Errorf("%s: status %v effective %v, want %v %v", s.name, p.Status, p.EffectiveGFLOPs, s.status, s.effective)
		}
	}
	// The mark expires with its attestation.
	later := now.Add(59*time.Minute + 30*time.Second)
	if p, _ := book.Provider(peer, later); p.Status == StatusFaulty {
		t.Error("mark outlived its attestation")
	}
	if l := book.List(now.Add(2 * time.Hour)); len(l) != 0 {
		t.Errorf("expired record listed: %d", len(l))
	}
	book.Prune(now.Add(2 * time.Hour))
	if _, ok := book.Provider(peer, now); ok {
		t.Error("pruned peer still present")
	}
}

func TestBookRejects(t *testing.T) {
	now := time.Now()
	book, _ := NewBook(testNetwork, WithAttesters(func(k ed25519.PublicKey) bool { return string(k) == string(pub("validator")) }), WithMaxProviders(2))
	rec := signedRecord(t, "peer", 100, 1000, nil)
	if err := book.AddRecord(rec, now); err != nil {
		t.Fatal(err)
	}
	if err := book.AddRecord(rec, now); !errors.Is(err, ErrReplay) {
		t.Errorf("same seq again: %v", err)
	}
	forged := *rec
	forged.GemmGFLOPs = 1e6
	if err := book.AddRecord(&forged, now); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged record: %v", err)
	}
	if err := book.AddRecord(rec, now.Add(2*time.Hour)); !errors.Is(err, ErrExpired) {
		t.Errorf("expired record: %v", err)
	}
	otherNet := *rec
	otherNet.Network = [32]byte{1}
	if err := book.AddRecord(&otherNet, now); !errors.Is(err, ErrWrongNetwork) {
		t.Errorf("other network: %v", err)
	}
	if err := book.AddAttestation(signedAttestation(t, "random", "peer", VerdictWrong, 0, now), now); !errors.Is(err, ErrRejectedVerifier) {
		t.Errorf("attestation by a non-validator: %v", err)
	}
	if p, _ := book.Provider(rec.Peer, now); p.Status != StatusUnattested {
		t.Errorf("non-validator's mark counted: %v", p.Status)
	}
	_ = book.AddRecord(signedRecord(t, "peer2", 50, 0, nil), now)
	if err := book.AddRecord(signedRecord(t, "peer3", 50, 0, nil), now); !errors.Is(err, ErrBusy) {
		t.Errorf("beyond max providers: %v", err)
	}
	if l := book.List(now); len(l) != 2 || l[0].EffectiveGFLOPs != 100 {
		t.Errorf("list: %+v", l)
	}
	if _, err := NewBook(testNetwork, WithBookOverclaimFactor(0)); err == nil {
		t.Error("bad factor accepted")
	}
}

// TestRecordFromMeasurements goes the way a peer will: detect the profile,
// measure, get attested, publish a signed record, and be listed.
func TestRecordFromMeasurements(t *testing.T) {
	e := newEngine(t)
	ctx := context.Background()
	prof, err := hw.Detect()
	if err != nil {
		t.Fatal(err)
	}
	g, err := hw.MeasureGemm(ctx, e, 128, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	cfg := model.Config{Vocab: 64, Context: 16, Layers: 1, Heads: 2, Width: 32}
	tr, err := hw.MeasureTraining(ctx, e, cfg, 1, 16, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	p := newProver(t, e, "provider")
	v := newVerifier(t, "validator", WithSizes(128, 128))
	// The claim is the benchmark divided by 4 so that a busy machine does
	// not turn this functional test into a timing test.
	g.GFLOPs /= 4
	att, err := v.Attest(ctx, p, p.PublicKey(), g.GFLOPs)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rec, err := NewCapacityRecord(testNetwork, 1, prof, g, tr, []Attestation{*att}, now, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if err := rec.Sign(key("provider")); err != nil {
		t.Fatal(err)
	}
	b := mustMarshal(t, rec)
	var got CapacityRecord
	if err := got.UnmarshalBinary(b); err != nil {
		t.Fatal(err)
	}
	book, _ := NewBook(testNetwork)
	if err := book.AddRecord(&got, now); err != nil {
		t.Fatal(err)
	}
	l := book.List(now)
	if len(l) != 1 || l[0].Attesters != 1 || l[0].Record.TrainConfig != cfg.Hash() {
		t.Fatalf("list: %+v", l)
	}
	if att.Verdict == VerdictPass && (l[0].Status != StatusAttested || l[0].EffectiveGFLOPs != g.GFLOPs) {
		t.Errorf("attested provider listed as %v at %v GFLOP/s", l[0].Status, l[0].EffectiveGFLOPs)
	}
	if att.Verdict == VerdictOverclaim && l[0].Status != StatusDowngraded {
		t.Errorf("over-claim listed as %v", l[0].Status)
	}
	t.Logf("record of %d bytes; %v, attested %.1f GFLOP/s, claimed %.1f, %.0f tokens/s", len(b), l[0].Status, l[0].AttestedGFLOPs, g.GFLOPs, tr.TokensPerSec)
	if _, err := NewCapacityRecord(testNetwork, 1, prof, g, tr, nil, now, MaxRecordTTL+1); err == nil {
		t.Error("TTL beyond the maximum accepted")
	}
}
