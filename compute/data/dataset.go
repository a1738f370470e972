package data

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Dataset is a token sequence split into a training part and a validation
// part: the validation split is the last fraction of the sequence, so the
// two never share a window.
type Dataset struct {
	Train []int32
	Val   []int32
	Vocab int
}

// NewDataset checks tokens against vocab and splits off the last
// valFraction of them for validation (0.1 for tinyshakespeare).
func NewDataset(tokens []int32, vocab int, valFraction float64) (*Dataset, error) {
	if vocab < 1 {
		return nil, fmt.Errorf("data: vocabulary %d must be positive", vocab)
	}
	if !(valFraction > 0 && valFraction < 1) {
		return nil, fmt.Errorf("data: validation fraction %v out of range (0, 1)", valFraction)
	}
	for i, t := range tokens {
		if t < 0 || int(t) >= vocab {
			return nil, fmt.Errorf("data: token %d at position %d is outside the vocabulary of %d", t, i, vocab)
		}
	}
	nVal := int(float64(len(tokens)) * valFraction)
	nTrain := len(tokens) - nVal
	if nVal < 2 || nTrain < 2 {
		return nil, fmt.Errorf("data: %d tokens are too few to split %v/%v into training and validation", len(tokens), 1-valFraction, valFraction)
	}
	return &Dataset{Train: tokens[:nTrain:nTrain], Val: tokens[nTrain:], Vocab: vocab}, nil
}

// NumPages is how many pages of pageSize tokens the training split holds.
// Page p covers Train[p*pageSize : (p+1)*pageSize]; a window may read one
// token past its page for its last target, hence the -1.
func NumPages(trainLen, pageSize int) int {
	if pageSize < 1 || trainLen < 2 {
		return 0
	}
	return (trainLen - 1) / pageSize
}

// AssignPages returns the pages a peer trains on in a round: count distinct
// pages out of numPages (all of them, shuffled, if count >= numPages; none
// if either is not positive), drawn uniformly from a SHA-256 stream keyed
// by (seed, peerID, round). Every machine derives the same list, so a
// validator can recompute a trainer's pages, and two peers' lists overlap
// only as much as independent uniform draws do.
func AssignPages(seed uint64, peerID string, round uint64, numPages, count int) []int {
	if numPages <= 0 || count <= 0 {
		return nil
	}
	count = min(count, numPages)
	s := newHashStream(seed, peerID, round)
	// Floyd's algorithm picks a uniform subset in count draws whatever
	// numPages is; a Fisher-Yates pass then makes the order uniform too.
	chosen := make(map[int]struct{}, count)
	out := make([]int, 0, count)
	for j := numPages - count; j < numPages; j++ {
		t := int(uniform(s.next, uint64(j+1)))
		if _, dup := chosen[t]; dup {
			t = j
		}
		chosen[t] = struct{}{}
		out = append(out, t)
	}
	for i := len(out) - 1; i > 0; i-- {
		k := int(uniform(s.next, uint64(i+1)))
		out[i], out[k] = out[k], out[i]
	}
	return out
}

// hashStream is SHA-256 in counter mode over a domain-separated key.
type hashStream struct {
	key   []byte
	ctr   uint64
	block [32]byte
	used  int
}

func newHashStream(seed uint64, peerID string, round uint64) *hashStream {
	key := []byte("trinity/pages/v1\x00")
	key = binary.LittleEndian.AppendUint64(key, seed)
	key = binary.LittleEndian.AppendUint64(key, uint64(len(peerID)))
	key = append(key, peerID...)
	key = binary.LittleEndian.AppendUint64(key, round)
	return &hashStream{key: key, used: 32}
}

func (h *hashStream) next() uint64 {
	if h.used == 32 {
		h.block = sha256.Sum256(binary.LittleEndian.AppendUint64(h.key, h.ctr))
		h.ctr++
		h.used = 0
	}
	v := binary.LittleEndian.Uint64(h.block[h.used:])
	h.used += 8
	return v
}

// Batcher cuts windows of T+1 tokens out of a token sequence and serves
// them as batches of B windows: inputs are a window's first T tokens,
// targets its last T. Windows are taken page by page in the given page
// order, each page yielding pageSize/T consecutive windows; batch i holds
// windows i*B ... i*B+B-1, wrapping around after the last window. The
// batches are a pure function of (tokens, pageSize, pages, B, T).
type Batcher struct {
	tokens  []int32
	starts  []int
	b, t    int
	pos     int
	in, tgt []int32
}

