package attest

import (
	"fmt"
	"math"
	"testing"

	"github.com/trinity-net/trinity/compute/tensor"
)

// TestProductExact checks the premise of the exact check: the engine's
// float32 GEMM of challenge matrices equals the integer product, on every
// ISA this machine runs, and the worst-case sum at MaxN is exact.
func TestProductExact(t *testing.T) {
	for _, isa := range []tensor.ISA{tensor.Generic, tensor.AVX2, tensor.AVX512} {
		if !isa.Supported() {
			continue
		}
		e, err := tensor.New(tensor.WithISA(isa))
		if err != nil {
			continue // not built for this architecture
		}
		t.Run(isa.String(), func(t *testing.T) {
			defer e.Close()
			for _, n := range []int{MinN, 37, 100} {
				nonce := [32]byte{byte(n), 1}
				a := make([]float32, n*n)
				b := make([]float32, n*n)
				genMatrices(e, nonce, n, a, b)
				c := make([]float32, n*n)
				e.Gemm(false, false, n, n, n, a, n, b, n, c, n, false)
				ai := make([]int8, n*n)
				bi := make([]int8, n*n)
				genMatrices(nil, nonce, n, ai, bi)
				row := make([]int32, n)
				for i := range n {
					productRow(ai, bi, n, i, row)
					for j := range n {
						if float32(row[j]) != c[i*n+j] || float32(ai[i*n+j]) != a[i*n+j] {
							t.Fatalf("n=%d (%d,%d): GEMM %v, integer %d", n, i, j, c[i*n+j], row[j])
						}
					}
				}
			}
			// Worst case: K = MaxN terms of 49 each, and a running sum
			// that climbs to the bound and back.
			const m = 16
			a := make([]float32, MaxN)
			b := make([]float32, MaxN*m)
			for k := range a {
				a[k] = EntryMax
			}
			for k := range MaxN {
				for j := range m {
					b[k*m+j] = EntryMax
					if j%2 == 1 && k >= MaxN/2 {
						b[k*m+j] = -EntryMax
					}
				}
			}
			c := make([]float32, m)
			e.Gemm(false, false, 1, m, MaxN, a, MaxN, b, m, c, m, false)
			for j := range m {
				want := float32(EntryBound(MaxN))
				if j%2 == 1 {
					want = 0
				}
				if c[j] != want {
					t.Errorf("worst-case sum %d = %v, want %v", j, c[j], want)
				}
			}
		})
	}
	if EntryBound(MaxN) >= 1<<24 {
		t.Fatalf("EntryBound(MaxN) = %d is not exact in float32", EntryBound(MaxN))
	}
}

func TestGenMatrices(t *testing.T) {
	e := newEngine(t)
	n := 50
	nonce := [32]byte{7}
	a1, b1 := make([]int8, n*n), make([]int8, n*n)
	genMatrices(nil, nonce, n, a1, b1)
	a2, b2 := make([]float32, n*n), make([]float32, n*n)
	genMatrices(e, nonce, n, a2, b2)
	hist := map[int8]int{}
	for i := range a1 {
		if float32(a1[i]) != a2[i] || float32(b1[i]) != b2[i] {
			t.Fatalf("int8 and float32 generation differ at %d", i)
		}
		hist[a1[i]]++
	}
	for v := int8(-EntryMax); v <= EntryMax; v++ {
		if hist[v] == 0 {
			t.Errorf("value %d never drawn", v)
		}
	}
	if len(hist) != 2*EntryMax+1 {
		t.Errorf("values outside [-7, 7]: %v", hist)
	}
	a3, b3 := make([]int8, n*n), make([]int8, n*n)
	genMatrices(nil, [32]byte{8}, n, a3, b3)
	same := 0
	for i := range a1 {
		if a1[i] == a3[i] {
			same++
		}
	}
	if same > n*n/4 {
		t.Errorf("another nonce gives %d of %d equal entries", same, n*n)
	}
}

func TestMerkle(t *testing.T) {
	e := newEngine(t)
	for _, n := range []int{1, 2, 3, 5, 8, 13, 16, 17, 100} {
		c := make([]int32, n*n)
		for i := range c {
			c[i] = int32(i*7919%1000 - 500)
		}
		tr := buildTree(nil, c, n)
		if tr2 := buildTree(e, c, n); tr2.root() != tr.root() {
			t.Fatalf("n=%d: parallel root differs", n)
		}
		buf := make([]byte, 0, 5+4*n)
		for i := range n {
			p := tr.proof(i)
			if len(p) != proofLen(i, n) {
				t.Fatalf("n=%d i=%d: proof of %d, proofLen %d", n, i, len(p), proofLen(i, n))
			}
			if len(p) > maxProofLen {
				t.Fatalf("proof longer than maxProofLen")
			}
			leaf := leafHash(buf, i, c[i*n:(i+1)*n])
			if err := verifyProof(tr.root(), leaf, i, n, p); err != nil {
				t.Fatalf("n=%d i=%d: %v", n, i, err)
			}
			if n > 1 {
				if verifyProof(tr.root(), leaf, (i+1)%n, n, p) == nil && proofLen((i+1)%n, n) == len(p) {
					t.Fatalf("n=%d: row %d's proof accepted at %d", n, i, (i+1)%n)
				}
				bad := append([]int32(nil), c[i*n:(i+1)*n]...)
				bad[0]++
				if verifyProof(tr.root(), leafHash(buf, i, bad), i, n, p) == nil {
					t.Fatalf("n=%d i=%d: altered row accepted", n, i)
				}
			}
		}
	}
	if got := proofLen(MaxN-1, MaxN); got != maxProofLen {
		t.Errorf("proofLen at MaxN = %d, want %d", got, maxProofLen)
	}
}

