package rl

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/trinity-net/trinity/compute/data"
)

func TestAssign(t *testing.T) {
	b := testRound(1).Beacon
	p1, p2 := pubOf(testKey(1)), pubOf(testKey(2))
	a := Assign(b, 1, p1, 100, 10)
	if len(a) != 10 {
		t.Fatalf("got %d tasks", len(a))
	}
	s := slices.Clone(a)
	slices.Sort(s)
	if len(slices.Compact(s)) != 10 {
		t.Fatalf("duplicate tasks %v", a)
	}
	for _, x := range a {
		if x < 0 || x >= 100 {
			t.Fatalf("task %d out of range", x)
		}
	}
	if !slices.Equal(a, Assign(b, 1, p1, 100, 10)) {
		t.Fatal("assignment not deterministic")
	}
	for _, other := range [][]int{Assign(b, 2, p1, 100, 10), Assign(b, 1, p2, 100, 10), Assign(testRound(2).Beacon, 1, p1, 100, 10)} {
		if slices.Equal(a, other) {
			t.Fatal("assignment ignores round, peer or beacon")
		}
	}
	if all := Assign(b, 1, p1, 5, 10); len(all) != 5 {
		t.Fatalf("count above the task count: %v", all)
	}
	if Assign(b, 1, p1, 0, 3) != nil || Assign(b, 1, p1, 3, 0) != nil {
		t.Fatal("empty assignment expected")
	}
}

func TestReward(t *testing.T) {
	task := data.Task{Prompt: "2+2=", Answer: "14"}
	for _, c := range []struct {
		completion     string
		bonus, partial float64
		want           float64
	}{
		{"14\nxx", 0.1, 0, 1}, {" 14 \n", 0.1, 0, 1}, {"5\n", 0.1, 0, 0.1}, {"14", 0.1, 0, 0}, {"\n14", 0.1, 0, 0},
		{"4\n", 0, 0.5, 0.25}, {"24\n", 0.1, 0.5, 0.35}, {"114\n", 0, 0.3, 0.2}, {"14\n", 0.2, 0.5, 1}, {"x", 0.2, 0.5, 0},
	} {
		cfg := Config{FormatBonus: c.bonus, PartialCredit: c.partial}
		if got := cfg.Reward(task, c.completion); math.Abs(got-c.want) > 1e-12 {
			t.Errorf("Reward(%q, %v, %v) = %v, want %v", c.completion, c.bonus, c.partial, got, c.want)
		}
	}
}

func TestTaskFile(t *testing.T) {
	ts, err := ReadTaskSet(strings.NewReader("{\"prompt\":\"1+1=\",\"answer\":\"2\"}\n{\"prompt\":\"q\",\"answer\":\"a\"}\n"), 1<<20)
	if err != nil || len(ts.Tasks) != 2 {
		t.Fatalf("valid file: %v", err)
	}
	for name, in := range map[string]string{
		"empty":          "",
		"not json":       "hello\n",
		"extra field":    "{\"prompt\":\"a\",\"answer\":\"b\",\"x\":1}\n",
		"empty prompt":   "{\"prompt\":\"\",\"answer\":\"b\"}\n",
		"newline answer": "{\"prompt\":\"a\",\"answer\":\"b\\nc\"}\n",
		"truncated":      "{\"prompt\":\"a\",\"ans",
		"too large":      strings.Repeat("{\"prompt\":\"a\",\"answer\":\"b\"}\n", 100),
	} {
		if _, err := ReadTaskSet(strings.NewReader(in), 1000); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// FuzzReadTaskSet: any task file either yields a valid task set whose
// every task a prompt encoder accepts, or an error naming the file's
// problem; never a panic.
func FuzzReadTaskSet(f *testing.F) {
	f.Add([]byte("{\"prompt\":\"1+1=\",\"answer\":\"2\"}\n{\"prompt\":\"q\",\"answer\":\"a\"}\n"))
	f.Add([]byte("{\"prompt\":\"a\",\"answer\":\"b\nc\"}\n"))
	f.Add([]byte("{\"prompt\":\"\\u0000\",\"answer\":\"\\ud800\"}"))
	f.Add([]byte("\n\n{}\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		ts, err := ReadTaskSet(bytes.NewReader(in), 1<<16)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "rl: ") {
				t.Fatalf("error without context: %v", err)
			}
			return
		}
		if len(ts.Tasks) == 0 {
			t.Fatal("empty task set accepted")
		}
		enc := PromptEncoder{Prefix: "\n"}
		for i, task := range ts.Tasks {
			if _, err := enc.Encode(task); err != nil {
				t.Fatalf("task %d accepted by the reader, refused by the encoder: %v", i, err)
			}
		}
	})
}

