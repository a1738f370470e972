package node

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/verify/replay"
)

// trainRun runs a train job's inner steps: the provider to answer the job
// and its state requests, the client to replay the steps it checks. Both
// run optimizer.InnerStep, the step trainers run, so an honest run is
// bit-identical on both sides (the engine's determinism contract).
type trainRun struct {
	m       *model.GPT
	opt     *optimizer.AdamW
	b       *data.Batcher
	in, tgt []int32
	bsz, t  int
}

func newTrainRun(e *tensor.Engine, g *Genesis, ds *data.Dataset, pages []int) (*trainRun, error) {
	hp := g.Params
	m, err := model.New(g.Model, e)
	if err != nil {
		return nil, err
	}
	opt, err := optimizer.NewAdamW(hp.AdamW, m.Views())
	if err != nil {
		return nil, err
	}
	b, err := data.NewBatcher(ds.Train, hp.PageSize, pages, hp.Batch, hp.SeqLen)
	if err != nil {
		return nil, fmt.Errorf("node: train job batches: %w", err)
	}
	bt := hp.Batch * hp.SeqLen
	return &trainRun{m: m, opt: opt, b: b, in: make([]int32, bt), tgt: make([]int32, bt), bsz: hp.Batch, t: hp.SeqLen}, nil
}

// reset loads a state: params, moments (nil: zero) and the AdamW step.
func (r *trainRun) reset(params, m, v []float32, step int) {
	copy(r.m.Params, params)
	if m == nil {
		clear(r.opt.M)
		clear(r.opt.V)
	} else {
		copy(r.opt.M, m)
		copy(r.opt.V, v)
	}
	r.opt.Step = step
}

// step runs inner step j (batch j of the job's pages).
func (r *trainRun) step(j int) error {
	if err := r.b.Fill(j, r.in, r.tgt); err != nil {
		return err
	}
	if _, err := optimizer.InnerStep(r.m, r.opt, r.in, r.tgt, r.bsz, r.t); err != nil {
		return fmt.Errorf("node: train job step %d: %w", j, err)
	}
	return nil
}

func (r *trainRun) state() *replay.State {
	return &replay.State{Params: r.m.Params, M: r.opt.M, V: r.opt.V, AdamStep: r.opt.Step}
}

func (r *trainRun) digests() replay.Digests { return r.state().Digests() }

// floatsLE encodes float32s little-endian; parseFloatsLE is its strict
// inverse (finite values only).
func floatsLE(x []float32) []byte {
	b := make([]byte, 4*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(v))
	}
	return b
}

func parseFloatsLE(b []byte) ([]float32, error) {
	if len(b)%4 != 0 {
		return nil, fmt.Errorf("node: %d bytes are not float32s", len(b))
	}
	x := make([]float32, len(b)/4)
	for i := range x {
		x[i] = math.Float32frombits(binary.LittleEndian.Uint32(b[4*i:]))
		if math.IsNaN(float64(x[i])) || math.IsInf(float64(x[i]), 0) {
			return nil, fmt.Errorf("node: parameter %d is not finite", i)
		}
	}
	return x, nil
}