func TestSoundnessBits(t *testing.T) {
	tests := []struct{ n, rBits, security, perRep, reps int }{
		{2048, 64, 40, 47, 1},
		{4096, 64, 40, 46, 1},
		{1024, 64, 40, 48, 1},
		{2048, 1, 40, 1, 40},
		{2048, 20, 40, 20, 2},
		{2048, 64, 80, 47, 2},
	}
	for _, tc := range tests {
		if got := perRepBits(tc.n, tc.rBits); got != tc.perRep {
			t.Errorf("perRepBits(%d, %d) = %d, want %d", tc.n, tc.rBits, got, tc.perRep)
		}
		if got := repetitions(tc.n, tc.rBits, tc.security); got != tc.reps {
			t.Errorf("repetitions(%d, %d, %d) = %d, want %d", tc.n, tc.rBits, tc.security, got, tc.reps)
		}
		if SoundnessBits(tc.n, tc.rBits, tc.security) < tc.security {
			t.Errorf("SoundnessBits below target for %+v", tc)
		}
	}
}

// TestFreivaldsOneWrongEntry measures how often a product with one wrong
// entry escapes a single check, over many trials, against the bound:
// exactly 2^-b for b-bit vector entries (1/2 for 0/1 vectors), and none
// seen with the default 64-bit entries (bound 2^-53 at this n).
func TestFreivaldsOneWrongEntry(t *testing.T) {
	const n = 24
	nonce := [32]byte{3}
	a, b := make([]int8, n*n), make([]int8, n*n)
	genMatrices(nil, nonce, n, a, b)
	c := make([]int32, n*n)
	for i := range n {
		productRow(a, b, n, i, c[i*n:(i+1)*n])
	}
	if !freivalds(nil, a, b, c, n, secretVectors([32]byte{1}, n, 1, 64)) {
		t.Fatal("honest product rejected")
	}
	tests := []struct {
		rBits  int
		trials int
	}{{1, 4000}, {2, 4000}, {3, 4000}, {64, 4000}}
	rng := newSeededRand(99)
	for _, tc := range tests {
		t.Run(fmt.Sprintf("b=%d", tc.rBits), func(t *testing.T) {
			escapes := 0
			for trial := range tc.trials {
				bad := append([]int32(nil), c...)
				var pick [16]byte
				rng.Read(pick[:])
				i := int(pick[0]) % (n * n)
				delta := int32(pick[1]%9) + 1 // a change of 1..9 (odd and even)
				if pick[2]&1 == 1 {
					delta = -delta
				}
				bad[i] += delta
				var seed [32]byte
				seed[0], seed[1], seed[2] = byte(trial), byte(trial>>8), byte(tc.rBits)
				if freivalds(nil, a, b, bad, n, secretVectors(seed, n, 1, tc.rBits)) {
					escapes++
				}
			}
			p := math.Ldexp(1, -perRepBits(n, tc.rBits))
			mean := p * float64(tc.trials)
			sd := math.Sqrt(float64(tc.trials) * p * (1 - p))
			t.Logf("b=%d: %d escapes in %d trials (bound %.3g per check, expected %.1f)", tc.rBits, escapes, tc.trials, p, mean)
			// Five standard deviations above the bound fails with
			// probability < 3e-7; with a seeded source the run is repeatable.
			if float64(escapes) > mean+5*sd+0.5 {
				t.Errorf("%d escapes, bound gives %.1f ± %.1f", escapes, mean, sd)
			}
			if tc.rBits <= 3 && float64(escapes) < mean-5*sd {
				t.Errorf("%d escapes: far fewer than the exact rate %.1f, the measurement is broken", escapes, mean)
			}
		})
	}
}

func TestFreivaldsRejectsAnyChange(t *testing.T) {
	// Several scattered errors, a transposed product, a zero product.
	const n = 40
	nonce := [32]byte{4}
	a, b := make([]int8, n*n), make([]int8, n*n)
	genMatrices(nil, nonce, n, a, b)
	c := make([]int32, n*n)
	for i := range n {
		productRow(a, b, n, i, c[i*n:(i+1)*n])
	}
	tr := make([]int32, n*n)
	for i := range n {
		for j := range n {
			tr[j*n+i] = c[i*n+j]
		}
	}
	many := append([]int32(nil), c...)
	for i := 0; i < len(many); i += 97 {
		many[i] += 1 << 10
	}
	for name, bad := range map[string][]int32{"transposed": tr, "zero": make([]int32, n*n), "scattered": many} {
		if freivalds(newEngine(t), a, b, bad, n, secretVectors([32]byte{5}, n, 1, 64)) {
			t.Errorf("%s product accepted", name)
		}
	}
	if inRange([]int32{int32(EntryBound(n) + 1)}, n) || !inRange([]int32{int32(-EntryBound(n))}, n) {
		t.Error("inRange bound wrong")
	}
}
