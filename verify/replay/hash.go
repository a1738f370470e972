package replay

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"runtime"
	"sync"
	"unsafe"
)

// Domain tags. Each hash in this package starts with its own tag, so a
// digest of one kind can never be passed off as another.
const (
	tagVecChunk = "trinity/replay/v1/vector-chunk"
	tagVec      = "trinity/replay/v1/vector"
	tagState    = "trinity/replay/v1/state"
	tagLeaf     = "trinity/replay/v1/leaf"
	tagNode     = "trinity/replay/v1/node"
	tagRoot     = "trinity/replay/v1/root"
	tagCarry    = "trinity/replay/v1/carry"
	tagSelect   = "trinity/replay/v1/select"
	tagStep     = "trinity/replay/v1/step"
)

// vecChunk is the number of float32 values per chunk of a vector digest
// (256 KiB). Chunks are hashed independently (in parallel) and the digest
// hashes their digests in order, so the result depends only on the data.
const vecChunk = 1 << 16

// littleEndian is true on the machines trinity runs on; elsewhere vectors are
// converted before hashing.
var littleEndian = binary.NativeEndian.Uint16([]byte{1, 0}) == 1

// floatBytes returns x as little-endian bytes: a view of x itself on
// little-endian machines (no copy), otherwise a converted copy in scratch.
func floatBytes(x []float32, scratch []byte) []byte {
	if len(x) == 0 {
		return nil
	}
	if littleEndian {
		return unsafe.Slice((*byte)(unsafe.Pointer(&x[0])), 4*len(x))
	}
	scratch = scratch[:0]
	for _, v := range x {
		scratch = binary.LittleEndian.AppendUint32(scratch, math.Float32bits(v))
	}
	return scratch
}

// VectorDigest identifies a float32 vector by its exact bits:
//
//	chunk_i = SHA-256(tagVecChunk | u64 i | x[i*65536 : (i+1)*65536] as LE float32)
//	digest  = SHA-256(tagVec | u64 len(x) | chunk_0 | chunk_1 | ...)
//
// Chunks are hashed on up to GOMAXPROCS goroutines; the value does not
// depend on it. -0 and +0, and NaN payloads, hash differently: this is a
// digest of bits, not of values.
func VectorDigest(x []float32) [32]byte {
	n := (len(x) + vecChunk - 1) / vecChunk
	sums := make([][32]byte, n)
	hashChunks := func(lo, hi int) {
		var scratch []byte
		if !littleEndian {
			scratch = make([]byte, 0, 4*vecChunk)
		}
		var hdr [8]byte
		for i := lo; i < hi; i++ {
			h := sha256.New()
			h.Write([]byte(tagVecChunk))
			binary.LittleEndian.PutUint64(hdr[:], uint64(i))
			h.Write(hdr[:])
			h.Write(floatBytes(x[i*vecChunk:min(len(x), (i+1)*vecChunk)], scratch))
			h.Sum(sums[i][:0])
		}
	}
	workers := min(n, runtime.GOMAXPROCS(0))
	if workers <= 1 {
		hashChunks(0, n)
	} else {
		var wg sync.WaitGroup
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				hashChunks(n*w/workers, n*(w+1)/workers)
			}()
		}
		wg.Wait()
	}
	h := sha256.New()
	h.Write([]byte(tagVec))
	var hdr [8]byte
	binary.LittleEndian.PutUint64(hdr[:], uint64(len(x)))
	h.Write(hdr[:])
	for i := range sums {
		h.Write(sums[i][:])
	}
	var d [32]byte
	h.Sum(d[:0])
	return d
}

// Digests are the parts of a training state's hash: one VectorDigest per
// vector and the AdamW step count. A state's hash is a function of its
// Digests alone, so a party can prove what a state hashes to while sending
// only some of its vectors (the others as their 32-byte digests).
type Digests struct {
	Params, M, V, EF [32]byte
	AdamStep         uint64
}

// Hash is the state hash:
//
//	SHA-256(tagState | params | m | v | u64 adamStep | ef)
//
// over the four vector digests and the step, little endian.
func (d Digests) Hash() [32]byte {
	b := make([]byte, 0, len(tagState)+4*32+8)
	b = append(b, tagState...)
	b = append(b, d.Params[:]...)
	b = append(b, d.M[:]...)
	b = append(b, d.V[:]...)
	b = binary.LittleEndian.AppendUint64(b, d.AdamStep)
	b = append(b, d.EF[:]...)
	return sha256.Sum256(b)
}

// Carry identifies the part of a state a trainer takes from one round into
// the next (everything but the parameters, which the next round replaces with
// the global state):
//
//	SHA-256(tagCarry | m | v | u64 adamStep | ef)
//
// At the end of a round, ef is the error-feedback buffer after compression.
func (d Digests) Carry() [32]byte {
	b := make([]byte, 0, len(tagCarry)+3*32+8)
	b = append(b, tagCarry...)
	b = append(b, d.M[:]...)
	b = append(b, d.V[:]...)
	b = binary.LittleEndian.AppendUint64(b, d.AdamStep)
	b = append(b, d.EF[:]...)
	return sha256.Sum256(b)
}

// StateHash identifies a full training state: parameters, AdamW moments m
// and v, AdamW's step count, and SparseLoCo's error-feedback buffer ef.
// A negative adamStep is hashed as 0 (AdamW never has one).
func StateHash(params, m, v []float32, adamStep int, ef []float32) [32]byte {
	return stateDigests(params, m, v, adamStep, ef).Hash()
}

func stateDigests(params, m, v []float32, adamStep int, ef []float32) Digests {
	var d Digests
	var wg sync.WaitGroup
	// Four vectors of equal size: hashing them side by side keeps both
	// cores busy even when each vector is a single chunk.
	for i, p := range []struct {
		x   []float32
		out *[32]byte
	}{{params, &d.Params}, {m, &d.M}, {v, &d.V}, {ef, &d.EF}} {
		if i == 3 {
			*p.out = VectorDigest(p.x)
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			*p.out = VectorDigest(p.x)
		}()
	}
	wg.Wait()
	d.AdamStep = uint64(max(adamStep, 0))
	return d
}
