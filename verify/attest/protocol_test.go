package attest

import (
	"context"
	"crypto/ed25519"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/trinity-net/trinity/compute/hw"
)

func TestHonestProverPasses(t *testing.T) {
	e := newEngine(t)
	tests := []struct {
		name string
		opts []VerifierOption
		spot int
	}{
		{"full", nil, 0},
		{"full 0/1 vectors", []VerifierOption{WithFreivalds(1, 40)}, 0},
		{"spot", []VerifierOption{WithSpotRows(16)}, 16},
		{"spot all rows", []VerifierOption{WithSpotRows(MaxSpotRows)}, MaxSpotRows},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newProver(t, e, "prover")
			opts := append([]VerifierOption{WithSizes(MinN, 160), WithVerifierEngine(e)}, tc.opts...)
			v := newVerifier(t, "verifier", opts...)
			for range 4 {
				wt := &wireTransport{t: t, p: p}
				// The claim is far below any real rate: this test is about the
				// verdict of honest work, not about timing (tiny n under -race
				// measured as low as 0.00045 GFLOP/s).
				a, err := v.Attest(context.Background(), wt, p.PublicKey(), 1e-9)
				if err != nil {
					t.Fatal(err)
				}
				if a.Verdict != VerdictPass || a.AttestedGFLOPs <= 0 || a.Elapsed <= 0 {
					t.Fatalf("honest prover: %v, %v GFLOP/s in %v", a.Verdict, a.AttestedGFLOPs, a.Elapsed)
				}
				if err := a.Verify(); err != nil {
					t.Fatal(err)
				}
				if !a.Subject.Equal(p.PublicKey()) || !a.Attester.Equal(v.PublicKey()) {
					t.Fatal("attestation names the wrong keys")
				}
				if tc.spot == 0 && a.SoundnessBits < DefaultSecurityBits {
					t.Errorf("soundness 2^-%d below target", a.SoundnessBits)
				}
				if want := min(tc.spot, a.N); a.Spot != want {
					t.Errorf("spot = %d, want %d", a.Spot, want)
				}
			}
		})
	}
}

// TestAttestedVsBenchmark: an honest prover's attested rate, which also
// pays for generating A and B, converting and hashing C and the in-process
// hand-off, is within a factor 3 of its own GEMM benchmark at n = 1024.
// The machine is shared, so benchmark and attestation are interleaved and
// the best of five of each is compared.
func TestAttestedVsBenchmark(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing comparison skipped in -short mode and under the race detector")
	}
	const n, factor = 1024, 3.0
	e := newEngine(t)
	p := newProver(t, e, "prover")
	v := newVerifier(t, "verifier", WithSizes(n, n), WithVerifierEngine(e))
	bench, attested := 0.0, 0.0
	for range 5 {
		g, err := hw.MeasureGemm(context.Background(), e, n, time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		bench = max(bench, g.BestGFLOPs)
		a, err := v.Attest(context.Background(), p, p.PublicKey(), g.GFLOPs/factor)
		if err != nil {
			t.Fatal(err)
		}
		if a.Verdict != VerdictPass && a.Verdict != VerdictOverclaim {
			t.Fatalf("honest prover: verdict %v", a.Verdict)
		}
		attested = max(attested, a.AttestedGFLOPs)
	}
	t.Logf("n=%d: benchmark %.1f GFLOP/s, attested %.1f (%.0f%%)", n, bench, attested, 100*attested/bench)
	if attested < bench/factor {
		t.Errorf("attested %.1f GFLOP/s is below benchmark %.1f / %v", attested, bench, factor)
	}
}

// TestOneWrongEntryCaught runs the whole protocol with a prover that
// corrupts one entry of its product before committing.
func TestOneWrongEntryCaught(t *testing.T) {
	e := newEngine(t)
	p := newProver(t, e, "cheat")
	p.tamper = func(n int, c []int32) { c[(n*n)/3]++ }
	v := newVerifier(t, "verifier", WithSizes(MinN, 64))
	for range 20 {
		a, err := v.Attest(context.Background(), &wireTransport{t: t, p: p}, p.PublicKey(), 0.001)
		if err != nil {
			t.Fatal(err)
		}
		if a.Verdict != VerdictWrong || a.AttestedGFLOPs != 0 {
			t.Fatalf("one wrong entry: verdict %v", a.Verdict)
		}
	}
}

