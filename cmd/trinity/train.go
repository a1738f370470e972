package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/node"
	"github.com/trinity-net/trinity/optimizer"
)

// engineFlags are the compute flags every command that runs the model shares.
type engineFlags struct {
	threads int
	isa     string
}

func (f *engineFlags) register(fs interface {
	IntVar(*int, string, int, string)
	StringVar(*string, string, string, string)
}) {
	fs.IntVar(&f.threads, "threads", 0, "compute threads (0: all cores)")
	fs.StringVar(&f.isa, "isa", "", "force a kernel path: generic, avx2 or avx512 (default: the best this CPU has)")
}

func (f *engineFlags) engine() (*tensor.Engine, error) {
	var opts []tensor.Option
	if f.threads > 0 {
		opts = append(opts, tensor.WithThreads(f.threads))
	}
	if f.isa != "" {
		isa, err := tensor.ParseISA(f.isa)
		if err != nil {
			return nil, err
		}
		opts = append(opts, tensor.WithISA(isa))
	}
	return tensor.New(opts...)
}

// loadModel starts an engine and loads a checkpoint on it; the returned
// function closes the engine.
func (f *engineFlags) loadModel(path string) (*model.GPT, func(), error) {
	e, err := f.engine()
	if err != nil {
		return nil, nil, err
	}
	m, _, err := model.Load(path, e)
	if err != nil {
		e.Close()
		return nil, nil, err
	}
	return m, e.Close, nil
}

// modelFlags describe a model shape; the defaults are model.Reference.
type modelFlags struct{ cfg model.Config }

func (f *modelFlags) register(fs interface {
	IntVar(*int, string, int, string)
}) {
	f.cfg = model.Reference
	fs.IntVar(&f.cfg.Layers, "layers", f.cfg.Layers, "transformer blocks")
	fs.IntVar(&f.cfg.Width, "width", f.cfg.Width, "embedding width")
	fs.IntVar(&f.cfg.Heads, "heads", f.cfg.Heads, "attention heads")
	fs.IntVar(&f.cfg.Context, "context", f.cfg.Context, "maximum sequence length")
}

// dataSpec turns --data into a dataset spec: empty means the embedded corpus;
// a .bin file or a folder holding .bin files means llm.c token shards.
func dataSpec(path string, seed uint64, corpusBytes int, valFrac float64) data.Spec {
	if path == "" {
		return data.Spec{Kind: data.KindDefault, Seed: seed, Bytes: corpusBytes, ValFraction: valFrac}
	}
	kind := data.KindText
	if strings.HasSuffix(path, ".bin") {
		kind = data.KindShards
	} else if bins, _ := filepath.Glob(filepath.Join(path, "*.bin")); len(bins) > 0 {
		kind = data.KindShards
	}
	return data.Spec{Kind: kind, Path: path, ValFraction: valFrac}
}

func runTrain(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "train")
	var ef engineFlags
	var mf modelFlags
	ef.register(fs)
	mf.register(fs)
	dataPath := fs.String("data", "", "text file or folder, or llm.c .bin token shards (default: the embedded generated corpus)")
	corpusBytes := fs.Int("corpus-bytes", 4<<20, "size of the embedded corpus in bytes")
	valFrac := fs.Float64("val", 0.1, "fraction of the data held out for validation")
	steps := fs.Int("steps", 400, "optimizer steps")
	batch := fs.Int("batch", 4, "sequences per step")
	seqLen := fs.Int("seq", 64, "tokens per sequence")
	seed := fs.Uint64("seed", 1, "seed for weights, data order and the embedded corpus")
	adam := optimizer.DefaultAdamW()
	lr := fs.Float64("lr", 1e-3, "peak learning rate")
	fs.IntVar(&adam.Warmup, "warmup", 50, "learning-rate warmup steps")
	evalEvery := fs.Int("eval-every", 100, "steps between validation evaluations")
	ckpt := fs.String("checkpoint", "", "checkpoint file (safetensors) written periodically and at the end")
	ckptEvery := fs.Int("checkpoint-every", 200, "steps between checkpoints")
	resume := fs.Bool("resume", false, "resume from --checkpoint if it exists")
	if err := parse(fs, args); err != nil {
		return err
	}
	adam.LR = float32(*lr)
	adam.TotalSteps = *steps

	e, err := ef.engine()
	if err != nil {
		return err
	}
	defer e.Close()
	mf.cfg.Vocab = 256
	spec := dataSpec(*dataPath, *seed, *corpusBytes, *valFrac)
	ds, err := data.Load(ctx, spec, mf.cfg.Vocab, ".")
	if err != nil {
		return err
	}
	tr, err := node.NewTrainer(e, ds, node.TrainConfig{Model: mf.cfg, Seed: *seed, Batch: *batch, SeqLen: *seqLen, AdamW: adam})
	if err != nil {
		return err
	}
	if *resume {
		if *ckpt == "" {
			return errors.New("--resume needs --checkpoint")
		}
		if _, err := os.Stat(*ckpt); err == nil {
			if err := tr.Resume(*ckpt); err != nil {
				return err
			}
			fmt.Fprintf(env.stdout, "resumed from %s at step %d\n", *ckpt, tr.Steps())
		}
	}
	what := "embedded corpus"
	if *dataPath != "" {
		what = *dataPath
	}
	fmt.Fprintf(env.stdout, "model %v\ndata %s: %d train / %d val tokens; batch %dx%d; %s x %d threads\n",
		mf.cfg, what, len(ds.Train), len(ds.Val), *batch, *seqLen, e.ISA(), e.Threads())
	if h, ok := corpusEntropy(spec); ok {
		fmt.Fprintf(env.stdout, "corpus entropy (best achievable loss): %.4f nats/byte\n", h)
	}
	tty := isTerminal(env.stdout)
	report := func(p node.Progress) {
		line := fmt.Sprintf("step %5d/%d  loss %.4f  %6.0f tok/s  %s elapsed  ETA %s",
			p.Step, p.Steps, p.Loss, p.TokensPerS, p.Elapsed.Round(time.Second), p.ETA.Round(time.Second))
		switch {
		case !math.IsNaN(float64(p.ValLoss)):
			if tty {
				fmt.Fprint(env.stdout, "\r\033[K")
			}
			fmt.Fprintf(env.stdout, "%s  val %.4f\n", line, p.ValLoss)
		case tty:
			fmt.Fprintf(env.stdout, "\r\033[K%s", line)
		case p.Step%50 == 0:
			fmt.Fprintln(env.stdout, line)
		}
	}
	err = tr.Run(ctx, node.RunOptions{Steps: *steps, EvalEvery: *evalEvery, CheckpointEvery: *ckptEvery, CheckpointPath: *ckpt}, report)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintf(env.stdout, "\ninterrupted at step %d\n", tr.Steps())
		return nil
	}
	if err != nil {
		return err
	}
	if *ckpt != "" {
		fmt.Fprintf(env.stdout, "checkpoint: %s (state %x)\n", *ckpt, tr.Model.StateHash())
	}
	return nil
}

// isTerminal reports whether w is a character device, so progress can be
// redrawn in place.
func isTerminal(w any) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}
