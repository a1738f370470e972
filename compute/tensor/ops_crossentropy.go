package tensor

import (
	"fmt"
	"sync"
)

// CrossEntropy sets probs = softmax(logits) per row of V and
// losses[i] = -log(probs[i][targets[i]]). The loss is computed as
// max + log(sum) - logits[i][t] in float64 (the same value without the
// rounding of probs), so a vanishing probability gives a large finite loss
// rather than +Inf. A target outside [0, V) is an error; nothing is written
// then.
func (k Kernels) CrossEntropy(probs, losses, logits []float32, targets []int32, rows, V int) error {
	checkCrossEntropy(probs, losses, logits, targets, rows, V)
	if err := checkTargets(targets[:rows], V); err != nil {
		return err
	}
	k.crossEntropy(probs, losses, logits, targets, V, 0, rows)
	return nil
}

func checkCrossEntropy(probs, losses, logits []float32, targets []int32, rows, V int) {
	mustShape("CrossEntropy", rows, V)
	mustLen("CrossEntropy", "probs", len(probs), rows*V)
	mustLen("CrossEntropy", "logits", len(logits), rows*V)
	mustLen("CrossEntropy", "losses", len(losses), rows)
	mustLen("CrossEntropy", "targets", len(targets), rows)
}

// checkTargets reports the first target outside [0, V). Targets are data
// (they come from token streams), so this is an error, not a panic.
func checkTargets(targets []int32, V int) error {
	for i, t := range targets {
		if t < 0 || int(t) >= V {
			return fmt.Errorf("tensor: cross-entropy: target %d of row %d is outside [0, %d)", t, i, V)
		}
	}
	return nil
}

func (k Kernels) crossEntropy(probs, losses, logits []float32, targets []int32, V, lo, hi int) {
	for i := lo; i < hi; i++ {
		p := probs[i*V : (i+1)*V]
		l := logits[i*V : (i+1)*V]
		mx, sum := k.softmaxRow(p, l, 1)
		lse := float64(mx) + log64(float64(sum))
		losses[i] = float32(lse - float64(l[targets[i]]))
	}
}

// CrossEntropyBackward accumulates dlogits[i][j] += (probs[i][j] - [j==t_i]) *
// dlosses[i]. Targets must be valid (CrossEntropy has checked them); an
// invalid one panics.
func (k Kernels) CrossEntropyBackward(dlogits, probs []float32, targets []int32, dlosses []float32, rows, V int) {
	checkCrossEntropyBackward(dlogits, probs, targets, dlosses, rows, V)
	k.crossEntropyBackward(dlogits, probs, targets, dlosses, V, 0, rows)
}

func checkCrossEntropyBackward(dlogits, probs []float32, targets []int32, dlosses []float32, rows, V int) {
	mustShape("CrossEntropyBackward", rows, V)
	mustLen("CrossEntropyBackward", "dlogits", len(dlogits), rows*V)
	mustLen("CrossEntropyBackward", "probs", len(probs), rows*V)
	mustLen("CrossEntropyBackward", "targets", len(targets), rows)
	mustLen("CrossEntropyBackward", "dlosses", len(dlosses), rows)
	if err := checkTargets(targets[:rows], V); err != nil {
		panic(fmt.Sprintf("tensor: CrossEntropyBackward: %v", err))
	}
}

func (k Kernels) crossEntropyBackward(dlogits, probs []float32, targets []int32, dlosses []float32, V, lo, hi int) {
	for i := lo; i < hi; i++ {
		d := dlogits[i*V : (i+1)*V]
		p := probs[i*V : (i+1)*V]
		g := dlosses[i]
		t := targets[i]
		// The target entry is (p-1)*g, not p*g - g: keep its old value and
		// redo it after the vector pass.
		old := d[t]
		if k.avx2() {
			axpyAVX2(d, p, g)
		} else {
			for j, v := range p {
				d[j] += float32(v * g)
			}
		}
		d[t] = old + float32((p[t]-1)*g)
	}
}

// ceOp carries cross-entropy arguments to the workers (see binOp).
type ceOp struct {
	probs, losses, logits, dlogits, dlosses []float32
	targets                                 []int32
	V                                       int
	backward                                bool
	wg                                      sync.WaitGroup
}

var ceOpPool = sync.Pool{New: func() any { return new(ceOp) }}

func (o *ceOp) run(k Kernels, lo, hi int) {
	if o.backward {
		o.runBwd(k, lo, hi)
	} else {
		o.runFwd(k, lo, hi)
	}
}

func (o *ceOp) runFwd(k Kernels, lo, hi int) {
	k.crossEntropy(o.probs, o.losses, o.logits, o.targets, o.V, lo, hi)
}

func (o *ceOp) runBwd(k Kernels, lo, hi int) {
	k.crossEntropyBackward(o.dlogits, o.probs, o.targets, o.dlosses, o.V, lo, hi)
}

func (o *ceOp) release() {
	o.probs, o.losses, o.logits, o.dlogits, o.dlosses, o.targets = nil, nil, nil, nil, nil, nil
	ceOpPool.Put(o)
}

// CrossEntropy is Kernels.CrossEntropy split across workers by rows.
func (e *Engine) CrossEntropy(probs, losses, logits []float32, targets []int32, rows, V int) error {
	checkCrossEntropy(probs, losses, logits, targets, rows, V)
	if err := checkTargets(targets[:rows], V); err != nil {
		return err
	}
	o := ceOpPool.Get().(*ceOp)
	o.probs, o.losses, o.logits, o.targets, o.V = probs, losses, logits, targets, V
	o.backward = false
	e.runJob(rows, rowGrain(V), o, &o.wg)
	o.release()
	return nil
}

// CrossEntropyBackward is Kernels.CrossEntropyBackward split across workers by rows.
func (e *Engine) CrossEntropyBackward(dlogits, probs []float32, targets []int32, dlosses []float32, rows, V int) {
	checkCrossEntropyBackward(dlogits, probs, targets, dlosses, rows, V)
	o := ceOpPool.Get().(*ceOp)
	o.dlogits, o.probs, o.targets, o.dlosses, o.V = dlogits, probs, targets, dlosses, V
	o.backward = true
	e.runJob(rows, rowGrain(V), o, &o.wg)
	o.release()
}
