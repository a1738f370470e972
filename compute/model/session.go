package model

import (
	"errors"
	"fmt"
)

// Session decodes one sequence token by token with a key/value cache, so a
// step costs O(position) attention work instead of a full Forward; Prefill
// feeds a prompt in one batch. A step runs the same kernels in the same
// accumulation order as Forward, so its logits and hidden state equal, bit
// for bit, those of a Forward over the same prefix.
//
// A Session reads its model's Params at every step; it must not be used
// concurrently with the model or with another Session of the same model.
type Session struct {
	m      *GPT
	pre    *GPT // shares m's parameters; runs Prefill's Forward
	maxLen int
	n      int
	kv     []float32 // [layers][2][maxLen][C]: keys then values per layer

	x, r2, ln, qkv, y []float32 // [C], [C], [C], [3C], [C]
	fc, fcGelu        []float32 // [4C]
	lnf, logits       []float32 // [C], [V]
	mean, rstd        []float32 // [1]
	scores, probs     []float32 // [maxLen]
}

// NewSession starts an empty session that can hold up to maxLen tokens
// (at most the model's context).
func (m *GPT) NewSession(maxLen int) (*Session, error) {
	c := m.Config
	if maxLen < 1 || maxLen > c.Context {
		return nil, fmt.Errorf("model: session length %d out of range [1, %d]", maxLen, c.Context)
	}
	C := c.Width
	s := &Session{m: m, maxLen: maxLen, kv: make([]float32, c.Layers*2*maxLen*C)}
	buf := make([]float32, 4*C+3*C+8*C+C+c.Vocab+2+2*maxLen)
	take := func(n int) []float32 {
		r := buf[:n:n]
		buf = buf[n:]
		return r
	}
	s.x, s.r2, s.ln, s.qkv, s.y = take(C), take(C), take(C), take(3*C), take(C)
	s.fc, s.fcGelu = take(4*C), take(4*C)
	s.lnf, s.logits = take(C), take(c.Vocab)
	s.mean, s.rstd = take(1), take(1)
	s.scores, s.probs = take(maxLen), take(maxLen)
	return s, nil
}

// Len is the number of tokens appended so far.
func (s *Session) Len() int { return s.n }

// Reset empties the session for a new sequence.
func (s *Session) Reset() { s.n = 0 }

// Prefill starts the sequence with tokens in one batched Forward instead of
// one Step per token, and returns the logits [len*V] and hidden states
// [len*C] of every position, bit for bit those that Steps would give; they
// are valid until the next Prefill. The session must be empty.
func (s *Session) Prefill(tokens []int32) (logits, hidden []float32, err error) {
	c := s.m.Config
	if s.n != 0 {
		return nil, nil, fmt.Errorf("model: prefill into a session that already holds %d tokens", s.n)
	}
	if len(tokens) == 0 || len(tokens) > s.maxLen {
		return nil, nil, fmt.Errorf("model: prefill of %d tokens, session holds 1 to %d", len(tokens), s.maxLen)
	}
	if s.pre == nil {
		s.pre = s.m.shadow()
	}
	P, C := len(tokens), c.Width
	if _, err := s.pre.Forward(tokens, nil, 1, P); err != nil {
		return nil, nil, fmt.Errorf("model: prefill: %w", err)
	}
	// The keys and values of every position are in each layer's qkv rows.
	for l := range c.Layers {
		qkv := s.pre.a.layers[l].qkv
		keys := s.kv[(2*l)*s.maxLen*C : (2*l+1)*s.maxLen*C]
		vals := s.kv[(2*l+1)*s.maxLen*C : (2*l+2)*s.maxLen*C]
		for t := range P {
			copy(keys[t*C:(t+1)*C], qkv[t*3*C+C:t*3*C+2*C])
			copy(vals[t*C:(t+1)*C], qkv[t*3*C+2*C:(t+1)*3*C])
		}
	}
	s.n = P
	return s.pre.Logits(), s.pre.Hidden(), nil
}

// Step appends token and returns its next-token logits [V] and its hidden
// state after the last block [C]. Both slices are overwritten by the next
// Step. Non-finite logits are an error; the token stays appended.
func (s *Session) Step(token int32) (logits, hidden []float32, err error) {
	m := s.m
	c := m.Config
	if token < 0 || int(token) >= c.Vocab {
		return nil, nil, fmt.Errorf("model: token %d out of range [0, %d)", token, c.Vocab)
	}
	if s.n >= s.maxLen {
		return nil, nil, fmt.Errorf("model: session is full (%d tokens)", s.maxLen)
	}
	e, k, p := m.e, m.e.Kernels(), &m.p
	C, V, NH := c.Width, c.Vocab, c.Heads
	hs, C3 := C/NH, 3*C
	pos, n := s.n, s.n+1
	tok := int(token)
	k.Add(s.x, p.wte[tok*C:(tok+1)*C], p.wpe[pos*C:(pos+1)*C])
	for l := range c.Layers {
		lp := &p.layers[l]
		keys := s.kv[(2*l)*s.maxLen*C : (2*l+1)*s.maxLen*C]
		vals := s.kv[(2*l+1)*s.maxLen*C : (2*l+2)*s.maxLen*C]
		k.LayerNorm(s.ln, s.mean, s.rstd, s.x, lp.ln1W, lp.ln1B, 1, C)
		e.MatMul(s.qkv, s.ln, lp.qkvW, lp.qkvB, 1, C, C3)
		copy(keys[pos*C:(pos+1)*C], s.qkv[C:2*C])
		copy(vals[pos*C:(pos+1)*C], s.qkv[2*C:])
		sc, pr := s.scores[:n], s.probs[:n]
		for h := range NH {
			k.Gemm(false, true, 1, n, hs, s.qkv[h*hs:], C3, keys[h*hs:], C, sc, n, false)
			k.CausalSoftmax(pr, sc, 1, n, n-1, attnScale(hs))
			k.Gemm(false, false, 1, hs, n, pr, n, vals[h*hs:], C, s.y[h*hs:], C, false)
		}
		e.MatMul(s.r2, s.y, lp.projW, lp.projB, 1, C, C)
		k.AddTo(s.r2, s.x)
		k.LayerNorm(s.ln, s.mean, s.rstd, s.r2, lp.ln2W, lp.ln2B, 1, C)
		e.MatMul(s.fc, s.ln, lp.fcW, lp.fcB, 1, C, 4*C)
		k.GELU(s.fcGelu, s.fc)
		e.MatMul(s.x, s.fcGelu, lp.fc2W, lp.fc2B, 1, 4*C, C)
		k.AddTo(s.x, s.r2)
	}
	k.LayerNorm(s.lnf, s.mean, s.rstd, s.x, p.lnfW, p.lnfB, 1, C)
	e.MatMul(s.logits, s.lnf, p.wte, nil, 1, C, V)
	s.n++
	if k.HasNaN(s.logits) {
		return nil, nil, errors.New("model: session step produced non-finite logits (NaN or Inf in the weights?)")
	}
	return s.logits, s.x, nil
}
