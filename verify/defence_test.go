package verify

import (
	"math"
	"testing"

	"github.com/trinity-net/trinity/optimizer"
)

// compressedOf compresses d for round 1 with a fresh error buffer.
func compressedOf(t *testing.T, ch *optimizer.Chunking, d []float32) *optimizer.Compressed {
	t.Helper()
	s, err := optimizer.NewSparseLoCo(ch)
	if err != nil {
		t.Fatal(err)
	}
	c := ch.NewCompressed()
	if err := s.Compress(1, d, c); err != nil {
		t.Fatal(err)
	}
	return c
}

func denseCosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

func TestCosine(t *testing.T) {
	ch, err := optimizer.NewChunking(tiny, 256, 32)
	if err != nil {
		t.Fatal(err)
	}
	mk := func(seed uint64) []float32 {
		d := make([]float32, ch.NumParams)
		x := seed
		for i := range d {
			x = x*6364136223846793005 + 1442695040888963407
			d[i] = float32(int64(x>>33)%2001-1000) / 1000
		}
		return d
	}
	a, b := compressedOf(t, ch, mk(1)), compressedOf(t, ch, mk(2))
	scaled := compressedOf(t, ch, mk(1))
	for i := range scaled.Lo {
		scaled.Lo[i] *= 1.25
		scaled.Hi[i] *= 1.25
	}
	neg := compressedOf(t, ch, mk(1))
	for j := range neg.Codes {
		neg.Codes[j] ^= 1
	}
	da, db := make([]float32, ch.NumParams), make([]float32, ch.NumParams)
	ch.Decompress(a, da)
	ch.Decompress(b, db)
	zero := ch.NewCompressed()
	for i := range zero.Idx {
		zero.Idx[i] = uint16(i % ch.K) // valid: increasing within each chunk
	}
	tests := []struct {
		name string
		x, y *optimizer.Compressed
		want float64
	}{
		{"itself", a, a, 1},
		{"a scaled copy", a, scaled, 1},
		{"its negation", a, neg, -1},
		{"an independent vector (as dense)", a, b, denseCosine(da, db)},
		{"a zero vector", a, zero, 0},
	}
	for _, tc := range tests {
		got := Cosine(ch, tc.x, tc.y)
		if math.Abs(got-tc.want) > 1e-6 {
			t.Errorf("%s: cosine %v, want %v", tc.name, got, tc.want)
		}
	}
	if c := Cosine(ch, a, b); math.Abs(c) > 0.2 {
		t.Errorf("independent random vectors have cosine %v", c)
	}
}

