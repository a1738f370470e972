package optimizer

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
)

func TestDCTOrthonormal(t *testing.T) {
	for _, n := range []int{1, 3, 64} {
		d := dctMatrix(n)
		for i := range n {
			for j := range n {
				var s float64
				for k := range n {
					s += float64(d[i*n+k]) * float64(d[j*n+k])
				}
				want := 0.0
				if i == j {
					want = 1
				}
				if math.Abs(s-want) > 1e-5 {
					t.Fatalf("n=%d: (D D^T)[%d][%d] = %g", n, i, j, s)
				}
			}
		}
	}
}

func demoViews() []model.View {
	return []model.View{
		{Name: "w", Shape: []int{128, 192}, Offset: 0, Len: 128 * 192},
		{Name: "odd", Shape: []int{10, 21}, Offset: 128 * 192, Len: 210},
		{Name: "b", Shape: []int{100}, Offset: 128*192 + 210, Len: 100},
	}
}

func TestDeMoTransformRoundTrip(t *testing.T) {
	d, err := NewDeMo(DeMoConfig{LR: 1e-3, Beta: 0.9, K: 32, BlockDim: 64}, demoViews())
	if err != nil {
		t.Fatal(err)
	}
	e := testEngine(t)
	x := randVec(rand.New(rand.NewPCG(1, 1)), d.NumParams(), 1)
	y, tmp, back := make([]float32, len(x)), make([]float32, len(x)), make([]float32, len(x))
	d.forward(e, y, x, tmp)
	d.inverse(e, back, y, tmp)
	var ex, ey float64
	for i := range x {
		if math.Abs(float64(back[i]-x[i])) > 1e-4 {
			t.Fatalf("entry %d: %g -> %g", i, x[i], back[i])
		}
		ex += float64(x[i]) * float64(x[i])
		ey += float64(y[i]) * float64(y[i])
	}
	if math.Abs(ex-ey) > 1e-3*ex { // orthonormal: energy preserved
		t.Fatalf("energy %g -> %g", ex, ey)
	}
}

func TestDeMoCompressConserves(t *testing.T) {
	views := demoViews()
	d, err := NewDeMo(DeMoConfig{LR: 1e-3, Beta: 0.9, K: 16, BlockDim: 64}, views)
	if err != nil {
		t.Fatal(err)
	}
	e := testEngine(t)
	w := d.NewWorker()
	g := randVec(rand.New(rand.NewPCG(2, 2)), d.NumParams(), 1)
	msg, err := w.Compress(e, g)
	if err != nil {
		t.Fatal(err)
	}
	// What was sent plus what is left is the momentum (here: g).
	coef := make([]float32, d.NumParams())
	for j, p := range msg.Pos {
		coef[p] += msg.Val[j]
	}
	sent, tmp := make([]float32, len(coef)), make([]float32, len(coef))
	d.inverse(e, sent, coef, tmp)
	for i := range g {
		if math.Abs(float64(sent[i]+w.M[i]-g[i])) > 1e-4 {
			t.Fatalf("entry %d: sent %g + left %g != %g", i, sent[i], w.M[i], g[i])
		}
	}
	// Sign step moves every coordinate with a non-zero update by lr.
	theta := make([]float32, d.NumParams())
	upd := make([]float32, d.NumParams())
	if err := d.Step(e, theta, []*DeMoMessage{msg}, coef, tmp, upd); err != nil {
		t.Fatal(err)
	}
	for i, v := range upd {
		if v != 0 && math.Abs(math.Abs(float64(theta[i]))-1e-3) > 1e-9 {
			t.Fatalf("entry %d: theta %g after a sign step", i, theta[i])
		}
	}
	if d.BytesPerMessage() <= 0 || d.BytesPerMessage() >= 4*d.NumParams() {
		t.Fatalf("bytes per message %d", d.BytesPerMessage())
	}
	bad := &DeMoMessage{Pos: []int32{-1}, Val: []float32{1}}
	if d.Step(e, theta, []*DeMoMessage{bad}, coef, tmp, upd) == nil {
		t.Error("malformed message accepted")
	}
}
