package grail

import (
	"slices"
	"testing"
)

func TestProjection(t *testing.T) {
	seed := beaconOf(1)
	st := newStream(seed, 0, 0)
	const C = 4096
	r, r2 := make([]int8, C), make([]int8, C)
	projection(seed, 5, r, st)
	projection(seed, 5, r2, newStream(beaconOf(9), 0, 0))
	if !slices.Equal(r, r2) {
		t.Fatal("projection depends on the stream's previous state")
	}
	projection(seed, 6, r2, st)
	if slices.Equal(r, r2) {
		t.Fatal("positions 5 and 6 share a projection")
	}
	var counts [256]int
	for _, v := range r {
		if v < -projMax || v > projMax {
			t.Fatalf("projection value %d out of range", v)
		}
		counts[int(v)+128]++
	}
	// 4096 draws over 255 values: about 16 each; a value never drawn or
	// drawn 3x too often would mean a broken mapping.
	for v := -projMax; v <= projMax; v++ {
		if c := counts[v+128]; c == 0 || c > 48 {
			t.Fatalf("value %d drawn %d times in %d", v, c, C)
		}
	}
}

func TestUniform(t *testing.T) {
	seed := beaconOf(2)
	st := newStream(seed, 0, 0)
	var sum float64
	const n = 4000
	for i := range n {
		u := uniform(seed, i, st)
		if u < 0 || u >= 1 {
			t.Fatalf("u = %v out of [0,1)", u)
		}
		sum += u
	}
	if m := sum / n; m < 0.47 || m > 0.53 {
		t.Fatalf("mean draw %v, want about 0.5", m)
	}
	if uniform(seed, 3, st) == uniform(beaconOf(3), 3, st) {
		t.Fatal("draw does not depend on the seed")
	}
}

func TestChallengePositions(t *testing.T) {
	key := challengeKey([]byte("later beacon"), beaconOf(7))
	tests := []struct{ n, k, want int }{
		{10, 32, 10}, {32, 32, 32}, {100, 32, 32}, {1 << 16, 32, 32}, {50, 0, 50}, {1, 1, 1},
	}
	for _, tc := range tests {
		pos := challengePositions(key, tc.n, tc.k)
		if len(pos) != tc.want {
			t.Fatalf("n=%d k=%d: %d positions, want %d", tc.n, tc.k, len(pos), tc.want)
		}
		for i, p := range pos {
			if p < 0 || p >= tc.n || (i > 0 && p <= pos[i-1]) {
				t.Fatalf("n=%d k=%d: positions %v not sorted, distinct and in range", tc.n, tc.k, pos)
			}
		}
		if !slices.Equal(pos, challengePositions(key, tc.n, tc.k)) {
			t.Fatal("challenge is not deterministic")
		}
	}
	if slices.Equal(challengePositions(key, 1000, 32), challengePositions(challengeKey([]byte("other"), beaconOf(7)), 1000, 32)) {
		t.Fatal("challenge does not depend on the randomness")
	}
	if slices.Equal(challengePositions(key, 1000, 32), challengePositions(challengeKey([]byte("later beacon"), beaconOf(8)), 1000, 32)) {
		t.Fatal("challenge does not depend on the commitment")
	}
	// Every position is challenged about equally often.
	const n, k, trials = 64, 8, 4000
	var hits [n]int
	for i := range trials {
		for _, p := range challengePositions(challengeKey([]byte{byte(i), byte(i >> 8)}, beaconOf(1)), n, k) {
			hits[p]++
		}
	}
	for p, h := range hits {
		if h < trials*k/n/2 || h > trials*k/n*2 {
			t.Fatalf("position %d challenged %d times, want about %d", p, h, trials*k/n)
		}
	}
}

func TestStreamBelow(t *testing.T) {
	st := newStream(beaconOf(4), 0, 0)
	var counts [3]int
	for range 3000 {
		counts[st.below(3)]++
	}
	for v, c := range counts {
		if c < 800 || c > 1200 {
			t.Fatalf("below(3) gave %d %d times in 3000", v, c)
		}
	}
}