// NewBatcher makes a Batcher over pages of tokens. Every page must lie
// within NumPages(len(tokens), pageSize), and pageSize must be at least T.
func NewBatcher(tokens []int32, pageSize int, pages []int, B, T int) (*Batcher, error) {
	if B < 1 || T < 1 {
		return nil, fmt.Errorf("data: batch shape %dx%d must be positive", B, T)
	}
	if hi, lo := bits.Mul64(uint64(B), uint64(T)); hi != 0 || lo > 1<<31 {
		return nil, fmt.Errorf("data: batch shape %dx%d too large", B, T)
	}
	if pageSize < T {
		return nil, fmt.Errorf("data: page size %d is smaller than the sequence length %d", pageSize, T)
	}
	if len(pages) == 0 {
		return nil, fmt.Errorf("data: no pages to draw batches from")
	}
	n := NumPages(len(tokens), pageSize)
	per := pageSize / T
	starts := make([]int, 0, len(pages)*per)
	for _, p := range pages {
		if p < 0 || p >= n {
			return nil, fmt.Errorf("data: page %d out of range [0, %d)", p, n)
		}
		for k := range per {
			starts = append(starts, p*pageSize+k*T)
		}
	}
	return &Batcher{tokens: tokens, starts: starts, b: B, t: T, in: make([]int32, B*T), tgt: make([]int32, B*T)}, nil
}

// NewValidationBatcher serves up to maxBatches batches of consecutive,
// non-overlapping windows from the start of the validation split: the same
// tokens for every peer. It fails if the split holds less than one batch.
func NewValidationBatcher(val []int32, B, T, maxBatches int) (*Batcher, error) {
	if maxBatches < 1 {
		return nil, fmt.Errorf("data: validation batches %d must be positive", maxBatches)
	}
	if T < 1 || B < 1 {
		return nil, fmt.Errorf("data: batch shape %dx%d must be positive", B, T)
	}
	n := NumPages(len(val), T)
	if n < B {
		return nil, fmt.Errorf("data: validation split of %d tokens holds %d windows of %d+1, fewer than one batch of %d", len(val), n, T, B)
	}
	n = min(n, maxBatches*B)
	n -= n % B // whole batches only, so every batch is distinct
	pages := make([]int, n)
	for i := range pages {
		pages[i] = i
	}
	return NewBatcher(val, T, pages, B, T)
}

// Windows is the number of distinct windows.
func (b *Batcher) Windows() int { return len(b.starts) }

// Len is the number of batches in one pass over the windows (rounded up:
// the last may wrap around to the first windows).
func (b *Batcher) Len() int { return (len(b.starts) + b.b - 1) / b.b }

// Fill writes batch i (any i >= 0; batches repeat with period Windows()
// windows) into inputs and targets, each of length B*T.
func (b *Batcher) Fill(i int, inputs, targets []int32) error {
	if i < 0 {
		return fmt.Errorf("data: batch index %d is negative", i)
	}
	if len(inputs) != b.b*b.t || len(targets) != b.b*b.t {
		return fmt.Errorf("data: batch buffers of %d and %d tokens, want %d", len(inputs), len(targets), b.b*b.t)
	}
	w := (i % len(b.starts)) * b.b % len(b.starts) // avoid overflow of i*B
	for r := range b.b {
		s := b.starts[(w+r)%len(b.starts)]
		copy(inputs[r*b.t:(r+1)*b.t], b.tokens[s:s+b.t])
		copy(targets[r*b.t:(r+1)*b.t], b.tokens[s+1:s+b.t+1])
	}
	return nil
}

// Next returns the next batch in internal buffers, valid until the next
// call to Next; it does not allocate.
func (b *Batcher) Next() (inputs, targets []int32) {
	_ = b.Fill(b.pos, b.in, b.tgt) // cannot fail: pos >= 0, buffers sized
	b.pos++
	if b.pos == len(b.starts) {
		b.pos = 0 // batch pos and pos mod Windows() coincide
	}
	return b.in, b.tgt
}

// Reset makes Next start again from batch 0.
func (b *Batcher) Reset() { b.pos = 0 }
