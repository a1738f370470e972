package model

import (
	"errors"
	"fmt"
	"math"
	"strings"

	"github.com/trinity-net/trinity/compute/tensor"
)

// maxActFloats bounds the activation buffer (4 GiB of float32) so that a
// large B*T fails with an error instead of exhausting memory.
const maxActFloats = 1 << 30

// GPT is a model with its parameters, gradients and activation buffers.
// A GPT is not safe for concurrent use, and neither are its Sessions, which
// read Params at every step.
type GPT struct {
	Config Config
	// Params holds every parameter in Layout order; Grads has the same
	// layout and receives the gradients Backward accumulates. Write into
	// them freely but never reassign them: the model's views alias them.
	Params []float32
	Grads  []float32

	e     *tensor.Engine
	views []View
	p, g  tensors

	act    []float32 // flat activation buffer, grown only when B*T needs more
	a      acts      // views into act for the current (B, T)
	tok    []int32   // copy of the last Forward's tokens
	tgt    []int32   // copy of its targets
	hasTgt bool      // the last Forward computed a loss: Backward may run
	hasFwd bool      // Logits and Hidden are valid

	// Work descriptions read by the parallel bodies below, which are built
	// once in New so that a training step allocates nothing.
	attnBlock  int // row-block size of attention (attnBlock; tests shrink it)
	curLayer   int
	headsBwd   bool
	headsParts int
	encodeFwd  func(k tensor.Kernels, lo, hi int)
	encodeBwd  func(k tensor.Kernels, lo, hi int)
	headsFn    func(k tensor.Kernels, lo, hi int)
}

// acts are the activations of one Forward (and the scratch of its Backward),
// all cut from GPT.act.
type acts struct {
	B, T    int
	encoded []float32 // [BT, C] token + position embeddings
	layers  []layerActs
	lnf     []float32 // [BT, C]
	lnfMean []float32 // [BT]
	lnfRstd []float32 // [BT]
	logits  []float32 // [BT, V]
	probs   []float32 // [BT, V]
	losses  []float32 // [BT]

	// Backward scratch, shared by all layers.
	dres    []float32 // [BT, C] gradient of the residual stream
	dln     []float32 // [BT, C] gradient of a LayerNorm output
	dqkv    []float32 // [BT, 3C]
	datty   []float32 // [BT, C]
	dfcGelu []float32 // [BT, 4C]
	dfc     []float32 // [BT, 4C]
	dlogits []float32 // [BT, V]
	dlosses []float32 // [BT]
	scratch []float32 // [threads, 2, T, T] per-worker attention scratch
}

type layerActs struct {
	ln1, ln1Mean, ln1Rstd []float32 // [BT, C], [BT], [BT]
	qkv                   []float32 // [BT, 3C]
	atty                  []float32 // [BT, C] attention output before c_proj
	att                   []float32 // [B, NH, T, T] attention probabilities
	res2                  []float32 // [BT, C] residual after attention
	ln2, ln2Mean, ln2Rstd []float32
	fc                    []float32 // [BT, 4C] before GELU
	fcGelu                []float32 // [BT, 4C]
	res3                  []float32 // [BT, C] residual after the MLP: the block output
}

// New allocates a model for cfg on engine e. Parameters are zero until Init
// or a copy into Params.
func New(cfg Config, e *tensor.Engine) (*GPT, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if e == nil {
		return nil, errors.New("model: nil tensor engine")
	}
	views := Layout(cfg)
	n := cfg.NumParams()
	if last := views[len(views)-1]; last.Offset+last.Len != n {
		return nil, fmt.Errorf("model: layout covers %d floats, config says %d", last.Offset+last.Len, n)
	}
	m := &GPT{
		Config:    cfg,
		Params:    make([]float32, n),
		Grads:     make([]float32, n),
		e:         e,
		views:     views,
		attnBlock: attnBlock,
	}
	m.p = cut(m.Params, views, cfg.Layers)
	m.g = cut(m.Grads, views, cfg.Layers)
	m.initRun()
	return m, nil
}

// initRun prepares the activation views and the parallel bodies.
func (m *GPT) initRun() {
	m.a.layers = make([]layerActs, m.Config.Layers)
	m.encodeFwd = m.encodeForwardRange
	m.encodeBwd = m.encodeBackwardRange
	m.headsFn = m.headsRange
}

