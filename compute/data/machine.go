package data

import (
	"bytes"
	"fmt"
	"math"
)

// machine is a probabilistic deterministic finite automaton that emits one
// line of text: from each state it picks an outgoing arc with probability
// weight/total, appends the arc's label and moves to the arc's next state,
// until an arc leads to the end (next = -1).
//
// Within a state no label is a prefix of another (checked when the machine
// is built), so the emitted bytes determine the path uniquely: the line's
// probability is the product of its arcs' probabilities and its entropy is
// the entropy of the path.
type machine struct {
	states []mstate
	start  int32
	// Exact properties of one line, computed when the machine is built.
	lineEntropy float64 // nats
	meanLen     float64 // bytes
}

type mstate struct {
	labels []string
	next   []int32  // -1 = end of line
	cum    []uint64 // cumulative weights; cum[len-1] is the total
	prob   []float64
	logp   []float64
}

// arcSpec describes an outgoing arc while a machine is being built; next
// names a state by an opaque key, or is nil for the end of the line.
type arcSpec[K comparable] struct {
	label  string
	weight uint64
	next   *K
}

// buildMachine explores the states reachable from start, asking arcs for
// each state's outgoing arcs, and computes the line's entropy and mean
// length. It fails if a state has no arcs, labels are not prefix-free, or
// lines do not end.
func buildMachine[K comparable](start K, arcs func(K) []arcSpec[K]) (*machine, error) {
	index := map[K]int32{start: 0}
	keys := []K{start}
	m := &machine{}
	for i := 0; i < len(keys); i++ {
		specs := arcs(keys[i])
		if len(specs) == 0 {
			return nil, fmt.Errorf("data: source state %v has no arcs", keys[i])
		}
		st := mstate{}
		var total uint64
		for _, a := range specs {
			if a.weight == 0 || a.label == "" {
				return nil, fmt.Errorf("data: source state %v: arc %q with weight %d", keys[i], a.label, a.weight)
			}
			total += a.weight
			if total > 1<<40 {
				return nil, fmt.Errorf("data: source state %v: total weight too large", keys[i])
			}
			next := int32(-1)
			if a.next != nil {
				j, ok := index[*a.next]
				if !ok {
					j = int32(len(keys))
					index[*a.next] = j
					keys = append(keys, *a.next)
				}
				next = j
			}
			st.labels = append(st.labels, a.label)
			st.next = append(st.next, next)
			st.cum = append(st.cum, total)
		}
		for k, a := range specs {
			st.prob = append(st.prob, float64(a.weight)/float64(total))
			st.logp = append(st.logp, math.Log(float64(a.weight))-math.Log(float64(total)))
			for l, b := range specs {
				if k != l && len(a.label) <= len(b.label) && b.label[:len(a.label)] == a.label {
					return nil, fmt.Errorf("data: source state %v: label %q is a prefix of %q", keys[i], a.label, b.label)
				}
			}
		}
		m.states = append(m.states, st)
	}
	if err := m.computeMoments(); err != nil {
		return nil, err
	}
	return m, nil
}

// computeMoments sums, over states, the expected number of visits of a line
// to the state times the entropy of its arc choice (giving the line's
// entropy by the chain rule) and times its expected label length (giving
// the mean line length). Visit probabilities are propagated forward from
// the start, one arc per step. In a graph with cycles the series is
// infinite; it is summed until the probability of a line still being
// unfinished is below 1e-18, where what is left changes neither sum in
// float64. A graph from which the end is not reached almost surely fails.
func (m *machine) computeMoments() error {
	const maxSteps = 100000
	n := len(m.states)
	cur := make([]float64, n)
	nxt := make([]float64, n)
	cur[m.start] = 1
	var h, l float64
	for step := 0; ; step++ {
		var live float64
		for _, p := range cur {
			live += p
		}
		if live < 1e-18 {
			break
		}
		if step == maxSteps {
			return fmt.Errorf("data: source lines do not end: probability %g of a line longer than %d arcs", live, maxSteps)
		}
		for s, p := range cur {
			if p == 0 {
				continue
			}
			st := &m.states[s]
			for k, lp := range st.logp {
				q := st.prob[k]
				h -= p * q * lp
				l += p * q * float64(len(st.labels[k]))
				if st.next[k] >= 0 {
					nxt[st.next[k]] += p * q
				}
			}
		}
		cur, nxt = nxt, cur
		clear(nxt)
	}
	m.lineEntropy, m.meanLen = h, l
	return nil
}

// generate appends one line drawn with r to dst.
func (m *machine) generate(dst []byte, r *rng) []byte {
	s := m.start
	for s >= 0 {
		st := &m.states[s]
		u := uniform(r.next, st.cum[len(st.cum)-1])
		// Binary search for the first cumulative weight above u.
		k, hi := 0, len(st.cum)-1
		for k < hi {
			if mid := (k + hi) / 2; st.cum[mid] > u {
				hi = mid
			} else {
				k = mid + 1
			}
		}
		dst = append(dst, st.labels[k]...)
		s = st.next[k]
	}
	return dst
}

// logProb parses one line at the start of text and returns its log
// probability in nats and its length.
func (m *machine) logProb(text []byte) (float64, int, error) {
	s, pos := m.start, 0
	var lp float64
	for s >= 0 {
		st := &m.states[s]
		k := -1
		for i, lab := range st.labels {
			if bytes.HasPrefix(text[pos:], []byte(lab)) {
				k = i
				break
			}
		}
		if k < 0 {
			return 0, 0, fmt.Errorf("no arc of the source matches %q at byte %d", clip(text[pos:], 24), pos)
		}
		lp += st.logp[k]
		pos += len(st.labels[k])
		s = st.next[k]
	}
	return lp, pos, nil
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}
