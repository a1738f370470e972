package rl

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/trinity-net/trinity/verify/grail"
)

// Batch is one rollout peer's work for a round: G proved rollouts of each of
// its assigned tasks, with the rewards it claims, bound to the round's
// randomness, the policy state it rolled out and the task set. It travels as
// a content-addressed blob (Encode) announced on gossip, like a
// pseudo-gradient.
type Batch struct {
	Round      uint64
	Beacon     [32]byte // the round's public randomness
	PolicyHash [32]byte // model.GPT.StateHash of the policy rolled out
	TaskSet    [32]byte // TaskSet.Hash
	Peer       [32]byte // the rollout peer's ed25519 public key
	Groups     []Group  // one per assigned task, in assignment order
}

// Group is the G rollouts of one task.
type Group struct {
	Task     uint32
	Rollouts []Rollout
}

// Rollout is one proved generation and the reward its peer claims for it.
type Rollout struct {
	Reward float64
	Proof  *grail.Proof
}

// Encoding limits: every length is checked against them and against the bytes
// present before anything is allocated.
const (
	BatchVersion  = 1
	MaxGroups     = 1 << 10
	MaxGroupSize  = 1 << 8
	MaxProofBytes = 1 << 20
	MaxBatchBytes = 64 << 20
)

var batchMagic = [4]byte{'T', 'R', 'L', 'B'}

// Blob format, version 1 (integers little endian):
//
//	off  size  field
//	0    4     magic "TRLB"
//	4    1     version (1)
//	5    3     reserved, zero
//	8    8     round
//	16   32    beacon
//	48   32    policy state hash
//	80   32    task set hash
//	112  32    peer public key
//	144  2     G: rollouts per group, 1..MaxGroupSize
//	146  2     number of groups, 1..MaxGroups
//	148  ...   per group: task index (4), then G times: reward (float64 bits,
//	           finite), proof length (4), grail proof (grail.Proof.Encode)
//
// Decoding is strict and canonical: Encode(Decode(b)) == b.
const batchHeader = 148

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("rl: malformed rollout batch")

// Encode returns the canonical encoding of b.
func (b *Batch) Encode() ([]byte, error) {
	if len(b.Groups) == 0 || len(b.Groups) > MaxGroups {
		return nil, fmt.Errorf("%w: %d groups (1..%d)", ErrMalformed, len(b.Groups), MaxGroups)
	}
	G := len(b.Groups[0].Rollouts)
	if G == 0 || G > MaxGroupSize {
		return nil, fmt.Errorf("%w: group size %d (1..%d)", ErrMalformed, G, MaxGroupSize)
	}
	out := make([]byte, batchHeader, batchHeader+len(b.Groups)*G*256)
	copy(out, batchMagic[:])
	out[4] = BatchVersion
	binary.LittleEndian.PutUint64(out[8:], b.Round)
	copy(out[16:], b.Beacon[:])
	copy(out[48:], b.PolicyHash[:])
	copy(out[80:], b.TaskSet[:])
	copy(out[112:], b.Peer[:])
	binary.LittleEndian.PutUint16(out[144:], uint16(G))
	binary.LittleEndian.PutUint16(out[146:], uint16(len(b.Groups)))
	for gi, g := range b.Groups {
		if len(g.Rollouts) != G {
			return nil, fmt.Errorf("%w: group %d has %d rollouts, group 0 has %d", ErrMalformed, gi, len(g.Rollouts), G)
		}
		out = binary.LittleEndian.AppendUint32(out, g.Task)
		for ri, r := range g.Rollouts {
			if math.IsNaN(r.Reward) || math.IsInf(r.Reward, 0) {
				return nil, fmt.Errorf("%w: group %d rollout %d: non-finite reward", ErrMalformed, gi, ri)
			}
			if r.Proof == nil {
				return nil, fmt.Errorf("%w: group %d rollout %d: no proof", ErrMalformed, gi, ri)
			}
			p, err := r.Proof.Encode()
			if err != nil {
				return nil, fmt.Errorf("%w: group %d rollout %d: %w", ErrMalformed, gi, ri, err)
			}
			if len(p) > MaxProofBytes {
				return nil, fmt.Errorf("%w: group %d rollout %d: proof of %d bytes", ErrMalformed, gi, ri, len(p))
			}
			out = binary.LittleEndian.AppendUint64(out, math.Float64bits(r.Reward))
			out = binary.LittleEndian.AppendUint32(out, uint32(len(p)))
			out = append(out, p...)
		}
	}
	if len(out) > MaxBatchBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(out), MaxBatchBytes)
	}
	return out, nil
}

