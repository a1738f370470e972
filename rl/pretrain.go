package rl

import (
	"context"
	"fmt"
	"math"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/optimizer"
)

// PretrainConfig sizes the node-free pre-training Experiment runs when it is
// given no checkpoint: AdamW inner steps over windows of the embedded default
// corpus, which holds only the training split of the arithmetic problems.
type PretrainConfig struct {
	CorpusSeed  uint64
	CorpusBytes int
	// Arithmetic trains on the training split's arithmetic problems alone
	// (lines "a+b=c", shuffled anew every pass over the split) instead of
	// the mixed default corpus: a drill that reaches a policy worth
	// post-training in a fraction of the steps. The held-out split is never
	// in it either.
	Arithmetic bool
	Steps      int
	B, T       int
	AdamW      optimizer.AdamWConfig
}

// corpusTokens is the pre-training text of cfg.
func (cfg PretrainConfig) corpusTokens() ([]int32, error) {
	if !cfg.Arithmetic {
		corpus, err := data.DefaultCorpus(cfg.CorpusSeed, cfg.CorpusBytes)
		if err != nil {
			return nil, err
		}
		return corpus.Tokens(), nil
	}
	if cfg.CorpusBytes < 1 || cfg.CorpusBytes > MaxDrillBytes {
		return nil, fmt.Errorf("arithmetic drill of %d bytes out of range [1, %d]", cfg.CorpusBytes, MaxDrillBytes)
	}
	text := make([]byte, 0, cfg.CorpusBytes+64)
	for pass := uint64(0); len(text) < cfg.CorpusBytes; pass++ {
		tasks, err := data.ArithmeticTasks(cfg.CorpusSeed+pass, data.SplitTrain, drillProblems)
		if err != nil {
			return nil, err
		}
		for _, t := range tasks {
			text = append(append(append(text, t.Prompt...), t.Answer...), '\n')
		}
	}
	return data.ByteTokenizer{}.EncodeBytes(text[:cfg.CorpusBytes]), nil
}

// MaxDrillBytes bounds an arithmetic drill corpus.
const MaxDrillBytes = 1 << 28

// drillProblems is how many training-split problems one pass of the drill
// holds (ArithmeticTasks draws them without replacement).
const drillProblems = 10000

// Pretrain trains m from its current parameters on the default corpus with
// optimizer.InnerStep, the step trainers run in the network, page by page in
// corpus order. onStep, if not nil, sees every step's loss.
func Pretrain(ctx context.Context, m *model.GPT, cfg PretrainConfig, onStep func(step int, loss float32)) error {
	if cfg.Steps <= 0 || cfg.B <= 0 || cfg.T <= 1 || cfg.T > m.Config.Context {
		return fmt.Errorf("rl: pretrain: bad sizes steps=%d B=%d T=%d (context %d)", cfg.Steps, cfg.B, cfg.T, m.Config.Context)
	}
	toks, err := cfg.corpusTokens()
	if err != nil {
		return fmt.Errorf("rl: pretrain: %w", err)
	}
	pageSize := cfg.T * cfg.B
	n := data.NumPages(len(toks), pageSize)
	if n <= 0 {
		return fmt.Errorf("rl: pretrain: corpus of %d bytes holds no page of %d tokens", len(toks), pageSize)
	}
	pages := data.AssignPages(cfg.CorpusSeed, "rl/pretrain", 0, n, n)
	bt, err := data.NewBatcher(toks, pageSize, pages, cfg.B, cfg.T)
	if err != nil {
		return fmt.Errorf("rl: pretrain: %w", err)
	}
	opt, err := optimizer.NewAdamW(cfg.AdamW, m.Views())
	if err != nil {
		return fmt.Errorf("rl: pretrain: %w", err)
	}
	for s := range cfg.Steps {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("rl: pretrain: %w", err)
		}
		in, tg := bt.Next()
		loss, err := optimizer.InnerStep(m, opt, in, tg, cfg.B, cfg.T)
		if err != nil {
			return fmt.Errorf("rl: pretrain step %d: %w", s, err)
		}
		if onStep != nil {
			onStep(s, loss)
		}
	}
	return nil
}

// Eval is the greedy accuracy of a model on a task list.
type Eval struct {
	Correct, Total int
	Right          []bool // per task, in order
}

// Accuracy is Correct/Total (0 for an empty evaluation).
func (e Eval) Accuracy() float64 {
	if e.Total == 0 {
		return 0
	}
	return float64(e.Correct) / float64(e.Total)
}

// Wilson is the 95% Wilson score interval of the accuracy.
func (e Eval) Wilson() (lo, hi float64) {
	return wilson(e.Correct, e.Total, 1.959963984540054)
}

// McNemar compares two evaluations of the same tasks: gained counts tasks
// wrong in e and right in after, lost the reverse, and z is the McNemar
// statistic (gained - lost)/sqrt(gained + lost), about N(0, 1) when the
// two models are equally accurate.
func (e Eval) McNemar(after Eval) (gained, lost int, z float64) {
	for i := range min(len(e.Right), len(after.Right)) {
		switch {
		case !e.Right[i] && after.Right[i]:
			gained++
		case e.Right[i] && !after.Right[i]:
			lost++
		}
	}
	if gained+lost > 0 {
		z = float64(gained-lost) / math.Sqrt(float64(gained+lost))
	}
	return gained, lost, z
}

func wilson(k, n int, z float64) (lo, hi float64) {
	if n == 0 {
		return 0, 1
	}
	p, nf := float64(k)/float64(n), float64(n)
	d := 1 + z*z/nf
	c := (p + z*z/(2*nf)) / d
	h := z * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf)) / d
	return max(0, c-h), min(1, c+h)
}

// Evaluate decodes every task greedily (maxNew tokens after the encoded
// prompt) and grades it with Task.Check.
func Evaluate(ctx context.Context, m *model.GPT, tasks []data.Task, enc PromptEncoder, maxNew int) (Eval, error) {
	tok := data.ByteTokenizer{}
	var ev Eval
	for i, t := range tasks {
		p, err := enc.Encode(t)
		if err != nil {
			return ev, fmt.Errorf("rl: evaluate task %d: %w", i, err)
		}
		seq, err := m.Generate(ctx, p, maxNew, model.Sampler{}, nil)
		if err != nil {
			return ev, fmt.Errorf("rl: evaluate task %d: %w", i, err)
		}
		ev.Total++
		ok := t.Check(tok.Decode(seq[len(p):]))
		if ok {
			ev.Correct++
		}
		ev.Right = append(ev.Right, ok)
	}
	return ev, nil
}
