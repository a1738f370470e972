package rl

import (
	"bytes"

	"context"
	"errors"
	"fmt"
	"math"
	"slices"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/optimizer"
)

// newlineToken ends an answer (data.ExtractAnswer reads up to the first
// newline): tokens after it do not affect the reward and get no gradient.
const newlineToken = '\n'

// maxRows bounds the rows of one Forward in the update.
const maxRows = 64

// Policy is the policy-update role. Every honest peer runs it on the same
// verified batches (those the round's manifest lists) and so ends the round
// with the same parameters, optimizer state and state hash: there is no
// trusted trainer. It is not safe for concurrent use.
type Policy struct {
	cfg Config
	ts  *TaskSet
	m   *model.GPT
	ref *model.GPT
	opt *optimizer.AdamW
	acc []float32
}

// NewPolicy returns the update role for policy m. ref, if not nil, is the
// frozen reference policy of the KL term (needed when cfg.KLCoef > 0).
func NewPolicy(m, ref *model.GPT, ts *TaskSet, cfg Config) (*Policy, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if ts == nil {
		return nil, errors.New("rl: policy: no task set")
	}
	if cfg.KLCoef > 0 && ref == nil {
		return nil, errors.New("rl: policy: kl_coef > 0 needs a reference model")
	}
	if ref != nil && ref.Config != m.Config {
		return nil, fmt.Errorf("rl: policy: reference model %v, policy %v", ref.Config, m.Config)
	}
	opt, err := optimizer.NewAdamW(cfg.AdamW, m.Views())
	if err != nil {
		return nil, fmt.Errorf("rl: policy: %w", err)
	}
	return &Policy{cfg: cfg, ts: ts, m: m, ref: ref, opt: opt, acc: make([]float32, len(m.Params))}, nil
}

// Model is the policy model.
func (p *Policy) Model() *model.GPT { return p.m }

// Optimizer is the policy's AdamW state (part of the replicated state: a
// peer joining late needs it along with the parameters).
func (p *Policy) Optimizer() *optimizer.AdamW { return p.opt }

// Hash is the policy's state hash (what rollout proofs bind to).
func (p *Policy) Hash() [32]byte { return p.m.StateHash() }

// UpdateStats describes one policy update.
type UpdateStats struct {
	Groups, Rollouts int
	Tokens           int     // completion tokens in the loss
	MeanReward       float64 // over all rollouts
	Correct          int     // rollouts with reward 1
	Informative      int     // groups whose rewards differ (non-zero advantages)
	Passes           int     // forward/backward passes of the gradient, per epoch summed
	GradNorm         float64 // of the last epoch, before clipping
	ClipFrac         float64 // fraction of tokens whose ratio was clipped, last epoch
}

// sample is one rollout prepared for the loss.
type sample struct {
	seq []int32 // prompt then the kept completion tokens
	P   int     // prompt length
	adv float64
	old []float64 // behaviour log-probs of the completion tokens
	ref []float64 // reference log-probs (KL only)
}

