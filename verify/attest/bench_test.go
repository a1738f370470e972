package attest

import (
	"context"
	"fmt"
	"testing"
	"time"
)

var benchSizes = []int{512, 1024, 2048}

// exactProduct returns the challenge matrices of nonce as int8 and their
// product computed by the engine, and the best time of three multiplies.
func exactProduct(b *testing.B, n int) (a8, b8 []int8, c []int32, gemm time.Duration) {
	e := newEngine(b)
	nonce := [32]byte{byte(n), 42}
	af, bf, cf := make([]float32, n*n), make([]float32, n*n), make([]float32, n*n)
	genMatrices(e, nonce, n, af, bf)
	gemm = time.Hour
	for range 3 {
		t := time.Now()
		e.Gemm(false, false, n, n, n, af, n, bf, n, cf, n, false)
		gemm = min(gemm, time.Since(t))
	}
	c = make([]int32, n*n)
	for i, v := range cf {
		c[i] = int32(v)
	}
	a8, b8 = make([]int8, n*n), make([]int8, n*n)
	genMatrices(e, nonce, n, a8, b8)
	return a8, b8, c, gemm
}

// BenchmarkFreivalds times the check itself (one 64-bit vector, 2^-47 for
// n <= 2048, including drawing the vector) against the multiply it checks:
// the ratio should grow about linearly in n (O(n^3) / O(n^2)).
func BenchmarkFreivalds(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			a8, b8, c, gemm := exactProduct(b, n)
			e := newEngine(b)
			reps := repetitions(n, DefaultRBits, DefaultSecurityBits)
			seed := [32]byte{1}
			b.ResetTimer()
			for b.Loop() {
				seed[1]++
				if !freivalds(e, a8, b8, c, n, secretVectors(seed, n, reps, DefaultRBits)) {
					b.Fatal("honest product rejected")
				}
			}
			check := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(check.Microseconds())/1e3, "check-ms")
			b.ReportMetric(float64(gemm.Microseconds())/1e3, "multiply-ms")
			b.ReportMetric(2*float64(n)*float64(n)*float64(n)/gemm.Seconds()/1e9, "multiply-GFLOP/s")
			b.ReportMetric(gemm.Seconds()/check.Seconds(), "multiply/check")
		})
	}
}

// BenchmarkVerifyFull times everything the verifier does in full mode after
// receiving the openings: generate A and B, range-check C, rebuild the
// Merkle root, Freivalds. It reports the bytes the openings take.
func BenchmarkVerifyFull(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			e := newEngine(b)
			p := newProver(b, e, "prover")
			v := newVerifier(b, "verifier", WithSizes(n, n), WithVerifierEngine(e))
			ctx := context.Background()
			ch, err := v.Challenge(p.PublicKey(), 1)
			if err != nil {
				b.Fatal(err)
			}
			t0 := time.Now()
			cm, err := p.Commit(ctx, ch)
			if err != nil {
				b.Fatal(err)
			}
			prove := time.Since(t0)
			if err := v.Committed(cm); err != nil {
				b.Fatal(err)
			}
			reqs, err := v.Requests(ch.Nonce)
			if err != nil {
				b.Fatal(err)
			}
			var ops []*Opening
			wire := 0
			for _, q := range reqs {
				op, err := p.Open(ctx, q)
				if err != nil {
					b.Fatal(err)
				}
				wire += len(mustMarshal(b, op))
				ops = append(ops, op)
			}
			v.mu.Lock()
			j := v.pending[ch.Nonce]
			v.mu.Unlock()
			b.ResetTimer()
			for b.Loop() {
				if err := v.check(ctx, j, ops); err != nil {
					b.Fatal(err)
				}
			}
			verify := b.Elapsed() / time.Duration(b.N)
			b.ReportMetric(float64(wire)/1e6, "opening-MB")
			b.ReportMetric(float64(wire)/float64(n*n), "bytes/entry")
			b.ReportMetric(float64(prove.Microseconds())/1e3, "prove-ms")
			b.ReportMetric(prove.Seconds()/verify.Seconds(), "prove/verify")
		})
	}
}

// BenchmarkProve times a prover's Commit (generate, multiply, convert,
// hash, sign): the work the attested rate is charged for, as GFLOP/s.
func BenchmarkProve(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			e := newEngine(b)
			p := newProver(b, e, "prover", WithMaxPending(1))
			v := newVerifier(b, "verifier", WithSizes(n, n))
			ctx := context.Background()
			for b.Loop() {
				b.StopTimer()
				ch, err := v.Challenge(p.PublicKey(), 1)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := p.Commit(ctx, ch); err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				v.drop(ch.Nonce)
				p.Release(ch.Nonce)
				b.StartTimer()
			}
			b.ReportMetric(2*float64(n)*float64(n)*float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
		})
	}
}

// BenchmarkSpotRow times one spot-row recomputation (O(n^2)).
func BenchmarkSpotRow(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			a8, b8, _, _ := exactProduct(b, n)
			row := make([]int32, n)
			i := 0
			for b.Loop() {
				productRow(a8, b8, n, i%n, row)
				i++
			}
		})
	}
}
