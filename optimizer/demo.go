package optimizer

import (
	"fmt"
	"math"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
)

// DeMoConfig configures DeMo (Decoupled Momentum, arXiv 2411.19870), a
// baseline: it communicates every step, a top-k of the DCT of each worker's
// momentum, and steps with the sign of the averaged reconstruction.
type DeMoConfig struct {
	LR          float32 // sign-SGD step size
	Beta        float32 // momentum decay (DeMo: 0.999)
	WeightDecay float32 // decoupled, on matrices only
	K           int     // coefficients kept per block (DeMo: 32 of 64x64)
	BlockDim    int     // target block side (DeMo: 64)
}

func (c DeMoConfig) validate() error {
	switch {
	case !(c.LR > 0 && c.LR <= 10):
		return fmt.Errorf("optimizer: demo lr %g out of range (0, 10]", c.LR)
	case !(c.Beta >= 0 && c.Beta <= 1):
		return fmt.Errorf("optimizer: demo beta %g out of range [0, 1]", c.Beta)
	case !(c.WeightDecay >= 0 && c.WeightDecay <= 1):
		return fmt.Errorf("optimizer: demo weight decay %g out of range [0, 1]", c.WeightDecay)
	case c.BlockDim < 2 || c.BlockDim > 256:
		return fmt.Errorf("optimizer: demo block dim %d out of range [2, 256]", c.BlockDim)
	case c.K < 1 || c.K > c.BlockDim*c.BlockDim:
		return fmt.Errorf("optimizer: demo k %d out of range [1, %d]", c.K, c.BlockDim*c.BlockDim)
	}
	return nil
}

// dctTensor is one tensor seen as rows x cols, cut into sr x sc blocks (1-D
// tensors are 1 x n). sr, sc are the largest divisors of rows, cols not
// above the target block side, as in DeMo.
type dctTensor struct {
	off, rows, cols, sr, sc int
	k                       int // kept per block
	decay                   bool
}

// DeMo holds the shared plan and the global step; workers hold momentum.
type DeMo struct {
	cfg     DeMoConfig
	n       int
	tensors []dctTensor
	dct     map[int][]float32 // orthonormal DCT-II matrices by size, read-only
	msgLen  int               // coefficients per message
}

// NewDeMo plans the block DCT of the layout.
func NewDeMo(cfg DeMoConfig, views []model.View) (*DeMo, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	d := &DeMo{cfg: cfg, dct: map[int][]float32{}}
	for _, v := range views {
		if v.Offset != d.n {
			return nil, fmt.Errorf("optimizer: demo: view %s at offset %d, want %d", v.Name, v.Offset, d.n)
		}
		rows, cols := 1, v.Len
		if len(v.Shape) >= 2 {
			cols = v.Shape[len(v.Shape)-1]
			rows = v.Len / cols
		}
		t := dctTensor{off: v.Offset, rows: rows, cols: cols, sr: largestDivisor(rows, cfg.BlockDim), sc: largestDivisor(cols, cfg.BlockDim), decay: len(v.Shape) >= 2}
		t.k = min(cfg.K, t.sr*t.sc)
		for _, s := range []int{t.sr, t.sc} {
			if _, ok := d.dct[s]; !ok {
				d.dct[s] = dctMatrix(s)
			}
		}
		d.msgLen += (rows / t.sr) * (cols / t.sc) * t.k
		d.tensors = append(d.tensors, t)
		d.n += v.Len
	}
	if d.n == 0 {
		return nil, fmt.Errorf("optimizer: demo: no parameters")
	}
	return d, nil
}

func largestDivisor(n, atMost int) int {
	for s := min(n, atMost); s > 1; s-- {
		if n%s == 0 {
			return s
		}
	}
	return 1
}