// shadow is a model that shares m's parameters but has its own activations
// (and no gradients), so that it can run a Forward without disturbing m's.
func (m *GPT) shadow() *GPT {
	s := &GPT{Config: m.Config, Params: m.Params, e: m.e, views: m.views, p: m.p, attnBlock: m.attnBlock}
	s.initRun()
	return s
}

// Engine is the tensor engine the model runs on.
func (m *GPT) Engine() *tensor.Engine { return m.e }

// Views lists the parameter tensors (see Layout). The slice is shared: do
// not modify it.
func (m *GPT) Views() []View { return m.views }

// Param returns the parameters of the named tensor (a view into Params).
func (m *GPT) Param(name string) ([]float32, bool) {
	for _, v := range m.views {
		if v.Name == name {
			return m.Params[v.Offset : v.Offset+v.Len], true
		}
	}
	return nil, false
}

// Init sets GPT-2's initialisation, deterministically from seed with the
// package's own PRNG: weights N(0, 0.02), the two residual projections of
// each block N(0, 0.02/sqrt(2L)), biases 0, LayerNorm weights 1.
func (m *GPT) Init(seed uint64) {
	r := newRNG(seed)
	resStd := 0.02 / math.Sqrt(float64(2*m.Config.Layers))
	for _, v := range m.views {
		dst := m.Params[v.Offset : v.Offset+v.Len]
		switch {
		case strings.Contains(v.Name, "ln_") && strings.HasSuffix(v.Name, ".weight"):
			fill(dst, 1)
		case strings.HasSuffix(v.Name, ".bias"):
			fill(dst, 0)
		default:
			std := 0.02
			if strings.HasSuffix(v.Name, "c_proj.weight") {
				std = resStd
			}
			for i := range dst {
				dst[i] = float32(float64(std * r.normal()))
			}
		}
	}
	m.hasFwd, m.hasTgt = false, false
}

func fill(x []float32, v float32) {
	for i := range x {
		x[i] = v
	}
}

// Logits are the next-token logits [B*T*V] of the last Forward (nil if
// there was none); the slice is overwritten by the next Forward.
func (m *GPT) Logits() []float32 {
	if !m.hasFwd {
		return nil
	}
	return m.a.logits
}

// Hidden is the output of the last transformer block (the residual stream
// before ln_f), [B*T*C], of the last Forward (nil if there was none).
func (m *GPT) Hidden() []float32 {
	if !m.hasFwd {
		return nil
	}
	return m.a.layers[m.Config.Layers-1].res3
}

// ZeroGrad sets Grads to zero.
func (m *GPT) ZeroGrad() { m.e.Fill(m.Grads, 0) }

// checkBatch validates Forward's arguments without trusting any of them.
func (m *GPT) checkBatch(tokens, targets []int32, B, T int) error {
	if B < 1 || T < 1 {
		return fmt.Errorf("model: batch shape B=%d T=%d must be positive", B, T)
	}
	if T > m.Config.Context {
		return fmt.Errorf("model: sequence length T=%d exceeds the context %d", T, m.Config.Context)
	}
	if B > len(tokens) || B*T != len(tokens) {
		return fmt.Errorf("model: got %d tokens, want B*T = %d*%d", len(tokens), B, T)
	}
	if targets != nil && len(targets) != len(tokens) {
		return fmt.Errorf("model: got %d targets, want %d", len(targets), len(tokens))
	}
	V := int32(m.Config.Vocab)
	for i, t := range tokens {
		if t < 0 || t >= V {
			return fmt.Errorf("model: token %d at position %d out of range [0, %d)", t, i, V)
		}
	}
	for i, t := range targets {
		if t < 0 || t >= V {
			return fmt.Errorf("model: target %d at position %d out of range [0, %d)", t, i, V)
		}
	}
	return nil
}

