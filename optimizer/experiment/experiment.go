// Package experiment runs the SparseLoCo experiment: a single-process
// simulation of R workers (goroutines, each with its own model replica,
// tensor engine and data pages) that trains the same model from the same
// initialisation with plain data-parallel AdamW, DiLoCo, DeMo and SparseLoCo
// at two densities, for the same number of tokens, and reports final
// validation loss, bytes each worker sends per round, the compression ratio
// against a dense fp32 pseudo-gradient, and wall time.
//
// Every method sees the same batches: worker w's batch for inner step s of
// round r is the same whichever method runs. Results are deterministic for a
// given Config (same bits on every machine), apart from wall time.
package experiment

import (
	"context"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
)

// Method names, as accepted in Config.Methods.
const (
	MethodDDP        = "ddp-adamw"
	MethodDiLoCo     = "diloco"
	MethodDeMo       = "demo"
	MethodSparseLoCo = "sparseloco" // followed by "-1/<density>", e.g. "sparseloco-1/64"
)

// Config describes one experiment.
type Config struct {
	Model      model.Config
	DataPath   string        // text file; ignored when Dataset is set
	Dataset    *data.Dataset // optional: use these tokens directly
	Workers    int           // R
	InnerSteps int           // H
	Rounds     int
	Batch      int // sequences per worker per step
	SeqLen     int // T
	PageSize   int // tokens per data page
	ValBatches int // validation batches of Batch x SeqLen
	Seed       uint64
	Threads    int // total tensor threads, shared among workers (default GOMAXPROCS)
	Inner      optimizer.AdamWConfig
	DiLoCoLR   float32 // Nesterov outer lr (DiLoCo: 0.7)
	DiLoCoMom  float32 // Nesterov momentum (DiLoCo: 0.9)
	SparseLR   float32 // SparseLoCo outer lr
	ErrorDecay float32 // SparseLoCo error-feedback beta
	ChunkSize  int     // SparseLoCo chunk
	Densities  []int   // SparseLoCo: keep ChunkSize/density per chunk
	NormClip   bool    // SparseLoCo: clip contributions to the median norm
	DeMo       optimizer.DeMoConfig
	Methods    []string // subset to run; empty = all
	EvalEvery  int      // also print validation loss every this many rounds (0: only at the end)
}

// DefaultConfig is the reference experiment: the reference model on
// tinyshakespeare, R = 4, H = 15, 20 rounds of 2 x 64 tokens per worker
// step (153,600 training tokens per method: about 2 minutes per method on
// 2 busy cores). Few tokens per step buys more rounds in the time budget;
// rounds, not tokens, are what a sparse method needs to catch up.
func DefaultConfig(dataPath string) Config {
	inner := optimizer.DefaultAdamW()
	inner.LR = 2e-3
	inner.Warmup = 30
	return Config{
		Model: model.Reference, DataPath: dataPath,
		Workers: 4, InnerSteps: 15, Rounds: 20, Batch: 2, SeqLen: 64, PageSize: 1024, ValBatches: 64,
		Seed: 1, Inner: inner,
		DiLoCoLR: 0.7, DiLoCoMom: 0.9,
		SparseLR: 1, ErrorDecay: 0.95, ChunkSize: 4096, Densities: []int{64, 128}, NormClip: true,
		DeMo: optimizer.DeMoConfig{LR: 2e-3, Beta: 0.999, WeightDecay: 0.1, K: 32, BlockDim: 64},
	}
}

// Row is one method's result.
type Row struct {
	Method        string
	ValLoss       float64
	BytesPerRound int     // bytes one worker sends per round of H steps: DDP H dense fp32 gradients, DiLoCo one dense fp32 pseudo-gradient, DeMo H messages (fp32 value + bit-packed block index per coefficient), SparseLoCo its encoded blob (mean over workers and rounds)
	Ratio         float64 // dense fp32 pseudo-gradient bytes / BytesPerRound
	Tokens        int64   // training tokens seen, all workers
	Wall          time.Duration
}

