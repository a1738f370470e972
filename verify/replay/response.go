package replay

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Response encoding, version 1 (little endian): the trainer's answer to one
// Challenge.
//
//	off  size  field
//	0    4     magic "TRSP"
//	4    1     version (1)
//	5    3     reserved, zero
//	8    8     round
//	16   4     steps H
//	20   4     challenged step j
//	24   32    commitment root
//	56   ...   state j, snapshot with every vector in full (PartsAll)
//	     ...   proof of leaf j, then proof of leaf j+1: u8 count, 32 x count
//	     ...   if j > 0: state 0, snapshot of digests only (PartsNone), and
//	           its proof
//	     ...   if j+1 < H: state H, snapshot with the parameters in full
//	           (PartParams), and its proof
//
// Leaf j+1 is not sent: the validator computes it by replaying step j.
// Every count and size is fixed by (n, H, j), which the validator knows, so
// it checks them instead of trusting them; MaxResponseSize bounds the whole.
const (
	respMagic  = "TRSP"
	respHeader = 56
)

// MaxResponseSize is the largest valid response for a model of n
// parameters: the bound a validator reads up to (see ReadResponse).
func MaxResponseSize(n int) int {
	return respHeader + SnapshotSize(n, PartsAll) + SnapshotSize(n, PartsNone) + SnapshotSize(n, PartParams) + 4*(1+32*maxProof)
}

// ErrOversized is returned by ReadResponse for a response above the bound.
var ErrOversized = errors.New("replay: response larger than the bound")

// ReadResponse reads a response from r, refusing (ErrOversized, wrapped in
// ErrMalformed) one longer than MaxResponseSize(n) without reading past the
// bound.
func ReadResponse(r io.Reader, n int) ([]byte, error) {
	limit := MaxResponseSize(n)
	b, err := io.ReadAll(io.LimitReader(r, int64(limit)+1))
	if err != nil {
		return nil, fmt.Errorf("replay: reading response: %w", err)
	}
	if len(b) > limit {
		return nil, fmt.Errorf("%w: %w (%d bytes)", ErrMalformed, ErrOversized, limit)
	}
	return b, nil
}

