package replay

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/trinity-net/trinity/internal/atomicfile"

	"github.com/trinity-net/trinity/compute/tensor"
)

// Recorder is the trainer's side of replay. During a round it hashes the
// state after every inner step and keeps every k-th state on disk; after the
// round it gives the Commitment to announce, and answers challenges by
// loading the nearest kept state at or before the challenged step and
// recomputing forward from it (at most k-1 inner steps).
//
// Storage per round: the start state in full (4 vectors), then params, m, v
// at steps k, 2k, ... and at the last step H, plus a small log of digests.
// With k=1 that is about 12n bytes per step (n parameters); see the package
// documentation for measured costs of k. Rounds older than the retention
// window are deleted when a new one begins, and Cleanup removes rounds
// explicitly once their challenge window has closed, so disk use is bounded
// by (retain) x (one round's files).
//
// Begin, Record and Commit are called by the one goroutine that trains;
// Respond may run concurrently with them (for an earlier round).
type Recorder struct {
	spec   Spec
	eng    *tensor.Engine
	dir    string
	every  int
	retain int

	mu     sync.Mutex
	rounds map[uint64]*roundLog
	cur    *roundLog

	// One kept state is written in the background while the next step
	// runs: buf holds its bytes and pending reports the write's result.
	// Owned by the training goroutine.
	buf     []byte
	pending chan error

	respMu sync.Mutex // serialises Respond, which owns st
	st     *stepper
}

type roundLog struct {
	round     uint64
	peer      string
	digests   []Digests // per leaf, 0..H once committed
	tree      *Tree
	carry     [32]byte
	committed bool
}

func (lg *roundLog) commitment() Commitment {
	c := lg.tree.Commitment()
	c.Carry = lg.carry
	return c
}

// RecorderOption configures a Recorder.
type RecorderOption func(*Recorder) error

// WithCheckpointEvery keeps the state of every k-th step (default 4).
// Smaller k answers challenges faster; larger k writes less (see the
// package documentation for measurements).
func WithCheckpointEvery(k int) RecorderOption {
	return func(r *Recorder) error {
		if k < 1 || k > MaxSteps {
			return fmt.Errorf("replay: checkpoint interval %d out of range [1, %d]", k, MaxSteps)
		}
		r.every = k
		return nil
	}
}

// WithRetainRounds keeps the files of the last n rounds (default 3: the
// current one and two whose challenges may still be open).
func WithRetainRounds(n int) RecorderOption {
	return func(r *Recorder) error {
		if n < 1 || n > 1024 {
			return fmt.Errorf("replay: retained rounds %d out of range [1, 1024]", n)
		}
		r.retain = n
		return nil
	}
}

// NewRecorder makes a recorder keeping its files under dir (created if
// needed). Leftover rounds found there (from before a restart) are kept,
// answerable, and cleaned up like any other.
func NewRecorder(e *tensor.Engine, spec Spec, dir string, opts ...RecorderOption) (*Recorder, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	r := &Recorder{spec: spec, eng: e, dir: dir, every: 4, retain: 3, rounds: map[uint64]*roundLog{}}
	for _, o := range opts {
		if err := o(r); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("replay: recorder dir: %w", err)
	}
	return r, nil
}

func (r *Recorder) roundDir(round uint64) string {
	return filepath.Join(r.dir, "round-"+strconv.FormatUint(round, 10))
}

func (r *Recorder) statePath(round uint64, j int) string {
	return filepath.Join(r.roundDir(round), fmt.Sprintf("state-%05d", j))
}

// kept reports whether the state after step j is on disk.
func (r *Recorder) kept(j int) bool { return j == 0 || j%r.every == 0 || j == r.spec.Steps }

