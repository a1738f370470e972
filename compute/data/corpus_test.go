package data

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strings"
	"testing"
)

// TestMachineMomentsByEnumeration checks the forward-propagation sums
// against brute-force enumeration of every path of a small automaton.
func TestMachineMomentsByEnumeration(t *testing.T) {
	type k int
	next := func(i k) *k { return &i }
	arcs := func(s k) []arcSpec[k] {
		switch s {
		case 0:
			return []arcSpec[k]{{"a", 3, next(1)}, {"bb", 1, next(2)}, {"c\n", 2, nil}}
		case 1:
			return []arcSpec[k]{{"x", 1, next(2)}, {"yy\n", 5, nil}}
		default:
			return []arcSpec[k]{{"z\n", 7, nil}, {"zz\n", 1, nil}, {"w\n", 2, nil}}
		}
	}
	m, err := buildMachine(k(0), arcs)
	if err != nil {
		t.Fatal(err)
	}
	var h, l, total float64
	var walk func(s int32, p float64, n int)
	walk = func(s int32, p float64, n int) {
		if s < 0 {
			h -= p * math.Log(p)
			l += p * float64(n)
			total += p
			return
		}
		st := m.states[s]
		for i := range st.labels {
			walk(st.next[i], p*st.prob[i], n+len(st.labels[i]))
		}
	}
	walk(m.start, 1, 0)
	if math.Abs(total-1) > 1e-12 || math.Abs(h-m.lineEntropy) > 1e-12 || math.Abs(l-m.meanLen) > 1e-12 {
		t.Errorf("enumeration: H=%v len=%v total=%v; machine: H=%v len=%v", h, l, total, m.lineEntropy, m.meanLen)
	}
	// Every path's text parses back to its own probability.
	r := newRNG(1, "test")
	for range 100 {
		line := m.generate(nil, r)
		if _, n, err := m.logProb(line); err != nil || n != len(line) {
			t.Fatalf("logProb(%q) = %d, %v", line, n, err)
		}
	}
}

// TestMachineMomentsCyclic checks the series for a cyclic automaton against
// its closed form: "a" repeated n >= 0 times then "b\n", with probability
// 2^-(n+1), has entropy sum (n+1) 2^-(n+1) log 2 = 2 log 2 and mean length
// sum (n+2) 2^-(n+1) = 3.
func TestMachineMomentsCyclic(t *testing.T) {
	type k int
	zero := k(0)
	m, err := buildMachine(zero, func(k) []arcSpec[k] { return []arcSpec[k]{{"a", 1, &zero}, {"b\n", 1, nil}} })
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(m.lineEntropy-2*math.Ln2) > 1e-14 || math.Abs(m.meanLen-3) > 1e-14 {
		t.Errorf("H = %v (want %v), mean length %v (want 3)", m.lineEntropy, 2*math.Ln2, m.meanLen)
	}
}