// EncodeResponse builds the response to ch from the round's tree, its
// per-leaf digests (0..H), the state at step j in full, and the parameters
// of state H (unused, may be nil, when j+1 == H).
func EncodeResponse(ch Challenge, t *Tree, digests []Digests, stateJ *State, paramsH []float32, n int) ([]byte, error) {
	H := ch.Commitment.Steps
	j := ch.Step
	if len(digests) != H+1 || j < 0 || j >= H {
		return nil, fmt.Errorf("replay: response to step %d with %d digests for %d steps", j, len(digests), H)
	}
	b := make([]byte, 0, respHeader+SnapshotSize(n, PartsAll)+SnapshotSize(n, PartParams)+4096)
	b = append(b, respMagic...)
	b = append(b, 1, 0, 0, 0)
	b = binary.LittleEndian.AppendUint64(b, ch.Round)
	b = binary.LittleEndian.AppendUint32(b, uint32(H))
	b = binary.LittleEndian.AppendUint32(b, uint32(j))
	b = append(b, ch.Commitment.Root[:]...)
	b, err := AppendSnapshot(b, stateJ, Digests{}, PartsAll, n)
	if err != nil {
		return nil, err
	}
	appendProof := func(i int) error {
		p, err := t.Proof(i)
		if err != nil {
			return err
		}
		b = append(b, byte(len(p)))
		for _, h := range p {
			b = append(b, h[:]...)
		}
		return nil
	}
	if err := appendProof(j); err != nil {
		return nil, err
	}
	if err := appendProof(j + 1); err != nil {
		return nil, err
	}
	if j > 0 {
		d0 := digests[0]
		if b, err = AppendSnapshot(b, &State{AdamStep: int(d0.AdamStep)}, d0, PartsNone, n); err != nil {
			return nil, err
		}
		if err := appendProof(0); err != nil {
			return nil, err
		}
	}
	if j+1 < H {
		dH := digests[H]
		if b, err = AppendSnapshot(b, &State{Params: paramsH, AdamStep: int(dH.AdamStep)}, dH, PartParams, n); err != nil {
			return nil, err
		}
		if err := appendProof(H); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// response is a decoded Response. Vectors live in the decoder's buffers.
type response struct {
	round        uint64
	steps, step  int
	root         [32]byte
	stateJ       State
	dJ           Digests
	proofJ       [][32]byte
	proofNext    [][32]byte
	d0           Digests // == dJ when step == 0
	proof0       [][32]byte
	endParams    []float32 // nil when step+1 == steps
	dH           Digests
	proofH       [][32]byte
	hasStart     bool
	hasEnd       bool
	endBuf       State
	startScratch State
}

// decodeResponse parses b strictly for a model of n parameters, reusing r's
// buffers.
func decodeResponse(b []byte, n int, r *response) error {
	if len(b) > MaxResponseSize(n) {
		return fmt.Errorf("%w: %w: %d bytes", ErrMalformed, ErrOversized, len(b))
	}
	if len(b) < respHeader {
		return fmt.Errorf("%w: response of %d bytes is shorter than its header", ErrMalformed, len(b))
	}
	if string(b[:4]) != respMagic {
		return fmt.Errorf("%w: response magic %q", ErrMalformed, b[:4])
	}
	if b[4] != 1 {
		return fmt.Errorf("%w: response version %d, want 1", ErrMalformed, b[4])
	}
	if b[5]|b[6]|b[7] != 0 {
		return fmt.Errorf("%w: response reserved bytes not zero", ErrMalformed)
	}
	r.round = binary.LittleEndian.Uint64(b[8:])
	steps := binary.LittleEndian.Uint32(b[16:])
	step := binary.LittleEndian.Uint32(b[20:])
	if steps < 1 || steps > MaxSteps || step >= steps {
		return fmt.Errorf("%w: response for step %d of %d", ErrMalformed, step, steps)
	}
	r.steps, r.step = int(steps), int(step)
	copy(r.root[:], b[24:56])
	p := b[respHeader:]
	snap := func(parts Parts, into *State) (Digests, error) {
		d, used, err := DecodeSnapshot(p, n, parts, into)
		if err != nil {
			return d, err
		}
		p = p[used:]
		return d, nil
	}
	proof := func(dst [][32]byte) ([][32]byte, error) {
		if len(p) < 1 {
			return nil, fmt.Errorf("%w: response truncated before a proof", ErrMalformed)
		}
		k := int(p[0])
		if k > maxProof || len(p) < 1+32*k {
			return nil, fmt.Errorf("%w: proof of %d hashes (at most %d) in %d bytes", ErrMalformed, k, maxProof, len(p))
		}
		dst = dst[:0]
		for i := range k {
			var h [32]byte
			copy(h[:], p[1+32*i:])
			dst = append(dst, h)
		}
		p = p[1+32*k:]
		return dst, nil
	}
	var err error
	if r.dJ, err = snap(PartsAll, &r.stateJ); err != nil {
		return fmt.Errorf("state %d: %w", r.step, err)
	}
	if r.proofJ, err = proof(r.proofJ); err != nil {
		return err
	}
	if r.proofNext, err = proof(r.proofNext); err != nil {
		return err
	}
	r.hasStart = r.step > 0
	if r.hasStart {
		if r.d0, err = snap(PartsNone, &r.startScratch); err != nil {
			return fmt.Errorf("state 0: %w", err)
		}
		if r.proof0, err = proof(r.proof0); err != nil {
			return err
		}
	} else {
		r.d0 = r.dJ
	}
	r.hasEnd = r.step+1 < r.steps
	r.endParams = nil
	if r.hasEnd {
		if r.dH, err = snap(PartParams, &r.endBuf); err != nil {
			return fmt.Errorf("state %d: %w", r.steps, err)
		}
		r.endParams = r.endBuf.Params
		if r.proofH, err = proof(r.proofH); err != nil {
			return err
		}
	}
	if len(p) != 0 {
		return fmt.Errorf("%w: %d trailing bytes after the response", ErrMalformed, len(p))
	}
	return nil
}
