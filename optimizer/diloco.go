package optimizer

import "fmt"

// Nesterov is DiLoCo's outer optimizer: SGD with Nesterov momentum on the
// averaged dense pseudo-gradient g,
//
//	m = mu*m + g ; theta -= lr*(g + mu*m)
//
// (the PyTorch formulation; DiLoCo uses lr 0.7, mu 0.9). Every operation is
// rounded to float32 on its own, so the step is reproducible.
type Nesterov struct {
	LR, Momentum float32
	M            []float32 // momentum buffer, exposed for checkpoints
}

// NewNesterov returns a zero-momentum outer optimizer for n parameters.
func NewNesterov(n int, lr, momentum float32) (*Nesterov, error) {
	if n < 1 {
		return nil, fmt.Errorf("optimizer: nesterov: %d parameters", n)
	}
	if !(lr > 0 && lr <= 10) {
		return nil, fmt.Errorf("optimizer: nesterov lr %g out of range (0, 10]", lr)
	}
	if !(momentum >= 0 && momentum < 1) {
		return nil, fmt.Errorf("optimizer: nesterov momentum %g out of range [0, 1)", momentum)
	}
	return &Nesterov{LR: lr, Momentum: momentum, M: make([]float32, n)}, nil
}

// Step applies the averaged pseudo-gradient g to theta.
func (o *Nesterov) Step(theta, g []float32) error {
	if len(theta) != len(o.M) || len(g) != len(o.M) {
		return fmt.Errorf("optimizer: nesterov: %d params, %d grads, want %d", len(theta), len(g), len(o.M))
	}
	mu, lr := o.Momentum, o.LR
	for i, gi := range g {
		m := float32(mu*o.M[i]) + gi
		o.M[i] = m
		theta[i] = theta[i] - float32(lr*(gi+float32(mu*m)))
	}
	return nil
}

// MeanDense writes the mean of dense vectors into out, summing in the
// order given (the caller fixes it) with float32 rounding per addition.
func MeanDense(out []float32, vs [][]float32) error {
	if len(vs) == 0 {
		return fmt.Errorf("optimizer: mean of no vectors")
	}
	for i, v := range vs {
		if len(v) != len(out) {
			return fmt.Errorf("optimizer: mean: vector %d has %d entries, want %d", i, len(v), len(out))
		}
	}
	copy(out, vs[0])
	for _, v := range vs[1:] {
		for i, x := range v {
			out[i] = out[i] + x
		}
	}
	n := float32(len(vs))
	for i := range out {
		out[i] = out[i] / n
	}
	return nil
}