// actSize is the number of floats the activations of (B, T) take.
func (m *GPT) actSize(B, T int) int64 {
	c := m.Config
	BT, C, V, L, NH := int64(B*T), int64(c.Width), int64(c.Vocab), int64(c.Layers), int64(c.Heads)
	perLayer := BT*(C+2+3*C+C+C+C+2+4*C+4*C+C) + int64(B)*NH*int64(T)*int64(T)
	fwd := BT*C + L*perLayer + BT*(C+2+2*V+1)
	bwd := BT * (C + C + 3*C + C + 4*C + 4*C + V + 1)
	scratch := int64(m.e.Threads()) * 2 * int64(T) * int64(T)
	return fwd + bwd + scratch
}

// ensureActs cuts the activation views for (B, T), growing the buffer only
// when it is too small.
func (m *GPT) ensureActs(B, T int) error {
	a := &m.a
	if a.B == B && a.T == T && a.encoded != nil {
		return nil
	}
	need := m.actSize(B, T)
	if need > maxActFloats {
		return fmt.Errorf("model: batch B=%d T=%d needs %d activation floats, more than the limit %d", B, T, need, maxActFloats)
	}
	if int64(len(m.act)) < need {
		m.act = nil // let the old buffer go before allocating the new one
		m.act = make([]float32, need)
	}
	c := m.Config
	BT, C, V, NH := B*T, c.Width, c.Vocab, c.Heads
	buf := m.act
	take := func(n int) []float32 {
		s := buf[:n:n]
		buf = buf[n:]
		return s
	}
	a.B, a.T = B, T
	a.encoded = take(BT * C)
	for l := range a.layers {
		la := &a.layers[l]
		la.ln1, la.ln1Mean, la.ln1Rstd = take(BT*C), take(BT), take(BT)
		la.qkv = take(BT * 3 * C)
		la.atty = take(BT * C)
		la.att = take(B * NH * T * T)
		la.res2 = take(BT * C)
		la.ln2, la.ln2Mean, la.ln2Rstd = take(BT*C), take(BT), take(BT)
		la.fc = take(BT * 4 * C)
		la.fcGelu = take(BT * 4 * C)
		la.res3 = take(BT * C)
	}
	a.lnf, a.lnfMean, a.lnfRstd = take(BT*C), take(BT), take(BT)
	a.logits, a.probs, a.losses = take(BT*V), take(BT*V), take(BT)
	a.dres, a.dln = take(BT*C), take(BT*C)
	a.dqkv, a.datty = take(BT*3*C), take(BT*C)
	a.dfcGelu, a.dfc = take(BT*4*C), take(BT*4*C)
	a.dlogits, a.dlosses = take(BT*V), take(BT)
	a.scratch = take(m.e.Threads() * 2 * T * T)
	if cap(m.tok) < BT {
		m.tok = make([]int32, BT)
		m.tgt = make([]int32, BT)
	}
	m.tok, m.tgt = m.tok[:BT], m.tgt[:BT]
	return nil
}

// Forward runs the model on tokens [B*T] (B sequences of T tokens, row-major)
// and, when targets [B*T] is not nil, returns the mean cross-entropy loss over
// the B*T positions and prepares Backward. Bad shapes, out-of-range tokens or
// targets, T > Context and a non-finite result are errors.
func (m *GPT) Forward(tokens, targets []int32, B, T int) (loss float32, err error) {
	m.hasFwd, m.hasTgt = false, false
	if err := m.checkBatch(tokens, targets, B, T); err != nil {
		return 0, err
	}
	if err := m.ensureActs(B, T); err != nil {
		return 0, err
	}
	copy(m.tok, tokens)
	e, p, a := m.e, &m.p, &m.a
	c := m.Config
	BT, C, V := B*T, c.Width, c.Vocab

	e.Parallel(BT, m.encodeFwd)
	in := a.encoded
	for l := range c.Layers {
		lp, la := &p.layers[l], &a.layers[l]
		// Attention sub-block: in -> res2.
		e.LayerNorm(la.ln1, la.ln1Mean, la.ln1Rstd, in, lp.ln1W, lp.ln1B, BT, C)
		e.MatMul(la.qkv, la.ln1, lp.qkvW, lp.qkvB, BT, C, 3*C)
		m.runHeads(l, false)
		e.MatMul(la.res2, la.atty, lp.projW, lp.projB, BT, C, C)
		e.AddTo(la.res2, in)
		// MLP sub-block: res2 -> res3.
		e.LayerNorm(la.ln2, la.ln2Mean, la.ln2Rstd, la.res2, lp.ln2W, lp.ln2B, BT, C)
		e.MatMul(la.fc, la.ln2, lp.fcW, lp.fcB, BT, C, 4*C)
		e.GELU(la.fcGelu, la.fc)
		e.MatMul(la.res3, la.fcGelu, lp.fc2W, lp.fc2B, BT, 4*C, C)
		e.AddTo(la.res3, la.res2)
		in = la.res3
	}
	e.LayerNorm(a.lnf, a.lnfMean, a.lnfRstd, in, p.lnfW, p.lnfB, BT, C)
	e.MatMul(a.logits, a.lnf, p.wte, nil, BT, C, V) // LM head tied to wte
	m.hasFwd = true

	if targets == nil {
		if e.HasNaN(a.logits) {
			return 0, errors.New("model: forward produced non-finite logits (NaN or Inf in the weights?)")
		}
		return 0, nil
	}
	copy(m.tgt, targets)
	if err := e.CrossEntropy(a.probs, a.losses, a.logits, m.tgt, BT, V); err != nil {
		return 0, fmt.Errorf("model: cross-entropy: %w", err)
	}
	var sum float64 // in position order: independent of threads
	for _, x := range a.losses {
		sum += float64(x)
	}
	loss = float32(sum / float64(BT))
	if math.IsNaN(float64(loss)) || math.IsInf(float64(loss), 0) {
		return loss, fmt.Errorf("model: non-finite loss %v (NaN or Inf in the weights?)", loss)
	}
	m.hasTgt = true
	return loss, nil
}

