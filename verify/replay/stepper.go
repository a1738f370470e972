package replay

import (
	"fmt"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
)

// stepper runs inner steps from a given state: a model and an AdamW of the
// spec's shape, with batch buffers. Trainers (recomputing from a checkpoint)
// and validators (replaying) share it, and it runs optimizer.InnerStep, the
// one step function trainers run.
type stepper struct {
	spec    Spec
	m       *model.GPT
	opt     *optimizer.AdamW
	in, tgt []int32
}

func newStepper(e *tensor.Engine, spec Spec) (*stepper, error) {
	m, err := model.New(spec.Model, e)
	if err != nil {
		return nil, fmt.Errorf("replay: model: %w", err)
	}
	opt, err := optimizer.NewAdamW(spec.AdamW, m.Views())
	if err != nil {
		return nil, fmt.Errorf("replay: adamw: %w", err)
	}
	bt := spec.Data.Batch * spec.Data.SeqLen
	return &stepper{spec: spec, m: m, opt: opt, in: make([]int32, bt), tgt: make([]int32, bt)}, nil
}

// load sets the model and optimizer state (lengths were checked by the
// caller's decoding).
func (s *stepper) load(params, m, v []float32, adamStep int) {
	copy(s.m.Params, params)
	copy(s.opt.M, m)
	copy(s.opt.V, v)
	s.opt.Step = adamStep
}

// step runs inner step j of the round whose batches b serves.
func (s *stepper) step(b *data.Batcher, j int) error {
	if err := b.Fill(j, s.in, s.tgt); err != nil {
		return fmt.Errorf("replay: batch of step %d: %w", j, err)
	}
	if _, err := optimizer.InnerStep(s.m, s.opt, s.in, s.tgt, s.spec.Data.Batch, s.spec.Data.SeqLen); err != nil {
		return fmt.Errorf("replay: step %d: %w", j, err)
	}
	return nil
}

// digests hashes the stepper's state, with ef's digest given.
func (s *stepper) digests(ef [32]byte) Digests {
	var d Digests
	d = stateDigests(s.m.Params, s.opt.M, s.opt.V, s.opt.Step, nil)
	d.EF = ef
	return d
}
