package grail

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// Domain-separation labels: every hash the protocol uses starts with one, so
// a value computed for one purpose can never be reused for another.
const (
	domainSeed      = "trinity/grail/v1/seed\x00"
	domainCommit    = "trinity/grail/v1/commit\x00"
	domainChallenge = "trinity/grail/v1/challenge\x00"
	domainSign      = "trinity/grail/v1/sign\x00"
)

// Stream labels under one seed.
const (
	labelProjection byte = 'r' // projection vector r_t of position t
	labelUniform    byte = 'u' // sampling draw u_t of position t
	labelPositions  byte = 'k' // challenged positions
)

// stream is a deterministic byte stream: SHA-256 in counter mode over
// (key, label, index, counter). It is a PRF in the random-oracle sense, fixed
// forever by this definition (math/rand's generators carry no such promise
// across Go versions).
type stream struct {
	in  [32 + 1 + 8 + 4]byte
	buf [32]byte
	pos int
	ctr uint32
}

func newStream(key [32]byte, label byte, index uint64) *stream {
	s := &stream{pos: 32}
	s.reset(key, label, index)
	return s
}

func (s *stream) reset(key [32]byte, label byte, index uint64) {
	copy(s.in[:32], key[:])
	s.in[32] = label
	binary.LittleEndian.PutUint64(s.in[33:], index)
	s.ctr, s.pos = 0, 32
}

func (s *stream) byte() byte {
	if s.pos == 32 {
		binary.LittleEndian.PutUint32(s.in[41:], s.ctr)
		s.buf = sha256.Sum256(s.in[:])
		s.ctr++
		s.pos = 0
	}
	b := s.buf[s.pos]
	s.pos++
	return b
}

func (s *stream) uint64() uint64 {
	var x uint64
	for i := range 8 {
		x |= uint64(s.byte()) << (8 * i)
	}
	return x
}

// below returns a uniform integer in [0, n) for n > 0 by rejection, so it has
// no modulo bias.
func (s *stream) below(n uint64) uint64 {
	limit := -n % n // 2^64 mod n: values below it are rejected
	for {
		if x := s.uint64(); x >= limit {
			return x % n
		}
	}
}

// projection fills r with the projection vector of position t: independent
// uniform integers in [-127, 127] (byte 255 is rejected so that the 255
// values are equally likely).
func projection(seed [32]byte, t int, r []int8, st *stream) {
	st.reset(seed, labelProjection, uint64(t))
	for i := range r {
		b := st.byte()
		for b == 255 {
			b = st.byte()
		}
		r[i] = int8(int(b) - 127)
	}
}

// uniform is the sampling draw of position t, uniform in [0, 1) on a grid of
// 2^-53.
func uniform(seed [32]byte, t int, st *stream) float64 {
	st.reset(seed, labelUniform, uint64(t))
	return float64(st.uint64()>>11) * 0x1p-53
}

// challengeKey binds the challenge to the challenge randomness and to the
// prover's commitment, so positions are unknown until both are fixed.
func challengeKey(randomness []byte, commitment [32]byte) [32]byte {
	h := sha256.New()
	h.Write([]byte(domainChallenge))
	var n [8]byte
	binary.LittleEndian.PutUint64(n[:], uint64(len(randomness)))
	h.Write(n[:])
	h.Write(randomness)
	h.Write(commitment[:])
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// challengePositions draws min(k, n) distinct positions in [0, n), sorted,
// with a partial Fisher-Yates shuffle driven by key. k <= 0 means all.
func challengePositions(key [32]byte, n, k int) []int {
	if k <= 0 || k >= n {
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		return all
	}
	// Sparse Fisher-Yates: only swapped entries are stored, so the cost is
	// O(k) whatever n is.
	swapped := make(map[int]int, 2*k)
	at := func(i int) int {
		if v, ok := swapped[i]; ok {
			return v
		}
		return i
	}
	st := newStream(key, labelPositions, 0)
	out := make([]int, k)
	for i := range k {
		j := i + int(st.below(uint64(n-i)))
		out[i] = at(j)
		swapped[j] = at(i)
	}
	slices.Sort(out)
	return out
}
