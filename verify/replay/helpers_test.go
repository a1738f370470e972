package replay_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/verify/replay"
	"github.com/trinity-net/trinity/verify/replay/internal/fixture"
)

func engine(t testing.TB, opts ...tensor.Option) *tensor.Engine {
	t.Helper()
	e, err := tensor.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func tinyNet(t testing.TB, e *tensor.Engine) *fixture.Net {
	t.Helper()
	n, err := fixture.New(fixture.Tiny, 11, e)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// played is one trainer's round, ready to be challenged.
type played struct {
	round  uint64
	peer   string
	global []float32
	c      replay.Commitment
	blob   []byte
	rec    *replay.Recorder
	prev   *replay.Commitment // the trainer's previous round's commitment, if any
}

func playRound(t testing.TB, tr *fixture.Trainer, r uint64, global []float32, a fixture.Attack) played {
	t.Helper()
	c, blob, err := tr.Round(r, global, a)
	if err != nil {
		t.Fatalf("round %d: %v", r, err)
	}
	return played{round: r, peer: tr.Peer, global: append([]float32(nil), global...), c: c, blob: blob, rec: tr.Rec}
}

// check challenges step j of p and returns Check's result.
func (p played) check(t testing.TB, ck *replay.Checker, j int) error {
	t.Helper()
	ch := replay.Challenge{Round: p.round, Trainer: p.peer, Commitment: p.c, Step: j, Prev: p.prev}
	resp, err := p.rec.Respond(context.Background(), ch)
	if err != nil {
		t.Fatalf("respond to step %d: %v", j, err)
	}
	return ck.Check(context.Background(), ch, resp, p.global, p.blob)
}

// failing returns the steps whose challenge fails, with their reasons.
func (p played) failing(t testing.TB, ck *replay.Checker) map[int]replay.Reason {
	t.Helper()
	out := map[int]replay.Reason{}
	for j := range p.c.Steps {
		err := p.check(t, ck, j)
		if err == nil {
			continue
		}
		var f *replay.Failure
		if !errors.As(err, &f) || !errors.Is(err, replay.ErrFailed) {
			t.Fatalf("step %d: validator-side error %v", j, err)
		}
		out[j] = f.Reason
	}
	return out
}

func newRecorder(t testing.TB, e *tensor.Engine, n *fixture.Net, opts ...replay.RecorderOption) *replay.Recorder {
	t.Helper()
	rec, err := replay.NewRecorder(e, n.Spec(), t.TempDir(), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

func newTrainer(t testing.TB, e *tensor.Engine, n *fixture.Net, peer string, opts ...replay.RecorderOption) *fixture.Trainer {
	t.Helper()
	tr, err := n.NewTrainer(e, peer, newRecorder(t, e, n, opts...))
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func newChecker(t testing.TB, e *tensor.Engine, n *fixture.Net) *replay.Checker {
	t.Helper()
	ck, err := replay.NewChecker(e, n.Spec())
	if err != nil {
		t.Fatal(err)
	}
	return ck
}

func steps(set map[int]replay.Reason) string { return fmt.Sprint(set) }