// Begin starts recording round `round` for peerID from its start state: the
// round's global parameters, and the trainer's AdamW and error-feedback
// state as they are before the first step. A round begun and not committed
// is abandoned. Rounds older than the retention window are deleted.
func (r *Recorder) Begin(round uint64, peerID string, start *State) error {
	if err := r.wait(); err != nil {
		slog.Warn("replay: a state write of the abandoned round failed", "err", err)
	}
	n := r.spec.Model.NumParams()
	for _, x := range [][]float32{start.Params, start.M, start.V, start.EF} {
		if len(x) != n {
			return fmt.Errorf("replay: begin: state vector of %d values, want %d", len(x), n)
		}
	}
	if round+1 >= uint64(r.retain) {
		if err := r.Cleanup(round + 1 - uint64(r.retain)); err != nil {
			return err
		}
	}
	r.mu.Lock()
	if old := r.cur; old != nil && !old.committed {
		delete(r.rounds, old.round)
	}
	r.mu.Unlock()
	if err := os.RemoveAll(r.roundDir(round)); err != nil {
		return fmt.Errorf("replay: begin round %d: %w", round, err)
	}
	if err := os.MkdirAll(r.roundDir(round), 0o755); err != nil {
		return fmt.Errorf("replay: begin round %d: %w", round, err)
	}
	lg := &roundLog{round: round, peer: peerID, digests: make([]Digests, 1, r.spec.Steps+1)}
	lg.digests[0] = start.Digests()
	if err := r.writeBehind(r.statePath(round, 0), start, Digests{}, PartsAll); err != nil {
		return err
	}
	r.mu.Lock()
	r.cur = lg
	r.rounds[round] = lg
	r.mu.Unlock()
	return nil
}

// Record notes the state after the next inner step: the parameters, AdamW
// moments and step count (the error-feedback buffer does not change during
// a round). Call it after every optimizer.InnerStep.
func (r *Recorder) Record(params, m, v []float32, adamStep int) error {
	lg := r.cur
	if lg == nil || lg.committed {
		return fmt.Errorf("replay: record outside a round (call Begin)")
	}
	j := len(lg.digests)
	if j > r.spec.Steps {
		return fmt.Errorf("replay: record: round %d already has %d steps", lg.round, r.spec.Steps)
	}
	n := r.spec.Model.NumParams()
	if len(params) != n || len(m) != n || len(v) != n {
		return fmt.Errorf("replay: record: vectors of %d/%d/%d values, want %d", len(params), len(m), len(v), n)
	}
	d := stateDigests(params, m, v, adamStep, nil)
	d.EF = lg.digests[0].EF
	if r.kept(j) {
		st := State{Params: params, M: m, V: v, AdamStep: adamStep}
		if err := r.writeBehind(r.statePath(lg.round, j), &st, d, PartParams|PartM|PartV); err != nil {
			return err
		}
	}
	r.mu.Lock()
	lg.digests = append(lg.digests, d)
	r.mu.Unlock()
	return nil
}

// Commit ends the round's recording after Steps records and returns the
// commitment to announce with the contribution. efAfter is the
// error-feedback buffer after compressing the round's pseudo-gradient (from
// the last recorded state): what the trainer carries into its next round.
func (r *Recorder) Commit(efAfter []float32) (Commitment, error) {
	lg := r.cur
	if lg == nil || lg.committed {
		return Commitment{}, fmt.Errorf("replay: commit outside a round (call Begin)")
	}
	if len(lg.digests) != r.spec.Steps+1 {
		return Commitment{}, fmt.Errorf("replay: commit after %d of %d steps", len(lg.digests)-1, r.spec.Steps)
	}
	if len(efAfter) != r.spec.Model.NumParams() {
		return Commitment{}, fmt.Errorf("replay: commit: error feedback of %d values, want %d", len(efAfter), r.spec.Model.NumParams())
	}
	if err := r.wait(); err != nil {
		return Commitment{}, err
	}
	hashes := make([][32]byte, len(lg.digests))
	for i, d := range lg.digests {
		hashes[i] = d.Hash()
	}
	t, err := NewTree(hashes)
	if err != nil {
		return Commitment{}, err
	}
	end := lg.digests[r.spec.Steps]
	end.EF = VectorDigest(efAfter)
	lg.carry = end.Carry()
	lg.tree = t
	if err := writeAtomic(filepath.Join(r.roundDir(lg.round), "log"), encodeLog(lg)); err != nil {
		return Commitment{}, err
	}
	r.mu.Lock()
	lg.committed = true
	r.mu.Unlock()
	return lg.commitment(), nil
}

// writeBehind encodes a snapshot of st into the recorder's buffer and
// writes it to path in the background, after the previous write has ended:
// the copy is the only cost on the training goroutine, and at most one write
// is in flight.
func (r *Recorder) writeBehind(path string, st *State, d Digests, parts Parts) error {
	if err := r.wait(); err != nil {
		return err
	}
	b, err := AppendSnapshot(r.buf[:0], st, d, parts, r.spec.Model.NumParams())
	if err != nil {
		return err
	}
	r.buf = b
	done := make(chan error, 1)
	r.pending = done
	go func() { done <- writeAtomic(path, b) }()
	return nil
}

