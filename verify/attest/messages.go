package attest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"time"
)

// Wire sizes and limits.
const (
	ChallengeSize  = 1 + 32 + 32 + 4 + 32 + 32 + 8 + 8 + ed25519.SignatureSize
	CommitmentSize = 1 + 32 + 32 + 32 + 32 + ed25519.SignatureSize
	// MaxOpeningSize bounds one Opening (the p2p envelope limit is 4 MiB);
	// a full product is opened in several range chunks below it.
	MaxOpeningSize = 4 << 20
	// MaxSpotRows bounds the rows one spot opening may ask for.
	MaxSpotRows = 256
	// maxRequestSize bounds an OpenRequest.
	maxRequestSize = 1 + 32 + 1 + 2 + 4*MaxSpotRows
)

// Challenge asks a prover to multiply the two n x n matrices generated from
// Nonce (see genMatrices) and commit to the product before Deadline.
//
// Wire format (version 1, big-endian, fixed 213 bytes):
//
//	u8 version | [32]network | [32]nonce | u32 n | [32]verifier key |
//	[32]prover key | i64 issued-at | i64 deadline (Unix ns) | [64]signature
//
// The signature is the verifier's Ed25519 over domainChallenge and every
// byte before it.
type Challenge struct {
	Network   [32]byte
	Nonce     [32]byte
	N         int
	Verifier  ed25519.PublicKey
	Prover    ed25519.PublicKey
	IssuedAt  int64 // Unix ns, verifier's clock
	Deadline  int64 // Unix ns, verifier's clock: commitment due
	Signature []byte
}

func (c *Challenge) body() ([]byte, error) {
	if c.N < MinN || c.N > MaxN {
		return nil, fmt.Errorf("%w: challenge n = %d out of [%d, %d]", ErrMalformed, c.N, MinN, MaxN)
	}
	b := make([]byte, 0, ChallengeSize)
	b = append(b, Version)
	b = append(b, c.Network[:]...)
	b = append(b, c.Nonce[:]...)
	b = binary.BigEndian.AppendUint32(b, uint32(c.N))
	var err error
	if b, err = appendKey(b, c.Verifier); err != nil {
		return nil, err
	}
	if b, err = appendKey(b, c.Prover); err != nil {
		return nil, err
	}
	b = binary.BigEndian.AppendUint64(b, uint64(c.IssuedAt))
	b = binary.BigEndian.AppendUint64(b, uint64(c.Deadline))
	return b, nil
}

// MarshalBinary encodes a signed challenge.
func (c *Challenge) MarshalBinary() ([]byte, error) {
	b, err := c.body()
	if err != nil {
		return nil, err
	}
	if len(c.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: challenge not signed", ErrMalformed)
	}
	return append(b, c.Signature...), nil
}

// UnmarshalBinary decodes a challenge; Verify checks its signature.
func (c *Challenge) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	var q Challenge
	r.version("challenge")
	q.Network = r.h32("network")
	q.Nonce = r.h32("nonce")
	q.N = int(r.u32("n"))
	if r.err == nil && (q.N < MinN || q.N > MaxN) {
		r.fail("challenge n = %d out of [%d, %d]", q.N, MinN, MaxN)
	}
	q.Verifier = r.key("verifier")
	q.Prover = r.key("prover")
	q.IssuedAt = r.i64("issued-at")
	q.Deadline = r.i64("deadline")
	if r.err == nil && q.Deadline <= q.IssuedAt {
		r.fail("deadline not after issue time")
	}
	q.Signature = r.sig()
	if err := r.end("challenge"); err != nil {
		return err
	}
	*c = q
	return nil
}

// Hash identifies the challenge; the commitment signs it.
func (c *Challenge) Hash() ([32]byte, error) {
	b, err := c.MarshalBinary()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(b), nil
}

// sign fills Signature with the verifier's key.
func (c *Challenge) sign(priv ed25519.PrivateKey) error {
	b, err := c.body()
	if err != nil {
		return err
	}
	c.Signature = sign(priv, domainChallenge, b)
	return nil
}

// Verify checks the verifier's signature.
func (c *Challenge) Verify() error {
	b, err := c.body()
	if err != nil {
		return err
	}
	if err := verifySig(c.Verifier, domainChallenge, b, c.Signature); err != nil {
		return fmt.Errorf("challenge: %w", err)
	}
	return nil
}

