package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/safetensors"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
)

// TrainConfig configures a Trainer.
type TrainConfig struct {
	Model       model.Config
	Seed        uint64 // weight initialisation and data order
	Batch       int    // sequences per step (B)
	SeqLen      int    // tokens per sequence (T)
	PageSize    int    // tokens per data page; 0 means 16*SeqLen
	AdamW       optimizer.AdamWConfig
	EvalBatches int // validation batches per evaluation; 0 means 8
}

// Validate reports the first unusable field.
func (c TrainConfig) Validate() error {
	if err := c.Model.Validate(); err != nil {
		return err
	}
	if c.Batch < 1 || c.SeqLen < 1 {
		return fmt.Errorf("node: batch %d x seq-len %d must be positive", c.Batch, c.SeqLen)
	}
	if c.SeqLen > c.Model.Context {
		return fmt.Errorf("node: seq-len %d exceeds the model context %d", c.SeqLen, c.Model.Context)
	}
	if c.PageSize != 0 && c.PageSize < c.SeqLen {
		return fmt.Errorf("node: page size %d is smaller than seq-len %d", c.PageSize, c.SeqLen)
	}
	return c.AdamW.Validate()
}

// Trainer runs the inner training loop of one peer: forward, backward and an
// AdamW update per step, over batches drawn deterministically from its pages.
type Trainer struct {
	cfg   TrainConfig
	Model *model.GPT
	Opt   *optimizer.AdamW
	train *data.Batcher
	val   *data.Batcher
	in    []int32 // the batch being trained or evaluated (B*T inputs)
	tgt   []int32 // and its targets
	step  int     // steps taken; also the index of the next batch
}

// NewTrainer builds a model initialised from cfg.Seed and an optimizer over it.
func NewTrainer(e *tensor.Engine, ds *data.Dataset, cfg TrainConfig) (*Trainer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ds.Vocab > cfg.Model.Vocab {
		return nil, fmt.Errorf("node: dataset vocabulary %d exceeds the model's %d", ds.Vocab, cfg.Model.Vocab)
	}
	if cfg.PageSize == 0 {
		cfg.PageSize = 16 * cfg.SeqLen
	}
	if cfg.EvalBatches == 0 {
		cfg.EvalBatches = 8
	}
	m, err := model.New(cfg.Model, e)
	if err != nil {
		return nil, err
	}
	m.Init(cfg.Seed)
	opt, err := optimizer.NewAdamW(cfg.AdamW, m.Views())
	if err != nil {
		return nil, err
	}
	n := data.NumPages(len(ds.Train), cfg.PageSize)
	if n == 0 {
		return nil, fmt.Errorf("node: training split of %d tokens is shorter than one page of %d", len(ds.Train), cfg.PageSize)
	}
	pages := data.AssignPages(cfg.Seed, "local", 0, n, n)
	train, err := data.NewBatcher(ds.Train, cfg.PageSize, pages, cfg.Batch, cfg.SeqLen)
	if err != nil {
		return nil, fmt.Errorf("node: training batches: %w", err)
	}
	val, err := data.NewValidationBatcher(ds.Val, cfg.Batch, cfg.SeqLen, cfg.EvalBatches)
	if err != nil {
		return nil, fmt.Errorf("node: validation batches: %w", err)
	}
	bt := cfg.Batch * cfg.SeqLen
	return &Trainer{cfg: cfg, Model: m, Opt: opt, train: train, val: val, in: make([]int32, bt), tgt: make([]int32, bt)}, nil
}

// Steps is the number of steps taken so far.
func (t *Trainer) Steps() int { return t.step }

// TokensPerStep is B*T.
func (t *Trainer) TokensPerStep() int { return t.cfg.Batch * t.cfg.SeqLen }

// Step takes one optimizer step and returns the batch's loss before it.
func (t *Trainer) Step() (float32, error) {
	in, tgt := t.batch()
	return t.StepBatch(in, tgt)
}

// StepBatch takes one optimizer step on the given batch (B*T inputs and
// targets) and returns the batch's loss before it. Network trainers use it
// with the pages a round assigns them.
func (t *Trainer) StepBatch(in, tgt []int32) (float32, error) {
	loss, err := optimizer.InnerStep(t.Model, t.Opt, in, tgt, t.cfg.Batch, t.cfg.SeqLen)
	if err != nil {
		return 0, fmt.Errorf("node: step %d: %w", t.step, err)
	}
	t.step++
	return loss, nil
}

func (t *Trainer) batch() (in, tgt []int32) {
	// Fill by index (not Next) so that a resumed run sees the same batches.
	_ = t.train.Fill(t.step%t.train.Len(), t.in, t.tgt)
	return t.in, t.tgt
}

// Evaluate returns the mean loss over the fixed validation batches.
func (t *Trainer) Evaluate() (float32, error) {
	var sum float64
	n := t.val.Len()
	for i := range n {
		if err := t.val.Fill(i, t.in, t.tgt); err != nil {
			return 0, err
		}
		loss, err := t.Model.Forward(t.in, t.tgt, t.cfg.Batch, t.cfg.SeqLen)
		if err != nil {
			return 0, fmt.Errorf("node: validation: %w", err)
		}
		sum += float64(loss)
	}
	return float32(sum / float64(n)), nil
}

