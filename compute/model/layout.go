package model

import "fmt"

// View names one parameter tensor inside the flat parameter vector:
// Params[Offset : Offset+Len] holds it row-major with the given Shape.
// Linear weights are stored [out, in] (the nn.Linear layout, not GPT-2's
// Conv1D [in, out]).
type View struct {
	Name   string
	Shape  []int
	Offset int
	Len    int
}

// Layout lists the parameter tensors of cfg in flat order: wte, wpe, the
// blocks h.0 ... h.L-1 (ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc,
// mlp.c_proj; weight before bias), then ln_f. It does not validate cfg.
func Layout(cfg Config) []View {
	V, T, C := cfg.Vocab, cfg.Context, cfg.Width
	views := make([]View, 0, 2+12*max(cfg.Layers, 0)+2)
	off := 0
	add := func(name string, shape ...int) {
		n := 1
		for _, d := range shape {
			n *= d
		}
		views = append(views, View{Name: name, Shape: shape, Offset: off, Len: n})
		off += n
	}
	add("wte", V, C)
	add("wpe", T, C)
	for l := 0; l < cfg.Layers; l++ {
		p := fmt.Sprintf("h.%d.", l)
		add(p+"ln_1.weight", C)
		add(p+"ln_1.bias", C)
		add(p+"attn.c_attn.weight", 3*C, C)
		add(p+"attn.c_attn.bias", 3*C)
		add(p+"attn.c_proj.weight", C, C)
		add(p+"attn.c_proj.bias", C)
		add(p+"ln_2.weight", C)
		add(p+"ln_2.bias", C)
		add(p+"mlp.c_fc.weight", 4*C, C)
		add(p+"mlp.c_fc.bias", 4*C)
		add(p+"mlp.c_proj.weight", C, 4*C)
		add(p+"mlp.c_proj.bias", C)
	}
	add("ln_f.weight", C)
	add("ln_f.bias", C)
	return views
}

// tensors are the named slices of one flat vector (the parameters or their
// gradients), cut once in layout order.
type tensors struct {
	wte, wpe   []float32
	layers     []layerTensors
	lnfW, lnfB []float32
}

type layerTensors struct {
	ln1W, ln1B   []float32
	qkvW, qkvB   []float32
	projW, projB []float32
	ln2W, ln2B   []float32
	fcW, fcB     []float32
	fc2W, fc2B   []float32
}

// cut slices flat along views (which must come from Layout of the same
// config, in order).
func cut(flat []float32, views []View, layers int) tensors {
	i := 0
	next := func() []float32 {
		v := views[i]
		i++
		return flat[v.Offset : v.Offset+v.Len : v.Offset+v.Len]
	}
	var t tensors
	t.wte, t.wpe = next(), next()
	t.layers = make([]layerTensors, layers)
	for l := range t.layers {
		lt := &t.layers[l]
		for _, s := range []*[]float32{&lt.ln1W, &lt.ln1B, &lt.qkvW, &lt.qkvB, &lt.projW, &lt.projB,
			&lt.ln2W, &lt.ln2B, &lt.fcW, &lt.fcB, &lt.fc2W, &lt.fc2B} {
			*s = next()
		}
	}
	t.lnfW, t.lnfB = next(), next()
	return t
}