// Commitment is the prover's answer to a challenge: the Merkle root over
// the rows of its product, signed together with the challenge, so that it
// is bound before the verifier draws its secret vector and picks rows.
//
// Wire format (version 1, fixed 193 bytes):
//
//	u8 version | [32]challenge hash | [32]nonce | [32]root | [32]prover key |
//	[64]signature (prover's, over domainCommitment and the bytes before it)
type Commitment struct {
	Challenge [32]byte // Challenge.Hash()
	Nonce     [32]byte
	Root      [32]byte
	Prover    ed25519.PublicKey
	Signature []byte
}

func (c *Commitment) body() ([]byte, error) {
	b := make([]byte, 0, CommitmentSize)
	b = append(b, Version)
	b = append(b, c.Challenge[:]...)
	b = append(b, c.Nonce[:]...)
	b = append(b, c.Root[:]...)
	return appendKey(b, c.Prover)
}

// MarshalBinary encodes a signed commitment.
func (c *Commitment) MarshalBinary() ([]byte, error) {
	b, err := c.body()
	if err != nil {
		return nil, err
	}
	if len(c.Signature) != ed25519.SignatureSize {
		return nil, fmt.Errorf("%w: commitment not signed", ErrMalformed)
	}
	return append(b, c.Signature...), nil
}

// UnmarshalBinary decodes a commitment; Verify checks its signature.
func (c *Commitment) UnmarshalBinary(data []byte) error {
	r := reader{b: data}
	var q Commitment
	r.version("commitment")
	q.Challenge = r.h32("challenge hash")
	q.Nonce = r.h32("nonce")
	q.Root = r.h32("root")
	q.Prover = r.key("prover")
	q.Signature = r.sig()
	if err := r.end("commitment"); err != nil {
		return err
	}
	*c = q
	return nil
}

// Verify checks the prover's signature.
func (c *Commitment) Verify() error {
	b, err := c.body()
	if err != nil {
		return err
	}
	if err := verifySig(c.Prover, domainCommitment, b, c.Signature); err != nil {
		return fmt.Errorf("commitment: %w", err)
	}
	return nil
}

// OpenKind says what an OpenRequest asks for.
type OpenKind uint8

const (
	// OpenRange asks for rows [Lo, Hi) in full, without proofs: the verifier
	// collects every row, rebuilds the root and runs Freivalds.
	OpenRange OpenKind = 1
	// OpenSpot asks for the listed rows with Merkle proofs: the verifier
	// recomputes each exactly.
	OpenSpot OpenKind = 2
)

// OpenRequest asks for rows of a committed product. It travels after the
// commitment, on the authenticated stream, and is not signed.
//
// Wire format (version 1):
//
//	u8 version | [32]nonce | u8 kind |
//	kind 1: u32 lo | u32 hi
//	kind 2: u16 count | u32 index... (strictly increasing, count <= 256)
type OpenRequest struct {
	Nonce   [32]byte
	Kind    OpenKind
	Lo, Hi  int   // OpenRange
	Indices []int // OpenSpot
}

// MarshalBinary encodes the request.
func (q *OpenRequest) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, 64)
	b = append(b, Version)
	b = append(b, q.Nonce[:]...)
	b = append(b, byte(q.Kind))
	switch q.Kind {
	case OpenRange:
		if q.Lo < 0 || q.Hi <= q.Lo || q.Hi > MaxN {
			return nil, fmt.Errorf("%w: row range [%d, %d)", ErrMalformed, q.Lo, q.Hi)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(q.Lo))
		b = binary.BigEndian.AppendUint32(b, uint32(q.Hi))
	case OpenSpot:
		if err := checkIndices(q.Indices, MaxN); err != nil {
			return nil, err
		}
		b = binary.BigEndian.AppendUint16(b, uint16(len(q.Indices)))
		for _, i := range q.Indices {
			b = binary.BigEndian.AppendUint32(b, uint32(i))
		}
	default:
		return nil, fmt.Errorf("%w: open kind %d", ErrMalformed, q.Kind)
	}
	return b, nil
}

func checkIndices(idx []int, n int) error {
	if len(idx) == 0 || len(idx) > MaxSpotRows {
		return fmt.Errorf("%w: %d spot rows, want 1..%d", ErrMalformed, len(idx), MaxSpotRows)
	}
	for k, i := range idx {
		if i < 0 || i >= n || (k > 0 && i <= idx[k-1]) {
			return fmt.Errorf("%w: spot rows not strictly increasing within [0, %d)", ErrMalformed, n)
		}
	}
	return nil
}

