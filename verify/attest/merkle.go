package attest

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"

	"github.com/trinity-net/trinity/compute/tensor"
)

// Merkle tree over the rows of C.
//
// leaf(i) = SHA-256(0x00 | u32 i | row i as int32 little-endian)
// node    = SHA-256(0x01 | left | right)
//
// Levels are built pairwise; a level with an odd count carries its last
// node up unchanged, so a proof holds one sibling per level that has one.
// The prefixes keep leaves and nodes apart; the index in the leaf keeps a
// row from being opened at another position.

type hash = [32]byte

// maxProofLen is the number of levels of a tree over MaxN leaves.
const maxProofLen = 12

func leafHash(buf []byte, i int, row []int32) hash {
	buf = buf[:5+4*len(row)]
	buf[0] = 0
	binary.BigEndian.PutUint32(buf[1:], uint32(i))
	v := buf[5:]
	for k, x := range row {
		binary.LittleEndian.PutUint32(v[4*k:], uint32(x))
	}
	return sha256.Sum256(buf)
}

func nodeHash(l, r hash) hash {
	var b [65]byte
	b[0] = 1
	copy(b[1:], l[:])
	copy(b[33:], r[:])
	return sha256.Sum256(b[:])
}

// merkleTree keeps every level (levels[0] = leaves) for proofs.
type merkleTree struct {
	levels [][]hash
}

// buildTree hashes the n rows of c (n x n, row-major), in parallel when e is
// not nil.
func buildTree(e *tensor.Engine, c []int32, n int) *merkleTree {
	leaves := make([]hash, n)
	hashRows := func(lo, hi int) {
		buf := make([]byte, 0, 5+4*n)
		for i := lo; i < hi; i++ {
			leaves[i] = leafHash(buf, i, c[i*n:(i+1)*n])
		}
	}
	if e == nil {
		hashRows(0, n)
	} else {
		e.ParallelGrain(n, 8, func(_ tensor.Kernels, lo, hi int) { hashRows(lo, hi) })
	}
	t := &merkleTree{levels: [][]hash{leaves}}
	for cur := leaves; len(cur) > 1; {
		next := make([]hash, (len(cur)+1)/2)
		for i := range next {
			if 2*i+1 < len(cur) {
				next[i] = nodeHash(cur[2*i], cur[2*i+1])
			} else {
				next[i] = cur[2*i]
			}
		}
		t.levels = append(t.levels, next)
		cur = next
	}
	return t
}

func (t *merkleTree) root() hash { return t.levels[len(t.levels)-1][0] }

// proof lists the siblings of leaf i from the bottom up.
func (t *merkleTree) proof(i int) []hash {
	var p []hash
	for _, lvl := range t.levels[:len(t.levels)-1] {
		if s := i ^ 1; s < len(lvl) {
			p = append(p, lvl[s])
		}
		i /= 2
	}
	return p
}

// proofLen is the number of siblings a proof for leaf i of an n-leaf tree
// holds.
func proofLen(i, n int) int {
	k := 0
	for ; n > 1; n = (n + 1) / 2 {
		if i^1 < n {
			k++
		}
		i /= 2
	}
	return k
}

var errBadProof = errors.New("merkle proof does not lead to the committed root")

// verifyProof checks that leaf sits at index i of an n-leaf tree with root.
func verifyProof(root, leaf hash, i, n int, proof []hash) error {
	if i < 0 || i >= n || len(proof) != proofLen(i, n) {
		return errBadProof
	}
	h := leaf
	for ; n > 1; n = (n + 1) / 2 {
		if s := i ^ 1; s < n {
			if i&1 == 0 {
				h = nodeHash(h, proof[0])
			} else {
				h = nodeHash(proof[0], h)
			}
			proof = proof[1:]
		}
		i /= 2
	}
	if h != root {
		return errBadProof
	}
	return nil
}
