package data

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Arithmetic problems. A problem is written "a+b=c\n", "a-b=c\n" or
// "a*b=c\n" in decimal without leading zeros: the prompt is everything up to
// and including '=', the answer the digits before the newline.
//
// The problem space is fixed: a+b and a-b (a >= b, so answers are not
// negative) for 0 <= a, b <= 99, and a*b for 0 <= a, b <= 12. It is split
// once and for all, independently of any seed, by a hash of the problem's
// prompt: about 10% of problems are held out and never appear in any
// generated corpus, so a model's accuracy on them measures generalisation
// rather than recall.

// Task is a prompt with a checkable answer.
type Task struct {
	Prompt string `json:"prompt"`
	Answer string `json:"answer"`
}

// Splits of the arithmetic problem space.
const (
	SplitTrain   = "train"   // problems that appear in the default corpus
	SplitHeldout = "heldout" // problems that never do
)

type arithOp struct {
	sym    byte
	weight uint64 // relative frequency of the operation in the corpus
	max    int    // operands range over [0, max]
}

var arithOps = []arithOp{{'+', 2, 99}, {'-', 1, 99}, {'*', 1, 12}}

// heldoutThreshold: a problem is held out when the first byte of its hash is
// below this, i.e. with probability 26/256 (about 10%).
const heldoutThreshold = 26

type problem struct {
	op   uint8 // index into arithOps
	a, b int32
}

func (p problem) answer() int {
	a, b := int(p.a), int(p.b)
	switch arithOps[p.op].sym {
	case '+':
		return a + b
	case '-':
		return a - b
	}
	return a * b
}

func (p problem) appendPrompt(dst []byte) []byte {
	dst = strconv.AppendInt(dst, int64(p.a), 10)
	dst = append(dst, arithOps[p.op].sym)
	dst = strconv.AppendInt(dst, int64(p.b), 10)
	return append(dst, '=')
}

func (p problem) appendLine(dst []byte) []byte {
	dst = p.appendPrompt(dst)
	dst = strconv.AppendInt(dst, int64(p.answer()), 10)
	return append(dst, '\n')
}

func (p problem) heldout() bool {
	h := sha256.Sum256(p.appendPrompt([]byte("trinity/arith/v1\x00")))
	return h[0] < heldoutThreshold
}

// arithSpace holds every problem of each operation, by split.
type arithSpace struct {
	train, heldout [][]problem // per op
}

func buildArithSpace() *arithSpace {
	s := &arithSpace{train: make([][]problem, len(arithOps)), heldout: make([][]problem, len(arithOps))}
	for oi, op := range arithOps {
		for a := 0; a <= op.max; a++ {
			for b := 0; b <= op.max; b++ {
				if op.sym == '-' && b > a {
					continue
				}
				p := problem{op: uint8(oi), a: int32(a), b: int32(b)}
				if p.heldout() {
					s.heldout[oi] = append(s.heldout[oi], p)
				} else {
					s.train[oi] = append(s.train[oi], p)
				}
			}
		}
	}
	return s
}

func (s *arithSpace) split(name string) ([][]problem, error) {
	switch name {
	case SplitTrain:
		return s.train, nil
	case SplitHeldout:
		return s.heldout, nil
	}
	return nil, fmt.Errorf("data: unknown arithmetic split %q (want %q or %q)", name, SplitTrain, SplitHeldout)
}

// ArithmeticTasks returns n distinct problems of the split, drawn
// deterministically from seed without replacement, each problem weighted as
// in the corpus (operation weight divided by that operation's number of
// problems), so operations come in the corpus's 2:1:1 proportion until one
// runs out. n may not exceed the number of problems in the split (about
// 13,660 for SplitTrain, 1,555 for SplitHeldout).
func ArithmeticTasks(seed uint64, split string, n int) ([]Task, error) {
	src, err := DefaultSource()
	if err != nil {
		return nil, err
	}
	probs, err := src.arith.split(split)
	if err != nil {
		return nil, err
	}
	var all []problem
	for _, ps := range probs {
		all = append(all, ps...)
	}
	if n < 0 || n > len(all) {
		return nil, fmt.Errorf("data: %d arithmetic tasks requested, split %q has %d", n, split, len(all))
	}
	// Weighted sampling without replacement (each problem weighted by its
	// operation's corpus probability per problem), done exactly with
	// integer weights: draw from the remaining weight, remove, repeat.
	w := make([]uint64, len(all))
	var total uint64
	for i, p := range all {
		// Scale so that per-problem weights are integers proportional to
		// weight(op) / count(op).
		w[i] = arithOps[p.op].weight * arithScale / uint64(len(probs[p.op]))
		total += w[i]
	}
	r := newRNG(seed, "trinity/arith-tasks/"+split)
	tasks := make([]Task, 0, n)
	fen := newFenwick(w)
	for range n {
		u := uniform(r.next, total)
		i := fen.find(u)
		p := all[i]
		tasks = append(tasks, Task{Prompt: string(p.appendPrompt(nil)), Answer: strconv.Itoa(p.answer())})
		fen.add(i, -int64(w[i]))
		total -= w[i]
	}
	return tasks, nil
}