// dctMatrix is the orthonormal DCT-II matrix D[u][x] of size n (so D^-1 = D^T).
func dctMatrix(n int) []float32 {
	m := make([]float32, n*n)
	for u := range n {
		a := math.Sqrt(2 / float64(n))
		if u == 0 {
			a = math.Sqrt(1 / float64(n))
		}
		for x := range n {
			m[u*n+x] = float32(a * math.Cos(math.Pi*float64(2*x+1)*float64(u)/float64(2*n)))
		}
	}
	return m
}

// BytesPerMessage is what one worker sends per step if each kept
// coefficient is a float32 value plus a bit-packed index inside its block
// (DeMo's own implementation sends wider indices; this is the tight count).
func (d *DeMo) BytesPerMessage() int {
	bits := 0
	for _, t := range d.tensors {
		blocks := (t.rows / t.sr) * (t.cols / t.sc)
		ib := max(1, int(math.Ceil(math.Log2(float64(t.sr*t.sc)))))
		bits += blocks * t.k * (32 + ib)
	}
	return (bits + 7) / 8
}

// forward writes the block DCT of x into y (same row-major layout; block
// (i, j)'s coefficients sit where its entries were), using tmp.
func (d *DeMo) forward(e *tensor.Engine, y, x, tmp []float32) {
	for _, t := range d.tensors {
		n := t.rows * t.cols
		X, Y, T := x[t.off:t.off+n], y[t.off:t.off+n], tmp[t.off:t.off+n]
		Dr, Dc := d.dct[t.sr], d.dct[t.sc]
		for j := 0; j < t.cols; j += t.sc { // T = X * Dc^T per column block
			e.Gemm(false, true, t.rows, t.sc, t.sc, X[j:], t.cols, Dc, t.sc, T[j:], t.cols, false)
		}
		for i := 0; i < t.rows; i += t.sr { // Y = Dr * T per row block
			e.Gemm(false, false, t.sr, t.cols, t.sr, Dr, t.sr, T[i*t.cols:], t.cols, Y[i*t.cols:], t.cols, false)
		}
	}
}

// inverse writes the inverse block DCT of y into x, using tmp.
func (d *DeMo) inverse(e *tensor.Engine, x, y, tmp []float32) {
	for _, t := range d.tensors {
		n := t.rows * t.cols
		X, Y, T := x[t.off:t.off+n], y[t.off:t.off+n], tmp[t.off:t.off+n]
		Dr, Dc := d.dct[t.sr], d.dct[t.sc]
		for j := 0; j < t.cols; j += t.sc { // T = Y * Dc
			e.Gemm(false, false, t.rows, t.sc, t.sc, Y[j:], t.cols, Dc, t.sc, T[j:], t.cols, false)
		}
		for i := 0; i < t.rows; i += t.sr { // X = Dr^T * T
			e.Gemm(true, false, t.sr, t.cols, t.sr, Dr, t.sr, T[i*t.cols:], t.cols, X[i*t.cols:], t.cols, false)
		}
	}
}

// DeMoMessage is one worker's per-step contribution: kept DCT coefficients
// at flat positions Pos (ascending within each block) with values Val.
type DeMoMessage struct {
	Pos []int32
	Val []float32
}

// DeMoWorker is one worker's DeMo state.
type DeMoWorker struct {
	d               *DeMo
	M               []float32 // momentum, exposed for checkpoints
	coef, tmp, back []float32
	sel             *selector
	blockAbs        []float32
	blockIdx        []uint16
	msg             DeMoMessage
}

// NewWorker returns a worker with zero momentum.
func (d *DeMo) NewWorker() *DeMoWorker {
	bmax := 0
	for _, t := range d.tensors {
		bmax = max(bmax, t.sr*t.sc)
	}
	return &DeMoWorker{
		d: d, M: make([]float32, d.n), coef: make([]float32, d.n), tmp: make([]float32, d.n), back: make([]float32, d.n),
		sel: newSelector(bmax), blockAbs: make([]float32, bmax), blockIdx: make([]uint16, bmax),
		msg: DeMoMessage{Pos: make([]int32, d.msgLen), Val: make([]float32, d.msgLen)},
	}
}

