package data

import (
	"fmt"
	"math"
	"strconv"
	"sync"
)

// Source is the stochastic process that generates the default corpus: an
// infinite sequence of independent lines, each an arithmetic problem with
// probability ArithLineWeight/(ArithLineWeight+SentenceLineWeight) and a
// grammar sentence otherwise. See the package documentation for the
// derivation of its entropy. A Source is immutable and safe for concurrent
// use.
type Source struct {
	sentences *machine
	arith     *arithSpace
	// arithLogP[op] is log P(this op | arithmetic line) - log(#train problems of op).
	arithLogP    []float64
	arithCum     []uint64 // cumulative op weights
	stats        SourceStats
	logPArith    float64 // log P(line is arithmetic)
	logPSentence float64
}

// Line-type weights of the default source.
const (
	ArithLineWeight    = 1
	SentenceLineWeight = 2
)

// SourceStats are exact properties of the source, in nats and bytes.
type SourceStats struct {
	SentenceEntropy float64 // entropy of one sentence line
	SentenceBytes   float64 // mean length of a sentence line, '\n' included
	ArithEntropy    float64 // entropy of one arithmetic line (the operands; the answer has none)
	ArithBytes      float64 // mean length of an arithmetic line
	LineEntropy     float64 // entropy of one line, including its type
	LineBytes       float64 // mean length of a line
	EntropyPerByte  float64 // LineEntropy / LineBytes
	SentenceStates  int     // states of the sentence automaton
}

// defaultSource builds the source once; it is read-only afterwards.
var defaultSource = sync.OnceValues(buildDefaultSource)

// DefaultSource returns the source of the default corpus.
func DefaultSource() (*Source, error) { return defaultSource() }

func buildDefaultSource() (*Source, error) {
	m, err := buildMachine(gkey{slot: slotStart}, grammarArcs)
	if err != nil {
		return nil, err
	}
	s := &Source{sentences: m, arith: buildArithSpace()}
	var opTotal uint64
	for _, op := range arithOps {
		opTotal += op.weight
		s.arithCum = append(s.arithCum, opTotal)
	}
	st := &s.stats
	for oi, op := range arithOps {
		pOp := float64(op.weight) / float64(opTotal)
		probs := s.arith.train[oi]
		if len(probs) == 0 {
			return nil, fmt.Errorf("data: arithmetic operation %c has no training problems", op.sym)
		}
		s.arithLogP = append(s.arithLogP, math.Log(pOp)-math.Log(float64(len(probs))))
		st.ArithEntropy += pOp * (-math.Log(pOp) + math.Log(float64(len(probs))))
		var bytes int
		var buf []byte
		for _, p := range probs {
			buf = p.appendLine(buf[:0])
			bytes += len(buf)
		}
		st.ArithBytes += pOp * float64(bytes) / float64(len(probs))
	}
	pa := float64(ArithLineWeight) / float64(ArithLineWeight+SentenceLineWeight)
	s.logPArith, s.logPSentence = math.Log(pa), math.Log(1-pa)
	st.SentenceEntropy, st.SentenceBytes = m.lineEntropy, m.meanLen
	st.SentenceStates = len(m.states)
	hType := -pa*math.Log(pa) - (1-pa)*math.Log(1-pa)
	st.LineEntropy = hType + pa*st.ArithEntropy + (1-pa)*st.SentenceEntropy
	st.LineBytes = pa*st.ArithBytes + (1-pa)*st.SentenceBytes
	st.EntropyPerByte = st.LineEntropy / st.LineBytes
	return s, nil
}

// Stats returns the source's exact properties.
func (s *Source) Stats() SourceStats { return s.stats }

// EntropyPerByte is the entropy rate of the source in nats per byte: the
// lowest expected cross-entropy per byte any predictor can reach on its
// output, reached by the source's own conditional probabilities.
func (s *Source) EntropyPerByte() float64 { return s.stats.EntropyPerByte }

// appendLine draws one line.
func (s *Source) appendLine(dst []byte, r *rng) []byte {
	if uniform(r.next, ArithLineWeight+SentenceLineWeight) >= ArithLineWeight {
		return s.sentences.generate(dst, r)
	}
	u := uniform(r.next, s.arithCum[len(s.arithCum)-1])
	oi := 0
	for s.arithCum[oi] <= u {
		oi++
	}
	probs := s.arith.train[oi]
	return probs[r.intn(len(probs))].appendLine(dst)
}

