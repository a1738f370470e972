package node

import (
	"context"
	"crypto/rand"
	"errors"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/attest"
	"github.com/trinity-net/trinity/verify/grail"
)

// computeEnv is a compute market on loopback: providers and one client,
// each on its own libp2p host, the first provider bootstrapping the rest.
type computeEnv struct {
	t      testing.TB
	g      *Genesis
	ds     *data.Dataset
	eng    *tensor.Engine
	boot   []string
	hosts  int
	wg     sync.WaitGroup
	cancel context.CancelFunc
	ctx    context.Context
}

func newComputeEnv(t testing.TB, mods ...func(*Genesis)) *computeEnv {
	g := DefaultTestnetGenesis()
	g.Data.Bytes = 1 << 20
	for _, m := range mods {
		m(&g)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ds, err := data.Load(ctx, g.Data, g.Model.Vocab, ".")
	if err != nil {
		t.Fatal(err)
	}
	eng, err := tensor.New()
	if err != nil {
		t.Fatal(err)
	}
	env := &computeEnv{t: t, g: &g, ds: ds, eng: eng, ctx: ctx, cancel: cancel}
	t.Cleanup(func() {
		cancel()
		env.wg.Wait()
		eng.Close()
	})
	return env
}

func (env *computeEnv) host(name string) (*p2p.Node, []byte) {
	env.t.Helper()
	n, key, err := NewComputeHost(env.ctx, ComputeHostConfig{Genesis: env.g, DataDir: filepath.Join(env.t.TempDir(), name),
		ListenAddrs: loopbackAddrs(), Bootstrap: env.boot, DHTMode: p2p.DHTServer}, testLogger())
	if err != nil {
		env.t.Fatal(err)
	}
	env.t.Cleanup(func() { _ = n.Close() })
	if env.boot == nil {
		for _, a := range n.Addrs() {
			env.boot = append(env.boot, a.String())
		}
	}
	return n, key
}

func (env *computeEnv) provider(name string, opts ...ComputeOption) *ComputeProvider {
	env.t.Helper()
	n, key := env.host(name)
	fast := func(c *computeConfig) error { c.minRepublish = 100 * time.Millisecond; return nil }
	opts = append([]ComputeOption{WithBenchmark(64, 20*time.Millisecond), WithRecordTTL(time.Minute), fast}, opts...)
	p, err := NewComputeProvider(env.ctx, n, env.g, key, env.eng, env.ds, testLogger().With("provider", name), opts...)
	if err != nil {
		env.t.Fatal(err)
	}
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		_ = p.Run(env.ctx)
	}()
	return p
}

func (env *computeEnv) client(vopts ...attest.VerifierOption) *ComputeClient {
	env.t.Helper()
	n, key := env.host("client")
	c, err := NewComputeClient(n, env.g, key, env.eng, env.ds, testLogger(), nil, vopts...)
	if err != nil {
		env.t.Fatal(err)
	}
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		_ = c.Run(env.ctx)
	}()
	return c
}