// Backward accumulates d(mean loss)/d(params) of the last Forward into Grads.
// It needs a successful Forward with targets and leaves the activations
// untouched, so it may be repeated.
func (m *GPT) Backward() error {
	if !m.hasTgt {
		return errors.New("model: Backward needs a successful Forward with targets first")
	}
	// Loss: mean over positions, so each position's loss has weight 1/BT.
	m.e.Fill(m.a.dlosses, float32(1/float64(m.a.B*m.a.T)))
	return m.backward()
}

// BackwardWeighted accumulates the gradient of sum_i w[i] * CE_i into Grads,
// CE_i being the cross-entropy of the last Forward at position i (row-major
// over B x T; a zero weight drops a position). Backward is the case
// w[i] = 1/(B*T); the arithmetic after the weights is the same, so the
// result is as deterministic across thread counts and ISA paths.
func (m *GPT) BackwardWeighted(w []float32) error {
	if !m.hasTgt {
		return errors.New("model: BackwardWeighted needs a successful Forward with targets first")
	}
	if len(w) != m.a.B*m.a.T {
		return fmt.Errorf("model: %d loss weights for %d positions", len(w), m.a.B*m.a.T)
	}
	for i, x := range w {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return fmt.Errorf("model: loss weight %d is %v", i, x)
		}
	}
	copy(m.a.dlosses, w)
	return m.backward()
}

// backward back-propagates the per-position loss weights in a.dlosses.
func (m *GPT) backward() error {
	e, p, g, a := m.e, &m.p, &m.g, &m.a
	c := m.Config
	BT, C, V := a.B*a.T, c.Width, c.Vocab

	e.Fill(a.dlogits, 0)
	e.CrossEntropyBackward(a.dlogits, a.probs, m.tgt, a.dlosses, BT, V)
	// LM head (tied) and ln_f.
	linearBackward(e, a.dln, g.wte, nil, a.dlogits, a.lnf, p.wte, BT, C, V)
	e.Fill(a.dres, 0)
	last := a.layers[c.Layers-1].res3
	e.LayerNormBackward(a.dres, g.lnfW, g.lnfB, a.dln, last, p.lnfW, a.lnfMean, a.lnfRstd, BT, C)

	// dres carries the residual stream's gradient down the blocks: the skip
	// connections pass it through unchanged and each sub-block's LayerNorm
	// backward adds its branch to it.
	for l := c.Layers - 1; l >= 0; l-- {
		lp, lg, la := &p.layers[l], &g.layers[l], &a.layers[l]
		in := a.encoded
		if l > 0 {
			in = a.layers[l-1].res3
		}
		// MLP sub-block.
		linearBackward(e, a.dfcGelu, lg.fc2W, lg.fc2B, a.dres, la.fcGelu, lp.fc2W, BT, 4*C, C)
		e.Fill(a.dfc, 0)
		e.GELUBackward(a.dfc, la.fc, a.dfcGelu)
		linearBackward(e, a.dln, lg.fcW, lg.fcB, a.dfc, la.ln2, lp.fcW, BT, C, 4*C)
		e.LayerNormBackward(a.dres, lg.ln2W, lg.ln2B, a.dln, la.res2, lp.ln2W, la.ln2Mean, la.ln2Rstd, BT, C)
		// Attention sub-block.
		linearBackward(e, a.datty, lg.projW, lg.projB, a.dres, la.atty, lp.projW, BT, C, C)
		m.runHeads(l, true) // writes all of dqkv
		linearBackward(e, a.dln, lg.qkvW, lg.qkvB, a.dqkv, la.ln1, lp.qkvW, BT, C, 3*C)
		e.LayerNormBackward(a.dres, lg.ln1W, lg.ln1B, a.dln, in, lp.ln1W, la.ln1Mean, la.ln1Rstd, BT, C)
	}
	// Embeddings, split by channel so that repeated tokens add in position
	// order whatever the thread count.
	e.ParallelGrain(C, 8, m.encodeBwd)
	return nil
}