// Compress folds grad into the momentum (m = beta*m + grad), keeps the
// top-k DCT coefficients of m per block, removes what it keeps from m, and
// returns them (valid until the next call).
func (w *DeMoWorker) Compress(e *tensor.Engine, grad []float32) (*DeMoMessage, error) {
	d := w.d
	if len(grad) != d.n {
		return nil, fmt.Errorf("optimizer: demo: %d grads, want %d", len(grad), d.n)
	}
	beta := d.cfg.Beta
	for i, g := range grad {
		w.M[i] = float32(beta*w.M[i]) + g
	}
	if e.HasNaN(w.M) {
		return nil, fmt.Errorf("optimizer: demo: non-finite momentum")
	}
	d.forward(e, w.coef, w.M, w.tmp)
	clear(w.tmp) // now the sparse kept coefficients, dense layout
	p := 0
	for _, t := range d.tensors {
		for bi := 0; bi < t.rows; bi += t.sr {
			for bj := 0; bj < t.cols; bj += t.sc {
				blk := w.blockAbs[:t.sr*t.sc]
				for r := range t.sr {
					base := t.off + (bi+r)*t.cols + bj
					copy(blk[r*t.sc:(r+1)*t.sc], w.coef[base:base+t.sc])
				}
				idx := w.blockIdx[:t.k]
				w.sel.topK(blk, t.k, idx)
				for _, b := range idx {
					r, c := int(b)/t.sc, int(b)%t.sc
					pos := t.off + (bi+r)*t.cols + bj + c
					w.msg.Pos[p], w.msg.Val[p] = int32(pos), w.coef[pos]
					w.tmp[pos] = w.coef[pos]
					p++
				}
			}
		}
	}
	d.inverse(e, w.back, w.tmp, w.coef)
	for i, b := range w.back {
		w.M[i] = w.M[i] - b
	}
	return &w.msg, nil
}

// Step averages the messages in the order given (the caller fixes it),
// inverts the DCT and applies theta = theta - lr*(sign(update) + wd*theta).
// coef and tmp are scratch of NumParams entries.
func (d *DeMo) Step(e *tensor.Engine, theta []float32, msgs []*DeMoMessage, coef, tmp, upd []float32) error {
	if len(theta) != d.n || len(coef) != d.n || len(tmp) != d.n || len(upd) != d.n {
		return fmt.Errorf("optimizer: demo step: buffers of %d/%d/%d/%d, want %d", len(theta), len(coef), len(tmp), len(upd), d.n)
	}
	if len(msgs) == 0 {
		return fmt.Errorf("optimizer: demo step: no messages")
	}
	clear(coef)
	for mi, m := range msgs {
		if len(m.Pos) != d.msgLen || len(m.Val) != d.msgLen {
			return fmt.Errorf("optimizer: demo step: message %d has %d coefficients, want %d", mi, len(m.Pos), d.msgLen)
		}
		for j, pos := range m.Pos {
			if pos < 0 || int(pos) >= d.n {
				return fmt.Errorf("optimizer: demo step: message %d: position %d out of range", mi, pos)
			}
			coef[pos] = coef[pos] + m.Val[j]
		}
	}
	// The mean's scale does not matter under sign, so no division.
	d.inverse(e, upd, coef, tmp)
	lr := d.cfg.LR
	for _, t := range d.tensors {
		n := t.rows * t.cols
		wd := float32(0)
		if t.decay {
			wd = d.cfg.WeightDecay
		}
		th, u := theta[t.off:t.off+n], upd[t.off:t.off+n]
		for i, v := range u {
			s := float32(0)
			if v > 0 {
				s = 1
			} else if v < 0 {
				s = -1
			}
			th[i] = th[i] - float32(lr*(s+float32(wd*th[i])))
		}
	}
	return nil
}

// SetLR changes the step size (for a schedule).
func (d *DeMo) SetLR(lr float32) { d.cfg.LR = lr }

// NumParams is the length of the vectors DeMo works on.
func (d *DeMo) NumParams() int { return d.n }
