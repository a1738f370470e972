package optimizer

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"sync"
)

// AggregateOption configures Aggregate.
type AggregateOption func(*aggConfig) error

type aggConfig struct {
	clip    bool
	workers int
}

// WithNormClip turns median-norm clipping on or off (default on). With it,
// a contribution whose norm exceeds the round's median norm is scaled down
// to it before averaging, as Templar does: a single peer (buggy or hostile)
// then moves the model at most as far as a typical honest one, while honest
// contributions, whose norms are close, are barely touched.
func WithNormClip(on bool) AggregateOption {
	return func(c *aggConfig) error { c.clip = on; return nil }
}

// WithAggregateWorkers sets how many goroutines decode and sum (default 1).
// The result does not depend on it.
func WithAggregateWorkers(n int) AggregateOption {
	return func(c *aggConfig) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("optimizer: aggregate workers %d out of range [1, 1024]", n)
		}
		c.workers = n
		return nil
	}
}

// AggregateInfo describes one aggregation.
type AggregateInfo struct {
	Contributions int
	Norms         []float64 // per contribution, in canonical (hash) order
	Weights       []float32 // clipping factor applied to each, canonical order
	MedianNorm    float64
}

// Aggregate decodes the blobs (each strictly, against ch and round), orders
// them by the SHA-256 of their bytes, optionally clips each to the median
// norm, and writes their mean into out (len NumParams):
//
//	out = (sum over contributions in hash order of w_c * Decompress(c)) / R
//
// Every element is summed in that fixed order with float32 rounding after
// each operation, so the output bits depend only on the set of blobs.
// Identical blobs count as many times as they appear.
func (ch *Chunking) Aggregate(out []float32, blobs [][]byte, round uint64, opts ...AggregateOption) (AggregateInfo, error) {
	cfg := aggConfig{clip: true, workers: 1}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return AggregateInfo{}, err
		}
	}
	if len(out) != ch.NumParams {
		return AggregateInfo{}, fmt.Errorf("optimizer: aggregate: output has %d entries, want %d", len(out), ch.NumParams)
	}
	if len(blobs) == 0 {
		return AggregateInfo{}, fmt.Errorf("optimizer: aggregate: no contributions")
	}
	type contrib struct {
		key  [32]byte
		c    *Compressed
		norm float64
		err  error
	}
	cs := make([]contrib, len(blobs))
	forEach(cfg.workers, len(blobs), func(i int) {
		c := ch.NewCompressed()
		if err := ch.Decode(blobs[i], c); err != nil {
			cs[i].err = err
			return
		}
		if c.Round != round {
			cs[i].err = fmt.Errorf("optimizer: aggregate: blob for round %d, want %d", c.Round, round)
			return
		}
		cs[i] = contrib{key: sha256.Sum256(blobs[i]), c: c, norm: math.Sqrt(ch.SquaredNorm(c))}
	})
	for i := range cs {
		if cs[i].err != nil {
			return AggregateInfo{}, fmt.Errorf("optimizer: aggregate: contribution %d: %w", i, cs[i].err)
		}
	}
	slices.SortStableFunc(cs, func(a, b contrib) int { return bytes.Compare(a.key[:], b.key[:]) })
	list := make([]*Compressed, len(cs))
	info := AggregateInfo{Contributions: len(cs), Norms: make([]float64, len(cs)), Weights: make([]float32, len(cs))}
	for i := range cs {
		list[i], info.Norms[i] = cs[i].c, cs[i].norm
	}
	info.MedianNorm = median(info.Norms)
	for i, n := range info.Norms {
		info.Weights[i] = 1
		if cfg.clip && n > info.MedianNorm {
			info.Weights[i] = float32(info.MedianNorm / n)
		}
	}
	ch.sumOrdered(out, list, info.Weights, cfg.workers)
	return info, nil
}

// AggregateCompressed is Aggregate over already decoded contributions,
// summed in the order given (the caller fixes a canonical order) with the
// given per-contribution weights, divided by len(cs).
func (ch *Chunking) AggregateCompressed(out []float32, cs []*Compressed, weights []float32, workers int) error {
	if len(out) != ch.NumParams || len(cs) == 0 || len(weights) != len(cs) || workers < 1 {
		return fmt.Errorf("optimizer: aggregate: bad arguments (%d outputs, %d contributions, %d weights, %d workers)", len(out), len(cs), len(weights), workers)
	}
	for i, c := range cs {
		if err := ch.Validate(c); err != nil {
			return fmt.Errorf("optimizer: aggregate: contribution %d: %w", i, err)
		}
	}
	ch.sumOrdered(out, cs, weights, workers)
	return nil
}

// sumOrdered is the reproducible core: chunks are split among workers, and
// within a chunk every contribution is added in list order.
func (ch *Chunking) sumOrdered(out []float32, cs []*Compressed, w []float32, workers int) {
	inv := float32(len(cs))
	nc := len(ch.Chunks)
	parts := min(workers, nc)
	forEach(parts, parts, func(p int) {
		lo, hi := nc*p/parts, nc*(p+1)/parts
		for ci := lo; ci < hi; ci++ {
			k := ch.Chunks[ci]
			dst := out[k.Offset : k.Offset+k.Len]
			clear(dst)
			for n, c := range cs {
				wl, wh := float32(w[n]*c.Lo[ci]), float32(w[n]*c.Hi[ci])
				for j := k.Start; j < k.Start+k.K; j++ {
					i := c.Idx[j]
					dst[i] = dst[i] + decode(c.Codes[j], wl, wh)
				}
			}
			for i := range dst {
				dst[i] = dst[i] / inv
			}
		}
	})
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// forEach runs fn(0..n-1) on up to workers goroutines and waits.
func forEach(workers, n int, fn func(i int)) {
	if workers <= 1 || n <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var wg sync.WaitGroup
	next := make(chan int)
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				fn(i)
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
}

// OuterStep applies theta -= lr * update with one float32 rounding per
// operation (no fused multiply-add), so every peer gets the same bits.
func OuterStep(theta, update []float32, lr float32) error {
	if len(theta) != len(update) {
		return fmt.Errorf("optimizer: outer step: %d parameters, %d updates", len(theta), len(update))
	}
	for i, u := range update {
		theta[i] = theta[i] - float32(lr*u)
	}
	return nil
}
