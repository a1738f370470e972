package data

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func TestArithmeticTasks(t *testing.T) {
	src, err := DefaultSource()
	if err != nil {
		t.Fatal(err)
	}
	nHeld := 0
	for _, ps := range src.arith.heldout {
		nHeld += len(ps)
	}
	train, err := ArithmeticTasks(1, SplitTrain, 3000)
	if err != nil {
		t.Fatal(err)
	}
	held, err := ArithmeticTasks(1, SplitHeldout, nHeld)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := ArithmeticTasks(1, SplitTrain, 3000)
	if !reflect.DeepEqual(train, again) {
		t.Error("same seed gave different tasks")
	}
	other, _ := ArithmeticTasks(2, SplitTrain, 3000)
	if reflect.DeepEqual(train, other) {
		t.Error("different seeds gave the same tasks")
	}
	heldSet := map[string]bool{}
	for _, task := range held {
		if heldSet[task.Prompt] {
			t.Fatalf("held-out task %q drawn twice", task.Prompt)
		}
		heldSet[task.Prompt] = true
	}
	if len(heldSet) < 1000 {
		t.Errorf("only %d held-out problems", len(heldSet))
	}
	seen := map[string]bool{}
	ops := map[byte]int{}
	for _, task := range append(train, held...) {
		if err := task.Validate(); err != nil {
			t.Fatalf("task %+v: %v", task, err)
		}
		// The answer is the value of the prompt's expression.
		expr := strings.TrimSuffix(task.Prompt, "=")
		i := strings.IndexAny(expr, "+-*")
		a, _ := strconv.Atoi(expr[:i])
		b, _ := strconv.Atoi(expr[i+1:])
		want := map[byte]int{'+': a + b, '-': a - b, '*': a * b}[expr[i]]
		if task.Answer != strconv.Itoa(want) {
			t.Fatalf("task %+v, answer should be %d", task, want)
		}
		if !task.Check(task.Answer+"\n") || task.Check(task.Answer+"1\n") || task.Check(task.Answer) {
			t.Fatalf("Check misgrades task %+v", task)
		}
	}
	for _, task := range train {
		if heldSet[task.Prompt] {
			t.Fatalf("training task %q is held out", task.Prompt)
		}
		if seen[task.Prompt] {
			t.Fatalf("training task %q drawn twice", task.Prompt)
		}
		seen[task.Prompt] = true
		ops[task.Prompt[strings.IndexAny(task.Prompt, "+-*")]]++
	}
	// Operations in proportion 2:1:1 until multiplication runs out of its
	// 159 training problems; the rest split 2:1.
	if ops['*'] != 159 || ops['+'] < 1750 || ops['+'] > 2050 || ops['-'] < 800 || ops['-'] > 1050 {
		t.Errorf("operation counts %v", ops)
	}
	// The corpus never contains a held-out problem.
	c, err := DefaultCorpus(3, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(c.Text), "\n") {
		if eq := strings.IndexByte(line, '='); eq > 0 && heldSet[line[:eq+1]] {
			t.Fatalf("corpus contains held-out problem %q", line)
		}
	}
	for _, tc := range []struct {
		split string
		n     int
	}{{"test", 1}, {SplitHeldout, nHeld + 1}, {SplitTrain, -1}} {
		if _, err := ArithmeticTasks(1, tc.split, tc.n); err == nil {
			t.Errorf("ArithmeticTasks(%q, %d) succeeded", tc.split, tc.n)
		}
	}
}

func TestExtractAnswer(t *testing.T) {
	tests := []struct {
		in   string
		want string
		ok   bool
	}{
		{"95\n", "95", true},
		{"95\n12+3=15\n", "95", true},
		{" 95 \t\r\n", "95", true},
		{"-3\n", "-3", true},
		{"95", "", false},
		{"\n", "", false},
		{"  \n95\n", "", false},
		{"", "", false},
	}
	for _, tc := range tests {
		got, ok := ExtractAnswer(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ExtractAnswer(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestReadTasks(t *testing.T) {
	good := `{"prompt":"2+2=","answer":"4"}` + "\n" + `{"answer":"Paris","prompt":"Capital of France? "}` + "\r\n"
	tasks, err := ReadTasks(strings.NewReader(good))
	if err != nil {
		t.Fatal(err)
	}
	want := []Task{{"2+2=", "4"}, {"Capital of France? ", "Paris"}}
	if !reflect.DeepEqual(tasks, want) {
		t.Errorf("tasks %+v", tasks)
	}
	if _, err := ReadTasks(strings.NewReader(strings.TrimSpace(good))); err != nil {
		t.Errorf("no final newline: %v", err)
	}
	bad := []struct {
		name, in, want string
	}{
		{"empty", "", "no tasks"},
		{"blank line", `{"prompt":"a","answer":"b"}` + "\n\n" + `{"prompt":"a","answer":"b"}`, "line 2: blank"},
		{"unknown field", `{"prompt":"a","answer":"b","x":1}`, "unknown field"},
		{"missing answer", `{"prompt":"a"}`, "required"},
		{"number answer", `{"prompt":"a","answer":4}`, "line 1"},
		{"trailing", `{"prompt":"a","answer":"b"} x`, "after the JSON"},
		{"two objects", `{"prompt":"a","answer":"b"}{"prompt":"a","answer":"b"}`, "after the JSON"},
		{"newline answer", `{"prompt":"a","answer":"b\nc"}`, "newline"},
		{"padded answer", `{"prompt":"a","answer":" b"}`, "white space"},
		{"empty prompt", `{"prompt":"","answer":"b"}`, "empty prompt"},
		{"not json", `prompt=a`, "line 1"},
		{"array", `["a","b"]`, "line 1"},
		{"huge line", `{"prompt":"` + strings.Repeat("a", 3*MaxTaskBytes) + `","answer":"b"}`, "longer than"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ReadTasks(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	path := filepath.Join(t.TempDir(), "tasks.jsonl")
	if err := os.WriteFile(path, []byte(good), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadTasks(path); err != nil || len(got) != 2 {
		t.Errorf("LoadTasks = %v, %v", got, err)
	}
	if _, err := LoadTasks(path + ".missing"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadTasks(missing) error %v", err)
	}
}

func FuzzReadTasks(f *testing.F) {
	f.Add([]byte(`{"prompt":"2+2=","answer":"4"}` + "\n"))
	f.Add([]byte(`{"prompt":"a","answer":"b"}` + "\r\n" + `{"prompt":"c","answer":"d"}`))
	f.Add([]byte("\n\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		tasks, err := ReadTasks(strings.NewReader(string(in)))
		if err != nil {
			return
		}
		for _, task := range tasks {
			if err := task.Validate(); err != nil {
				t.Fatalf("accepted invalid task %+v: %v", task, err)
			}
			if !task.Check(task.Answer + "\n") {
				t.Fatalf("task %+v does not accept its own answer", task)
			}
		}
	})
}