// Table is the experiment's result.
type Table struct {
	Config      Config
	DenseBytes  int     // one dense fp32 pseudo-gradient
	InitValLoss float64 // validation loss of the initial model
	Rows        []Row
}

// Write prints the table.
func (t Table) Write(w io.Writer) error {
	c := t.Config
	fmt.Fprintf(w, "model %v; R=%d H=%d rounds=%d batch %dx%d; %d training tokens per method; dense pseudo-gradient %d bytes; initial val loss %.4f\n",
		c.Model, c.Workers, c.InnerSteps, c.Rounds, c.Batch, c.SeqLen, int64(c.Rounds)*int64(c.InnerSteps*c.Workers*c.Batch*c.SeqLen), t.DenseBytes, t.InitValLoss)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "method\tval loss\tbytes/worker/round\tvs dense fp32\tfewer bytes\twall\t")
	for _, r := range t.Rows {
		fmt.Fprintf(tw, "%s\t%.4f\t%d\t%.4gx\t%.2f%%\t%s\t\n", r.Method, r.ValLoss, r.BytesPerRound, r.Ratio,
			100*(1-1/r.Ratio), r.Wall.Round(time.Millisecond))
	}
	return tw.Flush()
}

func (c *Config) validate() error {
	if err := c.Model.Validate(); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	if err := c.Inner.Validate(); err != nil {
		return fmt.Errorf("experiment: inner: %w", err)
	}
	for _, f := range []struct {
		name string
		v    int
	}{{"workers", c.Workers}, {"inner steps", c.InnerSteps}, {"rounds", c.Rounds}, {"batch", c.Batch}, {"seq len", c.SeqLen}, {"page size", c.PageSize}, {"val batches", c.ValBatches}} {
		if f.v < 1 {
			return fmt.Errorf("experiment: %s = %d must be >= 1", f.name, f.v)
		}
	}
	if c.SeqLen > c.Model.Context || c.PageSize < c.SeqLen {
		return fmt.Errorf("experiment: seq len %d must be <= context %d and <= page size %d", c.SeqLen, c.Model.Context, c.PageSize)
	}
	for _, d := range c.Densities {
		if d < 1 || c.ChunkSize%d != 0 {
			return fmt.Errorf("experiment: density 1/%d does not divide chunk size %d", d, c.ChunkSize)
		}
		if _, err := optimizer.NewChunking(c.Model, c.ChunkSize, c.ChunkSize/d); err != nil {
			return fmt.Errorf("experiment: %w", err)
		}
	}
	if !(c.SparseLR > 0 && c.SparseLR <= 10) || !(c.ErrorDecay >= 0 && c.ErrorDecay <= 1) {
		return fmt.Errorf("experiment: sparseloco lr %g or error decay %g out of range", c.SparseLR, c.ErrorDecay)
	}
	for _, m := range c.methods() {
		if _, err := c.density(m); err != nil {
			return err
		}
	}
	if _, err := optimizer.NewNesterov(1, c.DiLoCoLR, c.DiLoCoMom); err != nil {
		return fmt.Errorf("experiment: diloco: %w", err)
	}
	if _, err := optimizer.NewDeMo(c.DeMo, model.Layout(c.Model)); err != nil {
		return fmt.Errorf("experiment: %w", err)
	}
	return nil
}

// density checks a method name; for SparseLoCo it returns the density
// denominator (0 for other methods).
func (c *Config) density(method string) (int, error) {
	switch method {
	case MethodDDP, MethodDiLoCo, MethodDeMo:
		return 0, nil
	}
	var d int
	if _, err := fmt.Sscanf(method, MethodSparseLoCo+"-1/%d", &d); err != nil || d < 1 || c.ChunkSize%d != 0 ||
		method != fmt.Sprintf("%s-1/%d", MethodSparseLoCo, d) {
		return 0, fmt.Errorf("experiment: unknown method %q (want %s, %s, %s or %s-1/<d> with d dividing %d)",
			method, MethodDDP, MethodDiLoCo, MethodDeMo, MethodSparseLoCo, c.ChunkSize)
	}
	return d, nil
}