// UnmarshalBinary decodes a request.
func (q *OpenRequest) UnmarshalBinary(data []byte) error {
	if len(data) > maxRequestSize {
		return fmt.Errorf("%w: open request of %d bytes", ErrMalformed, len(data))
	}
	r := reader{b: data}
	var o OpenRequest
	r.version("open request")
	o.Nonce = r.h32("nonce")
	o.Kind = OpenKind(r.u8("kind"))
	if r.err == nil {
		switch o.Kind {
		case OpenRange:
			o.Lo, o.Hi = int(r.u32("lo")), int(r.u32("hi"))
			if r.err == nil && (o.Hi <= o.Lo || o.Hi > MaxN) {
				r.fail("row range [%d, %d)", o.Lo, o.Hi)
			}
		case OpenSpot:
			cnt := int(r.u16("count"))
			if r.err == nil && (cnt == 0 || cnt > MaxSpotRows) {
				r.fail("%d spot rows", cnt)
			}
			if r.err == nil {
				o.Indices = make([]int, 0, cnt)
				for range cnt {
					o.Indices = append(o.Indices, int(r.u32("index")))
				}
				if r.err == nil {
					if err := checkIndices(o.Indices, MaxN); err != nil {
						return err
					}
				}
			}
		default:
			r.fail("open kind %d", o.Kind)
		}
	}
	if err := r.end("open request"); err != nil {
		return err
	}
	*q = o
	return nil
}

// Opening carries rows of a committed product: a contiguous range
// (OpenRange) or listed rows with their Merkle proofs (OpenSpot).
//
// Wire format (version 1, entries as zigzag varints, minimal, within ±49n):
//
//	u8 version | [32]nonce | u8 kind | u32 n |
//	kind 1: u32 lo | u32 count | count*n entries
//	kind 2: u16 count | (u32 index | n entries | u8 len | len*[32]sibling)...
type Opening struct {
	Nonce   [32]byte
	Kind    OpenKind
	N       int
	Lo      int      // OpenRange: first row
	Indices []int    // OpenSpot: row indices, strictly increasing
	Values  []int32  // the rows, concatenated (rows*N entries)
	Proofs  [][]hash // OpenSpot: one proof per row
}

// Rows is the number of rows carried.
func (o *Opening) Rows() int {
	if o.N <= 0 {
		return 0
	}
	return len(o.Values) / o.N
}

// MarshalBinary encodes the opening.
func (o *Opening) MarshalBinary() ([]byte, error) {
	if o.N < MinN || o.N > MaxN || len(o.Values) == 0 || len(o.Values)%o.N != 0 {
		return nil, fmt.Errorf("%w: opening of %d entries for n = %d", ErrMalformed, len(o.Values), o.N)
	}
	rows := len(o.Values) / o.N
	b := make([]byte, 0, 64+2*len(o.Values))
	b = append(b, Version)
	b = append(b, o.Nonce[:]...)
	b = append(b, byte(o.Kind))
	b = binary.BigEndian.AppendUint32(b, uint32(o.N))
	lim := EntryBound(o.N)
	entries := func(vals []int32) error {
		for _, v := range vals {
			if int64(v) > lim || int64(v) < -lim {
				return fmt.Errorf("%w: entry %d beyond ±%d", ErrMalformed, v, lim)
			}
			b = appendEntry(b, v)
		}
		return nil
	}
	switch o.Kind {
	case OpenRange:
		if o.Lo < 0 || o.Lo+rows > o.N {
			return nil, fmt.Errorf("%w: rows [%d, %d) beyond n = %d", ErrMalformed, o.Lo, o.Lo+rows, o.N)
		}
		b = binary.BigEndian.AppendUint32(b, uint32(o.Lo))
		b = binary.BigEndian.AppendUint32(b, uint32(rows))
		if err := entries(o.Values); err != nil {
			return nil, err
		}
	case OpenSpot:
		if err := checkIndices(o.Indices, o.N); err != nil {
			return nil, err
		}
		if len(o.Indices) != rows || len(o.Proofs) != rows {
			return nil, fmt.Errorf("%w: %d indices, %d proofs for %d rows", ErrMalformed, len(o.Indices), len(o.Proofs), rows)
		}
		b = binary.BigEndian.AppendUint16(b, uint16(rows))
		for k, i := range o.Indices {
			b = binary.BigEndian.AppendUint32(b, uint32(i))
			if err := entries(o.Values[k*o.N : (k+1)*o.N]); err != nil {
				return nil, err
			}
			if len(o.Proofs[k]) != proofLen(i, o.N) {
				return nil, fmt.Errorf("%w: proof of %d hashes for row %d", ErrMalformed, len(o.Proofs[k]), i)
			}
			b = append(b, byte(len(o.Proofs[k])))
			for _, h := range o.Proofs[k] {
				b = append(b, h[:]...)
			}
		}
	default:
		return nil, fmt.Errorf("%w: open kind %d", ErrMalformed, o.Kind)
	}
	if len(b) > MaxOpeningSize {
		return nil, fmt.Errorf("%w: opening of %d bytes exceeds %d", ErrMalformed, len(b), MaxOpeningSize)
	}
	return b, nil
}