// linearBackward is MatMulBackward for an input gradient that is written,
// not accumulated: dinp = dout·w, then dw and dbias accumulate. A GEMM
// started from zero gives the bits of one accumulated onto a zeroed buffer,
// so this only saves the zeroing pass.
func linearBackward(e *tensor.Engine, dinp, dw, dbias, dout, inp, w []float32, rows, in, outF int) {
	e.Gemm(false, false, rows, in, outF, dout, outF, w, in, dinp, in, false)
	e.MatMulBackward(nil, dw, dbias, dout, inp, w, rows, in, outF)
}

// encodeForwardRange writes encoded = wte[token] + wpe[position] for rows
// [lo, hi) of the batch.
func (m *GPT) encodeForwardRange(k tensor.Kernels, lo, hi int) {
	C, T := m.Config.Width, m.a.T
	for r := lo; r < hi; r++ {
		tok, t := int(m.tok[r]), r%T
		k.Add(m.a.encoded[r*C:(r+1)*C], m.p.wte[tok*C:(tok+1)*C], m.p.wpe[t*C:(t+1)*C])
	}
}

// encodeBackwardRange adds the residual gradient of every position into the
// wte and wpe gradient rows, for channels [lo, hi).
func (m *GPT) encodeBackwardRange(k tensor.Kernels, lo, hi int) {
	C, T := m.Config.Width, m.a.T
	for r := range m.tok {
		tok, t := int(m.tok[r]), r%T
		d := m.a.dres[r*C+lo : r*C+hi]
		k.AddTo(m.g.wte[tok*C+lo:tok*C+hi], d)
		k.AddTo(m.g.wpe[t*C+lo:t*C+hi], d)
	}
}

// runHeads runs the attention of layer l (forward or backward) over all
// (batch, head) pairs, one contiguous share per worker, each worker with its
// own scratch.
func (m *GPT) runHeads(l int, backward bool) {
	m.curLayer, m.headsBwd = l, backward
	m.headsParts = min(m.e.Threads(), m.a.B*m.Config.Heads)
	m.e.Parallel(m.headsParts, m.headsFn)
}

func (m *GPT) headsRange(k tensor.Kernels, lo, hi int) {
	T := m.a.T
	n, parts := m.a.B*m.Config.Heads, m.headsParts
	la := &m.a.layers[m.curLayer]
	for w := lo; w < hi; w++ {
		s := m.a.scratch[w*2*T*T : (w+1)*2*T*T]
		s1, s2 := s[:T*T], s[T*T:]
		for it := w * n / parts; it < (w+1)*n/parts; it++ {
			if m.headsBwd {
				m.attentionBackward(k, la, it, s1, s2)
			} else {
				m.attentionForward(k, la, it, s1)
			}
		}
	}
}

// attnBlock is the default row-block size with which attention skips the
// masked upper triangle: a block of query rows only meets the keys before
// its end. Smaller blocks skip more work but make more, smaller GEMM calls;
// 32 measured best at T = 64.
const attnBlock = 32