func (c *Config) methods() []string {
	if len(c.Methods) > 0 {
		return c.Methods
	}
	m := []string{MethodDDP, MethodDiLoCo, MethodDeMo}
	for _, d := range c.Densities {
		m = append(m, fmt.Sprintf("%s-1/%d", MethodSparseLoCo, d))
	}
	return m
}

// Run runs every method of cfg in turn, writing progress and the final
// table to out (which may be nil).
func Run(ctx context.Context, cfg Config, out io.Writer) (Table, error) {
	if out == nil {
		out = io.Discard
	}
	if cfg.Threads == 0 {
		cfg.Threads = runtime.GOMAXPROCS(0)
	}
	if err := cfg.validate(); err != nil {
		return Table{}, err
	}
	ds := cfg.Dataset
	if ds == nil {
		text, err := data.LoadText(cfg.DataPath)
		if err != nil {
			return Table{}, fmt.Errorf("experiment: %w", err)
		}
		if ds, err = data.NewDataset(data.ByteTokenizer{}.EncodeBytes(text), cfg.Model.Vocab, 0.1); err != nil {
			return Table{}, fmt.Errorf("experiment: %w", err)
		}
	}
	s, err := newSim(cfg, ds)
	if err != nil {
		return Table{}, err
	}
	s.out = out
	defer s.close()
	t := Table{Config: cfg, DenseBytes: 4 * cfg.Model.NumParams()}
	t.Config.Dataset = nil
	if t.InitValLoss, err = s.valLoss(s.init); err != nil {
		return t, err
	}
	for _, m := range cfg.methods() {
		if err := ctx.Err(); err != nil {
			return t, err
		}
		start := time.Now()
		row, err := s.run(ctx, m)
		if err != nil {
			return t, fmt.Errorf("experiment: %s: %w", m, err)
		}
		row.Wall = time.Since(start)
		row.Tokens = int64(cfg.Rounds) * int64(cfg.InnerSteps*cfg.Workers*cfg.Batch*cfg.SeqLen)
		row.Ratio = float64(t.DenseBytes) / float64(row.BytesPerRound)
		t.Rows = append(t.Rows, row)
		fmt.Fprintf(out, "%-18s val loss %.4f  %d bytes/worker/round  %s\n", m, row.ValLoss, row.BytesPerRound, row.Wall.Round(time.Millisecond))
	}
	return t, t.Write(out)
}

// sim holds the workers and the shared data.
type sim struct {
	out     io.Writer
	method  string
	cfg     Config
	ds      *data.Dataset
	workers []*worker
	init    []float32 // initial global parameters
	val     *data.Batcher
	pages   int // pages per worker per round
}

type worker struct {
	id  string
	e   *tensor.Engine
	m   *model.GPT
	opt *optimizer.AdamW
	b   *data.Batcher
}

func newSim(cfg Config, ds *data.Dataset) (*sim, error) {
	s := &sim{cfg: cfg, ds: ds}
	threads := max(1, cfg.Threads/cfg.Workers)
	for w := range cfg.Workers {
		e, err := tensor.New(tensor.WithThreads(threads))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("experiment: %w", err)
		}
		m, err := model.New(cfg.Model, e)
		if err != nil {
			e.Close()
			s.close()
			return nil, fmt.Errorf("experiment: %w", err)
		}
		s.workers = append(s.workers, &worker{id: fmt.Sprintf("worker-%d", w), e: e, m: m})
	}
	s.workers[0].m.Init(cfg.Seed)
	s.init = slices.Clone(s.workers[0].m.Params)
	windowsPerPage := cfg.PageSize / cfg.SeqLen
	s.pages = (cfg.InnerSteps*cfg.Batch + windowsPerPage - 1) / windowsPerPage
	if n := data.NumPages(len(ds.Train), cfg.PageSize); n < s.pages {
		s.close()
		return nil, fmt.Errorf("experiment: %d training pages, a round needs %d", n, s.pages)
	}
	var err error
	if s.val, err = data.NewValidationBatcher(ds.Val, cfg.Batch, cfg.SeqLen, cfg.ValBatches); err != nil {
		s.close()
		return nil, fmt.Errorf("experiment: %w", err)
	}
	return s, nil
}

