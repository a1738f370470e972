package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// State is a trainer's full training state between two inner steps.
type State struct {
	Params   []float32 // model parameters, flat (compute/model layout)
	M, V     []float32 // AdamW moments
	AdamStep int       // AdamW steps taken (drives the learning-rate schedule)
	EF       []float32 // SparseLoCo error-feedback buffer
}

// Digests hashes the state's vectors.
func (s *State) Digests() Digests { return stateDigests(s.Params, s.M, s.V, s.AdamStep, s.EF) }

// Hash is StateHash of the state.
func (s *State) Hash() [32]byte { return s.Digests().Hash() }

// Parts says which vectors a snapshot carries in full; the others travel as
// their digests.
type Parts uint8

// The vectors of a state.
const (
	PartParams Parts = 1 << iota
	PartM
	PartV
	PartEF

	PartsAll        = PartParams | PartM | PartV | PartEF
	PartsNone Parts = 0
)

// Snapshot encoding, version 1 (little endian):
//
//	off  size  field
//	0    4     magic "TRST"
//	4    1     version (1)
//	5    1     parts: bit 0 params, 1 m, 2 v, 3 ef (others zero)
//	6    2     reserved, zero
//	8    8     n, the length of every vector
//	16   8     AdamW step
//	24   ...   params, m, v, ef in that order: 4n bytes of float32 when
//	           present, else its 32-byte VectorDigest
//
// The size is a function of (n, parts) and must be exact. Present values must
// be finite and v non-negative (what AdamW produces); a decoder is told n and
// the parts it expects and refuses anything else, so hostile input never
// sizes an allocation.
const (
	snapMagic   = "TRST"
	snapVersion = 1
	snapHeader  = 24
	// MaxAdamStep bounds the AdamW step a snapshot may carry.
	MaxAdamStep = 1 << 40
)

// ErrMalformed is wrapped by every error decoding a snapshot or response.
var ErrMalformed = errors.New("replay: malformed data")

// SnapshotSize is the encoded size of a snapshot of n-vectors with parts.
func SnapshotSize(n int, parts Parts) int {
	size := snapHeader
	for p := PartParams; p <= PartEF; p <<= 1 {
		if parts&p != 0 {
			size += 4 * n
		} else {
			size += 32
		}
	}
	return size
}

// AppendSnapshot appends the encoding of s to dst, with the vectors named by
// parts in full and the others as their digests, taken from d (d's entries
// for the full vectors are not used; a zero Digests is fine when parts is
// PartsAll). n is the length of every vector of the state; the full ones
// must have it.
func AppendSnapshot(dst []byte, s *State, d Digests, parts Parts, n int) ([]byte, error) {
	if parts&^PartsAll != 0 {
		return nil, fmt.Errorf("replay: snapshot parts %#x unknown", uint8(parts))
	}
	if n < 0 || s.AdamStep < 0 || s.AdamStep > MaxAdamStep {
		return nil, fmt.Errorf("replay: snapshot of n=%d, adam step %d out of range", n, s.AdamStep)
	}
	vecs := [4]struct {
		p Parts
		x []float32
		d [32]byte
	}{{PartParams, s.Params, d.Params}, {PartM, s.M, d.M}, {PartV, s.V, d.V}, {PartEF, s.EF, d.EF}}
	for _, v := range vecs {
		if parts&v.p != 0 && len(v.x) != n {
			return nil, fmt.Errorf("replay: snapshot vector has %d values, want %d", len(v.x), n)
		}
	}
	dst = append(dst, snapMagic...)
	dst = append(dst, snapVersion, byte(parts), 0, 0)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(n))
	dst = binary.LittleEndian.AppendUint64(dst, uint64(s.AdamStep))
	for _, v := range vecs {
		if parts&v.p == 0 {
			dst = append(dst, v.d[:]...)
			continue
		}
		dst = append(dst, floatBytes(v.x, nil)...)
	}
	return dst, nil
}

// DecodeSnapshot parses the snapshot at the start of b, which must have
// vectors of length n and exactly the parts want. The full vectors are
// written into into's slices (reused when their capacity is at least n,
// allocated otherwise; absent ones are left alone) and into.AdamStep is set.
// It returns the snapshot's Digests (computed for full vectors, read for the
// others) and the number of bytes consumed.
func DecodeSnapshot(b []byte, n int, want Parts, into *State) (Digests, int, error) {
	return decodeSnapshot(b, n, want, into, true)
}

// decodeSnapshot is DecodeSnapshot; without hash, full vectors' digests are
// left zero (for the trainer's own files, checked another way).
func decodeSnapshot(b []byte, n int, want Parts, into *State, hash bool) (Digests, int, error) {
	var d Digests
	if n < 0 {
		return d, 0, fmt.Errorf("replay: snapshot: negative n %d", n)
	}
	if len(b) < snapHeader {
		return d, 0, fmt.Errorf("%w: snapshot of %d bytes is shorter than its header", ErrMalformed, len(b))
	}
	if string(b[:4]) != snapMagic {
		return d, 0, fmt.Errorf("%w: snapshot magic %q", ErrMalformed, b[:4])
	}
	if b[4] != snapVersion {
		return d, 0, fmt.Errorf("%w: snapshot version %d, want %d", ErrMalformed, b[4], snapVersion)
	}
	parts := Parts(b[5])
	if parts != want {
		return d, 0, fmt.Errorf("%w: snapshot carries parts %#x, want %#x", ErrMalformed, uint8(parts), uint8(want))
	}
	if b[6] != 0 || b[7] != 0 {
		return d, 0, fmt.Errorf("%w: snapshot reserved bytes not zero", ErrMalformed)
	}
	if got := binary.LittleEndian.Uint64(b[8:]); got != uint64(n) {
		return d, 0, fmt.Errorf("%w: snapshot vectors of %d values, want %d (state of the wrong shape)", ErrMalformed, got, n)
	}
	step := binary.LittleEndian.Uint64(b[16:])
	if step > MaxAdamStep {
		return d, 0, fmt.Errorf("%w: snapshot adam step %d above %d", ErrMalformed, step, uint64(MaxAdamStep))
	}
	size := SnapshotSize(n, parts)
	if len(b) < size {
		return d, 0, fmt.Errorf("%w: snapshot truncated: %d bytes, want %d", ErrMalformed, len(b), size)
	}
	d.AdamStep = step
	into.AdamStep = int(step)
	off := snapHeader
	for _, v := range [4]struct {
		p    Parts
		name string
		x    *[]float32
		d    *[32]byte
	}{{PartParams, "params", &into.Params, &d.Params}, {PartM, "m", &into.M, &d.M}, {PartV, "v", &into.V, &d.V}, {PartEF, "ef", &into.EF, &d.EF}} {
		if parts&v.p == 0 {
			copy(v.d[:], b[off:off+32])
			off += 32
			continue
		}
		if cap(*v.x) < n {
			*v.x = make([]float32, n)
		}
		x := (*v.x)[:n]
		*v.x = x
		src := b[off : off+4*n]
		for i := range x {
			bits := binary.LittleEndian.Uint32(src[4*i:])
			if bits&0x7f800000 == 0x7f800000 {
				return d, 0, fmt.Errorf("%w: snapshot %s[%d] is not finite", ErrMalformed, v.name, i)
			}
			if v.p == PartV && bits&0x80000000 != 0 {
				return d, 0, fmt.Errorf("%w: snapshot v[%d] is negative", ErrMalformed, i)
			}
			x[i] = math.Float32frombits(bits)
		}
		off += 4 * n
		if hash {
			*v.d = VectorDigest(x)
		}
	}
	return d, size, nil
}
