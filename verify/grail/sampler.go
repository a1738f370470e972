package grail

import (
	"errors"
	"fmt"
	"math"
	"slices"
)

// MaxTemperature bounds the sampling temperature a proof may declare.
const MaxTemperature = 1000

// Sampling are the sampling parameters a proof declares. Temperature 0 is
// greedy decoding (argmax, lowest index on ties; TopK must then be 0).
// Otherwise the next token is drawn from softmax(logits/Temperature)
// restricted to the TopK largest logits (ties at the boundary go to the lower
// index; TopK 0 means the whole vocabulary) by inverse CDF over the kept
// tokens in index order, with the draw u_t derived from the proof's seed.
// The draw is public, so a verifier can replay the choice.
type Sampling struct {
	Temperature float32
	TopK        int
}

// validate checks the parameters for a vocabulary of vocab tokens.
func (s Sampling) validate(vocab int) error {
	t := float64(s.Temperature)
	if math.IsNaN(t) || t < 0 || t > MaxTemperature || math.Signbit(t) {
		return fmt.Errorf("grail: temperature %v out of range [0, %d]", s.Temperature, MaxTemperature)
	}
	if s.TopK < 0 || s.TopK > vocab {
		return fmt.Errorf("grail: top-k %d out of range [0, %d]", s.TopK, vocab)
	}
	if t == 0 && s.TopK != 0 {
		return errors.New("grail: greedy sampling (temperature 0) takes no top-k")
	}
	return nil
}

func (s Sampling) String() string {
	if s.Temperature == 0 {
		return "greedy"
	}
	return fmt.Sprintf("T=%g top-k=%d", s.Temperature, s.TopK)
}

// sampler holds scratch space so that sampling does not allocate per token.
type sampler struct {
	sorted []float32
	w      []float64
	keep   []bool
}

func newSampler(vocab int) *sampler {
	return &sampler{sorted: make([]float32, vocab), w: make([]float64, vocab), keep: make([]bool, vocab)}
}

func checkFinite(logits []float32) (mx float32, arg int, err error) {
	for i, z := range logits {
		if z != z || math.IsInf(float64(z), 0) {
			return 0, 0, fmt.Errorf("grail: non-finite logit %v at token %d", z, i)
		}
		if i == 0 || z > mx {
			mx, arg = z, i
		}
	}
	return mx, arg, nil
}

// kth returns the k-th and (k+1)-th largest logits (1-based; the second is
// -Inf when k equals the vocabulary).
func (sp *sampler) kth(logits []float32, k int) (ck, ck1 float32) {
	s := sp.sorted[:len(logits)]
	copy(s, logits)
	slices.Sort(s)
	ck = s[len(s)-k]
	ck1 = float32(math.Inf(-1))
	if k < len(s) {
		ck1 = s[len(s)-k-1]
	}
	return ck, ck1
}

// sample is the prover's sampler: the token the parameters choose from
// logits with draw u.
func (sp *sampler) sample(logits []float32, s Sampling, u float64) (int32, error) {
	mx, arg, err := checkFinite(logits)
	if err != nil {
		return 0, err
	}
	if s.Temperature == 0 {
		return int32(arg), nil
	}
	V := len(logits)
	keep := sp.keep[:V]
	if k := s.TopK; k > 0 && k < V {
		ck, _ := sp.kth(logits, k)
		ties := k
		for _, z := range logits {
			if z > ck {
				ties--
			}
		}
		for i, z := range logits {
			keep[i] = z > ck || (z == ck && ties > 0)
			if z == ck && ties > 0 {
				ties--
			}
		}
	} else {
		for i := range keep {
			keep[i] = true
		}
	}
	invT := 1 / float64(s.Temperature)
	w := sp.w[:V]
	var total float64
	for i, z := range logits {
		w[i] = 0
		if keep[i] {
			w[i] = math.Exp((float64(z) - float64(mx)) * invT)
			total += w[i]
		}
	}
	target := u * total
	var cum float64
	last := int32(arg)
	for i := range w {
		if !keep[i] {
			continue
		}
		cum += w[i]
		last = int32(i)
		if cum > target {
			return int32(i), nil
		}
	}
	return last, nil
}

// Token rejection reasons.
var (
	errNotArgmax  = errors.New("not the greedy choice")
	errOutsideK   = errors.New("outside the top-k set")
	errNotSampled = errors.New("not the token the committed draw selects")
	errBelowFloor = errors.New("probability below the floor")
)

// checkToken is the verifier's token check. It accepts tok when some logits
// within delta (max norm) of the verifier's own would make the prover's
// sampler choose tok with draw u: the verifier brackets the CDF interval of
// tok over all such logits and requires u inside. When acceptance needs that
// slack (the verifier's own replay picks another token), tok must also have
// probability at least floor, so the slack can never admit an implausible
// token.
func (sp *sampler) checkToken(logits []float32, s Sampling, u float64, tok int32, delta, floor float64) error {
	mx, _, err := checkFinite(logits)
	if err != nil {
		return err
	}
	V := len(logits)
	if tok < 0 || int(tok) >= V {
		return fmt.Errorf("grail: token %d out of range [0, %d)", tok, V)
	}
	zt := float64(logits[tok])
	if s.Temperature == 0 {
		if zt < float64(mx)-2*delta {
			return errNotArgmax
		}
		return nil
	}
	// possible: tok may be in the prover's top-k; certain: it must be.
	possible := func(int) bool { return true }
	certain := possible
	if k := s.TopK; k > 0 && k < V {
		ck, ck1 := sp.kth(logits, k)
		lo, hi := float64(ck)-2*delta, float64(ck1)+2*delta
		possible = func(i int) bool { return float64(logits[i]) >= lo }
		certain = func(i int) bool { return float64(logits[i]) > hi }
	}
	if !possible(int(tok)) {
		return errOutsideK
	}
	// Weights relative to exp((mx+delta)/T): the largest possible weight is
	// at most 1, so nothing overflows at small temperatures.
	invT := 1 / float64(s.Temperature)
	wmax := func(i int) float64 { return math.Exp((float64(logits[i]) - float64(mx)) * invT) }
	wmin := func(i int) float64 { return math.Exp((float64(logits[i]) - float64(mx) - 2*delta) * invT) }
	var aMin, bMax, cMax, dMin, others float64
	for i := range V {
		switch {
		case i < int(tok):
			if certain(i) {
				aMin += wmin(i)
				others += wmin(i)
			}
			if possible(i) {
				cMax += wmax(i)
			}
		case i == int(tok):
			bMax += wmax(i)
			cMax += wmax(i)
		default:
			if possible(i) {
				bMax += wmax(i)
			}
			if certain(i) {
				dMin += wmin(i)
				others += wmin(i)
			}
		}
	}
	const eta = 1e-9 // float64 rounding of the prover's cumulative sums
	if u < ratio(aMin, bMax)-eta || u >= ratio(cMax, dMin)+eta {
		return errNotSampled
	}
	replay, err := sp.sample(logits, s, u)
	if err != nil {
		return err
	}
	if replay == tok {
		return nil
	}
	if ratio(wmax(int(tok)), others) < floor {
		return errBelowFloor
	}
	return nil
}

// ratio is a/(a+b), 0 when a is 0.
func ratio(a, b float64) float64 {
	if a == 0 {
		return 0
	}
	return a / (a + b)
}