func (s *sim) close() {
	for _, w := range s.workers {
		w.e.Close()
	}
}

// startRound points every worker at its pages for round r.
func (s *sim) startRound(r int) error {
	n := data.NumPages(len(s.ds.Train), s.cfg.PageSize)
	for _, w := range s.workers {
		pages := data.AssignPages(s.cfg.Seed, w.id, uint64(r), n, s.pages)
		b, err := data.NewBatcher(s.ds.Train, s.cfg.PageSize, pages, s.cfg.Batch, s.cfg.SeqLen)
		if err != nil {
			return err
		}
		w.b = b
	}
	return nil
}

// grad computes worker w's gradient at its current parameters on its next
// batch.
func (w *worker) grad(B, T int) error {
	in, tg := w.b.Next()
	w.m.ZeroGrad()
	if _, err := w.m.Forward(in, tg, B, T); err != nil {
		return err
	}
	return w.m.Backward()
}

// each runs fn on every worker concurrently and returns the first error.
func (s *sim) each(fn func(i int, w *worker) error) error {
	errs := make([]error, len(s.workers))
	var wg sync.WaitGroup
	for i, w := range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = fn(i, w)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s: %w", s.workers[i].id, err)
		}
	}
	return nil
}

// valLoss evaluates theta on the validation batches with worker 0's model.
func (s *sim) valLoss(theta []float32) (float64, error) {
	m := s.workers[0].m
	saved := slices.Clone(m.Params)
	defer copy(m.Params, saved)
	copy(m.Params, theta)
	s.val.Reset()
	var sum float64
	n := s.val.Len()
	for range n {
		in, tg := s.val.Next()
		l, err := m.Forward(in, tg, s.cfg.Batch, s.cfg.SeqLen)
		if err != nil {
			return 0, err
		}
		sum += float64(l)
	}
	return sum / float64(n), nil
}

// schedule is the inner AdamW config with the cosine ending at the last
// step (warmup shortened to a tenth of the run if the run is shorter).
func (s *sim) schedule() optimizer.AdamWConfig {
	cfg := s.cfg.Inner
	cfg.TotalSteps = s.cfg.Rounds * s.cfg.InnerSteps
	if cfg.Warmup >= cfg.TotalSteps {
		cfg.Warmup = cfg.TotalSteps / 10
	}
	return cfg
}

func (s *sim) resetWorkers() error {
	for _, w := range s.workers {
		copy(w.m.Params, s.init)
		opt, err := optimizer.NewAdamW(s.schedule(), w.m.Views())
		if err != nil {
			return err
		}
		w.opt = opt
	}
	return nil
}

func (s *sim) run(ctx context.Context, method string) (Row, error) {
	if err := s.resetWorkers(); err != nil {
		return Row{}, err
	}
	s.method = method
	theta := slices.Clone(s.init)
	var bytes int
	var err error
	switch {
	case method == MethodDDP:
		bytes, err = s.runDDP(ctx, theta)
	case method == MethodDiLoCo:
		bytes, err = s.runDiLoCo(ctx, theta)
	case method == MethodDeMo:
		bytes, err = s.runDeMo(ctx, theta)
	case strings.HasPrefix(method, MethodSparseLoCo+"-1/"):
		var d int
		if d, err = s.cfg.density(method); err != nil {
			return Row{}, err
		}
		bytes, err = s.runSparseLoCo(ctx, theta, s.cfg.ChunkSize/d)
	default:
		return Row{}, fmt.Errorf("unknown method %q", method)
	}
	if err != nil {
		return Row{}, err
	}
	loss, err := s.valLoss(theta)
	if err != nil {
		return Row{}, err
	}
	return Row{Method: method, ValLoss: loss, BytesPerRound: bytes}, nil
}