func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestComputeMarket: three providers publish records; a client finds them
// on the DHT under the well-known key, attests each over the stream
// transport and rates them: the honest one passes, the over-claimer is
// downgraded to its attested rate, the one that opens a product with one
// wrong entry is marked faulty. The attestations travel on gossip back into
// the honest provider's next record.
func TestComputeMarket(t *testing.T) {
	env := newComputeEnv(t)
	honest := env.provider("honest", WithClaim(1e-3))
	over := env.provider("overclaim", WithClaim(1e6))
	liar := env.provider("liar", WithClaim(1e-3))
	liar.cheat.Store(&computeCheat{opening: func(op *attest.Opening) { op.Values[len(op.Values)/2]++ }})
	c := env.client(attest.WithSizes(64, 96))

	waitUntil(t, 60*time.Second, "three records on the DHT", func() bool {
		ctx, cancel := context.WithTimeout(env.ctx, 5*time.Second)
		defer cancel()
		got, _ := c.Discover(ctx)
		return got == 3
	})
	providers := map[string]*ComputeProvider{"honest": honest, "overclaim": over, "liar": liar}
	want := map[string]struct {
		verdict attest.Verdict
		status  attest.Status
	}{
		"honest":    {attest.VerdictPass, attest.StatusAttested},
		"overclaim": {attest.VerdictOverclaim, attest.StatusDowngraded},
		"liar":      {attest.VerdictWrong, attest.StatusFaulty},
	}
	for name, p := range providers {
		ctx, cancel := context.WithTimeout(env.ctx, 2*time.Minute)
		a, err := c.Attest(ctx, p.net.ID())
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if a.Verdict != want[name].verdict {
			t.Errorf("%s: verdict %v, want %v", name, a.Verdict, want[name].verdict)
		}
	}
	list := c.List()
	if len(list) != 3 {
		t.Fatalf("list has %d providers", len(list))
	}
	for name, p := range providers {
		i := slices.IndexFunc(list, func(q attest.Provider) bool { return q.Peer.Equal(p.Record().Peer) })
		if i < 0 {
			t.Fatalf("%s missing from the list", name)
		}
		q := list[i]
		if q.Status != want[name].status {
			t.Errorf("%s: status %v, want %v", name, q.Status, want[name].status)
		}
		switch name {
		case "overclaim":
			if !(q.EffectiveGFLOPs == q.AttestedGFLOPs && q.EffectiveGFLOPs < 1e6/2) {
				t.Errorf("over-claimer counted at %v GFLOP/s (attested %v)", q.EffectiveGFLOPs, q.AttestedGFLOPs)
			}
		case "liar":
			if q.EffectiveGFLOPs != 0 {
				t.Errorf("faulty provider counted at %v GFLOP/s", q.EffectiveGFLOPs)
			}
		}
	}
	if h := c.History()[honest.net.ID()]; len(h) != 1 || h[0].Verdict != "pass" || h[0].Attester != c.net.ID() || h[0].Attested <= 0 {
		t.Fatalf("history of the honest provider: %+v", h)
	}
	waitUntil(t, 30*time.Second, "the attestation in the honest provider's record", func() bool {
		return len(honest.Record().Attestations) == 1
	})
	// A record fetched afresh carries it, signed by the client.
	rec, err := c.FetchRecord(env.ctx, honest.net.ID())
	if err != nil || len(rec.Attestations) != 1 || !rec.Attestations[0].Attester.Equal(c.verifier.PublicKey()) {
		t.Fatalf("fetched record: %v, %v", rec, err)
	}

	// A smear: another peer signs a Wrong verdict about the honest provider
	// and gossips it. It reaches the provider's record, but the client's
	// book counts only its own and the validators' attestations.
	n2, key2 := env.host("smear")
	if err := n2.Connect(env.ctx, honest.net.AddrInfo()); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	smear := &attest.Attestation{Network: honest.netID, Subject: rec.Peer, N: 64, Verdict: attest.VerdictWrong,
		ClaimedGFLOPs: 1e-3, IssuedAt: now.UnixNano(), ExpiresAt: now.Add(time.Hour).UnixNano()}
	smear.Nonce[0] = 1
	if err := smear.Sign(key2); err != nil {
		t.Fatal(err)
	}
	msg, err := encodeCapacity(capacityKindAttestation, smear)
	if err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 30*time.Second, "the smear in the honest provider's record", func() bool {
		_ = n2.Publish(env.ctx, TopicCapacity, capacityRound(env.g), msg)
		return len(honest.Record().Attestations) == 2
	})
	if _, err := c.FetchRecord(env.ctx, honest.net.ID()); err != nil {
		t.Fatal(err)
	}
	if q, _ := c.Book().Provider(rec.Peer, time.Now()); q.Status != attest.StatusAttested {
		t.Fatalf("smeared provider's status %v, want attested", q.Status)
	}
}

// TestComputeAttestedVsBenchmark: an honest provider claiming its own
// benchmark passes attestation at n = 1024 over the stream transport, and
// its attested rate is within a factor 3 of that benchmark (the attested
// time also pays for generating A and B, hashing C and a round trip). Best
// of three on a shared machine.
func TestComputeAttestedVsBenchmark(t *testing.T) {
	if testing.Short() || raceEnabled {
		t.Skip("timing comparison skipped in -short mode and under the race detector")
	}
	const n, factor = 1024, 3.0
	env := newComputeEnv(t)
	p := env.provider("honest", WithBenchmark(n, time.Second))
	c := env.client(attest.WithSizes(n, n))
	if _, err := c.FetchRecord(env.ctx, p.net.ID()); err != nil {
		t.Fatal(err)
	}
	_, g, _ := p.Measured()
	best := 0.0
	for range 3 {
		a, err := c.Attest(env.ctx, p.net.ID())
		if err != nil {
			t.Fatal(err)
		}
		if a.Verdict != attest.VerdictPass && a.Verdict != attest.VerdictOverclaim {
			t.Fatalf("honest provider: %v", a.Verdict)
		}
		best = max(best, a.AttestedGFLOPs)
	}
	t.Logf("n=%d: benchmark %.1f GFLOP/s (best %.1f), attested over the stream %.1f (%.0f%%)", n, g.GFLOPs, g.BestGFLOPs, best, 100*best/g.GFLOPs)
	if best < g.GFLOPs/factor {
		t.Errorf("attested %.1f GFLOP/s below benchmark %.1f / %v", best, g.GFLOPs, factor)
	}
}

