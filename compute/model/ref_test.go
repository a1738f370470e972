package model

import (
	"math"
	"testing"

	"github.com/trinity-net/trinity/compute/tensor"
)

// refModel is an independent float64 implementation of the model, written
// from the math rather than from the kernels: the gradient check
// differentiates it numerically and the forward check compares against it.
type refModel struct {
	cfg Config
	p   []float64
	vs  []View
}

func (r *refModel) t(name string) []float64 {
	for _, v := range r.vs {
		if v.Name == name {
			return r.p[v.Offset : v.Offset+v.Len]
		}
	}
	panic("no tensor " + name)
}

func refLayerNorm(x, w, b []float64) []float64 {
	C := len(x)
	var mean, v float64
	for _, a := range x {
		mean += a
	}
	mean /= float64(C)
	for _, a := range x {
		v += (a - mean) * (a - mean)
	}
	v /= float64(C)
	rstd := 1 / math.Sqrt(v+1e-5)
	out := make([]float64, C)
	for i, a := range x {
		out[i] = (a-mean)*rstd*w[i] + b[i]
	}
	return out
}

// refLinear is x [in] times w [out, in]^T plus bias [out] (bias may be nil).
func refLinear(x, w, bias []float64, out int) []float64 {
	in := len(x)
	y := make([]float64, out)
	for o := range out {
		var s float64
		for i := range in {
			s += x[i] * w[o*in+i]
		}
		if bias != nil {
			s += bias[o]
		}
		y[o] = s
	}
	return y
}

func refGELU(x float64) float64 {
	return 0.5 * x * (1 + math.Tanh(math.Sqrt(2/math.Pi)*(x+0.044715*x*x*x)))
}

// forward returns the mean loss (0 if targets is nil), the logits [B*T*V]
// and the last block's output [B*T*C].
func (r *refModel) forward(tokens, targets []int32, B, T int) (loss float64, logits, hidden []float64) {
	c := r.cfg
	C, V, NH := c.Width, c.Vocab, c.Heads
	hs := C / NH
	wte, wpe := r.t("wte"), r.t("wpe")
	for b := range B {
		x := make([][]float64, T)
		for t := range T {
			tok := int(tokens[b*T+t])
			x[t] = make([]float64, C)
			for i := range C {
				x[t][i] = wte[tok*C+i] + wpe[t*C+i]
			}
		}
		for l := range c.Layers {
			pre := "h." + itoa(l) + "."
			qkv := make([][]float64, T)
			for t := range T {
				ln := refLayerNorm(x[t], r.t(pre+"ln_1.weight"), r.t(pre+"ln_1.bias"))
				qkv[t] = refLinear(ln, r.t(pre+"attn.c_attn.weight"), r.t(pre+"attn.c_attn.bias"), 3*C)
			}
			for t := range T {
				y := make([]float64, C)
				for h := range NH {
					sc := make([]float64, t+1)
					mx := math.Inf(-1)
					for j := 0; j <= t; j++ {
						var s float64
						for i := range hs {
							s += qkv[t][h*hs+i] * qkv[j][C+h*hs+i]
						}
						sc[j] = s / math.Sqrt(float64(hs))
						mx = math.Max(mx, sc[j])
					}
					var z float64
					for j := range sc {
						sc[j] = math.Exp(sc[j] - mx)
						z += sc[j]
					}
					for j := range sc {
						for i := range hs {
							y[h*hs+i] += sc[j] / z * qkv[j][2*C+h*hs+i]
						}
					}
				}
				proj := refLinear(y, r.t(pre+"attn.c_proj.weight"), r.t(pre+"attn.c_proj.bias"), C)
				for i := range C {
					proj[i] += x[t][i]
				}
				x[t] = proj // the residual after attention; later rows still need qkv only
			}
			for t := range T {
				ln := refLayerNorm(x[t], r.t(pre+"ln_2.weight"), r.t(pre+"ln_2.bias"))
				f := refLinear(ln, r.t(pre+"mlp.c_fc.weight"), r.t(pre+"mlp.c_fc.bias"), 4*C)
				for i := range f {
					f[i] = refGELU(f[i])
				}
				o := refLinear(f, r.t(pre+"mlp.c_proj.weight"), r.t(pre+"mlp.c_proj.bias"), C)
				for i := range C {
					x[t][i] += o[i]
				}
			}
		}
		for t := range T {
			hidden = append(hidden, x[t]...)
			ln := refLayerNorm(x[t], r.t("ln_f.weight"), r.t("ln_f.bias"))
			lg := refLinear(ln, wte, nil, V)
			logits = append(logits, lg...)
			if targets != nil {
				mx := math.Inf(-1)
				for _, v := range lg {
					mx = math.Max(mx, v)
				}
				var z float64
				for _, v := range lg {
					z += math.Exp(v - mx)
				}
				loss += math.Log(z) + mx - lg[targets[b*T+t]]
			}
		}
	}
	return loss / float64(B*T), logits, hidden
}

func itoa(i int) string {
	if i < 10 {
		return string(rune('0' + i))
	}
	return itoa(i/10) + string(rune('0'+i%10))
}

// randomParams fills a model with a spread of values far from the GPT-2
// init (LayerNorm weights around 1, biases non-zero, weights of 0.3), so
// that every path of the backward carries a sizeable gradient.
func randomParams(m *GPT, seed uint64) {
	r := newRNG(seed)
	for _, v := range m.Views() {
		dst := m.Params[v.Offset : v.Offset+v.Len]
		for i := range dst {
			z := r.normal()
			switch {
			case len(v.Shape) == 1 && v.Name[len(v.Name)-6:] == "weight":
				dst[i] = float32(1 + 0.2*z)
			case len(v.Shape) == 1:
				dst[i] = float32(0.1 * z)
			default:
				dst[i] = float32(0.3 * z)
			}
		}
	}
}

func randomTokens(n, vocab int, seed uint64) []int32 {
	r := newRNG(seed)
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(r.next() % uint64(vocab))
	}
	return out
}

func newEngine(t testing.TB, opts ...tensor.Option) *tensor.Engine {
	t.Helper()
	e, err := tensor.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func newModel(t testing.TB, cfg Config, e *tensor.Engine) *GPT {
	t.Helper()
	m, err := New(cfg, e)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

var tinyConfig = Config{Vocab: 11, Context: 8, Layers: 2, Heads: 2, Width: 8}
