package rl

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/trinity-net/trinity/compute/data"
)

// PromptEncoder turns a task's prompt into the tokens a rollout starts from:
// the bytes of Prefix followed by the prompt's bytes (byte tokenizer). The
// default prefix "\n" puts the prompt at the start of a line, where the
// corpus's arithmetic problems sit.
type PromptEncoder struct {
	Prefix string
}

// Encode returns the prompt tokens of t.
func (p PromptEncoder) Encode(t data.Task) ([]int32, error) {
	if err := t.Validate(); err != nil {
		return nil, fmt.Errorf("rl: task: %w", err)
	}
	return data.ByteTokenizer{}.Encode(p.Prefix + t.Prompt), nil
}

// TaskSet is the list of problems rollout peers are assigned from, identified
// by a hash so that a batch made for another list is refused.
type TaskSet struct {
	Tasks []data.Task
	Hash  [32]byte
}

// NewTaskSet validates every task and hashes the list.
func NewTaskSet(tasks []data.Task) (*TaskSet, error) {
	if len(tasks) == 0 {
		return nil, errors.New("rl: empty task set")
	}
	if len(tasks) > MaxTasks {
		return nil, fmt.Errorf("rl: %d tasks, at most %d", len(tasks), MaxTasks)
	}
	h := sha256.New()
	h.Write([]byte("trinity/rl/v1/tasks\x00"))
	var n [8]byte
	for i, t := range tasks {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("rl: task %d: %w", i, err)
		}
		for _, s := range []string{t.Prompt, t.Answer} {
			binary.LittleEndian.PutUint64(n[:], uint64(len(s)))
			h.Write(n[:])
			h.Write([]byte(s))
		}
	}
	ts := &TaskSet{Tasks: tasks}
	h.Sum(ts.Hash[:0])
	return ts, nil
}

// MaxTasks bounds a task set (task indices travel as uint32).
const MaxTasks = 1 << 24

// ArithmeticTaskSet is the training split of the default corpus's arithmetic
// problems (n of them, drawn from seed), the set rollouts are assigned from;
// evaluation uses data.SplitHeldout, which neither the corpus nor RL sees.
func ArithmeticTaskSet(seed uint64, n int) (*TaskSet, error) {
	tasks, err := data.ArithmeticTasks(seed, data.SplitTrain, n)
	if err != nil {
		return nil, fmt.Errorf("rl: %w", err)
	}
	return NewTaskSet(tasks)
}

// ReadTaskSet reads a user task file: JSON Lines of {"prompt": ..., "answer":
// ...} (data.ReadTasks). A completion is graded by data.ExtractAnswer: the
// text before its first newline, spaces and tabs trimmed, must equal the
// answer exactly; a completion with no newline within the generated tokens
// has not answered. At most maxBytes are read.
func ReadTaskSet(r io.Reader, maxBytes int64) (*TaskSet, error) {
	lr := &io.LimitedReader{R: r, N: maxBytes + 1}
	tasks, err := data.ReadTasks(lr)
	if err != nil {
		return nil, fmt.Errorf("rl: task file: %w", err)
	}
	if lr.N <= 0 {
		return nil, fmt.Errorf("rl: task file larger than %d bytes", maxBytes)
	}
	return NewTaskSet(tasks)
}

// LoadTaskSet reads a task file from path (see ReadTaskSet).
func LoadTaskSet(path string, maxBytes int64) (*TaskSet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("rl: %w", err)
	}
	defer f.Close()
	ts, err := ReadTaskSet(f, maxBytes)
	if err != nil {
		return nil, fmt.Errorf("rl: %s: %w", path, err)
	}
	return ts, nil
}

// Reward grades a completion of t. A completion answers when
// data.ExtractAnswer finds a newline-terminated, non-empty line; it is correct
// when that answer equals t.Answer exactly (reward 1). A completion that does
// not answer earns 0. A wrong answer earns FormatBonus plus PartialCredit
// times the fraction of positions, aligned from the right (units with units
// for numbers), where the answer and t.Answer have the same byte, out of the
// longer of the two; FormatBonus + PartialCredit < 1, so only a correct answer
// earns 1.
func (c Config) Reward(t data.Task, completion string) float64 {
	a, ok := data.ExtractAnswer(completion)
	switch {
	case !ok:
		return 0
	case a == t.Answer:
		return 1
	}
	r := c.FormatBonus
	if c.PartialCredit > 0 {
		w := t.Answer
		match := 0
		for i := 1; i <= min(len(a), len(w)); i++ {
			if a[len(a)-i] == w[len(w)-i] {
				match++
			}
		}
		r += c.PartialCredit * float64(match) / float64(max(len(a), len(w)))
	}
	return r
}

// Assign returns the indices of the count distinct tasks (out of numTasks)
// that peer must roll out in round, drawn from SHA-256 in counter mode keyed
// by the round's public randomness (beacon), the round and the peer's key:
// nobody can choose their own problems, and anyone can recompute the list.
func Assign(beacon [32]byte, round uint64, peer [32]byte, numTasks, count int) []int {
	if numTasks <= 0 || count <= 0 {
		return nil
	}
	count = min(count, numTasks)
	seed := sha256.New()
	seed.Write([]byte("trinity/rl/v1/assign\x00"))
	seed.Write(beacon[:])
	seed.Write(binary.LittleEndian.AppendUint64(nil, round))
	seed.Write(peer[:])
	var s [32]byte
	seed.Sum(s[:0])
	st := &prng{seed: s}
	// Partial Fisher-Yates over a sparse permutation: O(count) memory.
	swap := make(map[int]int, count)
	at := func(i int) int {
		if v, ok := swap[i]; ok {
			return v
		}
		return i
	}
	out := make([]int, count)
	for i := range count {
		j := i + int(st.uniform(uint64(numTasks-i)))
		vi, vj := at(i), at(j)
		swap[i], swap[j] = vj, vi
		out[i] = vj
	}
	return out
}

// prng is SHA-256 in counter mode under a seed.
type prng struct {
	seed [32]byte
	ctr  uint64
	buf  [32]byte
	off  int
}

func (p *prng) next() uint64 {
	if p.ctr == 0 || p.off >= 32 {
		var b [40]byte
		copy(b[:], p.seed[:])
		binary.LittleEndian.PutUint64(b[32:], p.ctr)
		p.ctr++
		p.buf = sha256.Sum256(b[:])
		p.off = 0
	}
	v := binary.LittleEndian.Uint64(p.buf[p.off:])
	p.off += 8
	return v
}

// uniform returns an unbiased draw in [0, n) by rejection.
func (p *prng) uniform(n uint64) uint64 {
	lim := -n % n // 2^64 mod n
	for {
		v := p.next()
		if v >= lim {
			return v % n
		}
	}
}