// TestComputeJobs: leased jobs come back verified from an honest provider
// and are rejected from one that lies: a generation whose token was edited
// (and re-signed), and training that skipped a step.
func TestComputeJobs(t *testing.T) {
	env := newComputeEnv(t)
	honest := env.provider("honest")
	liar := env.provider("liar")
	liar.cheat.Store(&computeCheat{
		proof: func(p *grail.Proof) { p.Tokens[len(p.Tokens)/2] = (p.Tokens[len(p.Tokens)/2] + 1) % int32(p.Vocab) },
		step:  func(j int) bool { return j != 1 },
	})
	c := env.client()
	ctx, cancel := context.WithTimeout(env.ctx, 5*time.Minute)
	defer cancel()
	for _, p := range []*ComputeProvider{honest, liar} {
		if err := c.net.Connect(ctx, p.net.AddrInfo()); err != nil {
			t.Fatal(err)
		}
	}
	prompt := []int32{'T', 'o', ' ', 'b', 'e'}
	samplings := []grail.Sampling{{}, {Temperature: 0.8, TopK: 20}}
	for i, s := range samplings {
		t.Run("generate "+strconv.Itoa(i), func(t *testing.T) {
			gen, err := c.Generate(ctx, honest.net.ID(), prompt, 24, s)
			if err != nil {
				t.Fatalf("honest generation: %v", err)
			}
			if len(gen.Tokens) != 24 || gen.Report.SketchFailures != 0 || gen.Report.TokenFailures != 0 {
				t.Fatalf("honest generation: %d tokens, report %+v", len(gen.Tokens), gen.Report)
			}
			if _, err := c.Generate(ctx, liar.net.ID(), prompt, 24, s); !errors.Is(err, ErrJobRejected) {
				t.Fatalf("edited generation: %v, want rejection", err)
			}
		})
	}
	pages := []int{3, 7, 11}
	const steps = 4
	t.Run("train", func(t *testing.T) {
		tr, err := c.Train(ctx, honest.net.ID(), pages, steps, steps)
		if err != nil {
			t.Fatalf("honest training: %v", err)
		}
		if len(tr.Checked) != steps {
			t.Fatalf("checked %v", tr.Checked)
		}
		// The result is what training here gives, bit for bit.
		r, err := newTrainRun(env.eng, env.g, env.ds, pages)
		if err != nil {
			t.Fatal(err)
		}
		r.reset(c.model.Params, nil, nil, 0)
		for s := range steps {
			if err := r.step(s); err != nil {
				t.Fatal(err)
			}
		}
		if !slices.Equal(r.m.Params, tr.Params) {
			t.Fatal("leased training result differs from local training")
		}
		if slices.Equal(tr.Params, c.model.Params) {
			t.Fatal("training did not change the parameters")
		}
		// Skipping step 1 is caught whenever step 1 is checked: always,
		// with every step checked.
		if _, err := c.Train(ctx, liar.net.ID(), pages, steps, steps); !errors.Is(err, ErrJobRejected) {
			t.Fatalf("skipped step: %v, want rejection", err)
		}
	})
	t.Run("train lies", func(t *testing.T) {
		for _, tc := range []struct {
			name  string
			cheat computeCheat
		}{
			{"final parameters edited", computeCheat{params: func(x []float32) { x[7] += 1e-3 }}},
			{"states edited when served", computeCheat{state: func(_ int, b []byte) { b[len(b)-1] ^= 1 }}},
		} {
			// Caught whichever step is checked: one check suffices.
			liar.cheat.Store(&tc.cheat)
			if _, err := c.Train(ctx, liar.net.ID(), pages, steps, 1); !errors.Is(err, ErrJobRejected) {
				t.Errorf("%s: %v, want rejection", tc.name, err)
			}
		}
	})
	// Checking s of N steps catches a provider that faked one step with
	// probability s/N (1 - (1-f)^s for f = 1/N with distinct steps): with
	// s = 1 of 4, about a quarter of the jobs are rejected.
	t.Run("catch rate", func(t *testing.T) {
		liar.cheat.Store(&computeCheat{step: func(j int) bool { return j != 1 }})
		const trials = 40
		caught := 0
		for range trials {
			_, err := c.Train(ctx, liar.net.ID(), pages, steps, 1)
			if errors.Is(err, ErrJobRejected) {
				caught++
			} else if err != nil {
				t.Fatal(err)
			}
		}
		mean, sd := trials*0.25, math.Sqrt(trials*0.25*0.75)
		t.Logf("caught %d of %d with one of %d steps checked (expected %.0f)", caught, trials, steps, mean)
		if float64(caught) < mean-5*sd || float64(caught) > mean+5*sd {
			t.Errorf("caught %d of %d, expected %.1f ± %.1f", caught, trials, mean, sd)
		}
	})
	t.Run("bad requests", func(t *testing.T) {
		if _, err := c.Train(ctx, honest.net.ID(), []int{1 << 30}, steps, 1); err == nil {
			t.Fatal("page out of range accepted")
		}
		var re *p2p.RemoteError
		req, _ := encodeMsg(JobRequest{V: WireVersion, Kind: JobTrain, Model: Hash{1}, Pages: pages, Steps: 1})
		if _, err := c.net.Request(ctx, honest.net.ID(), reqJob, req, 1<<20, time.Minute); !errors.As(err, &re) {
			t.Fatalf("job on an unknown model: %v", err)
		}
		q, _ := encodeMsg(StateRequest{V: WireVersion, Job: Hash{2}, Step: 0})
		if _, err := c.net.Request(ctx, honest.net.ID(), reqState, q, 1<<20, time.Minute); !errors.As(err, &re) {
			t.Fatalf("state of an unknown job: %v", err)
		}
	})
}

