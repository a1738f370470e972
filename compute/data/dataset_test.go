package data

import (
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

func seq(n int) []int32 {
	out := make([]int32, n)
	for i := range out {
		out[i] = int32(i % 256)
	}
	return out
}

func TestNewDataset(t *testing.T) {
	ds, err := NewDataset(seq(1000), 256, 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Train) != 900 || len(ds.Val) != 100 || ds.Val[0] != int32(900%256) {
		t.Errorf("split %d/%d", len(ds.Train), len(ds.Val))
	}
	if cap(ds.Train) != len(ds.Train) {
		t.Error("appending to Train would overwrite Val")
	}
	for _, tc := range []struct {
		toks  []int32
		vocab int
		frac  float64
	}{
		{seq(1000), 256, 0}, {seq(1000), 256, 1}, {seq(1000), 256, -0.5}, {seq(1000), 100, 0.1},
		{seq(3), 256, 0.1}, {nil, 256, 0.1}, {[]int32{-1, 1, 2, 3}, 256, 0.5}, {seq(1000), 0, 0.1},
	} {
		if _, err := NewDataset(tc.toks, tc.vocab, tc.frac); err == nil {
			t.Errorf("NewDataset(%d tokens, vocab %d, %v) succeeded", len(tc.toks), tc.vocab, tc.frac)
		}
	}
}

// moduleRoot finds the directory holding go.mod above the test.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func TestShakespeare(t *testing.T) {
	path := filepath.Join(moduleRoot(t), "..", "shared", "data", "tinyshakespeare.txt")
	if _, err := os.Stat(path); err != nil {
		t.Skipf("tinyshakespeare not available at %s: %v", path, err)
	}
	text, err := LoadText(path)
	if err != nil {
		t.Fatal(err)
	}
	tk := ByteTokenizer{}
	ds, err := NewDataset(tk.Encode(string(text)), tk.Vocab(), 0.1)
	if err != nil {
		t.Fatal(err)
	}
	if len(ds.Train)+len(ds.Val) != len(text) || len(ds.Val) != len(text)/10 {
		t.Errorf("split %d + %d of %d", len(ds.Train), len(ds.Val), len(text))
	}
	vb, err := NewValidationBatcher(ds.Val, 4, 64, 8)
	if err != nil || vb.Len() != 8 {
		t.Fatalf("validation batcher: %v", err)
	}
	t.Logf("tinyshakespeare: %d bytes, %d train / %d val tokens, %d pages of 1024", len(text), len(ds.Train), len(ds.Val), NumPages(len(ds.Train), 1024))
}

func TestAssignPages(t *testing.T) {
	const numPages = 1000
	a := AssignPages(42, "12D3KooWpeerA", 7, numPages, 50)
	if !reflect.DeepEqual(a, AssignPages(42, "12D3KooWpeerA", 7, numPages, 50)) {
		t.Fatal("not deterministic")
	}
	// Pinned values: page assignment is consensus, so its derivation must
	// not change unnoticed.
	if want := []int{931, 382, 848, 849, 228}; !reflect.DeepEqual(a[:5], want) {
		t.Errorf("first pages %v, want %v", a[:5], want)
	}
	seen := map[int]bool{}
	for _, p := range a {
		if p < 0 || p >= numPages || seen[p] {
			t.Fatalf("page %d out of range or repeated in %v", p, a)
		}
		seen[p] = true
	}
	for _, other := range [][]int{
		AssignPages(43, "12D3KooWpeerA", 7, numPages, 50),
		AssignPages(42, "12D3KooWpeerB", 7, numPages, 50),
		AssignPages(42, "12D3KooWpeerA", 8, numPages, 50),
	} {
		common := 0
		for _, p := range other {
			if seen[p] {
				common++
			}
		}
		// Independent draws share 50*50/1000 = 2.5 pages on average.
		if common > 12 {
			t.Errorf("%d of 50 pages shared with a different key", common)
		}
	}
	// Spread: over many peers every page is drawn about equally often.
	counts := make([]int, 100)
	for i := range 2000 {
		for _, p := range AssignPages(1, "peer"+string(rune('a'+i%26))+string(rune('a'+i/26)), 3, 100, 10) {
			counts[p]++
		}
	}
	for p, c := range counts { // mean 200, sd about 13.4
		if c < 130 || c > 270 {
			t.Errorf("page %d drawn %d times, expected about 200", p, c)
		}
	}
	all := AssignPages(1, "p", 1, 10, 100)
	if len(all) != 10 {
		t.Errorf("count above numPages gave %d pages", len(all))
	}
	if AssignPages(1, "p", 1, 0, 5) != nil || AssignPages(1, "p", 1, 5, 0) != nil {
		t.Error("empty request gave pages")
	}
	// The length of the peer ID is part of the key, so IDs cannot be
	// shifted into the round.
	if reflect.DeepEqual(AssignPages(1, "ab", 0, 1000, 20), AssignPages(1, "a", 0, 1000, 20)) {
		t.Error("different peer IDs gave the same pages")
	}
}

