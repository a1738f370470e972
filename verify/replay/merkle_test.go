package replay_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"testing"

	"github.com/trinity-net/trinity/verify/replay"
)

func TestMerkle(t *testing.T) {
	for count := 2; count <= 40; count++ {
		leaves := make([][32]byte, count)
		for i := range leaves {
			leaves[i] = sha256.Sum256(fmt.Appendf(nil, "%d/%d", i, count))
		}
		tr, err := replay.NewTree(leaves)
		if err != nil {
			t.Fatal(err)
		}
		c := tr.Commitment()
		if c.Steps != count-1 {
			t.Fatalf("commitment of %d steps for %d leaves", c.Steps, count)
		}
		for i := range count {
			p, err := tr.Proof(i)
			if err != nil {
				t.Fatal(err)
			}
			if err := replay.VerifyProof(c, i, leaves[i], p); err != nil {
				t.Fatalf("count %d leaf %d: %v", count, i, err)
			}
			// Another position, another leaf, a tampered sibling, a
			// shorter or longer proof, another step count: all refused.
			if err := replay.VerifyProof(c, (i+1)%count, leaves[i], p); err == nil {
				t.Fatalf("count %d: leaf %d verifies at %d", count, i, (i+1)%count)
			}
			if err := replay.VerifyProof(c, i, leaves[(i+1)%count], p); err == nil {
				t.Fatalf("count %d: wrong leaf verifies at %d", count, i)
			}
			if len(p) > 0 {
				bad := append([][32]byte(nil), p...)
				bad[len(bad)-1][0] ^= 1
				if err := replay.VerifyProof(c, i, leaves[i], bad); err == nil {
					t.Fatalf("count %d leaf %d: tampered proof verifies", count, i)
				}
				if err := replay.VerifyProof(c, i, leaves[i], p[:len(p)-1]); err == nil {
					t.Fatalf("count %d leaf %d: short proof verifies", count, i)
				}
			}
			if err := replay.VerifyProof(c, i, leaves[i], append(p, [32]byte{})); err == nil {
				t.Fatalf("count %d leaf %d: long proof verifies", count, i)
			}
			c2 := c
			c2.Steps++
			if err := replay.VerifyProof(c2, i, leaves[i], p); err == nil {
				t.Fatalf("count %d leaf %d: verifies under another step count", count, i)
			}
		}
		if err := replay.VerifyProof(c, -1, leaves[0], nil); err == nil {
			t.Fatal("negative index accepted")
		}
		if err := replay.VerifyProof(c, count, leaves[0], nil); err == nil {
			t.Fatal("index past the end accepted")
		}
	}
	if _, err := replay.NewTree(make([][32]byte, 1)); err == nil {
		t.Fatal("tree of one state accepted")
	}
}

// A tree's leaves and inner nodes are domain-separated: an inner node can
// not be opened as a leaf (second-preimage of a shorter tree).
func TestMerkleDomains(t *testing.T) {
	leaves := make([][32]byte, 4)
	for i := range leaves {
		leaves[i] = sha256.Sum256([]byte{byte(i)})
	}
	big, _ := replay.NewTree(leaves)
	p, _ := big.Proof(0)
	// The sibling pair (leaf0, leaf1) hashed as a node is p-independent; a
	// two-leaf tree whose leaves are the big tree's level-1 nodes must
	// have another root.
	small, _ := replay.NewTree([][32]byte{p[0], p[1]})
	if small.Commitment().Root == big.Commitment().Root {
		t.Fatal("trees of different shapes share a root")
	}
}

func TestCommitmentEncoding(t *testing.T) {
	c := replay.Commitment{Steps: 30}
	c.Root[5] = 9
	c.Carry[31] = 4
	b, err := c.MarshalBinary()
	if err != nil || len(b) != replay.CommitmentSize {
		t.Fatalf("%d bytes, %v", len(b), err)
	}
	var d replay.Commitment
	if err := d.UnmarshalBinary(b); err != nil || d != c {
		t.Fatalf("round trip: %+v, %v", d, err)
	}
	steps := func(s ...byte) []byte {
		x := bytes.Clone(b)
		copy(x[32:], s)
		return x
	}
	for _, bad := range [][]byte{nil, b[:67], append(bytes.Clone(b), 0), steps(0, 0, 0, 0), steps(255, 255, 255, 255), steps(1, 0, 1, 0)} {
		if err := d.UnmarshalBinary(bad); !errors.Is(err, replay.ErrMalformed) {
			t.Errorf("%x: %v", bad, err)
		}
	}
	if _, err := (replay.Commitment{}).MarshalBinary(); err == nil {
		t.Error("zero-step commitment encoded")
	}
}