// TestCapacityWire: capacity messages decode only when well-formed and
// signed; anything else is an error, never a panic.
func TestCapacityWire(t *testing.T) {
	env := newComputeEnv(t)
	p := env.provider("p")
	msg, err := encodeCapacity(capacityKindRecord, p.Record())
	if err != nil {
		t.Fatal(err)
	}
	if rec, a, err := decodeCapacity(msg); err != nil || rec == nil || a != nil {
		t.Fatalf("record: %v %v %v", rec, a, err)
	}
	bad := [][]byte{nil, {9}, {capacityKindRecord}, {capacityKindAttestation, 1, 2}}
	flipped := slices.Clone(msg)
	flipped[len(flipped)-1] ^= 1 // signature
	bad = append(bad, flipped)
	for i, b := range bad {
		if _, _, err := decodeCapacity(b); err == nil {
			t.Errorf("bad message %d accepted", i)
		}
	}
}

func FuzzDecodeJobRequest(f *testing.F) {
	b, _ := encodeMsg(JobRequest{V: WireVersion, Kind: JobGenerate, Prompt: []int32{1, 2}, Tokens: 3})
	f.Add(b)
	b, _ = encodeMsg(JobRequest{V: WireVersion, Kind: JobTrain, Pages: []int{1}, Steps: 2})
	f.Add(b)
	f.Add([]byte(`{"v":1,"kind":"train","pages":[-1],"steps":1e9}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		j, err := DecodeJobRequest(b)
		if err != nil {
			return
		}
		_ = j.check(256, 64, 100) // must not panic
	})
}

// TestComputeValidatorAttests: a validator node with WithComputeAttestation
// finds the provider and attests it on its own; a client that never
// attested anything rates the provider from the validator's gossiped
// attestation, because the genesis lists the validator.
func TestComputeValidatorAttests(t *testing.T) {
	vkey, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	vid, err := peer.IDFromPrivateKey(vkey)
	if err != nil {
		t.Fatal(err)
	}
	env := newComputeEnv(t, func(g *Genesis) {
		g.Validators = []ValidatorKey{{Peer: vid.String(), Stake: 1}}
		// Rounds are running, so the validator's round window applies to
		// capacity gossip too.
		g.Start = time.Now().Add(-time.Minute)
	})
	p := env.provider("p", WithClaim(1e-3))
	c := env.client()
	v, err := New(env.ctx, Config{Genesis: env.g, Role: RoleValidator, DataDir: filepath.Join(t.TempDir(), "v"),
		ListenAddrs: loopbackAddrs(), Bootstrap: env.boot},
		WithIdentity(vkey), WithDataset(env.ds), WithEngine(env.eng), WithLogger(testLogger()),
		WithComputeAttestation(time.Hour, attest.WithSizes(64, 64)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = v.Close() })
	env.wg.Add(1)
	go func() {
		defer env.wg.Done()
		_ = v.Run(env.ctx)
	}()
	pub := p.Record().Peer
	waitUntil(t, time.Minute, "the client to rate the provider from the validator's attestation", func() bool {
		q, ok := c.Book().Provider(pub, time.Now())
		return ok && q.Status == attest.StatusAttested && q.Attesters == 1
	})
	if vc := v.ComputeClient(); vc == nil {
		t.Fatal("validator has no compute client")
	} else if q, _ := vc.Book().Provider(pub, time.Now()); q.Status != attest.StatusAttested {
		t.Fatalf("validator's own rating: %v", q.Status)
	}
}

// FuzzDecodeCapacity: capacity gossip decodes, verifies or fails; never a
// panic.
func FuzzDecodeCapacity(f *testing.F) {
	f.Add([]byte{capacityKindRecord})
	f.Add([]byte{capacityKindAttestation, 1})
	f.Add(append([]byte{capacityKindAttestation}, make([]byte, attest.AttestationSize)...))
	f.Fuzz(func(t *testing.T, b []byte) {
		rec, a, err := decodeCapacity(b)
		if err == nil && (rec == nil) == (a == nil) {
			t.Fatal("decoded to neither or both kinds")
		}
	})
}

// FuzzDecodeTrainJobResult: a provider's train result is decoded strictly
// against the job's shape.
func FuzzDecodeTrainJobResult(f *testing.F) {
	b, _ := encodeMsg(TrainJobResult{V: WireVersion, States: make([]StateDigests, 3), Params: make([]byte, 8)})
	f.Add(b)
	f.Add([]byte(`{"v":1,"job":"00","states":[],"params":"AAAA"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeTrainJobResult(b, 2, 2)
		if err != nil {
			return
		}
		if len(r.States) != 3 || len(r.Params) != 8 {
			t.Fatalf("accepted a result of %d states and %d bytes", len(r.States), len(r.Params))
		}
		if _, err := parseFloatsLE(r.Params); err != nil {
			return
		}
	})
}

// TestKeepAttestation: a provider's record keeps the latest attestation per
// attester, at most attest.MaxRecordAttestations, and a crowd of
// non-validator attesters cannot push a validator's out.
func TestKeepAttestation(t *testing.T) {
	att := func(attester string, at int64) attest.Attestation {
		return attest.Attestation{Attester: []byte(attester), IssuedAt: at}
	}
	validators := map[string]bool{"v1": true, "v2": true}
	p := &ComputeProvider{atts: map[string]attest.Attestation{}}
	const max = attest.MaxRecordAttestations
	for i := range max {
		if !p.keepAttestation(att("x"+strconv.Itoa(i), int64(100+i)), validators) {
			t.Fatalf("attestation %d refused below the limit", i)
		}
	}
	steps := []struct {
		name string
		a    attest.Attestation
		keep bool
		gone string // attester evicted
	}{
		{"older repeat of an attester", att("x3", 50), false, ""},
		{"newer repeat replaces", att("x3", 500), true, ""},
		{"validator evicts the oldest other", att("v1", 1), true, "x0"},
		{"older newcomer refused", att("y", 90), false, ""},
		{"newer newcomer evicts the oldest other", att("z", 600), true, "x1"},
	}
	for _, s := range steps {
		got := p.keepAttestation(s.a, validators)
		if got != s.keep || len(p.atts) > max {
			t.Fatalf("%s: kept %v (want %v), %d held", s.name, got, s.keep, len(p.atts))
		}
		if _, ok := p.atts[s.gone]; s.gone != "" && ok {
			t.Fatalf("%s: %s not evicted", s.name, s.gone)
		}
	}
	if _, ok := p.atts["v1"]; !ok {
		t.Fatal("validator's attestation lost")
	}
	// A record full of validators refuses others.
	p = &ComputeProvider{atts: map[string]attest.Attestation{}}
	all := map[string]bool{}
	for i := range max {
		k := "v" + strconv.Itoa(i)
		all[k] = true
		p.keepAttestation(att(k, 1), all)
	}
	if p.keepAttestation(att("other", 1000), all) {
		t.Fatal("a non-validator displaced a validator")
	}
}
