package grail

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
)

// ExperimentConfig sizes Experiment. Zero fields take DefaultExperimentConfig's
// values.
type ExperimentConfig struct {
	Model      model.Config // model of the honest sweep and the attacks
	Honest     int          // honest sequences proved (each verified by every verifier setup)
	Trials     int          // trials per attack
	Threads    int          // N of the N-thread engines
	Timing     model.Config // model of the cost measurements
	TimingGen  int          // generated tokens per timed proof
	TimingRuns int          // timed repetitions (medians are reported)
	TrainSteps int          // SGD steps on Text before the sweep (0: random init)
	Seed       uint64
	// Text, if not nil, supplies prompts (and training data); otherwise
	// prompts are random bytes.
	Text []byte
}

// DefaultExperimentConfig is the evaluation the package documentation
// reports.
func DefaultExperimentConfig() ExperimentConfig {
	return ExperimentConfig{
		Model:      model.Config{Vocab: 256, Context: 64, Layers: 2, Heads: 2, Width: 64},
		Honest:     1000,
		Trials:     50,
		Threads:    runtime.NumCPU(),
		Timing:     model.Reference,
		TimingGen:  256,
		TimingRuns: 7,
		TrainSteps: 300,
		Seed:       1,
	}
}

func (c *ExperimentConfig) fill() error {
	d := DefaultExperimentConfig()
	if c.Model == (model.Config{}) {
		c.Model = d.Model
	}
	if c.Timing == (model.Config{}) {
		c.Timing = d.Timing
	}
	for _, f := range []struct {
		v   *int
		def int
	}{{&c.Honest, d.Honest}, {&c.Trials, d.Trials}, {&c.Threads, d.Threads}, {&c.TimingGen, d.TimingGen}, {&c.TimingRuns, d.TimingRuns}} {
		if *f.v == 0 {
			*f.v = f.def
		}
		if *f.v < 0 {
			return fmt.Errorf("grail: experiment: negative size %d", *f.v)
		}
	}
	if c.Seed == 0 {
		c.Seed = d.Seed
	}
	if err := c.Model.Validate(); err != nil {
		return fmt.Errorf("grail: experiment: model: %w", err)
	}
	if err := c.Timing.Validate(); err != nil {
		return fmt.Errorf("grail: experiment: timing model: %w", err)
	}
	if c.Model.Vocab != 256 || c.Timing.Vocab != 256 {
		return errors.New("grail: experiment: byte-level models (vocab 256) only")
	}
	if c.Model.Context < 40 {
		return fmt.Errorf("grail: experiment: model context %d < 40", c.Model.Context)
	}
	if c.TimingGen >= c.Timing.Context+1 {
		c.TimingGen = c.Timing.Context
	}
	return nil
}

// expEnv is one engine with a copy of the model weights on it.
type expEnv struct {
	name string
	e    *tensor.Engine
	m    *model.GPT
}

// Experiment runs the evaluation: honest proofs across thread counts,
// kernel paths, batch compositions and KV-cache versus full recompute;
// attacks; cost. It prints tables to out.
func Experiment(ctx context.Context, cfg ExperimentConfig, out io.Writer) error {
	_, err := runExperiment(ctx, cfg, out)
	return err
}

// runExperiment is Experiment returning its verdicts, for tests.
func runExperiment(ctx context.Context, cfg ExperimentConfig, out io.Writer) (*experiment, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	x := &experiment{cfg: cfg, out: out, rng: rand.New(rand.NewPCG(cfg.Seed, 0x6772_6169_6c)), escapes: map[string]int{}}
	defer x.close()
	steps := []func(context.Context) error{x.setup, x.honest, x.rawDifferences, x.attacks, x.soundness, x.cost}
	for _, s := range steps {
		if err := s(ctx); err != nil {
			return x, err
		}
	}
	return x, nil
}