// arithScale makes per-problem sampling weights integers with negligible
// rounding (the largest count per operation is about 10,000).
const arithScale = 1 << 30

// fenwick is a binary indexed tree over weights, for sampling without
// replacement in O(log n) per draw.
type fenwick struct{ t []int64 }

func newFenwick(w []uint64) *fenwick {
	f := &fenwick{t: make([]int64, len(w)+1)}
	for i, v := range w {
		f.add(i, int64(v))
	}
	return f
}

func (f *fenwick) add(i int, d int64) {
	for i++; i < len(f.t); i += i & -i {
		f.t[i] += d
	}
}

// find returns the index i such that prefix(i) <= u < prefix(i+1).
func (f *fenwick) find(u uint64) int {
	pos, rem := 0, int64(u)
	step := 1
	for step*2 < len(f.t) {
		step *= 2
	}
	for ; step > 0; step /= 2 {
		if pos+step < len(f.t) && f.t[pos+step] <= rem {
			pos += step
			rem -= f.t[pos]
		}
	}
	return pos
}

// ExtractAnswer reads a model's answer from its completion of a prompt:
// the text before the first newline, with surrounding spaces and tabs
// removed. The newline is required (a completion cut off before it has not
// finished answering) and the answer must not be empty; otherwise ok is
// false. A completion is correct when the extracted answer equals the
// task's Answer exactly.
func ExtractAnswer(completion string) (answer string, ok bool) {
	line, _, found := strings.Cut(completion, "\n")
	if !found {
		return "", false
	}
	line = strings.Trim(line, " \t\r")
	return line, line != ""
}

// Check reports whether a completion of the task's prompt answers it.
func (t Task) Check(completion string) bool {
	a, ok := ExtractAnswer(completion)
	return ok && a == t.Answer
}

// Validate reports why a task cannot be used: an empty or oversized prompt,
// or an answer that ExtractAnswer could never return.
func (t Task) Validate() error {
	switch {
	case t.Prompt == "":
		return errors.New("empty prompt")
	case len(t.Prompt) > MaxTaskBytes || len(t.Answer) > MaxTaskBytes:
		return fmt.Errorf("prompt or answer longer than %d bytes", MaxTaskBytes)
	case !utf8.ValidString(t.Prompt) || !utf8.ValidString(t.Answer):
		return errors.New("prompt or answer is not valid UTF-8")
	case t.Answer == "":
		return errors.New("empty answer")
	case strings.ContainsAny(t.Answer, "\n"):
		return errors.New("answer contains a newline")
	case strings.Trim(t.Answer, " \t\r") != t.Answer:
		return errors.New("answer has leading or trailing white space")
	}
	return nil
}

// MaxTaskBytes bounds a task's prompt and answer.
const MaxTaskBytes = 64 << 10

// maxTasks bounds the number of tasks in one file.
const maxTasks = 1 << 20

// ReadTasks parses JSON Lines: one {"prompt": ..., "answer": ...} object
// per line, both strings, no other fields. Blank lines are not allowed,
// except that the input may end with a newline; "\r\n" line ends are
// accepted. Errors name the line.
func ReadTasks(r io.Reader) ([]Task, error) {
	br := bufio.NewReader(r)
	var tasks []Task
	for lineNo := 1; ; lineNo++ {
		line, err := readLine(br, 2*MaxTaskBytes+1024)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("data: tasks line %d: %w", lineNo, err)
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(bytes.TrimSpace(line)) == 0 {
			return nil, fmt.Errorf("data: tasks line %d: blank line", lineNo)
		}
		if len(tasks) >= maxTasks {
			return nil, fmt.Errorf("data: tasks: more than %d tasks", maxTasks)
		}
		var t struct {
			Prompt *string `json:"prompt"`
			Answer *string `json:"answer"`
		}
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&t); err != nil {
			return nil, fmt.Errorf("data: tasks line %d: %w", lineNo, err)
		}
		if dec.More() || dec.InputOffset() != int64(len(bytes.TrimRight(line, " \t"))) {
			return nil, fmt.Errorf("data: tasks line %d: data after the JSON object", lineNo)
		}
		if t.Prompt == nil || t.Answer == nil {
			return nil, fmt.Errorf("data: tasks line %d: both \"prompt\" and \"answer\" are required", lineNo)
		}
		task := Task{Prompt: *t.Prompt, Answer: *t.Answer}
		if err := task.Validate(); err != nil {
			return nil, fmt.Errorf("data: tasks line %d: %w", lineNo, err)
		}
		tasks = append(tasks, task)
	}
	if len(tasks) == 0 {
		return nil, errors.New("data: tasks: no tasks")
	}
	return tasks, nil
}

// LoadTasks reads a JSON Lines task file (see ReadTasks).
func LoadTasks(path string) ([]Task, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	tasks, err := ReadTasks(f)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return tasks, nil
}

// readLine returns the next line without its '\n', io.EOF at the end of
// input, and an error for a line longer than limit.
func readLine(br *bufio.Reader, limit int) ([]byte, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > limit {
			return nil, fmt.Errorf("line longer than %d bytes", limit)
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF:
			if len(line) == 0 {
				return nil, io.EOF
			}
			return line, nil
		default:
			return nil, err
		}
	}
}