// UnmarshalBinary decodes an opening. Allocation is bounded by the input:
// every entry takes at least one byte.
func (o *Opening) UnmarshalBinary(data []byte) error {
	if len(data) > MaxOpeningSize {
		return fmt.Errorf("%w: opening of %d bytes exceeds %d", ErrMalformed, len(data), MaxOpeningSize)
	}
	r := reader{b: data}
	var q Opening
	r.version("opening")
	q.Nonce = r.h32("nonce")
	q.Kind = OpenKind(r.u8("kind"))
	q.N = int(r.u32("n"))
	if r.err == nil && (q.N < MinN || q.N > MaxN) {
		r.fail("opening n = %d out of [%d, %d]", q.N, MinN, MaxN)
	}
	lim := EntryBound(q.N)
	readRow := func() {
		if r.err != nil {
			return
		}
		if r.remaining() < q.N {
			r.fail("truncated row")
			return
		}
		for range q.N {
			q.Values = append(q.Values, r.entry(lim))
		}
	}
	if r.err == nil {
		switch q.Kind {
		case OpenRange:
			q.Lo = int(r.u32("lo"))
			rows := int(r.u32("count"))
			if r.err == nil && (rows == 0 || q.Lo+rows > q.N) {
				r.fail("rows [%d, %d) beyond n = %d", q.Lo, q.Lo+rows, q.N)
			}
			if r.err == nil && rows*q.N > r.remaining() {
				r.fail("truncated: %d entries in %d bytes", rows*q.N, r.remaining())
			}
			if r.err == nil {
				q.Values = make([]int32, 0, rows*q.N)
				for range rows {
					readRow()
				}
			}
		case OpenSpot:
			rows := int(r.u16("count"))
			if r.err == nil && (rows == 0 || rows > MaxSpotRows || rows*q.N > r.remaining()) {
				r.fail("%d spot rows of %d entries in %d bytes", rows, q.N, r.remaining())
			}
			if r.err == nil {
				q.Values = make([]int32, 0, rows*q.N)
				q.Indices = make([]int, 0, rows)
				q.Proofs = make([][]hash, 0, rows)
			}
			for k := 0; k < rows && r.err == nil; k++ {
				i := int(r.u32("index"))
				if r.err == nil && (i >= q.N || (k > 0 && i <= q.Indices[k-1])) {
					r.fail("spot row %d not strictly increasing within [0, %d)", i, q.N)
				}
				q.Indices = append(q.Indices, i)
				readRow()
				pl := int(r.u8("proof length"))
				if r.err == nil && pl != proofLen(i, q.N) {
					r.fail("proof of %d hashes for row %d of %d", pl, i, q.N)
				}
				var p []hash
				for range pl {
					if r.err != nil {
						break
					}
					p = append(p, r.h32("sibling"))
				}
				q.Proofs = append(q.Proofs, p)
			}
		default:
			r.fail("open kind %d", q.Kind)
		}
	}
	if err := r.end("opening"); err != nil {
		return err
	}
	*o = q
	return nil
}

// rowsPerChunk is how many full rows of size n fit in one Opening in the
// worst case of entry length.
func rowsPerChunk(n int) int {
	per := n * entryLen(EntryBound(n))
	return max(1, (MaxOpeningSize-64)/per)
}

// unixTime converts wire nanoseconds.
func unixTime(ns int64) time.Time { return time.Unix(0, ns) }