// TestOneWrongEntryEscapeRate: the same through the protocol with 0/1
// vectors and a single repetition (bound 1/2): the measured escape rate
// sits at the bound; with the default parameters nothing escapes.
func TestOneWrongEntryEscapeRate(t *testing.T) {
	e := newEngine(t)
	p := newProver(t, e, "cheat")
	trial := 0
	p.tamper = func(n int, c []int32) { c[(trial*7919)%(n*n)] -= 3 }
	for _, tc := range []struct {
		rBits, security, trials int
		bound                   float64
	}{{1, 1, 400, 0.5}, {64, 40, 400, 0}} {
		v := newVerifier(t, "verifier", WithSizes(16, 16), WithFreivalds(tc.rBits, tc.security), WithRand(newSeededRand(uint64(tc.rBits))))
		escapes := 0
		for trial = 0; trial < tc.trials; trial++ {
			a, err := v.Attest(context.Background(), p, p.PublicKey(), 0.001)
			if err != nil {
				t.Fatal(err)
			}
			if a.Verdict != VerdictWrong {
				escapes++
			}
		}
		mean := tc.bound * float64(tc.trials)
		sd := math.Sqrt(float64(tc.trials) * tc.bound * (1 - tc.bound))
		t.Logf("b=%d, %d vector(s): %d escapes in %d (bound %.3g)", tc.rBits, repetitions(16, tc.rBits, tc.security), escapes, tc.trials, tc.bound)
		if float64(escapes) > mean+5*sd {
			t.Errorf("%d escapes, bound gives %.1f ± %.1f", escapes, mean, sd)
		}
		if tc.bound > 0 && float64(escapes) < mean-5*sd {
			t.Errorf("%d escapes: far below the exact rate %.1f", escapes, mean)
		}
	}
}

// TestSpotRowsSkippingProver: a prover that fills half its rows with
// garbage escapes s = 4 distinct spot rows with probability
// C(n/2, 4)/C(n, 4) <= (1/2)^4.
func TestSpotRowsSkippingProver(t *testing.T) {
	const n, s, trials = 32, 4, 400
	e := newEngine(t)
	p := newProver(t, e, "lazy")
	p.tamper = func(n int, c []int32) {
		for i := 0; i < n; i += 2 {
			clear(c[i*n : (i+1)*n]) // skipped rows
		}
	}
	v := newVerifier(t, "verifier", WithSizes(n, n), WithSpotRows(s), WithRand(newSeededRand(5)))
	escapes := 0
	for range trials {
		a, err := v.Attest(context.Background(), p, p.PublicKey(), 0.001)
		if err != nil {
			t.Fatal(err)
		}
		if a.Verdict != VerdictWrong {
			escapes++
		}
	}
	exact := (16.0 * 15 * 14 * 13) / (32 * 31 * 30 * 29)
	bound := math.Pow(0.5, s)
	sd := math.Sqrt(trials * bound * (1 - bound))
	t.Logf("f=1/2, s=%d: %d escapes in %d (exact %.4f, bound (1-f)^s = %.4f)", s, escapes, trials, exact, bound)
	if float64(escapes) > bound*trials+5*sd {
		t.Errorf("%d escapes exceed the bound", escapes)
	}
	if float64(escapes) < exact*trials-5*math.Sqrt(trials*exact*(1-exact)) {
		t.Errorf("%d escapes: far below the exact rate", escapes)
	}
}