func TestConsensus(t *testing.T) {
	tests := []struct {
		name  string
		votes []Vote
		want  float64
	}{
		{"no votes", nil, 0},
		{"one validator", []Vote{{0.3, 5}}, 0.3},
		{"honest majority keeps a good score", []Vote{{0.3, 100}, {0.28, 99}, {0, 98}}, 0.28},
		{"a dishonest validator cannot pass a bad one", []Vote{{0, 100}, {0, 99}, {1, 98}}, 0},
		{"a dishonest lead-stake validator cannot either", []Vote{{1, 100}, {0, 99}, {0, 98}}, 0},
		{"a boosted score moves it no further than the median", []Vote{{0.2, 100}, {0.25, 99}, {9, 98}}, 0.25},
		{"stake decides", []Vote{{1, 10}, {0, 1}, {0, 1}}, 1},
		{"exactly half is not a majority", []Vote{{1, 1}, {0, 1}}, 0},
		{"zero stake does not vote", []Vote{{1, 0}, {0.5, 1}}, 0.5},
		{"non-finite counts as 0", []Vote{{math.NaN(), 5}, {math.Inf(1), 5}, {0.1, 1}}, 0},
	}
	for _, tc := range tests {
		if got := Consensus(tc.votes); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestStanding(t *testing.T) {
	p := DefaultPolicy(0.5)
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	var s Standing
	s.Record(0, Passed, 1, p)
	if s.Smoothed != 0.5 || s.Banned(1) {
		t.Fatalf("after a pass: %+v", s)
	}
	s.Record(1, Missed, 1, p) // a miss earns nothing, whatever the score
	if s.Smoothed != 0.25 || s.Banned(2) || s.Strikes != 0 {
		t.Fatalf("after a miss: %+v", s)
	}
	s.Record(2, Failed, 1, p)
	if s.Smoothed != 0.125 || !s.Banned(3) || !s.Banned(4) || s.Banned(5) {
		t.Fatalf("first strike bans rounds 3-4: %+v", s)
	}
	s.Record(5, Failed, 0, p)
	if !s.Banned(9) || s.Banned(10) {
		t.Fatalf("second strike bans 4 rounds (6-9): %+v", s)
	}
	for r := range uint64(p.Forgive) {
		s.Record(10+r, Passed, 1, p)
	}
	if s.Strikes != 1 {
		t.Fatalf("%d passes should forgive one strike: %+v", p.Forgive, s)
	}
	for r := range uint64(40) {
		s.Record(100+r, Failed, 0, p)
	}
	if s.BannedUntil != 140+uint64(p.MaxBan) {
		t.Fatalf("bans are capped at %d rounds: %+v", p.MaxBan, s)
	}
	// Rejections: one is forgiven, a second in a row (misses between do
	// not count) is a strike; a pass resets the count.
	var q Standing
	q.Record(1, Rejected, 0, p)
	q.Record(2, Missed, 0, p)
	if q.Strikes != 0 || q.Banned(3) {
		t.Fatalf("one rejection banned: %+v", q)
	}
	q.Record(3, Rejected, 0, p)
	if q.Strikes != 1 || !q.Banned(4) {
		t.Fatalf("a second rejection in a row is a strike: %+v", q)
	}
	q.Record(6, Rejected, 0, p)
	q.Record(7, Passed, 1, p)
	q.Record(8, Rejected, 0, p)
	if q.Strikes != 1 {
		t.Fatalf("a pass between rejections resets them: %+v", q)
	}
	for _, bad := range []Policy{{Alpha: 1, BanRounds: 1, MaxBan: 1, Forgive: 1}, {Alpha: 0.5, BanRounds: 3, MaxBan: 2, Forgive: 1}, {Alpha: 0.5, Forgive: 0}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

func TestScreenRound(t *testing.T) {
	ch, err := optimizer.NewChunking(tiny, 256, 32)
	if err != nil {
		t.Fatal(err)
	}
	vec := func(seed uint64, scale float32) *optimizer.Compressed {
		d := make([]float32, ch.NumParams)
		x := seed
		for i := range d {
			x = x*6364136223846793005 + 1442695040888963407
			d[i] = scale * float32(int64(x>>33)%2001-1000) / 1000
		}
		return compressedOf(t, ch, d)
	}
	norm := func(c *optimizer.Compressed) float64 { return math.Sqrt(ch.SquaredNorm(c)) }
	cand := func(order int, c *optimizer.Compressed, score float64) Candidate {
		return Candidate{Order: order, C: c, Norm: norm(c), Score: score, OK: score > 0}
	}
	a, b, c, big := vec(1, 1), vec(2, 1), vec(3, 1), vec(4, 100)
	scaled := vec(1, 1.25) // a, scaled: the same direction
	tests := []struct {
		name  string
		cands []Candidate
		want  []Outcome // Passed for no flag
	}{
		{"honest round", []Candidate{cand(0, a, 0.3), cand(1, b, 0.2), cand(2, c, 0.25)}, []Outcome{Passed, Passed, Passed}},
		{"the later of a copy pair", []Candidate{cand(0, scaled, 0.3), cand(1, b, 0.2), cand(2, a, 0.3)}, []Outcome{Passed, Passed, Failed}},
		{"a copy pair arriving together", []Candidate{cand(1, a, 0.3), cand(1, scaled, 0.3), cand(0, b, 0.2)}, []Outcome{Failed, Failed, Passed}},
		{"a norm outlier", []Candidate{cand(0, a, 0.3), cand(1, b, 0.2), cand(2, c, 0.25), cand(3, big, 0.1)}, []Outcome{Passed, Passed, Passed, Failed}},
		{"copies of an outlier do not move the median", []Candidate{cand(0, a, 0.3), cand(1, b, 0.2), cand(2, big, 0.25), cand(3, vec(4, 125), 0.2), cand(4, vec(4, 80), 0.2)},
			[]Outcome{Passed, Passed, Failed, Failed, Failed}},
		{"under the bar", []Candidate{cand(0, a, 0.3), cand(1, b, 0.2), cand(2, c, 0.25), cand(3, vec(5, 1), 0.01)}, []Outcome{Passed, Passed, Passed, Rejected}},
		{"too few for the medians", []Candidate{cand(0, a, 0.3), cand(1, big, 0.001)}, []Outcome{Passed, Passed}},
		{"undecoded blobs are not compared", []Candidate{{Order: 0}, {Order: 1}, cand(2, a, 0.3)}, []Outcome{Passed, Passed, Passed}},
	}
	for _, tc := range tests {
		got := ScreenRound(ch, tc.cands, DefaultScreen())
		for i, f := range got {
			o := Passed
			if f.Reason != "" {
				o = f.Outcome
			}
			if o != tc.want[i] {
				t.Errorf("%s: candidate %d: %d (%q), want %d", tc.name, i, o, f.Reason, tc.want[i])
			}
		}
	}
}