type experiment struct {
	cfg    ExperimentConfig
	out    io.Writer
	rng    *rand.Rand
	envs   []*expEnv // [0] is the reference: best ISA, 1 thread
	engine []*tensor.Engine
	key    ed25519.PrivateKey
	maxTol uint32 // largest tolerance seen in the honest sweep
	// Verdicts: honest proofs rejected, and accepted forgeries per attack
	// that must always be rejected.
	falseRejections int
	differingBits   int
	escapes         map[string]int
}

func (x *experiment) close() {
	for _, e := range x.engine {
		e.Close()
	}
}

func (x *experiment) newEngine(opts ...tensor.Option) (*tensor.Engine, error) {
	e, err := tensor.New(opts...)
	if err != nil {
		return nil, fmt.Errorf("grail: experiment: %w", err)
	}
	x.engine = append(x.engine, e)
	return e, nil
}

func (x *experiment) printf(format string, a ...any) { fmt.Fprintf(x.out, format, a...) }

// setup builds the reference model and its copies on every engine setup.
func (x *experiment) setup(ctx context.Context) error {
	cfg := x.cfg
	var seed [ed25519.SeedSize]byte
	seed[0] = byte(cfg.Seed)
	x.key = ed25519.NewKeyFromSeed(seed[:])
	type spec struct {
		name    string
		isa     tensor.ISA
		threads int
	}
	best := tensor.BestISA()
	specs := []spec{{best.String() + "/1T", best, 1}, {fmt.Sprintf("%v/%dT", best, cfg.Threads), best, cfg.Threads}}
	if best != tensor.Generic {
		specs = append(specs, spec{"generic/1T", tensor.Generic, 1})
	}
	for _, s := range specs {
		e, err := x.newEngine(tensor.WithISA(s.isa), tensor.WithThreads(s.threads))
		if err != nil {
			return err
		}
		m, err := model.New(cfg.Model, e)
		if err != nil {
			return fmt.Errorf("grail: experiment: %w", err)
		}
		x.envs = append(x.envs, &expEnv{name: s.name, e: e, m: m})
	}
	ref := x.envs[0].m
	ref.Init(cfg.Seed)
	if cfg.TrainSteps > 0 && len(cfg.Text) > 1000 {
		start := time.Now()
		loss, err := trainSGD(ctx, ref, cfg.Text, cfg.TrainSteps, x.rng)
		if err != nil {
			return err
		}
		x.printf("model %v: trained %d SGD steps on the text in %v, loss %.3f\n", cfg.Model, cfg.TrainSteps, time.Since(start).Round(time.Millisecond), loss)
	} else {
		x.printf("model %v: random init (seed %d)\n", cfg.Model, cfg.Seed)
	}
	for _, env := range x.envs[1:] {
		copy(env.m.Params, ref.Params)
	}
	return nil
}

// trainSGD trains m briefly with plain momentum SGD on random windows of
// text, so that the experiment runs on a model with peaked, text-like
// distributions rather than a random one.
func trainSGD(ctx context.Context, m *model.GPT, text []byte, steps int, rng *rand.Rand) (float32, error) {
	const B, lr, mom = 8, 0.05, 0.9
	T := min(m.Config.Context, 64)
	vel := make([]float32, len(m.Params))
	tok, tgt := make([]int32, B*T), make([]int32, B*T)
	var loss float32
	for s := range steps {
		if err := ctx.Err(); err != nil {
			return 0, fmt.Errorf("grail: experiment: training: %w", err)
		}
		for b := range B {
			o := rng.IntN(len(text) - T - 1)
			for t := range T {
				tok[b*T+t], tgt[b*T+t] = int32(text[o+t]), int32(text[o+t+1])
			}
		}
		var err error
		if loss, err = m.Forward(tok, tgt, B, T); err != nil {
			return 0, fmt.Errorf("grail: experiment: training step %d: %w", s, err)
		}
		m.ZeroGrad()
		if err := m.Backward(); err != nil {
			return 0, fmt.Errorf("grail: experiment: training step %d: %w", s, err)
		}
		for i, g := range m.Grads {
			g = max(-1, min(1, g)) // clip: plain SGD on a transformer spikes early
			vel[i] = mom*vel[i] + g
			m.Params[i] -= lr * vel[i]
		}
	}
	return loss, nil
}