// Update applies cfg.Epochs GRPO steps to the policy on the rollouts of
// batches, which must have passed Validator.Check against this policy.
// The result depends only on the set of batches, not their order: batches are
// taken in order of peer key, groups and rollouts in their batch's order.
//
// Loss, per completion token t of rollout i in group g (N tokens in all):
//
//	A_i  = (r_i - mean_g r) / (std_g r + AdvEps)
//	rho  = pi(t) / pi_old(t)
//	L    = -(1/N) sum min(rho A_i, clip(rho, 1-eps, 1+eps) A_i)
//	       + KLCoef (1/N) sum (pi_ref/pi - log(pi_ref/pi) - 1)
//
// pi_old is the policy the rollouts were generated with: the policy at the
// start of the update, whose log-probs every peer recomputes (so ratios are
// exactly 1 in the first epoch).
func (p *Policy) Update(ctx context.Context, batches []*Batch) (UpdateStats, error) {
	var st UpdateStats
	samples, err := p.prepare(batches, &st)
	if err != nil {
		return st, err
	}
	if len(samples) == 0 || st.Tokens == 0 {
		return st, nil
	}
	if p.cfg.FreshOptimizer {
		p.opt.Reset()
	}
	if err := p.logprobs(ctx, p.m, samples, func(s *sample, lp []float64) { s.old = lp }); err != nil {
		return st, err
	}
	if p.cfg.KLCoef > 0 {
		if err := p.logprobs(ctx, p.ref, samples, func(s *sample, lp []float64) { s.ref = lp }); err != nil {
			return st, err
		}
	}
	for ep := range p.cfg.Epochs {
		cur := make([][]float64, len(samples))
		if ep == 0 {
			for i := range samples {
				cur[i] = samples[i].old
			}
		} else {
			i := 0
			if err := p.logprobs(ctx, p.m, samples, func(_ *sample, lp []float64) { cur[i] = lp; i++ }); err != nil {
				return st, err
			}
		}
		weights, clipped := p.weights(samples, cur, st.Tokens)
		passes, err := p.gradient(ctx, samples, weights)
		if err != nil {
			return st, err
		}
		st.Passes += passes
		st.ClipFrac = float64(clipped) / float64(st.Tokens)
		copy(p.m.Grads, p.acc)
		if p.cfg.SGDLR > 0 {
			norm, err := p.sgd()
			if err != nil {
				return st, err
			}
			st.GradNorm = norm
			continue
		}
		norm, err := p.opt.Update(p.m.Engine(), p.m.Params, p.m.Grads)
		if err != nil {
			return st, fmt.Errorf("rl: policy update: %w", err)
		}
		st.GradNorm = norm
	}
	return st, nil
}

// sgd applies theta -= SGDLR * clip(g) with g in p.m.Grads, each element
// rounded once per operation (no fused multiply-add), so every peer gets the
// same bits. Unlike AdamW it moves parameters in proportion to the signal:
// a round with few informative groups changes the policy little.
func (p *Policy) sgd() (float64, error) {
	e := p.m.Engine()
	norm := math.Sqrt(e.SumSquares(p.m.Grads))
	if math.IsNaN(norm) || math.IsInf(norm, 0) {
		return norm, fmt.Errorf("rl: policy update: non-finite gradient norm")
	}
	scale := float64(p.cfg.SGDLR)
	if c := float64(p.cfg.AdamW.GradClip); c > 0 && norm > c {
		scale *= c / norm
	}
	e.Scale(p.m.Grads, float32(scale))
	for i, g := range p.m.Grads {
		p.m.Params[i] = float32(p.m.Params[i] - g)
	}
	return norm, nil
}