// runDDP: every step, every worker's gradient at the global parameters is
// averaged (a dense fp32 all-reduce) and one AdamW step is taken.
func (s *sim) runDDP(ctx context.Context, theta []float32) (int, error) {
	opt, err := optimizer.NewAdamW(s.schedule(), model.Layout(s.cfg.Model))
	if err != nil {
		return 0, err
	}
	mean := make([]float32, len(theta))
	grads := make([][]float32, len(s.workers))
	for i, w := range s.workers {
		grads[i] = w.m.Grads
	}
	for r := range s.cfg.Rounds {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := s.startRound(r); err != nil {
			return 0, err
		}
		for range s.cfg.InnerSteps {
			if err := s.each(func(_ int, w *worker) error {
				copy(w.m.Params, theta)
				return w.grad(s.cfg.Batch, s.cfg.SeqLen)
			}); err != nil {
				return 0, err
			}
			if err := optimizer.MeanDense(mean, grads); err != nil {
				return 0, err
			}
			if _, err := opt.Update(s.workers[0].e, theta, mean); err != nil {
				return 0, err
			}
		}
		if err := s.progress(r, theta); err != nil {
			return 0, err
		}
	}
	return s.cfg.InnerSteps * 4 * len(theta), nil
}

// innerRound runs H AdamW steps on every worker from theta and leaves each
// worker's pseudo-gradient theta - theta_local in pg[i].
func (s *sim) innerRound(r int, theta []float32, pg [][]float32) error {
	if err := s.startRound(r); err != nil {
		return err
	}
	return s.each(func(i int, w *worker) error {
		copy(w.m.Params, theta)
		for range s.cfg.InnerSteps {
			in, tg := w.b.Next()
			if _, err := optimizer.InnerStep(w.m, w.opt, in, tg, s.cfg.Batch, s.cfg.SeqLen); err != nil {
				return err
			}
		}
		for j, p := range w.m.Params {
			pg[i][j] = theta[j] - p
		}
		return nil
	})
}

func (s *sim) pseudoGrads(n int) [][]float32 {
	pg := make([][]float32, len(s.workers))
	for i := range pg {
		pg[i] = make([]float32, n)
	}
	return pg
}

// runDiLoCo: dense pseudo-gradients averaged, Nesterov outer step.
func (s *sim) runDiLoCo(ctx context.Context, theta []float32) (int, error) {
	outer, err := optimizer.NewNesterov(len(theta), s.cfg.DiLoCoLR, s.cfg.DiLoCoMom)
	if err != nil {
		return 0, err
	}
	pg := s.pseudoGrads(len(theta))
	mean := make([]float32, len(theta))
	for r := range s.cfg.Rounds {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := s.innerRound(r, theta, pg); err != nil {
			return 0, err
		}
		if err := optimizer.MeanDense(mean, pg); err != nil {
			return 0, err
		}
		if err := outer.Step(theta, mean); err != nil {
			return 0, err
		}
		if err := s.progress(r, theta); err != nil {
			return 0, err
		}
	}
	return 4 * len(theta), nil
}

