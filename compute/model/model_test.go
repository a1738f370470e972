package model

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"strings"
	"testing"

	"github.com/trinity-net/trinity/compute/tensor"
)

func TestLayout(t *testing.T) {
	for _, cfg := range []Config{tinyConfig, Reference} {
		vs := Layout(cfg)
		if len(vs) != 2+12*cfg.Layers+2 {
			t.Fatalf("%v: %d views", cfg, len(vs))
		}
		off := 0
		seen := map[string]bool{}
		for _, v := range vs {
			n := 1
			for _, d := range v.Shape {
				n *= d
			}
			if v.Offset != off || v.Len != n || seen[v.Name] {
				t.Fatalf("%v: view %+v breaks the flat order at %d", cfg, v, off)
			}
			seen[v.Name] = true
			off += n
		}
		if off != cfg.NumParams() {
			t.Fatalf("%v: layout has %d params, NumParams %d", cfg, off, cfg.NumParams())
		}
	}
	if n := Reference.NumParams(); n != 3290624 {
		t.Fatalf("Reference has %d params", n)
	}
}

func TestForwardMatchesReference(t *testing.T) {
	for _, block := range []int{attnBlock, 3} {
		testForwardMatchesReference(t, block)
	}
}

func testForwardMatchesReference(t *testing.T, block int) {
	e := newEngine(t)
	m := newModel(t, tinyConfig, e)
	m.attnBlock = block
	randomParams(m, 1)
	B, T := 2, 8
	tokens := randomTokens(B*T, tinyConfig.Vocab, 2)
	targets := randomTokens(B*T, tinyConfig.Vocab, 3)
	loss, err := m.Forward(tokens, targets, B, T)
	if err != nil {
		t.Fatal(err)
	}
	ref := &refModel{cfg: tinyConfig, p: toF64(m.Params), vs: m.Views()}
	rl, rlogits, rhidden := ref.forward(tokens, targets, B, T)
	if d := math.Abs(float64(loss) - rl); d > 1e-5*math.Abs(rl) {
		t.Errorf("loss %v, float64 reference %v", loss, rl)
	}
	if d := maxDiff(m.Logits(), rlogits); d > 1e-4 {
		t.Errorf("logits differ from the reference by %g", d)
	}
	if d := maxDiff(m.Hidden(), rhidden); d > 1e-4 {
		t.Errorf("hidden states differ from the reference by %g", d)
	}
}

// TestForwardShapes compares loss and gradients with the reference on
// degenerate shapes: one-channel heads, a single layer, T = 1, wide vocab.
func TestForwardShapes(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		B, T int
	}{
		{Config{Vocab: 5, Context: 6, Layers: 1, Heads: 4, Width: 4}, 2, 6},
		{Config{Vocab: 7, Context: 3, Layers: 1, Heads: 1, Width: 2}, 5, 1},
		{Config{Vocab: 300, Context: 4, Layers: 3, Heads: 2, Width: 6}, 1, 4},
	} {
		m := newModel(t, tc.cfg, newEngine(t))
		randomParams(m, 3)
		tokens := randomTokens(tc.B*tc.T, tc.cfg.Vocab, 4)
		targets := randomTokens(tc.B*tc.T, tc.cfg.Vocab, 5)
		loss, err := m.Forward(tokens, targets, tc.B, tc.T)
		if err != nil {
			t.Fatal(err)
		}
		m.ZeroGrad()
		if err := m.Backward(); err != nil {
			t.Fatal(err)
		}
		ref := &refModel{cfg: tc.cfg, p: toF64(m.Params), vs: m.Views()}
		rl, _, _ := ref.forward(tokens, targets, tc.B, tc.T)
		if math.Abs(float64(loss)-rl) > 1e-5*math.Abs(rl) {
			t.Errorf("%v B=%d T=%d: loss %v, reference %v", tc.cfg, tc.B, tc.T, loss, rl)
		}
		// Spot-check a few gradients of each tensor numerically.
		const h = 1e-5
		for _, v := range m.Views() {
			for _, i := range []int{0, v.Len / 2, v.Len - 1} {
				j := v.Offset + i
				orig := ref.p[j]
				ref.p[j] = orig + h
				lp, _, _ := ref.forward(tokens, targets, tc.B, tc.T)
				ref.p[j] = orig - h
				lm, _, _ := ref.forward(tokens, targets, tc.B, tc.T)
				ref.p[j] = orig
				n, g := (lp-lm)/(2*h), float64(m.Grads[j])
				if math.Abs(g-n) > 1e-3*math.Abs(n)+1e-5 {
					t.Errorf("%v B=%d T=%d %s[%d]: gradient %g, numerical %g", tc.cfg, tc.B, tc.T, v.Name, i, g, n)
				}
			}
		}
	}
}