// prepare orders the rollouts canonically, truncates completions after
// their answer, recomputes rewards and computes group-relative advantages.
func (p *Policy) prepare(batches []*Batch, st *UpdateStats) ([]sample, error) {
	bs := slices.Clone(batches)
	for i, b := range bs {
		if b == nil || len(b.Groups) == 0 || len(b.Groups[0].Rollouts) == 0 || b.Groups[0].Rollouts[0].Proof == nil {
			return nil, fmt.Errorf("rl: policy update: batch %d is empty or malformed", i)
		}
	}
	slices.SortStableFunc(bs, func(a, b *Batch) int {
		if c := bytes.Compare(a.Peer[:], b.Peer[:]); c != 0 {
			return c
		}
		ca, cb := a.Groups[0].Rollouts[0].Proof.Commitment(), b.Groups[0].Rollouts[0].Proof.Commitment()
		return bytes.Compare(ca[:], cb[:])
	})
	tok := data.ByteTokenizer{}
	var samples []sample
	var rewardSum float64
	for _, b := range bs {
		for _, g := range b.Groups {
			if int(g.Task) >= len(p.ts.Tasks) {
				return nil, fmt.Errorf("rl: policy update: task %d out of range", g.Task)
			}
			task := p.ts.Tasks[g.Task]
			rs := make([]float64, len(g.Rollouts))
			var mean float64
			for k, r := range g.Rollouts {
				if r.Proof == nil {
					return nil, errors.New("rl: policy update: rollout without proof")
				}
				rs[k] = p.cfg.Reward(task, tok.Decode(r.Proof.Tokens))
				mean += rs[k]
				rewardSum += rs[k]
				if rs[k] == 1 {
					st.Correct++
				}
			}
			mean /= float64(len(rs))
			var v float64
			for _, r := range rs {
				v += (r - mean) * (r - mean)
			}
			std := math.Sqrt(v / float64(len(rs)))
			if std > 0 {
				st.Informative++
			}
			st.Groups++
			for k, r := range g.Rollouts {
				pr := r.Proof
				keep := len(pr.Tokens)
				if i := slices.Index(pr.Tokens, newlineToken); i >= 0 {
					keep = i + 1
				}
				seq := make([]int32, 0, len(pr.Prompt)+keep)
				seq = append(append(seq, pr.Prompt...), pr.Tokens[:keep]...)
				for _, t := range seq {
					if t < 0 || int(t) >= p.m.Config.Vocab {
						return nil, fmt.Errorf("rl: policy update: token %d outside the vocabulary", t)
					}
				}
				if len(seq) > p.m.Config.Context+1 {
					return nil, fmt.Errorf("rl: policy update: rollout of %d tokens exceeds the context", len(seq))
				}
				adv := 0.0
				if std > 0 {
					adv = (rs[k] - mean) / (std + p.cfg.AdvEps)
				}
				samples = append(samples, sample{seq: seq, P: len(pr.Prompt), adv: adv})
				st.Tokens += keep
				st.Rollouts++
			}
		}
	}
	if st.Rollouts > 0 {
		st.MeanReward = rewardSum / float64(st.Rollouts)
	}
	return samples, nil
}

// logprobs computes, for every sample, the log-probabilities m gives its
// completion tokens, in float64 from the logits, batching samples of equal
// length (the model's bits do not depend on the batch shape).
func (p *Policy) logprobs(ctx context.Context, m *model.GPT, samples []sample, set func(*sample, []float64)) error {
	out := make([][]float64, len(samples))
	byLen := map[int][]int{}
	for i, s := range samples {
		byLen[len(s.seq)-1] = append(byLen[len(s.seq)-1], i)
	}
	lens := make([]int, 0, len(byLen))
	for T := range byLen {
		lens = append(lens, T)
	}
	slices.Sort(lens)
	V := m.Config.Vocab
	for _, T := range lens {
		idx := byLen[T]
		for lo := 0; lo < len(idx); lo += maxRows {
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("rl: policy update: %w", err)
			}
			rows := idx[lo:min(lo+maxRows, len(idx))]
			toks := make([]int32, 0, len(rows)*T)
			for _, i := range rows {
				toks = append(toks, samples[i].seq[:T]...)
			}
			if _, err := m.Forward(toks, nil, len(rows), T); err != nil {
				return fmt.Errorf("rl: policy update: forward: %w", err)
			}
			logits := m.Logits()
			for r, i := range rows {
				s := &samples[i]
				lp := make([]float64, len(s.seq)-s.P)
				for j := range lp {
					t := s.P - 1 + j
					lp[j] = logSoftmaxAt(logits[(r*T+t)*V:(r*T+t+1)*V], s.seq[t+1])
				}
				out[i] = lp
			}
		}
	}
	for i := range samples {
		set(&samples[i], out[i])
	}
	return nil
}

// logSoftmaxAt is log softmax(row)[tok] in float64, summed in index order.
func logSoftmaxAt(row []float32, tok int32) float64 {
	mx := math.Inf(-1)
	for _, x := range row {
		mx = max(mx, float64(x))
	}
	var s float64
	for _, x := range row {
		s += math.Exp(float64(x) - mx)
	}
	return float64(row[tok]) - mx - math.Log(s)
}

