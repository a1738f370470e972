package model

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Sampler chooses the next token from logits. Temperature 0 is greedy
// (argmax, lowest index on ties); otherwise tokens are drawn from
// softmax(logits/Temperature) restricted to the TopK largest logits (all when
// TopK is 0 or at least the vocabulary). Draws come from the package's PRNG
// seeded with Seed and use only platform-independent arithmetic, so a seed
// gives the same tokens on every machine.
type Sampler struct {
	Temperature float32
	TopK        int
	Seed        uint64
}

func (s Sampler) validate() error {
	t := float64(s.Temperature)
	if math.IsNaN(t) || math.IsInf(t, 0) || t < 0 {
		return fmt.Errorf("model: sampler temperature %v must be finite and >= 0", s.Temperature)
	}
	if s.TopK < 0 {
		return fmt.Errorf("model: sampler top-k %d must be >= 0", s.TopK)
	}
	return nil
}

// sampling is a Sampler's state while it generates one sequence.
type sampling struct {
	s   Sampler
	r   *rng
	idx []int32
}

func newSampling(s Sampler, vocab int) *sampling {
	return &sampling{s: s, r: newRNG(s.Seed), idx: make([]int32, vocab)}
}

// pick draws the next token from logits [V].
func (st *sampling) pick(logits []float32) (int32, error) {
	best := 0
	for i, l := range logits {
		if l != l || math.IsInf(float64(l), 0) {
			return 0, fmt.Errorf("model: sampling from non-finite logit %v at %d", l, i)
		}
		if l > logits[best] {
			best = i
		}
	}
	if st.s.Temperature == 0 {
		return int32(best), nil
	}
	idx := st.idx[:len(logits)]
	for i := range idx {
		idx[i] = int32(i)
	}
	if k := st.s.TopK; k > 0 && k < len(logits) {
		slices.SortFunc(idx, func(a, b int32) int {
			if c := cmp.Compare(logits[b], logits[a]); c != 0 {
				return c
			}
			return cmp.Compare(a, b)
		})
		idx = idx[:k]
	}
	mx, invT := float64(logits[best]), 1/float64(st.s.Temperature)
	var total float64
	for _, i := range idx {
		total += detExp(float64(float64(float64(logits[i])-mx) * invT))
	}
	u := float64(st.r.float64() * total)
	var cum float64
	for _, i := range idx {
		cum += detExp(float64(float64(float64(logits[i])-mx) * invT))
		if cum > u {
			return i, nil
		}
	}
	return idx[len(idx)-1], nil
}

// Generate extends prompt by n sampled tokens with a KV-cache Session (the
// prompt prefilled in one batch) and returns the whole sequence (prompt then
// the n new tokens). The sequence
// must fit in the context. onToken, if not nil, is called once for every
// position of the sequence, prompt included, after the token at pos has gone
// through the model, with that token, its next-token logits and its
// last-block hidden state (valid only during the call); an error from it
// stops generation. The context is checked before every step.
func (m *GPT) Generate(ctx context.Context, prompt []int32, n int, s Sampler,
	onToken func(pos int, tok int32, logits, hidden []float32) error) ([]int32, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	if len(prompt) == 0 {
		return nil, errors.New("model: generate needs a prompt of at least one token")
	}
	if n < 0 || n > m.Config.Context || len(prompt)+n > m.Config.Context {
		return nil, fmt.Errorf("model: prompt of %d tokens plus %d new ones exceeds the context %d", len(prompt), n, m.Config.Context)
	}
	sess, err := m.NewSession(len(prompt) + n)
	if err != nil {
		return nil, err
	}
	st := newSampling(s, m.Config.Vocab)
	seq := make([]int32, 0, len(prompt)+n)
	seq = append(seq, prompt...)
	if err := ctx.Err(); err != nil {
		return seq, fmt.Errorf("model: generate: %w", err)
	}
	// The prompt goes through in one batch; then one Step per new token.
	V, C := m.Config.Vocab, m.Config.Width
	allLogits, allHidden, err := sess.Prefill(prompt)
	if err != nil {
		return seq, fmt.Errorf("model: generate: %w", err)
	}
	logits := allLogits[(len(prompt)-1)*V:]
	if onToken != nil {
		for pos, tok := range prompt {
			if err := onToken(pos, tok, allLogits[pos*V:(pos+1)*V], allHidden[pos*C:(pos+1)*C]); err != nil {
				return seq, fmt.Errorf("model: generate: callback at position %d: %w", pos, err)
			}
		}
	}
	for pos := len(prompt); pos < len(prompt)+n; pos++ {
		tok, err := st.pick(logits)
		if err != nil {
			return seq, fmt.Errorf("model: generate at position %d: %w", pos, err)
		}
		seq = append(seq, tok)
		if err := ctx.Err(); err != nil {
			return seq, fmt.Errorf("model: generate: %w", err)
		}
		var hidden []float32
		if logits, hidden, err = sess.Step(tok); err != nil {
			return seq, fmt.Errorf("model: generate at position %d: %w", pos, err)
		}
		if onToken != nil {
			if err := onToken(pos, tok, logits, hidden); err != nil {
				return seq, fmt.Errorf("model: generate: callback at position %d: %w", pos, err)
			}
		}
	}
	return seq, nil
}
