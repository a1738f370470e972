package replay

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
)

// Merkle tree over the state hashes of a round, leaf i being the state after
// i inner steps (leaf 0 the start state, leaf H the state the pseudo-gradient
// was taken from):
//
//	leaf(i) = SHA-256(tagLeaf | u32 i | stateHash_i)
//	node    = SHA-256(tagNode | left | right)
//	root    = SHA-256(tagRoot | u32 count | top)
//
// Levels are built pairwise; a level with an odd count carries its last node
// up unchanged, so a proof holds one sibling per level that has one and its
// length is a function of (i, count). The tags keep leaves, nodes and roots
// apart; the index in a leaf keeps a state from being opened at another
// step; the count in the root fixes the tree's shape.

// MaxSteps bounds the inner steps of a round (leaves are MaxSteps+1).
const MaxSteps = 1 << 16

// maxProof is the longest proof: the depth of a tree of MaxSteps+1 leaves.
const maxProof = 17

// Commitment is what a trainer binds into its signed announcement: the root
// of the tree over its Steps+1 state hashes, and the carry hash of the state
// it takes into its next round (Digests.Carry: AdamW moments and step after
// step H, error-feedback buffer after compression), which links its rounds.
type Commitment struct {
	Root  [32]byte
	Steps int // inner steps H; the tree has H+1 leaves
	Carry [32]byte
}

// CommitmentSize is the size of an encoded Commitment.
const CommitmentSize = 68

// MarshalBinary encodes the commitment as root | u32 steps | carry (little
// endian).
func (c Commitment) MarshalBinary() ([]byte, error) {
	if c.Steps < 1 || c.Steps > MaxSteps {
		return nil, fmt.Errorf("replay: commitment of %d steps out of range [1, %d]", c.Steps, MaxSteps)
	}
	b := make([]byte, 0, CommitmentSize)
	b = append(b, c.Root[:]...)
	b = binary.LittleEndian.AppendUint32(b, uint32(c.Steps))
	return append(b, c.Carry[:]...), nil
}

// UnmarshalBinary decodes what MarshalBinary wrote, strictly.
func (c *Commitment) UnmarshalBinary(b []byte) error {
	if len(b) != CommitmentSize {
		return fmt.Errorf("%w: commitment of %d bytes, want %d", ErrMalformed, len(b), CommitmentSize)
	}
	steps := binary.LittleEndian.Uint32(b[32:])
	if steps < 1 || steps > MaxSteps {
		return fmt.Errorf("%w: commitment of %d steps out of range [1, %d]", ErrMalformed, steps, MaxSteps)
	}
	copy(c.Root[:], b[:32])
	c.Steps = int(steps)
	copy(c.Carry[:], b[36:])
	return nil
}

func leafHash(i int, state [32]byte) [32]byte {
	b := make([]byte, 0, len(tagLeaf)+4+32)
	b = append(b, tagLeaf...)
	b = binary.LittleEndian.AppendUint32(b, uint32(i))
	b = append(b, state[:]...)
	return sha256.Sum256(b)
}

func nodeHash(l, r [32]byte) [32]byte {
	b := make([]byte, 0, len(tagNode)+64)
	b = append(b, tagNode...)
	b = append(b, l[:]...)
	b = append(b, r[:]...)
	return sha256.Sum256(b)
}

func rootHash(count int, top [32]byte) [32]byte {
	b := make([]byte, 0, len(tagRoot)+4+32)
	b = append(b, tagRoot...)
	b = binary.LittleEndian.AppendUint32(b, uint32(count))
	b = append(b, top[:]...)
	return sha256.Sum256(b)
}

// Tree is the Merkle tree over a round's state hashes.
type Tree struct {
	levels [][][32]byte // levels[0] are the leaf hashes
}

// NewTree builds the tree over states (state hashes in step order, at least
// 2: a round has at least one step).
func NewTree(states [][32]byte) (*Tree, error) {
	if len(states) < 2 || len(states) > MaxSteps+1 {
		return nil, fmt.Errorf("replay: tree of %d states out of range [2, %d]", len(states), MaxSteps+1)
	}
	lv := make([][32]byte, len(states))
	for i, s := range states {
		lv[i] = leafHash(i, s)
	}
	t := &Tree{levels: [][][32]byte{lv}}
	for len(lv) > 1 {
		next := make([][32]byte, 0, (len(lv)+1)/2)
		for i := 0; i+1 < len(lv); i += 2 {
			next = append(next, nodeHash(lv[i], lv[i+1]))
		}
		if len(lv)%2 == 1 {
			next = append(next, lv[len(lv)-1])
		}
		t.levels = append(t.levels, next)
		lv = next
	}
	return t, nil
}

// Commitment is the tree's root with its step count (Carry left zero: the
// Recorder sets it).
func (t *Tree) Commitment() Commitment {
	n := len(t.levels[0])
	return Commitment{Root: rootHash(n, t.levels[len(t.levels)-1][0]), Steps: n - 1}
}

// Proof returns the siblings on the path from leaf i to the top.
func (t *Tree) Proof(i int) ([][32]byte, error) {
	if i < 0 || i >= len(t.levels[0]) {
		return nil, fmt.Errorf("replay: proof of leaf %d of %d", i, len(t.levels[0]))
	}
	var p [][32]byte
	for _, lv := range t.levels[:len(t.levels)-1] {
		if s := i ^ 1; s < len(lv) {
			p = append(p, lv[s])
		}
		i /= 2
	}
	return p, nil
}

// proofLen is the length of the proof of leaf i among count leaves.
func proofLen(i, count int) int {
	n := 0
	for count > 1 {
		if i^1 < count {
			n++
		}
		i /= 2
		count = (count + 1) / 2
	}
	return n
}

// VerifyProof checks that state (a state hash) is leaf i of the tree c
// commits to.
func VerifyProof(c Commitment, i int, state [32]byte, proof [][32]byte) error {
	count := c.Steps + 1
	if c.Steps < 1 || c.Steps > MaxSteps || i < 0 || i >= count {
		return fmt.Errorf("replay: proof of leaf %d in a tree of %d steps", i, c.Steps)
	}
	if want := proofLen(i, count); len(proof) != want {
		return fmt.Errorf("replay: proof of leaf %d has %d hashes, want %d", i, len(proof), want)
	}
	leaf := i
	h := leafHash(i, state)
	k := 0
	for n := count; n > 1; n = (n + 1) / 2 {
		switch {
		case i^1 >= n: // carried up unchanged
		case i%2 == 0:
			h = nodeHash(h, proof[k])
			k++
		default:
			h = nodeHash(proof[k], h)
			k++
		}
		i /= 2
	}
	if rootHash(count, h) != c.Root {
		return fmt.Errorf("replay: leaf %d does not match the committed root", leaf)
	}
	return nil
}