// Generate returns the first nBytes bytes of the stream the source emits
// from seed. The stream does not depend on nBytes, so a shorter output is
// a prefix of a longer one; the last line may be cut.
func (s *Source) Generate(seed uint64, nBytes int) []byte {
	r := newRNG(seed, "trinity/default-corpus/v1")
	buf := make([]byte, 0, nBytes+256)
	for len(buf) < nBytes {
		buf = s.appendLine(buf, r)
	}
	return buf[:nBytes]
}

// LogProb returns the log probability (nats) of the complete lines at the
// start of text under the source, and how many bytes they cover; bytes
// after the last '\n' are ignored. It fails on a line the source cannot
// emit (a malformed line, a wrong answer, a held-out problem).
func (s *Source) LogProb(text []byte) (nats float64, n int, err error) {
	for n < len(text) {
		end := n
		for end < len(text) && text[end] != '\n' {
			end++
		}
		if end == len(text) {
			break // incomplete last line
		}
		line := text[n : end+1]
		lp, err := s.lineLogProb(line)
		if err != nil {
			return 0, 0, fmt.Errorf("data: line at byte %d: %w", n, err)
		}
		nats += lp
		n = end + 1
	}
	return nats, n, nil
}

func (s *Source) lineLogProb(line []byte) (float64, error) {
	if line[0] >= '0' && line[0] <= '9' {
		p, err := parseArithLine(line)
		if err != nil {
			return 0, err
		}
		if p.heldout() {
			return 0, fmt.Errorf("held-out problem %q", line)
		}
		return s.logPArith + s.arithLogP[p.op], nil
	}
	lp, n, err := s.sentences.logProb(line)
	if err != nil {
		return 0, err
	}
	if n != len(line) {
		return 0, fmt.Errorf("sentence ends at byte %d of a %d-byte line", n, len(line))
	}
	return s.logPSentence + lp, nil
}

// parseArithLine parses "a<op>b=c\n" in canonical form with the right answer.
func parseArithLine(line []byte) (problem, error) {
	for oi, op := range arithOps {
		for i := 1; i < len(line); i++ {
			if line[i] != op.sym {
				continue
			}
			p := problem{op: uint8(oi)}
			a, err1 := strconv.Atoi(string(line[:i]))
			rest := line[i+1:]
			eq := 0
			for eq < len(rest) && rest[eq] != '=' {
				eq++
			}
			if eq == len(rest) || err1 != nil {
				break
			}
			b, err2 := strconv.Atoi(string(rest[:eq]))
			if err2 != nil || a < 0 || b < 0 || a > op.max || b > op.max || (op.sym == '-' && b > a) {
				break
			}
			p.a, p.b = int32(a), int32(b)
			if want := p.appendLine(nil); string(want) != string(line) {
				return problem{}, fmt.Errorf("arithmetic line %q, want %q", line, want)
			}
			return p, nil
		}
	}
	return problem{}, fmt.Errorf("malformed arithmetic line %q", line)
}

// Corpus is a generated text with known entropy.
type Corpus struct {
	Seed   uint64
	Text   []byte
	source *Source
}

// MaxCorpusBytes bounds DefaultCorpus.
const MaxCorpusBytes = 1<<31 - 1

// DefaultCorpus generates nBytes bytes of the default source from seed.
func DefaultCorpus(seed uint64, nBytes int) (*Corpus, error) {
	if nBytes < 1 || nBytes > MaxCorpusBytes {
		return nil, fmt.Errorf("data: default corpus size %d out of range [1, %d]", nBytes, MaxCorpusBytes)
	}
	src, err := DefaultSource()
	if err != nil {
		return nil, err
	}
	return &Corpus{Seed: seed, Text: src.Generate(seed, nBytes), source: src}, nil
}

// EntropyPerByte is the entropy rate of the corpus's source (nats/byte).
func (c *Corpus) EntropyPerByte() float64 { return c.source.EntropyPerByte() }

// Source returns the process that generated the corpus.
func (c *Corpus) Source() *Source { return c.source }

// Tokens encodes the corpus with the byte tokenizer.
func (c *Corpus) Tokens() []int32 { return ByteTokenizer{}.EncodeBytes(c.Text) }