// wait waits for the background state write, if any, and returns its error.
func (r *Recorder) wait() error {
	if r.pending == nil {
		return nil
	}
	err := <-r.pending
	r.pending = nil
	return err
}

// Cleanup deletes every round before `before` (memory and disk).
func (r *Recorder) Cleanup(before uint64) error {
	r.mu.Lock()
	for k := range r.rounds {
		if k < before {
			delete(r.rounds, k)
		}
	}
	r.mu.Unlock()
	ents, err := os.ReadDir(r.dir)
	if err != nil {
		return fmt.Errorf("replay: cleanup: %w", err)
	}
	var errs []error
	for _, e := range ents {
		s, ok := strings.CutPrefix(e.Name(), "round-")
		if !ok {
			continue
		}
		k, err := strconv.ParseUint(s, 10, 64)
		if err != nil || k >= before {
			continue
		}
		if err := os.RemoveAll(filepath.Join(r.dir, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("replay: cleanup: %w", err)
	}
	return nil
}

// DiskBytes is the size of the recorder's files.
func (r *Recorder) DiskBytes() (int64, error) {
	var total int64
	err := filepath.WalkDir(r.dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// log returns the committed log of a round, from memory or from disk.
func (r *Recorder) log(round uint64) (*roundLog, error) {
	r.mu.Lock()
	lg := r.rounds[round]
	r.mu.Unlock()
	if lg != nil && lg.committed {
		return lg, nil
	}
	b, err := os.ReadFile(filepath.Join(r.roundDir(round), "log"))
	if err != nil {
		return nil, fmt.Errorf("replay: no committed record of round %d: %w", round, err)
	}
	lg, err = decodeLog(b, r.spec.Steps)
	if err != nil || lg.round != round {
		return nil, fmt.Errorf("replay: record of round %d unreadable: %v", round, err)
	}
	return lg, nil
}

// Respond answers a challenge for one of the trainer's committed rounds
// with the encoded Response (see EncodeResponse's format).
func (r *Recorder) Respond(ctx context.Context, ch Challenge) ([]byte, error) {
	lg, err := r.log(ch.Round)
	if err != nil {
		return nil, err
	}
	if c := lg.commitment(); c != ch.Commitment {
		return nil, fmt.Errorf("replay: challenge for commitment %x, ours is %x", ch.Commitment.Root[:6], c.Root[:6])
	}
	if ch.Trainer != lg.peer {
		return nil, fmt.Errorf("replay: challenge for trainer %q, round %d was recorded as %q", ch.Trainer, ch.Round, lg.peer)
	}
	H := r.spec.Steps
	j := ch.Step
	if j < 0 || j >= H {
		return nil, fmt.Errorf("replay: challenged step %d out of range [0, %d)", j, H)
	}
	n := r.spec.Model.NumParams()
	r.respMu.Lock()
	defer r.respMu.Unlock()
	if r.st == nil {
		if r.st, err = newStepper(r.eng, r.spec); err != nil {
			return nil, err
		}
	}
	// The error-feedback buffer comes from the start state.
	var start State
	if _, err := r.readState(ch.Round, 0, PartsAll, &start); err != nil {
		return nil, err
	}
	c := j / r.every * r.every
	st := State{EF: start.EF}
	if c == 0 {
		st.Params, st.M, st.V, st.AdamStep = start.Params, start.M, start.V, start.AdamStep
	} else if _, err := r.readState(ch.Round, c, PartParams|PartM|PartV, &st); err != nil {
		return nil, err
	}
	r.st.load(st.Params, st.M, st.V, st.AdamStep)
	if c < j {
		b, err := r.spec.Data.RoundBatcher(lg.peer, ch.Round)
		if err != nil {
			return nil, err
		}
		for i := c; i < j; i++ {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("replay: recomputing step %d: %w", i, err)
			}
			if err := r.st.step(b, i); err != nil {
				return nil, err
			}
		}
	}
	if got := r.st.digests(lg.digests[0].EF); got != lg.digests[j] {
		return nil, fmt.Errorf("replay: recomputed state %d of round %d differs from the recorded one (disk corruption or a non-reproducible build)", j, ch.Round)
	}
	stateJ := State{Params: r.st.m.Params, M: r.st.opt.M, V: r.st.opt.V, AdamStep: r.st.opt.Step, EF: start.EF}
	if VectorDigest(start.EF) != lg.digests[0].EF {
		return nil, fmt.Errorf("replay: kept error-feedback buffer of round %d differs from the recorded one", ch.Round)
	}
	var end State
	if j+1 < H {
		if _, err := r.readState(ch.Round, H, PartParams|PartM|PartV, &end); err != nil {
			return nil, err
		}
		if VectorDigest(end.Params) != lg.digests[H].Params {
			return nil, fmt.Errorf("replay: kept end state of round %d differs from the recorded one", ch.Round)
		}
	}
	return EncodeResponse(ch, lg.tree, lg.digests, &stateJ, end.Params, n)
}

func (r *Recorder) readState(round uint64, j int, parts Parts, into *State) (Digests, error) {
	b, err := os.ReadFile(r.statePath(round, j))
	if err != nil {
		return Digests{}, fmt.Errorf("replay: state %d of round %d: %w", j, round, err)
	}
	// Not hashed here: Respond checks the state it sends against the log.
	d, used, err := decodeSnapshot(b, r.spec.Model.NumParams(), parts, into, false)
	if err == nil && used != len(b) {
		err = fmt.Errorf("%d trailing bytes", len(b)-used)
	}
	if err != nil {
		return Digests{}, fmt.Errorf("replay: state %d of round %d: %w", j, round, err)
	}
	return d, nil
}

// Log file: "TRLG" | version 1 | u64 round | u32 steps | carry (32) |
// u16 len(peer) | peer | (steps+1) x (params, m, v, ef digests | u64 adam
// step).
const (
	logMagic   = "TRLG"
	logEntry   = 4*32 + 8
	maxPeerLen = 1024
)

func encodeLog(lg *roundLog) []byte {
	b := append([]byte(logMagic), 1)
	b = binary.LittleEndian.AppendUint64(b, lg.round)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(lg.digests)-1))
	b = append(b, lg.carry[:]...)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(lg.peer)))
	b = append(b, lg.peer...)
	for _, d := range lg.digests {
		b = append(b, d.Params[:]...)
		b = append(b, d.M[:]...)
		b = append(b, d.V[:]...)
		b = append(b, d.EF[:]...)
		b = binary.LittleEndian.AppendUint64(b, d.AdamStep)
	}
	return b
}