func TestWilson(t *testing.T) {
	lo, hi := Eval{Correct: 50, Total: 100}.Wilson()
	if math.Abs(lo-0.404) > 0.002 || math.Abs(hi-0.596) > 0.002 {
		t.Fatalf("wilson(50/100) = %.4f %.4f", lo, hi)
	}
}

// rollAll makes the honest batches of n peers for a round.
func rollAll(t testing.TB, n int, rd Round, cfg Config, ts *TaskSet) []*Batch {
	t.Helper()
	m := tinyPolicy(t, 1)
	var out []*Batch
	for i := range n {
		b, err := honestBatch(context.Background(), m, testKey(byte(i)), ts, cfg, rd)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func TestBatchRoundTrip(t *testing.T) {
	cfg, ts := testConfig(), testTasks(t)
	b := rollAll(t, 1, testRound(0), cfg, ts)[0]
	blob, err := b.Encode()
	if err != nil {
		t.Fatal(err)
	}
	d, err := Decode(blob)
	if err != nil {
		t.Fatal(err)
	}
	again, err := d.Encode()
	if err != nil || !bytes.Equal(blob, again) {
		t.Fatalf("not canonical: %v", err)
	}
	// Every truncation and single-byte corruption of the header fails cleanly.
	for i := range len(blob) {
		if _, err := Decode(blob[:i]); !errors.Is(err, ErrMalformed) {
			t.Fatalf("truncation at %d: %v", i, err)
		}
	}
	if _, err := Decode(append(slices.Clone(blob), 0)); !errors.Is(err, ErrMalformed) {
		t.Fatal("trailing byte accepted")
	}
	for _, off := range []int{0, 4, 5, 144, 145, 146} {
		c := slices.Clone(blob)
		c[off] ^= 0xff
		if _, err := Decode(c); !errors.Is(err, ErrMalformed) {
			t.Fatalf("corrupted byte %d: %v", off, err)
		}
	}
	// A NaN reward.
	c := slices.Clone(blob)
	copy(c[batchHeader+4:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f})
	if _, err := Decode(c); !errors.Is(err, ErrMalformed) {
		t.Fatalf("NaN reward: %v", err)
	}
}

func FuzzDecode(f *testing.F) {
	cfg, ts := testConfig(), testTasks(f)
	m := tinyPolicy(f, 1)
	b, err := honestBatch(context.Background(), m, testKey(0), ts, cfg, testRound(0))
	if err != nil {
		f.Fatal(err)
	}
	blob, err := b.Encode()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(blob)
	f.Add(blob[:batchHeader])
	f.Add([]byte("TRLB"))
	f.Fuzz(func(t *testing.T, in []byte) {
		b, err := Decode(in)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		out, err := b.Encode()
		if err != nil || !bytes.Equal(out, in) {
			t.Fatalf("decoded batch does not re-encode to its bytes: %v", err)
		}
	})
}

func TestScores(t *testing.T) {
	s, err := NewScores(0.5)
	if err != nil {
		t.Fatal(err)
	}
	good, bad := pubOf(testKey(1)), pubOf(testKey(2))
	for range 4 {
		s.Record(good, nil)
		s.Record(bad, ErrReward)
	}
	if s.Score(good) < 0.9 || s.Score(bad) != 0 {
		t.Fatalf("scores %v %v", s.Score(good), s.Score(bad))
	}
	if _, err := NewScores(0); err == nil {
		t.Fatal("alpha 0 accepted")
	}
}

func TestMcNemar(t *testing.T) {
	a := Eval{Right: []bool{true, false, false, true, false}}
	b := Eval{Right: []bool{true, true, true, false, false}}
	g, l, z := a.McNemar(b)
	if g != 2 || l != 1 || math.Abs(z-1/math.Sqrt(3)) > 1e-12 {
		t.Fatalf("McNemar = %d %d %v", g, l, z)
	}
}