func TestMachineRejectsBadGrammars(t *testing.T) {
	type k int
	next := func(i k) *k { return &i }
	tests := []struct {
		name string
		arcs func(k) []arcSpec[k]
		want string
	}{
		{"prefix labels", func(k) []arcSpec[k] { return []arcSpec[k]{{"ab", 1, nil}, {"abc", 1, nil}} }, "prefix"},
		{"never ends", func(s k) []arcSpec[k] { return []arcSpec[k]{{"a", 1, next(1 - s)}} }, "do not end"},
		{"dead end", func(s k) []arcSpec[k] {
			if s == 0 {
				return []arcSpec[k]{{"a", 1, next(1)}}
			}
			return nil
		}, "no arcs"},
		{"zero weight", func(k) []arcSpec[k] { return []arcSpec[k]{{"a", 0, nil}} }, "weight"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := buildMachine(k(0), tc.arcs)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDefaultSourceTables(t *testing.T) {
	if len(zipf) != len(nouns) || len(zipf) != len(verbs) {
		t.Fatalf("zipf table has %d entries for %d nouns and %d verbs", len(zipf), len(nouns), len(verbs))
	}
	seen := map[string]bool{}
	for _, list := range [][]string{names, nouns, adjectives, verbs, adverbs, prepositions} {
		for _, w := range list {
			if seen[w] {
				t.Errorf("word %q appears twice", w)
			}
			seen[w] = true
		}
	}
}

// TestEntropyMatchesSample checks EntropyPerByte against the exact log
// likelihood of a long sample under the source: their gap must be within
// a few standard errors of the per-byte estimate, computed from the
// sample's own per-line variance.
func TestEntropyMatchesSample(t *testing.T) {
	src, err := DefaultSource()
	if err != nil {
		t.Fatal(err)
	}
	h := src.EntropyPerByte()
	if math.Abs(h-0.55094) > 1e-5 {
		t.Errorf("EntropyPerByte = %.6f, documented as 0.55094", h)
	}
	text := src.Generate(12345, 4<<20)
	var sumLP, sumLen, sumLP2, sumLen2, sumX float64
	lines := 0
	for pos := 0; ; {
		end := bytes.IndexByte(text[pos:], '\n')
		if end < 0 {
			break
		}
		line := text[pos : pos+end+1]
		lp, n, err := src.LogProb(line)
		if err != nil || n != len(line) {
			t.Fatalf("line %q: %v", line, err)
		}
		x, y := -lp, float64(n)
		sumLP += x
		sumLen += y
		sumLP2 += x * x
		sumLen2 += y * y
		sumX += x * y
		lines++
		pos += end + 1
	}
	est := sumLP / sumLen
	// Delta-method standard error of a ratio of means.
	N := float64(lines)
	mx, my := sumLP/N, sumLen/N
	vx, vy, cxy := sumLP2/N-mx*mx, sumLen2/N-my*my, sumX/N-mx*my
	se := math.Sqrt((vx-2*est*cxy+est*est*vy)/N) / my
	t.Logf("entropy %.5f nats/byte, sample estimate %.5f +- %.5f over %d lines", h, est, se, lines)
	if se > 0.002 {
		t.Errorf("standard error %.5f too large for a meaningful check", se)
	}
	if math.Abs(est-h) > 4*se {
		t.Errorf("sample estimate %.5f differs from EntropyPerByte %.5f by more than 4 standard errors (%.5f)", est, h, se)
	}
	// The whole-text log probability agrees with the per-line sum.
	lp, n, err := src.LogProb(text)
	if err != nil || math.Abs(-lp-sumLP) > 1e-6*sumLP || n != int(sumLen) {
		t.Errorf("LogProb(text) = %v, %d, %v; per-line sum %v over %v", lp, n, err, -sumLP, sumLen)
	}
}

func TestDefaultCorpusDeterministic(t *testing.T) {
	c1, err := DefaultCorpus(7, 100000)
	if err != nil {
		t.Fatal(err)
	}
	c2, _ := DefaultCorpus(7, 50001)
	c3, _ := DefaultCorpus(8, 100000)
	if len(c1.Text) != 100000 || len(c2.Text) != 50001 {
		t.Fatalf("lengths %d, %d", len(c1.Text), len(c2.Text))
	}
	if !bytes.HasPrefix(c1.Text, c2.Text) {
		t.Error("a shorter corpus is not a prefix of a longer one with the same seed")
	}
	if bytes.Equal(c1.Text[:1000], c3.Text[:1000]) {
		t.Error("different seeds gave the same text")
	}
	if c1.EntropyPerByte() != c3.EntropyPerByte() {
		t.Error("entropy depends on the seed")
	}
	toks := c1.Tokens()
	if len(toks) != len(c1.Text) || (ByteTokenizer{}).Decode(toks) != string(c1.Text) {
		t.Error("Tokens do not round-trip the text")
	}
	// Pin the corpus: any change to the grammar, the generator or the
	// problem split changes this hash, and must be deliberate.
	sum := sha256.Sum256(c1.Text)
	const golden = "9f9046e316edc6982cbe5bc77ba36998f8492a98c4492dd8e10b95f88d41cfbe"
	if got := hex.EncodeToString(sum[:]); got != golden {
		t.Errorf("corpus(seed 7, 100000 bytes) sha256 = %s, want %s", got, golden)
	}
	for _, n := range []int{0, -1, MaxCorpusBytes + 1} {
		if _, err := DefaultCorpus(1, n); err == nil {
			t.Errorf("DefaultCorpus(1, %d) succeeded", n)
		}
	}
}

func TestLogProbRejects(t *testing.T) {
	src, err := DefaultSource()
	if err != nil {
		t.Fatal(err)
	}
	var heldout string
	for _, p := range src.arith.heldout[0] {
		heldout = string(p.appendLine(nil))
		break
	}
	for _, line := range []string{
		"3+4=8\n", "03+4=7\n", "3+04=7\n", "100+1=101\n", "3-4=-1\n", "13*2=26\n", "3+4=7 \n", "3++4=7\n", "3=4\n",
		heldout,
		"The blorn.\n", "The blorn sleeps\n", "the blorn sleeps.\n", "The blorn sleeps .\n", "The blorn sleeps. \n",
		"Zorba sleeps, Zorba sleeps.\n", "Zorba sleeps, and.\n",
	} {
		if _, _, err := src.LogProb([]byte(line)); err == nil {
			t.Errorf("LogProb(%q) succeeded", line)
		}
	}
	for _, line := range []string{"3+4=7\n", "The blorn sleeps.\n", "Zorba sleeps, and Zorba sleeps, and Zorba sleeps.\n", "12-12=0\n"} {
		if lp, n, err := src.LogProb([]byte(line)); err != nil || n != len(line) || !(lp < 0) {
			t.Errorf("LogProb(%q) = %v, %d, %v", line, lp, n, err)
		}
	}
}

func BenchmarkDefaultCorpus(b *testing.B) {
	src, err := DefaultSource()
	if err != nil {
		b.Fatal(err)
	}
	const n = 1 << 20
	b.SetBytes(n)
	for b.Loop() {
		src.Generate(1, n)
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds()/1e6, "MB/s")
}

// TestStateFromShortContext checks the documented claim that the sentence
// automaton's state is a function of the last three labels (words with
// their delimiters) of the line, and that three labels plus the next one
// span under 40 bytes: a model with a 40-byte context can know the state.
func TestStateFromShortContext(t *testing.T) {
	src, err := DefaultSource()
	if err != nil {
		t.Fatal(err)
	}
	m := src.sentences
	stateOf := map[string]int32{}
	longest := 0
	r := newRNG(99, "test")
	for range 50000 {
		var labels []string
		for s := m.start; s >= 0; {
			ctx := "\n" + strings.Join(labels, "")
			if len(labels) > 3 {
				ctx = strings.Join(labels[len(labels)-3:], "")
			}
			if prev, ok := stateOf[ctx]; ok && prev != s {
				t.Fatalf("context %q leads to states %d and %d", ctx, prev, s)
			}
			stateOf[ctx] = s
			st := &m.states[s]
			k := int(uniform(r.next, uint64(len(st.labels))))
			labels = append(labels, st.labels[k])
			longest = max(longest, len(ctx)+len(st.labels[k]))
			s = st.next[k]
		}
	}
	if longest >= 40 {
		t.Errorf("three labels and the next span %d bytes, documented as under 40", longest)
	}
	t.Logf("%d contexts, longest span %d bytes", len(stateOf), longest)
}

// FuzzLogProb: LogProb grades arbitrary text (a model's output, say)
// without panicking, and what it accepts the source could have emitted.
func FuzzLogProb(f *testing.F) {
	f.Add([]byte("3+4=7\nThe blorn sleeps.\n"))
	f.Add([]byte("Zorba finds the quom near a vrill, and the pale snorp waits.\n99*1=99\n"))
	f.Add([]byte("\n\n3+4"))
	src, err := DefaultSource()
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, text []byte) {
		lp, n, err := src.LogProb(text)
		if err != nil {
			return
		}
		if n > len(text) || (n > 0 && text[n-1] != '\n') || lp > 0 || math.IsNaN(lp) {
			t.Fatalf("LogProb = %v, %d for %q", lp, n, text)
		}
		if n > 0 && !(lp < 0) {
			t.Fatalf("a non-empty text has probability 1")
		}
	})
}