// weights returns, per sample and completion token, the weight w of that
// token's cross-entropy in the loss gradient (grad L = sum w grad CE),
// and how many tokens were clipped.
func (p *Policy) weights(samples []sample, cur [][]float64, N int) ([][]float64, int) {
	eps, beta, inv := p.cfg.ClipEps, p.cfg.KLCoef, 1/float64(N)
	out := make([][]float64, len(samples))
	clipped := 0
	for i, s := range samples {
		w := make([]float64, len(cur[i]))
		for j, lp := range cur[i] {
			rho := math.Exp(lp - s.old[j])
			active := !(s.adv > 0 && rho > 1+eps) && !(s.adv < 0 && rho < 1-eps)
			if active {
				w[j] = s.adv * rho
			} else if s.adv != 0 {
				clipped++
			}
			if beta > 0 {
				w[j] -= beta * (1 - math.Exp(s.ref[j]-lp))
			}
			w[j] *= inv
		}
		out[i] = w
	}
	return out, clipped
}

// gradient writes sum_i sum_j w_ij grad CE_ij into p.acc: samples of equal
// length go through the model together, up to maxRows per pass, and
// model.BackwardWeighted weights each completion token's cross-entropy by
// its w (prompt positions get 0). Samples whose weights are all zero (groups
// whose rewards do not differ, without KL) are skipped. Passes run in order
// of length, samples in canonical order, so every peer sums alike.
func (p *Policy) gradient(ctx context.Context, samples []sample, weights [][]float64) (int, error) {
	// Identical rollouts (frequent: a group's samples often agree) are one
	// row with their weights summed, in order of first appearance.
	merged := map[string]int{}
	var rowsOf []int     // sample index of each distinct row
	var rowW [][]float64 // its summed weights
	for i, s := range samples {
		if !slices.ContainsFunc(weights[i], func(w float64) bool { return w != 0 }) {
			continue
		}
		k := tokensKey(s.seq)
		j, ok := merged[k]
		if !ok {
			j = len(rowsOf)
			merged[k] = j
			rowsOf = append(rowsOf, i)
			rowW = append(rowW, make([]float64, len(weights[i])))
		}
		for t, w := range weights[i] {
			rowW[j][t] += w
		}
	}
	byLen := map[int][]int{}
	for j, i := range rowsOf {
		T := len(samples[i].seq) - 1
		byLen[T] = append(byLen[T], j)
	}
	lens := make([]int, 0, len(byLen))
	for T := range byLen {
		lens = append(lens, T)
	}
	slices.Sort(lens)
	p.m.ZeroGrad()
	passes := 0
	for _, T := range lens {
		idx := byLen[T]
		for lo := 0; lo < len(idx); lo += maxRows {
			if err := ctx.Err(); err != nil {
				return passes, fmt.Errorf("rl: policy update: %w", err)
			}
			rows := idx[lo:min(lo+maxRows, len(idx))]
			in, tg := make([]int32, 0, len(rows)*T), make([]int32, 0, len(rows)*T)
			w := make([]float32, len(rows)*T)
			for r, j := range rows {
				s := &samples[rowsOf[j]]
				in = append(in, s.seq[:T]...)
				tg = append(tg, s.seq[1:]...)
				for t, x := range rowW[j] {
					w[r*T+s.P-1+t] = float32(x)
				}
			}
			if _, err := p.m.Forward(in, tg, len(rows), T); err != nil {
				return passes, fmt.Errorf("rl: policy update: forward: %w", err)
			}
			if err := p.m.BackwardWeighted(w); err != nil {
				return passes, fmt.Errorf("rl: policy update: backward: %w", err)
			}
			passes++
		}
	}
	copy(p.acc, p.m.Grads)
	return passes, nil
}

func tokensKey(seq []int32) string {
	b := make([]byte, 0, 4*len(seq))
	for _, t := range seq {
		b = append(b, byte(t), byte(t>>8), byte(t>>16), byte(t>>24))
	}
	return string(b)
}