func TestBatcher(t *testing.T) {
	toks := seq(10000)
	for i := range toks {
		toks[i] = int32(i) // identity so windows are easy to check
	}
	const P, B, T = 100, 3, 32
	pages := []int{5, 2, 90}
	b, err := NewBatcher(toks, P, pages, B, T)
	if err != nil {
		t.Fatal(err)
	}
	if b.Windows() != 9 || b.Len() != 3 {
		t.Fatalf("windows %d, batches %d", b.Windows(), b.Len())
	}
	starts := []int32{500, 532, 564, 200, 232, 264, 9000, 9032, 9064}
	for i := range 7 { // past one pass, to check the wrap-around
		in, tgt := b.Next()
		for r := range B {
			s := starts[(i*B+r)%len(starts)]
			for j := range T {
				if in[r*T+j] != s+int32(j) || tgt[r*T+j] != s+int32(j)+1 {
					t.Fatalf("batch %d row %d col %d: input %d target %d, window start %d", i, r, j, in[r*T+j], tgt[r*T+j], s)
				}
			}
		}
		in2, tgt2 := make([]int32, B*T), make([]int32, B*T)
		if err := b.Fill(i, in2, tgt2); err != nil || !reflect.DeepEqual(in, in2) || !reflect.DeepEqual(tgt, tgt2) {
			t.Fatalf("Fill(%d) differs from Next: %v", i, err)
		}
	}
	b.Reset()
	in, _ := b.Next()
	if in[0] != 500 {
		t.Error("Reset did not restart")
	}
	if allocs := testing.AllocsPerRun(100, func() { b.Next() }); allocs != 0 {
		t.Errorf("Next allocates %v times per batch", allocs)
	}
	if err := b.Fill(-1, make([]int32, B*T), make([]int32, B*T)); err == nil {
		t.Error("Fill(-1) succeeded")
	}
	if err := b.Fill(0, make([]int32, B*T-1), make([]int32, B*T)); err == nil {
		t.Error("Fill with a short buffer succeeded")
	}
	if err := b.Fill(1<<62, make([]int32, B*T), make([]int32, B*T)); err != nil {
		t.Errorf("Fill with a huge index: %v", err)
	}
	for _, tc := range []struct {
		pages     []int
		p, bb, tt int
	}{
		{[]int{99}, P, B, T}, {[]int{-1}, P, B, T}, {nil, P, B, T}, {[]int{0}, 16, B, T}, {[]int{0}, P, 0, T}, {[]int{0}, P, B, 0},
		{[]int{0}, P, 1 << 40, 1 << 40},
	} {
		if _, err := NewBatcher(toks, tc.p, tc.pages, tc.bb, tc.tt); err == nil {
			t.Errorf("NewBatcher(pages %v, P=%d, %dx%d) succeeded", tc.pages, tc.p, tc.bb, tc.tt)
		}
	}
	// The last page may read exactly one token past its end, no further.
	short := toks[:50*P+1]
	last := NumPages(len(short), P) - 1
	lb, err := NewBatcher(short, P, []int{last}, 1, P)
	if err != nil {
		t.Fatal(err)
	}
	_, tgt := lb.Next()
	if last != 49 || tgt[P-1] != int32(len(short)-1) {
		t.Errorf("last page %d, last target %d, want 49 and %d", last, tgt[P-1], len(short)-1)
	}
}

func TestValidationBatcher(t *testing.T) {
	val := seq(1000)
	for i := range val {
		val[i] = int32(i)
	}
	vb, err := NewValidationBatcher(val, 2, 64, 100)
	if err != nil {
		t.Fatal(err)
	}
	// (1000-1)/64 = 15 windows, 7 whole batches.
	if vb.Len() != 7 || vb.Windows() != 14 {
		t.Fatalf("%d batches, %d windows", vb.Len(), vb.Windows())
	}
	covered := map[int32]bool{}
	for range vb.Len() {
		in, _ := vb.Next()
		for _, tok := range in {
			if covered[tok] {
				t.Fatalf("token %d in two validation windows", tok)
			}
			covered[tok] = true
		}
	}
	if few, _ := NewValidationBatcher(val, 2, 64, 3); few.Len() != 3 {
		t.Errorf("maxBatches 3 gave %d batches", few.Len())
	}
	for _, tc := range []struct{ b, t, max int }{{16, 64, 1}, {2, 64, 0}, {0, 64, 1}, {2, 0, 1}} {
		if _, err := NewValidationBatcher(val, tc.b, tc.t, tc.max); err == nil {
			t.Errorf("NewValidationBatcher(%d, %d, %d) succeeded", tc.b, tc.t, tc.max)
		}
	}
}
