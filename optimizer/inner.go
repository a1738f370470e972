package optimizer

import (
	"fmt"

	"github.com/trinity-net/trinity/compute/model"
)

// InnerStep is one inner training step: forward on a batch of B sequences of
// T tokens, backward, and an AdamW update of m's parameters. It returns the
// batch's loss before the update. Trainers run it H times per round and
// validators replay it, so both call this one function: given the same model
// state, optimizer state and batch it gives the same bits everywhere.
func InnerStep(m *model.GPT, opt *AdamW, inputs, targets []int32, B, T int) (float32, error) {
	loss, err := m.Forward(inputs, targets, B, T)
	if err != nil {
		return 0, fmt.Errorf("optimizer: inner step forward: %w", err)
	}
	m.ZeroGrad()
	if err := m.Backward(); err != nil {
		return 0, fmt.Errorf("optimizer: inner step backward: %w", err)
	}
	if _, err := opt.Update(m.Engine(), m.Params, m.Grads); err != nil {
		return 0, fmt.Errorf("optimizer: inner step update: %w", err)
	}
	return loss, nil
}