// TestGradients checks d(loss)/d(param) of every parameter against central
// differences of the float64 reference model.
func TestGradients(t *testing.T) {
	for _, tc := range []struct{ B, T, block int }{{2, 8, attnBlock}, {3, 5, attnBlock}, {2, 8, 3}, {1, 7, 2}} {
		e := newEngine(t)
		m := newModel(t, tinyConfig, e)
		m.attnBlock = tc.block // exercise the causal blocking of attention
		randomParams(m, 7)
		tokens := randomTokens(tc.B*tc.T, tinyConfig.Vocab, 8)
		targets := randomTokens(tc.B*tc.T, tinyConfig.Vocab, 9)
		if _, err := m.Forward(tokens, targets, tc.B, tc.T); err != nil {
			t.Fatal(err)
		}
		m.ZeroGrad()
		if err := m.Backward(); err != nil {
			t.Fatal(err)
		}
		ref := &refModel{cfg: tinyConfig, p: toF64(m.Params), vs: m.Views()}
		const h = 1e-5
		for _, v := range m.Views() {
			num := make([]float64, v.Len)
			var numNorm, errNorm, numMax float64
			for i := range num {
				j := v.Offset + i
				orig := ref.p[j]
				ref.p[j] = orig + h
				lp, _, _ := ref.forward(tokens, targets, tc.B, tc.T)
				ref.p[j] = orig - h
				lm, _, _ := ref.forward(tokens, targets, tc.B, tc.T)
				ref.p[j] = orig
				num[i] = (lp - lm) / (2 * h)
				numMax = math.Max(numMax, math.Abs(num[i]))
			}
			for i, n := range num {
				g := float64(m.Grads[v.Offset+i])
				numNorm += n * n
				errNorm += (g - n) * (g - n)
				if math.Abs(g-n) > 1e-4*math.Abs(n)+2e-5*numMax+1e-8 {
					t.Errorf("B=%d T=%d block %d %s[%d]: gradient %g, numerical %g", tc.B, tc.T, tc.block, v.Name, i, g, n)
					break
				}
			}
			if rel := math.Sqrt(errNorm / numNorm); numNorm > 0 && rel > 1e-4 {
				t.Errorf("B=%d T=%d block %d %s: relative gradient error %g", tc.B, tc.T, tc.block, v.Name, rel)
			}
			// Every tensor but the key bias (to which softmax is invariant)
			// and wpe rows beyond T must see a gradient, or the check
			// would prove nothing for it.
			if numMax < 1e-4 && !strings.HasSuffix(v.Name, "c_attn.bias") {
				t.Errorf("B=%d T=%d %s: numerical gradient is ~0 (%g); the check is vacuous", tc.B, tc.T, v.Name, numMax)
			}
		}
	}
}

// TestBackwardAccumulates checks that Backward adds to Grads (twice the
// gradient after two calls) and that ZeroGrad clears it.
func TestBackwardAccumulates(t *testing.T) {
	e := newEngine(t)
	m := newModel(t, tinyConfig, e)
	m.Init(3)
	tokens := randomTokens(16, tinyConfig.Vocab, 1)
	if _, err := m.Forward(tokens, tokens, 2, 8); err != nil {
		t.Fatal(err)
	}
	m.ZeroGrad()
	if err := m.Backward(); err != nil {
		t.Fatal(err)
	}
	once := append([]float32(nil), m.Grads...)
	if err := m.Backward(); err != nil {
		t.Fatal(err)
	}
	// The second pass adds into the first inside each kernel's chain, so
	// twice the gradient is exact only up to rounding.
	for i, g := range m.Grads {
		if d := math.Abs(float64(g) - 2*float64(once[i])); d > 1e-5*math.Abs(float64(once[i]))+1e-9 {
			t.Fatalf("grad %d: %v after two Backwards, %v after one", i, g, once[i])
		}
	}
	m.ZeroGrad()
	for i, g := range m.Grads {
		if g != 0 {
			t.Fatalf("grad %d = %v after ZeroGrad", i, g)
		}
	}
}

// detConfig has odd sizes so that kernels hit their edge cases.
var detConfig = Config{Vocab: 61, Context: 24, Layers: 2, Heads: 3, Width: 48}