// Decode parses a blob strictly: wrong magic or version, non-zero reserved
// bytes, out-of-range counts, non-finite rewards, malformed proofs, lengths
// that disagree with the bytes present and trailing bytes are errors. It does
// not check signatures or anything semantic (Validator.Check does).
func Decode(blob []byte) (*Batch, error) {
	if len(blob) > MaxBatchBytes {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrMalformed, len(blob), MaxBatchBytes)
	}
	if len(blob) < batchHeader {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the %d-byte header", ErrMalformed, len(blob), batchHeader)
	}
	if [4]byte(blob[:4]) != batchMagic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrMalformed, blob[:4])
	}
	if blob[4] != BatchVersion {
		return nil, fmt.Errorf("%w: version %d, want %d", ErrMalformed, blob[4], BatchVersion)
	}
	if blob[5]|blob[6]|blob[7] != 0 {
		return nil, fmt.Errorf("%w: non-zero reserved bytes", ErrMalformed)
	}
	b := &Batch{Round: binary.LittleEndian.Uint64(blob[8:])}
	copy(b.Beacon[:], blob[16:48])
	copy(b.PolicyHash[:], blob[48:80])
	copy(b.TaskSet[:], blob[80:112])
	copy(b.Peer[:], blob[112:144])
	G := int(binary.LittleEndian.Uint16(blob[144:]))
	ng := int(binary.LittleEndian.Uint16(blob[146:]))
	if G == 0 || G > MaxGroupSize {
		return nil, fmt.Errorf("%w: group size %d (1..%d)", ErrMalformed, G, MaxGroupSize)
	}
	if ng == 0 || ng > MaxGroups {
		return nil, fmt.Errorf("%w: %d groups (1..%d)", ErrMalformed, ng, MaxGroups)
	}
	// Each rollout takes at least 12 bytes, each group 4 more: refuse counts
	// the blob cannot hold before allocating for them.
	if need := ng * (4 + G*12); need > len(blob)-batchHeader {
		return nil, fmt.Errorf("%w: %d groups of %d rollouts cannot fit in %d bytes", ErrMalformed, ng, G, len(blob))
	}
	rest := blob[batchHeader:]
	b.Groups = make([]Group, ng)
	for gi := range b.Groups {
		if len(rest) < 4 {
			return nil, fmt.Errorf("%w: truncated at group %d", ErrMalformed, gi)
		}
		g := &b.Groups[gi]
		g.Task = binary.LittleEndian.Uint32(rest)
		rest = rest[4:]
		g.Rollouts = make([]Rollout, G)
		for ri := range g.Rollouts {
			if len(rest) < 12 {
				return nil, fmt.Errorf("%w: truncated at group %d rollout %d", ErrMalformed, gi, ri)
			}
			rw := math.Float64frombits(binary.LittleEndian.Uint64(rest))
			if math.IsNaN(rw) || math.IsInf(rw, 0) {
				return nil, fmt.Errorf("%w: group %d rollout %d: non-finite reward", ErrMalformed, gi, ri)
			}
			n := binary.LittleEndian.Uint32(rest[8:])
			rest = rest[12:]
			if n > MaxProofBytes || int(n) > len(rest) {
				return nil, fmt.Errorf("%w: group %d rollout %d: proof length %d, %d bytes left", ErrMalformed, gi, ri, n, len(rest))
			}
			p, err := grail.Decode(rest[:n])
			if err != nil {
				return nil, fmt.Errorf("%w: group %d rollout %d: %w", ErrMalformed, gi, ri, err)
			}
			rest = rest[n:]
			g.Rollouts[ri] = Rollout{Reward: rw, Proof: p}
		}
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
	}
	return b, nil
}

// ID is the content address of an encoded batch (SHA-256 of its bytes).
func ID(blob []byte) [32]byte { return sha256.Sum256(blob) }

// RolloutBeacon is the randomness rollout k of task in a round must be proved
// under: distinct per rollout, so the G proofs of a task draw independent
// samples, and tied to the round's beacon, so a rollout from another round
// (a replay) fails its proof's binding.
func RolloutBeacon(beacon [32]byte, round uint64, task uint32, k int) [32]byte {
	h := sha256.New()
	h.Write([]byte("trinity/rl/v1/rollout\x00"))
	h.Write(beacon[:])
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:], round)
	binary.LittleEndian.PutUint32(b[8:], task)
	binary.LittleEndian.PutUint32(b[12:], uint32(k))
	h.Write(b[:])
	var out [32]byte
	h.Sum(out[:0])
	return out
}