// attentionForward is causal self-attention for one (batch, head) pair
// it = b*NH + h: att = causal_softmax(q k^T / sqrt(hs)), y = att v. q, k and
// v are strided views into qkv (row stride 3C); scores is T*T scratch. Each
// output keeps the FMA chain of the full product: skipped entries are masked
// zeros at the end of a chain, so a Session step gives the same bits.
func (m *GPT) attentionForward(k tensor.Kernels, la *layerActs, it int, scores []float32) {
	T, C, NH := m.a.T, m.Config.Width, m.Config.Heads
	hs, C3 := C/NH, 3*C
	b, h := it/NH, it%NH
	base := b*T*C3 + h*hs
	q, key, v := la.qkv[base:], la.qkv[base+C:], la.qkv[base+2*C:]
	att := la.att[it*T*T : (it+1)*T*T]
	y := la.atty[b*T*C+h*hs:]
	for r0 := 0; r0 < T; r0 += m.attnBlock {
		r1 := min(T, r0+m.attnBlock)
		k.Gemm(false, true, r1-r0, r1, hs, q[r0*C3:], C3, key, C3, scores[r0*T:], T, false)
	}
	// Only the visible (lower) triangle of scores is read.
	k.CausalSoftmax(att, scores, T, T, 0, attnScale(hs))
	for r0 := 0; r0 < T; r0 += m.attnBlock {
		r1 := min(T, r0+m.attnBlock)
		k.Gemm(false, false, r1-r0, hs, r1, att[r0*T:], T, v, C3, y[r0*C:], C, false)
	}
}

// attentionBackward is attentionForward's backward for pair it: from datty
// it writes (not accumulates) the pair's q, k and v columns of dqkv. Row
// blocks skip the masked upper triangle as in the forward; products with
// transposed attention start each block at its diagonal, since att[i][j] and
// dscores[i][j] vanish for i < j.
func (m *GPT) attentionBackward(k tensor.Kernels, la *layerActs, it int, datt, dscores []float32) {
	T, C, NH := m.a.T, m.Config.Width, m.Config.Heads
	hs, C3 := C/NH, 3*C
	b, h := it/NH, it%NH
	base := b*T*C3 + h*hs
	q, key, v := la.qkv[base:], la.qkv[base+C:], la.qkv[base+2*C:]
	dq, dk, dv := m.a.dqkv[base:], m.a.dqkv[base+C:], m.a.dqkv[base+2*C:]
	att := la.att[it*T*T : (it+1)*T*T]
	dy := m.a.datty[b*T*C+h*hs:]
	// The softmax backward reads all of datt (times p = 0 where masked), so
	// the skipped entries must be finite: zero them.
	k.Fill(datt, 0)
	for r0 := 0; r0 < T; r0 += m.attnBlock {
		r1 := min(T, r0+m.attnBlock)
		k.Gemm(false, true, r1-r0, r1, hs, dy[r0*C:], C, v, C3, datt[r0*T:], T, false) // datt = dy v^T
	}
	for j0 := 0; j0 < T; j0 += m.attnBlock {
		j1 := min(T, j0+m.attnBlock)
		k.Gemm(true, false, j1-j0, hs, T-j0, att[j0*T+j0:], T, dy[j0*C:], C, dv[j0*C3:], C3, false) // dv = att^T dy
	}
	k.Fill(dscores, 0)
	k.SoftmaxBackward(dscores, att, datt, T, T, attnScale(hs))
	for r0 := 0; r0 < T; r0 += m.attnBlock {
		r1 := min(T, r0+m.attnBlock)
		k.Gemm(false, false, r1-r0, hs, r1, dscores[r0*T:], T, key, C3, dq[r0*C3:], C3, false) // dq = ds k
	}
	for j0 := 0; j0 < T; j0 += m.attnBlock {
		j1 := min(T, j0+m.attnBlock)
		k.Gemm(true, false, j1-j0, hs, T-j0, dscores[j0*T+j0:], T, q[j0*C3:], C3, dk[j0*C3:], C3, false) // dk = ds^T q
	}
}

// attnScale is 1/sqrt(head size), rounded once to float32.
func attnScale(hs int) float32 { return float32(1 / math.Sqrt(float64(hs))) }