// TestOverclaimDowngraded: a prover claiming ten times its benchmark is
// attested below claim/2 and downgraded in the book to the attested rate.
func TestOverclaimDowngraded(t *testing.T) {
	e := newEngine(t)
	const n = 256
	bench, err := hw.MeasureGemm(context.Background(), e, n, 50*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	p := newProver(t, e, "boaster")
	v := newVerifier(t, "verifier", WithSizes(n, n))
	claim := 10 * bench.BestGFLOPs
	a, err := v.Attest(context.Background(), p, p.PublicKey(), claim)
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != VerdictOverclaim {
		t.Fatalf("claim %.0f GFLOP/s, attested %.1f: verdict %v", claim, a.AttestedGFLOPs, a.Verdict)
	}
	book, err := NewBook(testNetwork)
	if err != nil {
		t.Fatal(err)
	}
	rec := signedRecord(t, "boaster", claim, 1000, []Attestation{*a})
	now := time.Now()
	if err := book.AddRecord(rec, now); err != nil {
		t.Fatal(err)
	}
	pr, ok := book.Provider(p.PublicKey(), now)
	if !ok || pr.Status != StatusDowngraded || pr.EffectiveGFLOPs != a.AttestedGFLOPs {
		t.Fatalf("book: %+v", pr)
	}
	if want := 1000 * a.AttestedGFLOPs / claim; math.Abs(pr.EffectiveTokensPerSec-want) > 1e-9*want {
		t.Errorf("tokens/s %v, want %v", pr.EffectiveTokensPerSec, want)
	}
}

// TestAttestedRateRule pins the arithmetic with a clock the test controls:
// a prover taking exactly one second for n = 100 delivers 2e6 FLOP/s.
func TestAttestedRateRule(t *testing.T) {
	e := newEngine(t)
	clock := &fakeClock{t: time.Unix(1_800_000_000, 0)}
	p := newProver(t, e, "prover", WithProverClock(clock.now))
	v := newVerifier(t, "verifier", WithSizes(100, 100), WithClock(clock.now), WithDeadline(time.Second, 1e-3))
	tr := &slowTransport{p: p, clock: clock, delay: time.Second}
	for _, tc := range []struct {
		claim float64
		want  Verdict
	}{{0.002, VerdictPass}, {0.004, VerdictPass}, {0.00401, VerdictOverclaim}, {1, VerdictOverclaim}} {
		a, err := v.Attest(context.Background(), tr, p.PublicKey(), tc.claim)
		if err != nil {
			t.Fatal(err)
		}
		if a.Elapsed != time.Second || a.AttestedGFLOPs != 0.002 || a.Verdict != tc.want {
			t.Errorf("claim %v: elapsed %v, attested %v, verdict %v (want %v)", tc.claim, a.Elapsed, a.AttestedGFLOPs, a.Verdict, tc.want)
		}
	}
	// Past the deadline (1 s + 2e6 FLOP at 1e-3 GFLOP/s = 3 s): no response.
	tr.delay = 4 * time.Second
	a, err := v.Attest(context.Background(), tr, p.PublicKey(), 0.001)
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != VerdictNoResponse || a.AttestedGFLOPs != 0 {
		t.Errorf("late commitment: %v", a.Verdict)
	}
}

func TestNoResponseAndNoOpening(t *testing.T) {
	e := newEngine(t)
	p := newProver(t, e, "prover")
	v := newVerifier(t, "verifier", WithSizes(MinN, 32), WithDeadline(20*time.Millisecond, MaxGFLOPs))
	a, err := v.Attest(context.Background(), silentTransport{p}, p.PublicKey(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != VerdictNoResponse {
		t.Errorf("silent prover: %v", a.Verdict)
	}
	v2 := newVerifier(t, "verifier", WithSizes(MinN, 32))
	a, err = v2.Attest(context.Background(), noOpenTransport{p}, p.PublicKey(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != VerdictWrong {
		t.Errorf("committed but did not open: %v", a.Verdict)
	}
	// A cancelled context is the verifier's own failure, not a verdict.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := v2.Attest(ctx, p, p.PublicKey(), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled attest: %v", err)
	}
}

func TestProverRejects(t *testing.T) {
	e := newEngine(t)
	p := newProver(t, e, "prover", WithProverMaxN(64))
	v := newVerifier(t, "verifier", WithSizes(MinN, 32))
	ctx := context.Background()
	ch, err := v.Challenge(p.PublicKey(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Commit(ctx, ch); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Commit(ctx, ch); !errors.Is(err, ErrReplay) {
		t.Errorf("replayed challenge: %v", err)
	}
	other, _ := v.Challenge(pub("someone else"), 1)
	if _, err := p.Commit(ctx, other); !errors.Is(err, ErrNotForUs) {
		t.Errorf("challenge for another prover: %v", err)
	}
	forged, _ := v.Challenge(p.PublicKey(), 1)
	forged.Signature[0] ^= 1
	if _, err := p.Commit(ctx, forged); !errors.Is(err, ErrBadSignature) {
		t.Errorf("forged challenge: %v", err)
	}
	big, _ := newVerifier(t, "verifier", WithSizes(65, 65)).Challenge(p.PublicKey(), 1)
	if _, err := p.Commit(ctx, big); err == nil {
		t.Error("oversized challenge accepted")
	}
	wrongNet, _ := NewVerifier(key("verifier"), [32]byte{1}, WithSizes(MinN, 32))
	ch2, _ := wrongNet.Challenge(p.PublicKey(), 1)
	if _, err := p.Commit(ctx, ch2); !errors.Is(err, ErrWrongNetwork) {
		t.Errorf("other network: %v", err)
	}
	picky := newProver(t, e, "prover2", WithAcceptVerifier(func(k ed25519.PublicKey) bool { return false }))
	ch3, _ := v.Challenge(picky.PublicKey(), 1)
	if _, err := picky.Commit(ctx, ch3); !errors.Is(err, ErrRejectedVerifier) {
		t.Errorf("unaccepted verifier: %v", err)
	}
	if _, err := p.Open(ctx, &OpenRequest{Nonce: [32]byte{9}, Kind: OpenRange, Lo: 0, Hi: 1}); !errors.Is(err, ErrUnknownChallenge) {
		t.Errorf("open of unknown nonce: %v", err)
	}
	if _, err := p.Open(ctx, &OpenRequest{Nonce: ch.Nonce, Kind: OpenRange, Lo: 0, Hi: ch.N + 1}); err == nil {
		t.Error("open beyond n accepted")
	}
	p.Release(ch.Nonce)
	if _, err := p.Open(ctx, &OpenRequest{Nonce: ch.Nonce, Kind: OpenRange, Lo: 0, Hi: 1}); !errors.Is(err, ErrUnknownChallenge) {
		t.Errorf("open after release: %v", err)
	}
}

func TestVerifierRejectsCommitments(t *testing.T) {
	e := newEngine(t)
	p := newProver(t, e, "prover")
	v := newVerifier(t, "verifier", WithSizes(MinN, 32))
	ctx := context.Background()
	ch, _ := v.Challenge(p.PublicKey(), 1)
	cm, err := p.Commit(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	// Signed by someone else, for this challenge.
	forged := *cm
	forged.Prover = pub("mallory")
	if err := v.Committed(&forged); err == nil {
		t.Error("commitment by another key accepted")
	}
	bad := *cm
	bad.Root[0] ^= 1
	if err := v.Committed(&bad); !errors.Is(err, ErrBadSignature) {
		t.Errorf("altered root: %v", err)
	}
	unknown := *cm
	unknown.Nonce[0] ^= 1
	if err := v.Committed(&unknown); !errors.Is(err, ErrUnknownChallenge) {
		t.Errorf("unknown nonce: %v", err)
	}
	if err := v.Committed(cm); err != nil {
		t.Fatal(err)
	}
	if err := v.Committed(cm); !errors.Is(err, ErrReplay) {
		t.Errorf("second commitment: %v", err)
	}
	// Rows that do not match the root: a swapped pair of rows.
	reqs, err := v.Requests(ch.Nonce)
	if err != nil {
		t.Fatal(err)
	}
	var ops []*Opening
	for _, q := range reqs {
		op, err := p.Open(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op)
	}
	n := ch.N
	r0 := append([]int32(nil), ops[0].Values[:n]...)
	copy(ops[0].Values[:n], ops[0].Values[n:2*n])
	copy(ops[0].Values[n:2*n], r0)
	a, err := v.Finish(ctx, ch.Nonce, ops)
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != VerdictWrong {
		t.Errorf("swapped rows: %v", a.Verdict)
	}
}

func TestOptionsValidate(t *testing.T) {
	e := newEngine(t)
	for i, o := range []VerifierOption{
		WithSizes(MinN-1, 10), WithSizes(10, MaxN+1), WithSizes(20, 10), WithDeadline(0, 1), WithDeadline(time.Second, math.NaN()),
		WithOverclaimFactor(0.5), WithSpotRows(-1), WithSpotRows(MaxSpotRows + 1), WithFreivalds(0, 40), WithFreivalds(65, 40),
		WithFreivalds(64, 0), WithAttestationTTL(0), WithRand(nil), WithClock(nil), WithVerifierLogger(nil),
	} {
		if _, err := NewVerifier(key("v"), testNetwork, o); err == nil {
			t.Errorf("verifier option %d accepted", i)
		}
	}
	for i, o := range []ProverOption{WithProverMaxN(MinN - 1), WithRetention(0), WithMaxPending(0), WithAcceptVerifier(nil), WithProverClock(nil)} {
		if _, err := NewProver(key("p"), e, testNetwork, o); err == nil {
			t.Errorf("prover option %d accepted", i)
		}
	}
	if _, err := NewProver(key("p")[:10], e, testNetwork); err == nil {
		t.Error("short key accepted")
	}
	if _, err := NewProver(key("p"), nil, testNetwork); err == nil {
		t.Error("nil engine accepted")
	}
	v := newVerifier(t, "v")
	if _, err := v.Challenge(pub("p"), math.Inf(1)); err == nil {
		t.Error("infinite claim accepted")
	}
}