var expSamplings = []Sampling{{}, {Temperature: 1}, {Temperature: 0.8, TopK: 40}, {Temperature: 1.3, TopK: 8}, {Temperature: 0.5}}

func (x *experiment) prompt(n int) []int32 {
	p := make([]int32, n)
	if t := x.cfg.Text; len(t) > n+1 {
		o := x.rng.IntN(len(t) - n)
		for i := range p {
			p[i] = int32(t[o+i])
		}
		return p
	}
	for i := range p {
		p[i] = int32(x.rng.IntN(x.cfg.Model.Vocab))
	}
	return p
}

func (x *experiment) challenge() []byte {
	b := x.beacon()
	return b[:]
}

func (x *experiment) beacon() [32]byte {
	var b [32]byte
	for i := range 4 {
		v := x.rng.Uint64()
		for j := range 8 {
			b[8*i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// job is one proof request of the sweep.
type job struct {
	beacon [32]byte
	prompt []int32
	n      int
	s      Sampling
}

func (x *experiment) randomJob() job {
	ctxLen := x.cfg.Model.Context
	P := 1 + x.rng.IntN(12)
	n := 8 + x.rng.IntN(min(40, ctxLen-P-8))
	return job{beacon: x.beacon(), prompt: x.prompt(P), n: n, s: expSamplings[x.rng.IntN(len(expSamplings))]}
}

// honest proves cfg.Honest sequences round-robin over prover setups and
// verifies each under every verifier setup and batch size.
func (x *experiment) honest(ctx context.Context) error {
	type proverSetup struct {
		env  *expEnv
		full bool
	}
	var provers []proverSetup
	for _, env := range x.envs {
		provers = append(provers, proverSetup{env, false}, proverSetup{env, true})
	}
	proofs := make([]*Proof, x.cfg.Honest)
	exps := make([]Expect, x.cfg.Honest)
	made := make([]int, len(provers))
	start := time.Now()
	for i := range proofs {
		j := x.randomJob()
		ps := provers[i%len(provers)]
		var opts []ProveOption
		if ps.full {
			opts = append(opts, WithFullRecompute())
		}
		pr, err := NewProver(ps.env.m, x.key, opts...)
		if err != nil {
			return err
		}
		if proofs[i], err = pr.Prove(ctx, j.beacon, j.prompt, j.n, j.s); err != nil {
			return err
		}
		// Round-trip every proof through the codec, as a verifier receives it.
		b, err := proofs[i].Encode()
		if err != nil {
			return err
		}
		if proofs[i], err = Decode(b); err != nil {
			return err
		}
		exps[i] = Expect{Beacon: j.beacon, Challenge: x.challenge(), Peer: x.key.Public().(ed25519.PublicKey)}
		made[i%len(provers)]++
	}
	x.printf("\n## Honest proofs: %d sequences (prompt 1-12, 8-47 generated tokens, samplings %v), proved in %v\n",
		len(proofs), expSamplings, time.Since(start).Round(time.Millisecond))
	type acc struct {
		n, rej, chal int
		dist, tol    uint32
	}
	add := func(a *acc, rep Report, err error) {
		a.n++
		if err != nil {
			a.rej++
			x.falseRejections++
			x.printf("FALSE REJECTION: %v\n", err)
		}
		a.dist = max(a.dist, rep.MaxSketchDist)
		a.tol = max(a.tol, rep.MaxTolerance)
		a.chal += len(rep.Challenged)
	}
	perProver := make([]acc, len(provers))
	var perVerifier []acc
	var names []string
	for _, ve := range x.envs {
		for _, batch := range []int{1, 3, 8} {
			v, err := NewVerifier(ve.m, WithBatch(batch))
			if err != nil {
				return err
			}
			// Shuffle so that batches mix sequences of different provers,
			// lengths and samplings.
			order := x.rng.Perm(len(proofs))
			ps, es := make([]*Proof, len(order)), make([]Expect, len(order))
			for i, o := range order {
				ps[i], es[i] = proofs[o], exps[o]
			}
			reps, errs := v.CheckBatch(ctx, ps, es)
			var a acc
			for i, o := range order {
				add(&a, reps[i], errs[i])
				add(&perProver[o%len(provers)], reps[i], nil)
			}
			perVerifier = append(perVerifier, a)
			names = append(names, fmt.Sprintf("%s, batches of up to %d", ve.name, batch))
		}
	}
	x.maxTol = 0
	tw := tabwriter.NewWriter(x.out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "verifier\tverified\trejected\tmax sketch distance\tmax tolerance\tchallenged per proof")
	for i, a := range perVerifier {
		x.maxTol = max(x.maxTol, a.tol)
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1f\n", names[i], a.n, a.rej, a.dist, a.tol, float64(a.chal)/float64(max(1, a.n)))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	x.printf("\n")
	tw = tabwriter.NewWriter(x.out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "prover\tproofs\tverifications (all verifiers)\tmax sketch distance")
	for pi, a := range perProver {
		mode := "kv-cache"
		if provers[pi].full {
			mode = "full recompute"
		}
		fmt.Fprintf(tw, "%s %s\t%d\t%d\t%d\n", provers[pi].env.name, mode, made[pi], a.n, a.dist)
	}
	return tw.Flush()
}

// rawDifferences compares the prover's hidden states and logits with a
// teacher-forced Forward on every engine setup, bit for bit.
func (x *experiment) rawDifferences(ctx context.Context) error {
	C, V := x.cfg.Model.Width, x.cfg.Model.Vocab
	const seqs = 50
	var dh, dl float64
	var rel float64
	diffBits := 0
	total := 0
	for range seqs {
		j := x.randomJob()
		pe := x.envs[x.rng.IntN(len(x.envs))]
		var hid, lg []float32
		pr, err := NewProver(pe.m, x.key)
		if err != nil {
			return err
		}
		pr.observe = func(_ int, logits, hidden []float32) {
			hid = append(hid, hidden...)
			lg = append(lg, logits...)
		}
		p, err := pr.Prove(ctx, j.beacon, j.prompt, j.n, j.s)
		if err != nil {
			return err
		}
		seq := append(slices.Clone(p.Prompt), p.Tokens[:len(p.Tokens)-1]...)
		T, P := len(seq), len(p.Prompt)
		for _, ve := range x.envs {
			if _, err := ve.m.Forward(seq, nil, 1, T); err != nil {
				return err
			}
			h, l := ve.m.Hidden()[(P-1)*C:], ve.m.Logits()[(P-1)*V:]
			for i := range hid {
				d := math.Abs(float64(hid[i]) - float64(h[i]))
				dh = max(dh, d)
				rel = max(rel, d/math.Max(1e-30, math.Abs(float64(h[i]))))
				if math.Float32bits(hid[i]) != math.Float32bits(h[i]) {
					diffBits++
				}
			}
			for i := range lg {
				dl = max(dl, math.Abs(float64(lg[i])-float64(l[i])))
				if math.Float32bits(lg[i]) != math.Float32bits(l[i]) {
					diffBits++
				}
			}
			total += len(hid) + len(lg)
		}
	}
	x.printf("\n## Raw honest differences: prover (KV cache, random setup) vs teacher-forced Forward on every setup, %d sequences\n", seqs)
	x.differingBits = diffBits
	x.printf("values compared %d, differing bits %d, max |dh| %.3g (max relative %.3g), max |dlogit| %.3g\n", total, diffBits, dh, rel, dl)
	return nil
}

// attack is one adversarial scenario: make returns a forged proof and the
// expectation it is verified against.
type attack struct {
	name string
	make func(ctx context.Context, j job) (*Proof, Expect, error)
	// may is set for perturbations small enough that acceptance is not a
	// failure of the scheme (they sit at or below the tolerance).
	may bool
}

type attackResult struct {
	rejected, trials     int
	bySketch, byToken    int
	byBinding, other     int
	sketchFrac           float64 // mean fraction of challenged positions failing
	tokenFrac            float64 // mean fraction of tokens failing
	minRatio, meanRatio2 float64
}

func (x *experiment) attacks(ctx context.Context) error {
	ref := x.envs[0]
	cfg := x.cfg.Model
	honestProver, err := NewProver(ref.m, x.key)
	if err != nil {
		return err
	}
	verifier, err := NewVerifier(ref.m)
	if err != nil {
		return err
	}
	// cheater builds a prover on other weights that claims the reference's
	// model hash.
	cheater := func(params []float32) (*Prover, error) {
		e, err := x.newEngine(tensor.WithThreads(x.cfg.Threads))
		if err != nil {
			return nil, err
		}
		m, err := model.New(cfg, e)
		if err != nil {
			return nil, err
		}
		copy(m.Params, params)
		pr, err := NewProver(m, x.key)
		if err != nil {
			return nil, err
		}
		pr.hash = honestProver.hash
		return pr, nil
	}
	exp := func(j job) Expect {
		return Expect{Beacon: j.beacon, Challenge: x.challenge(), Peer: x.key.Public().(ed25519.PublicKey)}
	}
	fromProver := func(pr *Prover) func(context.Context, job) (*Proof, Expect, error) {
		return func(ctx context.Context, j job) (*Proof, Expect, error) {
			p, err := pr.Prove(ctx, j.beacon, j.prompt, j.n, j.s)
			return p, exp(j), err
		}
	}
	var list []attack

	other, err := model.New(cfg, ref.e)
	if err != nil {
		return err
	}
	other.Init(x.cfg.Seed + 1000)
	otherPr, err := cheater(other.Params)
	if err != nil {
		return err
	}
	list = append(list, attack{name: "different model (other init seed)", make: fromProver(otherPr)})

	for _, sigma := range []float64{1e-2, 1e-3, 1e-4, 3e-5, 1e-5, 3e-6, 1e-6, 1e-7} {
		params := slices.Clone(ref.m.Params)
		nr := rand.New(rand.NewPCG(uint64(sigma*1e9), 7))
		for i, w := range params {
			params[i] = float32(float64(w) * (1 + sigma*nr.NormFloat64()))
		}
		pr, err := cheater(params)
		if err != nil {
			return err
		}
		list = append(list, attack{name: fmt.Sprintf("weights * (1 + %.0e N(0,1))", sigma), make: fromProver(pr), may: sigma < 1e-4})
	}

	q8 := slices.Clone(ref.m.Params)
	for _, v := range ref.m.Views() {
		t := q8[v.Offset : v.Offset+v.Len]
		var mx float64
		for _, w := range t {
			mx = max(mx, math.Abs(float64(w)))
		}
		if mx == 0 {
			continue
		}
		s := mx / 127
		for i, w := range t {
			t[i] = float32(math.Round(float64(w)/s) * s)
		}
	}
	q8Pr, err := cheater(q8)
	if err != nil {
		return err
	}
	list = append(list, attack{name: "weights rounded to int8 (per-tensor scale)", make: fromProver(q8Pr)})

	recompute := func(p *Proof) error {
		if err := honestSketches(ref.m, p); err != nil {
			return err
		}
		return p.Sign(x.key)
	}
	// resketch recomputes p's sketches under p's (new) seed from the hidden
	// states of the original run, which a cheater has cached.
	resketch := func(p *Proof, hidden []float32) error {
		C := cfg.Width
		seed := p.Seed()
		r := make([]int8, C)
		st := newStream(seed, 0, 0)
		for j := range p.Tokens {
			projection(seed, j, r, st)
			var err error
			if p.Sketches[j], _, err = sketchOf(hidden[j*C:(j+1)*C], r); err != nil {
				return err
			}
		}
		return p.Sign(x.key)
	}
	honestWithHidden := func(ctx context.Context, j job) (*Proof, []float32, error) {
		var hid []float32
		honestProver.observe = func(_ int, _, h []float32) { hid = append(hid, h...) }
		defer func() { honestProver.observe = nil }()
		p, err := honestProver.Prove(ctx, j.beacon, j.prompt, j.n, j.s)
		return p, hid, err
	}
	list = append(list,
		attack{name: "changed prompt token (sketches re-derived from cached hidden states)", make: func(ctx context.Context, j job) (*Proof, Expect, error) {
			p, hid, err := honestWithHidden(ctx, j)
			if err != nil {
				return nil, Expect{}, err
			}
			i := x.rng.IntN(len(p.Prompt))
			p.Prompt[i] = (p.Prompt[i] + 1 + int32(x.rng.IntN(cfg.Vocab-1))) % int32(cfg.Vocab)
			return p, exp(j), resketch(p, hid)
		}},
		attack{name: "substituted generated token (sketches recomputed honestly)", make: func(ctx context.Context, j job) (*Proof, Expect, error) {
			p, err := honestProver.Prove(ctx, j.beacon, j.prompt, j.n, j.s)
			if err != nil {
				return nil, Expect{}, err
			}
			i := x.rng.IntN(len(p.Tokens))
			p.Tokens[i] = (p.Tokens[i] + 1 + int32(x.rng.IntN(cfg.Vocab-1))) % int32(cfg.Vocab)
			return p, exp(j), recompute(p)
		}},
		attack{name: "replayed under new randomness (re-signed, sketches as committed)", make: func(ctx context.Context, j job) (*Proof, Expect, error) {
			p, err := honestProver.Prove(ctx, j.beacon, j.prompt, j.n, j.s)
			if err != nil {
				return nil, Expect{}, err
			}
			j.beacon = x.beacon()
			p.Beacon = j.beacon
			return p, exp(j), p.Sign(x.key)
		}},
		attack{name: "replayed under new randomness (sketches re-derived; sampled only)", make: func(ctx context.Context, j job) (*Proof, Expect, error) {
			if j.s.Temperature == 0 {
				j.s = Sampling{Temperature: 1}
			}
			p, hid, err := honestWithHidden(ctx, j)
			if err != nil {
				return nil, Expect{}, err
			}
			j.beacon = x.beacon()
			p.Beacon = j.beacon
			return p, exp(j), resketch(p, hid)
		}},
		attack{name: "proof of another peer, re-signed (sketches as committed)", make: func(ctx context.Context, j job) (*Proof, Expect, error) {
			p, err := honestProver.Prove(ctx, j.beacon, j.prompt, j.n, j.s)
			if err != nil {
				return nil, Expect{}, err
			}
			thief := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
			e := exp(j)
			e.Peer = thief.Public().(ed25519.PublicKey)
			return p, e, p.Sign(thief)
		}},
	)

	x.printf("\n## Attacks: %d trials each against the reference verifier (k = %d challenged positions, token check on all positions)\n", x.cfg.Trials, DefaultChallenges)
	tw := tabwriter.NewWriter(x.out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "attack\trejected\tby sketch\tby token\tby binding\tchallenged positions failing\ttokens failing\tmin dist/tol")
	for _, a := range list {
		var res attackResult
		res.minRatio = math.Inf(1)
		for range x.cfg.Trials {
			j := x.randomJob()
			p, e, err := a.make(ctx, j)
			if err != nil {
				return fmt.Errorf("grail: experiment: %s: %w", a.name, err)
			}
			rep, verr := verifier.Check(ctx, p, e)
			res.trials++
			if verr != nil {
				res.rejected++
			}
			switch {
			case verr == nil:
			case errors.Is(verr, ErrSketch):
				res.bySketch++
			case errors.Is(verr, ErrToken):
				res.byToken++
			case errors.Is(verr, ErrBinding), errors.Is(verr, ErrModel), errors.Is(verr, ErrSignature):
				res.byBinding++
			default:
				res.other++
			}
			if len(rep.Challenged) > 0 {
				res.sketchFrac += float64(rep.SketchFailures) / float64(len(rep.Challenged))
				res.tokenFrac += float64(rep.TokenFailures) / float64(rep.Tokens)
				res.minRatio = min(res.minRatio, rep.MaxSketchRatio)
			}
		}
		if !a.may && res.rejected < res.trials {
			x.escapes[a.name] = res.trials - res.rejected
		}
		fmt.Fprintf(tw, "%s\t%d/%d\t%d\t%d\t%d\t%.1f%%\t%.1f%%\t%.3g\n", a.name, res.rejected, res.trials, res.bySketch, res.byToken, res.byBinding,
			100*res.sketchFrac/float64(res.trials), 100*res.tokenFrac/float64(res.trials), res.minRatio)
	}
	return tw.Flush()
}

// soundness prints the bounds of the package documentation for the
// experiment's model.
func (x *experiment) soundness(ctx context.Context) error {
	tol := max(x.maxTol, TolAbs)
	x.printf("\n## Soundness bounds (PositionBound) at the largest tolerance of the honest sweep, %d sketch units, k = %d\n", tol, DefaultChallenges)
	tw := tabwriter.NewWriter(x.out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "forged hidden state, max |h'_i - h_i|\tper-position pass bound\tall k positions pass")
	for _, d := range []float64{1e-1, 1e-2, 1e-3, 1e-4} {
		b := PositionBound(d, tol)
		fmt.Fprintf(tw, "%.0e\t%.3g\t%.3g\n", d, b, math.Pow(b, DefaultChallenges))
	}
	rnd := float64(2*tol+1) / SketchModulus
	fmt.Fprintf(tw, "sketch guessed uniformly in [0, 2^24)\t%.3g\t%.3g\n", rnd, math.Pow(rnd, DefaultChallenges))
	return tw.Flush()
}

// cost times plain generation, proving and verification on the timing
// model.
func (x *experiment) cost(ctx context.Context) error {
	cfg := x.cfg.Timing
	e, err := x.newEngine(tensor.WithThreads(x.cfg.Threads))
	if err != nil {
		return err
	}
	m, err := model.New(cfg, e)
	if err != nil {
		return fmt.Errorf("grail: experiment: %w", err)
	}
	m.Init(x.cfg.Seed)
	n := x.cfg.TimingGen
	P := max(1, min(8, cfg.Context+1-n))
	pr, err := NewProver(m, x.key)
	if err != nil {
		return err
	}
	pr.timed = true
	v, err := NewVerifier(m)
	if err != nil {
		return err
	}
	s := Sampling{Temperature: 1, TopK: 40}
	var tGen, tPlain, tProve, tVerify, tEncode, tWork []time.Duration
	var size int
	for range x.cfg.TimingRuns {
		j := job{beacon: x.beacon(), prompt: x.prompt(P), n: n, s: s}
		t0 := time.Now()
		if _, err := m.Generate(ctx, j.prompt, min(n, cfg.Context-P), model.Sampler{Temperature: s.Temperature, TopK: s.TopK, Seed: x.rng.Uint64()}, nil); err != nil {
			return fmt.Errorf("grail: experiment: %w", err)
		}
		t1 := time.Now()
		if err := plainGenerate(ctx, m, j, x.rng); err != nil {
			return err
		}
		t2 := time.Now()
		pr.work = 0
		p, err := pr.Prove(ctx, j.beacon, j.prompt, n, s)
		tWork = append(tWork, pr.work)
		if err != nil {
			return err
		}
		t3 := time.Now()
		b, err := p.Encode()
		if err != nil {
			return err
		}
		t4 := time.Now()
		q, err := Decode(b)
		if err != nil {
			return err
		}
		if err := v.Verify(ctx, q, Expect{Beacon: j.beacon}); err != nil {
			return fmt.Errorf("grail: experiment: timing proof rejected: %w", err)
		}
		t5 := time.Now()
		tGen, tPlain, tProve, tEncode, tVerify = append(tGen, t1.Sub(t0)), append(tPlain, t2.Sub(t1)), append(tProve, t3.Sub(t2)), append(tEncode, t4.Sub(t3)), append(tVerify, t5.Sub(t4))
		size = len(b)
	}
	med := func(d []time.Duration) time.Duration {
		s := slices.Clone(d)
		sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
		return s[len(s)/2]
	}
	g, pl, p, en, ve, wk := med(tGen), med(tPlain), med(tProve), med(tEncode), med(tVerify), med(tWork)
	x.printf("\n## Cost: %v, prompt %d + %d generated tokens, %s, %d threads, median of %d runs\n", cfg, P, n, s, x.cfg.Threads, x.cfg.TimingRuns)
	tw := tabwriter.NewWriter(x.out, 2, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "measure\ttime\tper token\trelative")
	fmt.Fprintf(tw, "model.Generate (KV cache, no proof)\t%v\t%v\t1\n", g.Round(time.Microsecond), (g / time.Duration(n)).Round(time.Microsecond))
	fmt.Fprintf(tw, "same loop as the prover, no sketches\t%v\t%v\t%.3f\n", pl.Round(time.Microsecond), (pl / time.Duration(n)).Round(time.Microsecond), float64(pl)/float64(g))
	fmt.Fprintf(tw, "Prove (sketches, draws, signature)\t%v\t%v\t%.3f (overhead vs model.Generate %+.1f%%, vs plain loop %+.1f%%)\n", p.Round(time.Microsecond), (p / time.Duration(n)).Round(time.Microsecond), float64(p)/float64(g), 100*(float64(p)/float64(g)-1), 100*(float64(p)/float64(pl)-1))
	fmt.Fprintf(tw, "  of which proof work (r_j, sketch, u_j, signature)\t%v\t%v\t%.4f of Prove (%.2f%% overhead)\n", wk.Round(time.Microsecond), (wk / time.Duration(n)).Round(10*time.Nanosecond), float64(wk)/float64(p), 100*float64(wk)/float64(p-wk))
	fmt.Fprintf(tw, "Encode\t%v\t\t%.4f\n", en.Round(time.Microsecond), float64(en)/float64(g))
	fmt.Fprintf(tw, "Decode + Verify (one teacher-forced Forward)\t%v\t%v\t%.3f of generation\n", ve.Round(time.Microsecond), (ve / time.Duration(n)).Round(time.Microsecond), float64(ve)/float64(g))
	if err := tw.Flush(); err != nil {
		return err
	}
	x.printf("proof size %d bytes = %.2f bytes per generated token (%d-byte header + signature, %d token bytes, 3 bytes per sketch)\n",
		size, float64(size)/float64(n), headerLen+sigLen, (P+n)*tokenWidth(cfg.Vocab))
	x.printf("%s\n", strings.Repeat("-", 20))
	return nil
}

// plainGenerate is the prover's generation loop without proving: KV-cache
// steps and the same sampler, with draws from an ordinary PRNG.
func plainGenerate(ctx context.Context, m *model.GPT, j job, rng *rand.Rand) error {
	P := len(j.prompt)
	sess, err := m.NewSession(P + j.n - 1)
	if err != nil {
		return err
	}
	sp := newSampler(m.Config.Vocab)
	var logits []float32
	for _, t := range j.prompt {
		if logits, _, err = sess.Step(t); err != nil {
			return err
		}
	}
	for i := range j.n {
		if err := ctx.Err(); err != nil {
			return err
		}
		tok, err := sp.sample(logits, j.s, rng.Float64())
		if err != nil {
			return err
		}
		if i == j.n-1 {
			break
		}
		if logits, _, err = sess.Step(tok); err != nil {
			return err
		}
	}
	return nil
}

// honestSketches overwrites p's sketches with those m computes for p's
// sequence and seed in one teacher-forced Forward: a cheater's best effort
// after editing a proof's tokens. It does not re-sign.
func honestSketches(m *model.GPT, p *Proof) error {
	seq := append(slices.Clone(p.Prompt), p.Tokens[:len(p.Tokens)-1]...)
	if _, err := m.Forward(seq, nil, 1, len(seq)); err != nil {
		return err
	}
	C := m.Config.Width
	seed := p.Seed()
	r := make([]int8, C)
	st := newStream(seed, 0, 0)
	for j := range p.Tokens {
		row := len(p.Prompt) - 1 + j
		projection(seed, j, r, st)
		var err error
		if p.Sketches[j], _, err = sketchOf(m.Hidden()[row*C:(row+1)*C], r); err != nil {
			return err
		}
	}
	return nil
}