// Checkpoint metadata keys written beside the model's own.
const (
	metaStep     = "trinity.train.step"
	metaOptimFor = "trinity.train.optimizer-for"
)

// optimizerPath is where the optimizer state of a checkpoint lives.
func optimizerPath(path string) string { return path + ".optim" }

// Save writes the model checkpoint at path (safetensors) and the optimizer
// state beside it. The optimizer file is written first and both carry the
// step, so a crash between the two writes is detected on resume.
func (t *Trainer) Save(path string) error {
	step := strconv.Itoa(t.step)
	hash := t.Model.StateHash()
	opt := []safetensors.Tensor{
		{Name: "adamw.m", Shape: []int{len(t.Opt.M)}, Data: t.Opt.M},
		{Name: "adamw.v", Shape: []int{len(t.Opt.V)}, Data: t.Opt.V},
	}
	meta := map[string]string{metaStep: step, "trinity.train.adamw-step": strconv.Itoa(t.Opt.Step),
		metaOptimFor: fmt.Sprintf("%x", hash)}
	if err := safetensors.Write(optimizerPath(path), opt, meta); err != nil {
		return fmt.Errorf("node: saving optimizer state: %w", err)
	}
	if err := t.Model.Save(path, map[string]string{metaStep: step}); err != nil {
		return fmt.Errorf("node: saving checkpoint: %w", err)
	}
	return nil
}

// Resume loads a checkpoint written by Save (the model's config must match),
// and its optimizer state when present and consistent.
func (t *Trainer) Resume(path string) error {
	meta, err := t.Model.Restore(path)
	if err != nil {
		return fmt.Errorf("node: resuming: %w", err)
	}
	step, err := strconv.Atoi(meta[metaStep])
	if err != nil || step < 0 {
		return fmt.Errorf("node: checkpoint %s has no valid %s", path, metaStep)
	}
	t.step = step
	f, err := safetensors.Read(optimizerPath(path))
	if errors.Is(err, os.ErrNotExist) {
		t.Opt.Reset() // weights only: optimizer moments start afresh
		return nil
	}
	if err != nil {
		return fmt.Errorf("node: resuming optimizer: %w", err)
	}
	if f.Metadata[metaOptimFor] != fmt.Sprintf("%x", t.Model.StateHash()) {
		return fmt.Errorf("node: optimizer state %s belongs to another checkpoint", optimizerPath(path))
	}
	for _, x := range []struct {
		name string
		dst  []float32
	}{{"adamw.m", t.Opt.M}, {"adamw.v", t.Opt.V}} {
		src, ok := f.Tensor(x.name)
		if !ok || len(src.Data) != len(x.dst) {
			return fmt.Errorf("node: optimizer state lacks %s of %d values", x.name, len(x.dst))
		}
		copy(x.dst, src.Data)
	}
	if t.Opt.Step, err = strconv.Atoi(f.Metadata["trinity.train.adamw-step"]); err != nil {
		return fmt.Errorf("node: optimizer state has no valid step: %w", err)
	}
	return nil
}

// Progress is reported after every step of Run.
type Progress struct {
	Step, Steps int
	Loss        float32
	ValLoss     float32 // NaN unless evaluated at this step
	TokensPerS  float64
	Elapsed     time.Duration
	ETA         time.Duration
}

// RunOptions tells Run when to stop, evaluate and checkpoint.
type RunOptions struct {
	Steps           int    // total steps (the run stops when Steps() reaches it)
	EvalEvery       int    // 0: only at the end
	CheckpointEvery int    // 0: only at the end (when CheckpointPath is set)
	CheckpointPath  string // "" disables checkpoints
}

// Run trains until opts.Steps, calling report after each step. On context
// cancellation it writes a final checkpoint (when configured) and returns
// ctx.Err().
func (t *Trainer) Run(ctx context.Context, opts RunOptions, report func(Progress)) error {
	start, startStep := time.Now(), t.step
	save := func() error {
		if opts.CheckpointPath == "" {
			return nil
		}
		return t.Save(opts.CheckpointPath)
	}
	for t.step < opts.Steps {
		if err := ctx.Err(); err != nil {
			if serr := save(); serr != nil {
				return errors.Join(err, serr)
			}
			return err
		}
		loss, err := t.Step()
		if err != nil {
			return err
		}
		if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
			return fmt.Errorf("node: training diverged at step %d (loss %v)", t.step, loss)
		}
		p := Progress{Step: t.step, Steps: opts.Steps, Loss: loss, ValLoss: float32(math.NaN()), Elapsed: time.Since(start)}
		done := t.step - startStep
		p.TokensPerS = float64(done*t.TokensPerStep()) / p.Elapsed.Seconds()
		p.ETA = time.Duration(float64(p.Elapsed) / float64(done) * float64(opts.Steps-t.step))
		last := t.step == opts.Steps
		if last || (opts.EvalEvery > 0 && t.step%opts.EvalEvery == 0) {
			if p.ValLoss, err = t.Evaluate(); err != nil {
				return err
			}
		}
		if last || (opts.CheckpointEvery > 0 && t.step%opts.CheckpointEvery == 0) {
			if err := save(); err != nil {
				return err
			}
		}
		if report != nil {
			report(p)
		}
	}
	return nil
}
