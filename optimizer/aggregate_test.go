package optimizer

import (
	"bytes"
	"crypto/sha256"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"unsafe"
)

func f32hash(v []float32) [32]byte {
	return sha256.Sum256(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(v))), 4*len(v)))
}

func TestAggregateReproducible(t *testing.T) {
	ch := testChunking(t, []int{30000, 500, 8192}, 4096, 64)
	const R = 5
	blobs := make([][]byte, R)
	for i := range blobs {
		blobs[i], _ = compressedBlob(t, ch, uint64(100+i), 4)
	}
	out := make([]float32, ch.NumParams)
	if _, err := ch.Aggregate(out, blobs, 4); err != nil {
		t.Fatal(err)
	}
	want := f32hash(out)
	r := rand.New(rand.NewPCG(1, 1))
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	for trial := range 8 {
		runtime.GOMAXPROCS(1 + trial%3)
		shuffled := slices.Clone(blobs)
		r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		got := make([]float32, ch.NumParams)
		if _, err := ch.Aggregate(got, shuffled, 4, WithAggregateWorkers(1+trial%4)); err != nil {
			t.Fatal(err)
		}
		if f32hash(got) != want {
			t.Fatalf("trial %d: aggregate bits differ", trial)
		}
	}
}

func TestAggregateIsMean(t *testing.T) {
	ch := testChunking(t, []int{9000, 100}, 1024, 32)
	const R = 4
	blobs := make([][]byte, R)
	ref := make([]float64, ch.NumParams)
	dec := make([]float32, ch.NumParams)
	for i := range blobs {
		var c *Compressed
		blobs[i], c = compressedBlob(t, ch, uint64(200+i), 1)
		ch.Decompress(c, dec)
		for j, v := range dec {
			ref[j] += float64(v) / R
		}
	}
	out := make([]float32, ch.NumParams)
	info, err := ch.Aggregate(out, blobs, 1, WithNormClip(false))
	if err != nil {
		t.Fatal(err)
	}
	if info.Contributions != R {
		t.Fatalf("info %+v", info)
	}
	for j := range out {
		if math.Abs(float64(out[j])-ref[j]) > 1e-6*math.Abs(ref[j])+1e-12 {
			t.Fatalf("entry %d: %g, want %g", j, out[j], ref[j])
		}
	}
}

func TestAggregateMedianClip(t *testing.T) {
	ch := testChunking(t, []int{9000}, 1024, 32)
	blobs := make([][]byte, 3)
	var cs []*Compressed
	for i := range blobs {
		var c *Compressed
		blobs[i], c = compressedBlob(t, ch, uint64(300+i), 2)
		cs = append(cs, c)
	}
	// Blow up one contribution by 1000x.
	big := cs[2]
	for i := range big.Lo {
		big.Lo[i] *= 1000
		big.Hi[i] *= 1000
	}
	var err error
	if blobs[2], err = ch.Encode(nil, big); err != nil {
		t.Fatal(err)
	}
	out := make([]float32, ch.NumParams)
	info, err := ch.Aggregate(out, blobs, 2)
	if err != nil {
		t.Fatal(err)
	}
	clipped := 0
	for i, n := range info.Norms {
		w := float64(info.Weights[i])
		if n > info.MedianNorm {
			clipped++
			if math.Abs(n*w-info.MedianNorm) > 1e-5*info.MedianNorm {
				t.Fatalf("clipped norm %g, median %g", n*w, info.MedianNorm)
			}
		} else if w != 1 {
			t.Fatalf("weight %g on a norm below the median", w)
		}
	}
	if clipped != 1 {
		t.Fatalf("%d contributions clipped, want 1", clipped)
	}
	var ss float64
	for _, v := range out {
		ss += float64(v) * float64(v)
	}
	if math.Sqrt(ss) > info.MedianNorm*1.0001 {
		t.Fatalf("aggregate norm %g above the median norm %g", math.Sqrt(ss), info.MedianNorm)
	}
}

func TestAggregateRejects(t *testing.T) {
	ch := testChunking(t, []int{9000}, 1024, 32)
	good, _ := compressedBlob(t, ch, 1, 5)
	other, _ := compressedBlob(t, ch, 2, 6)
	out := make([]float32, ch.NumParams)
	for name, blobs := range map[string][][]byte{
		"wrong round": {good, other},
		"malformed":   {good, good[:100]},
		"none":        nil,
	} {
		if _, err := ch.Aggregate(out, blobs, 5); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ch.Aggregate(out[:10], [][]byte{good}, 5); err == nil {
		t.Error("short output accepted")
	}
}

func TestOuterStepNoFusion(t *testing.T) {
	theta := []float32{1, 0.1, -3}
	upd := []float32{0.3, 1e-8, 7}
	lr := float32(0.7)
	want := make([]float32, 3)
	for i := range want {
		p := float32(lr * upd[i])
		want[i] = theta[i] - p
	}
	if err := OuterStep(theta, upd, lr); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(theta, want) {
		t.Fatalf("got %v, want %v", theta, want)
	}
	if OuterStep(theta, upd[:2], lr) == nil {
		t.Fatal("length mismatch accepted")
	}
}

func TestAggregateCompressedMatches(t *testing.T) {
	ch := testChunking(t, []int{9000, 77}, 1024, 32)
	blobs := make([][]byte, 3)
	for i := range blobs {
		blobs[i], _ = compressedBlob(t, ch, uint64(400+i), 8)
	}
	want := make([]float32, ch.NumParams)
	info, err := ch.Aggregate(want, blobs, 8)
	if err != nil {
		t.Fatal(err)
	}
	sorted := slices.Clone(blobs)
	slices.SortFunc(sorted, func(a, b []byte) int {
		ha, hb := sha256.Sum256(a), sha256.Sum256(b)
		return bytes.Compare(ha[:], hb[:])
	})
	cs := make([]*Compressed, len(sorted))
	for i, b := range sorted {
		cs[i] = ch.NewCompressed()
		if err := ch.Decode(b, cs[i]); err != nil {
			t.Fatal(err)
		}
	}
	got := make([]float32, ch.NumParams)
	if err := ch.AggregateCompressed(got, cs, info.Weights, 2); err != nil {
		t.Fatal(err)
	}
	if f32hash(got) != f32hash(want) {
		t.Fatal("AggregateCompressed differs from Aggregate")
	}
	cs[0].Idx[0], cs[0].Idx[1] = cs[0].Idx[1], cs[0].Idx[0]
	if ch.AggregateCompressed(got, cs, info.Weights, 1) == nil {
		t.Fatal("invalid contribution accepted")
	}
}