// stepHash runs Forward, Backward and one AdamW step and hashes the loss,
// logits, gradients and updated parameters.
func stepHash(t *testing.T, e *tensor.Engine, block int) [32]byte {
	t.Helper()
	m := newModel(t, detConfig, e)
	m.attnBlock = block
	m.Init(11)
	B, T := 3, 19
	tokens := randomTokens(B*T, detConfig.Vocab, 12)
	targets := randomTokens(B*T, detConfig.Vocab, 13)
	loss, err := m.Forward(tokens, targets, B, T)
	if err != nil {
		t.Fatal(err)
	}
	m.ZeroGrad()
	if err := m.Backward(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	binary.Write(h, binary.LittleEndian, loss)
	binary.Write(h, binary.LittleEndian, m.Logits())
	binary.Write(h, binary.LittleEndian, m.Grads)
	mom, vel := make([]float32, len(m.Params)), make([]float32, len(m.Params))
	e.AdamW(m.Params, m.Grads, mom, vel, 1e-3, 0.9, 0.95, 1e-8, 0.1, 1)
	binary.Write(h, binary.LittleEndian, m.Params)
	var out [32]byte
	h.Sum(out[:0])
	return out
}

func TestDeterminism(t *testing.T) {
	for _, block := range []int{attnBlock, 4} {
		testDeterminism(t, block)
	}
}

func testDeterminism(t *testing.T, block int) {
	var want [32]byte
	first := true
	for _, isa := range []tensor.ISA{tensor.Generic, tensor.AVX2, tensor.AVX512} {
		if _, err := tensor.NewKernels(isa); err != nil {
			t.Logf("skipping %v: %v", isa, err)
			continue
		}
		for _, threads := range []int{1, 2, 3} {
			got := stepHash(t, newEngine(t, tensor.WithISA(isa), tensor.WithThreads(threads)), block)
			if first {
				want, first = got, false
			} else if got != want {
				t.Errorf("attention block %d, %v with %d threads: training step hash %x, want %x", block, isa, threads, got[:8], want[:8])
			}
		}
	}
}

// TestStepGolden pins the bits of a whole training step (loss, logits,
// gradients, one AdamW update) so that a change of numerics anywhere, or a
// platform that computes differently, shows up. Update the constant only for
// a deliberate change of arithmetic: it changes every network's state.
func TestStepGolden(t *testing.T) {
	got := stepHash(t, newEngine(t, tensor.WithISA(tensor.Generic)), attnBlock)
	const want = "557d08a2172a2e6a8b0e3cc29ff072fb678a1792e2289c413bbc4c34d94c3758"
	if h := hex.EncodeToString(got[:]); h != want {
		t.Errorf("training step hash %s, want %s", h, want)
	}
}

func TestInit(t *testing.T) {
	e := newEngine(t)
	cfg := Config{Vocab: 64, Context: 32, Layers: 3, Heads: 2, Width: 32}
	a, b := newModel(t, cfg, e), newModel(t, cfg, e)
	a.Init(5)
	b.Init(5)
	if a.StateHash() != b.StateHash() {
		t.Fatal("Init is not deterministic")
	}
	b.Init(6)
	if a.StateHash() == b.StateHash() {
		t.Fatal("Init ignores its seed")
	}
	for _, v := range a.Views() {
		x := a.Params[v.Offset : v.Offset+v.Len]
		var s, s2 float64
		for _, f := range x {
			s += float64(f)
			s2 += float64(f) * float64(f)
		}
		mean, std := s/float64(len(x)), math.Sqrt(s2/float64(len(x)))
		switch {
		case strings.Contains(v.Name, "ln_") && strings.HasSuffix(v.Name, "weight"):
			if mean != 1 || std != 1 {
				t.Errorf("%s: mean %v rms %v, want all ones", v.Name, mean, std)
			}
		case strings.HasSuffix(v.Name, "bias"):
			if s2 != 0 {
				t.Errorf("%s: not zero", v.Name)
			}
		default:
			want := 0.02
			if strings.HasSuffix(v.Name, "c_proj.weight") {
				want = 0.02 / math.Sqrt(6)
			}
			if math.Abs(std-want) > 0.1*want || math.Abs(mean) > 0.1*want {
				t.Errorf("%s: mean %v std %v, want N(0, %v)", v.Name, mean, std, want)
			}
		}
	}
}

// TestInitGolden pins the bits of Init, which must be the same on every
// machine and Go version (the network's initial weights come from it).
func TestInitGolden(t *testing.T) {
	m := newModel(t, tinyConfig, newEngine(t))
	m.Init(42)
	h := m.StateHash()
	const want = "3d92be108059c11de486c0ad505b7d884423e3e080be1000bd33b66de91e7216"
	if got := hex.EncodeToString(h[:]); got != want {
		t.Errorf("StateHash after Init(42) = %s, want %s", got, want)
	}
}

func TestDetMath(t *testing.T) {
	for x := 1e-300; x < 1e300; x *= 1.7 {
		if d := math.Abs(detLog(x) - math.Log(x)); d > 1e-15*math.Max(1, math.Abs(math.Log(x))) {
			t.Fatalf("detLog(%g) = %v, math.Log %v", x, detLog(x), math.Log(x))
		}
	}
	for x := -745.0; x <= 0; x += 0.0137 {
		// The absolute slack is for subnormal results, which some math.Exp
		// ports flush to zero.
		if d := math.Abs(detExp(x) - math.Exp(x)); d > 4e-16*math.Exp(x)+1e-320 {
			t.Fatalf("detExp(%g) = %v, math.Exp %v", x, detExp(x), math.Exp(x))
		}
	}
	if detExp(0) != 1 || detExp(-1000) != 0 {
		t.Fatal("detExp edge values")
	}
}

func toF64(x []float32) []float64 {
	out := make([]float64, len(x))
	for i, v := range x {
		out[i] = float64(v)
	}
	return out
}

func maxDiff(a []float32, b []float64) float64 {
	if len(a) != len(b) {
		return math.Inf(1)
	}
	var d float64
	for i := range a {
		d = math.Max(d, math.Abs(float64(a[i])-b[i]))
	}
	return d
}