// runSparseLoCo: each worker compresses its pseudo-gradient with error
// feedback into a blob; blobs are aggregated and applied.
func (s *sim) runSparseLoCo(ctx context.Context, theta []float32, k int) (int, error) {
	ch, err := optimizer.NewChunking(s.cfg.Model, s.cfg.ChunkSize, k)
	if err != nil {
		return 0, err
	}
	comps := make([]*optimizer.SparseLoCo, len(s.workers))
	cs := make([]*optimizer.Compressed, len(s.workers))
	for i := range comps {
		if comps[i], err = optimizer.NewSparseLoCo(ch, optimizer.WithErrorDecay(s.cfg.ErrorDecay)); err != nil {
			return 0, err
		}
		cs[i] = ch.NewCompressed()
	}
	pg := s.pseudoGrads(len(theta))
	agg := make([]float32, len(theta))
	blobs := make([][]byte, len(s.workers))
	var total int64
	for r := range s.cfg.Rounds {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := s.innerRound(r, theta, pg); err != nil {
			return 0, err
		}
		if err := s.each(func(i int, _ *worker) error {
			if err := comps[i].Compress(uint64(r), pg[i], cs[i]); err != nil {
				return err
			}
			var err error
			blobs[i], err = ch.Encode(blobs[i][:0], cs[i])
			return err
		}); err != nil {
			return 0, err
		}
		for _, b := range blobs {
			total += int64(len(b))
		}
		if _, err := ch.Aggregate(agg, blobs, uint64(r), optimizer.WithNormClip(s.cfg.NormClip), optimizer.WithAggregateWorkers(s.cfg.Threads)); err != nil {
			return 0, err
		}
		if err := optimizer.OuterStep(theta, agg, s.cfg.SparseLR); err != nil {
			return 0, err
		}
		if err := s.progress(r, theta); err != nil {
			return 0, err
		}
	}
	return int(math.Round(float64(total) / float64(s.cfg.Rounds*len(s.workers)))), nil
}

// runDeMo: every step each worker sends the top-k DCT coefficients of its
// momentum; the sign of their mean steps the global parameters.
func (s *sim) runDeMo(ctx context.Context, theta []float32) (int, error) {
	d, err := optimizer.NewDeMo(s.cfg.DeMo, model.Layout(s.cfg.Model))
	if err != nil {
		return 0, err
	}
	dws := make([]*optimizer.DeMoWorker, len(s.workers))
	for i := range dws {
		dws[i] = d.NewWorker()
	}
	msgs := make([]*optimizer.DeMoMessage, len(s.workers))
	n := len(theta)
	coef, tmp, upd := make([]float32, n), make([]float32, n), make([]float32, n)
	sched := s.schedule()
	sched.LR = s.cfg.DeMo.LR
	step := 0
	for r := range s.cfg.Rounds {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := s.startRound(r); err != nil {
			return 0, err
		}
		for range s.cfg.InnerSteps {
			if err := s.each(func(i int, w *worker) error {
				copy(w.m.Params, theta)
				if err := w.grad(s.cfg.Batch, s.cfg.SeqLen); err != nil {
					return err
				}
				var err error
				msgs[i], err = dws[i].Compress(w.e, w.m.Grads)
				return err
			}); err != nil {
				return 0, err
			}
			step++
			d.SetLR(sched.LRAt(step))
			if err := d.Step(s.workers[0].e, theta, msgs, coef, tmp, upd); err != nil {
				return 0, err
			}
		}
		if err := s.progress(r, theta); err != nil {
			return 0, err
		}
	}
	return s.cfg.InnerSteps * d.BytesPerMessage(), nil
}

// progress prints the validation loss after round r when EvalEvery asks.
func (s *sim) progress(r int, theta []float32) error {
	if s.cfg.EvalEvery <= 0 || (r+1)%s.cfg.EvalEvery != 0 || r+1 == s.cfg.Rounds {
		return nil
	}
	l, err := s.valLoss(theta)
	if err != nil {
		return err
	}
	fmt.Fprintf(s.out, "  %s round %d: val loss %.4f\n", s.method, r+1, l)
	return nil
}