func decodeLog(b []byte, steps int) (*roundLog, error) {
	const hdr = 4 + 1 + 8 + 4 + 32 + 2
	if len(b) < hdr || string(b[:4]) != logMagic || b[4] != 1 {
		return nil, fmt.Errorf("%w: bad log header", ErrMalformed)
	}
	lg := &roundLog{round: binary.LittleEndian.Uint64(b[5:])}
	if s := binary.LittleEndian.Uint32(b[13:]); int(s) != steps {
		return nil, fmt.Errorf("%w: log of %d steps, want %d", ErrMalformed, s, steps)
	}
	copy(lg.carry[:], b[17:49])
	pl := int(binary.LittleEndian.Uint16(b[49:]))
	if pl > maxPeerLen || len(b) != hdr+pl+(steps+1)*logEntry {
		return nil, fmt.Errorf("%w: log of %d bytes", ErrMalformed, len(b))
	}
	lg.peer = string(b[hdr : hdr+pl])
	p := b[hdr+pl:]
	hashes := make([][32]byte, steps+1)
	for i := range steps + 1 {
		var d Digests
		copy(d.Params[:], p[0:])
		copy(d.M[:], p[32:])
		copy(d.V[:], p[64:])
		copy(d.EF[:], p[96:])
		d.AdamStep = binary.LittleEndian.Uint64(p[128:])
		p = p[logEntry:]
		lg.digests = append(lg.digests, d)
		hashes[i] = d.Hash()
	}
	t, err := NewTree(hashes)
	if err != nil {
		return nil, err
	}
	lg.tree, lg.committed = t, true
	return lg, nil
}

// writeAtomic writes b to path so that a crash leaves the old or new file.
func writeAtomic(path string, b []byte) error {
	if err := atomicfile.WriteFile(path, b); err != nil {
		return fmt.Errorf("replay: writing %s: %w", path, err)
	}
	return nil
}

// Committed returns the commitment of one of the recorder's committed rounds
// (from memory, or from its files after a restart): what a trainer checks a
// challenge against before answering it.
func (r *Recorder) Committed(round uint64) (Commitment, error) {
	lg, err := r.log(round)
	if err != nil {
		return Commitment{}, err
	}
	return lg.commitment(), nil
}
