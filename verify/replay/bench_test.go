package replay_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/verify/replay"
	"github.com/trinity-net/trinity/verify/replay/internal/fixture"
)

func benchNet(b *testing.B) *fixture.Net {
	e := engine(b)
	n, err := fixture.New(fixture.Bench, 3, e)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// BenchmarkTrainerRound is a trainer's round (H inner steps, compression)
// on the reference model with recording at checkpoint interval k, each
// iteration interleaved with a round without recording so that both see the
// same machine load: overhead is the recorder's extra wall time as a
// fraction of the plain round.
func BenchmarkTrainerRound(b *testing.B) {
	n := benchNet(b)
	e := engine(b)
	H := n.Shape.Steps
	plain, err := n.NewTrainer(e, "peer", nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, k := range []int{1, 4, H} {
		b.Run(fmt.Sprintf("k%d", k), func(b *testing.B) {
			rec := newRecorder(b, e, n, replay.WithCheckpointEvery(k), replay.WithRetainRounds(1))
			tr, err := n.NewTrainer(e, "peer", rec)
			if err != nil {
				b.Fatal(err)
			}
			var tPlain, tRec, cPlain, cRec time.Duration
			r := uint64(0)
			for b.Loop() {
				t0, c0 := time.Now(), cpuTime()
				if _, _, err := plain.Round(r, n.Init, fixture.Attack{}); err != nil {
					b.Fatal(err)
				}
				t1, c1 := time.Now(), cpuTime()
				if _, _, err := tr.Round(r, n.Init, fixture.Attack{}); err != nil {
					b.Fatal(err)
				}
				tPlain += t1.Sub(t0)
				tRec += time.Since(t1)
				cPlain += c1 - c0
				cRec += cpuTime() - c1
				r++
			}
			b.ReportMetric(float64(tPlain.Milliseconds())/float64(b.N), "plain-ms/round")
			b.ReportMetric(float64(tRec.Milliseconds())/float64(b.N), "rec-ms/round")
			b.ReportMetric(float64(tRec-tPlain)/float64(tPlain), "overhead")
			if cPlain > 0 {
				b.ReportMetric(float64(cRec-cPlain)/float64(cPlain), "cpu-overhead")
			}
			size, _ := rec.DiskBytes()
			b.ReportMetric(float64(size)/1e6, "disk-MB/round")
		})
	}
}

// BenchmarkChallenge is one challenge on the reference model: the
// trainer's Respond at k=1 and k=H (the worst step for k: recomputing k-1
// steps), and the validator's Check, each iteration interleaved with one
// plain inner step so that costs come out in steps under the same load
// (x-step; a round is H steps), with the bytes that move.
func BenchmarkChallenge(b *testing.B) {
	n := benchNet(b)
	e := engine(b)
	spec := n.Spec()
	H := spec.Steps
	ck, err := replay.NewChecker(e, spec)
	if err != nil {
		b.Fatal(err)
	}
	ref, err := n.NewTrainer(e, "ref", nil)
	if err != nil {
		b.Fatal(err)
	}
	bt := spec.Data.Batch * spec.Data.SeqLen
	in, tgt := make([]int32, bt), make([]int32, bt)
	if err := replay.StepBatch(spec.Data, "ref", 0, 0, in, tgt); err != nil {
		b.Fatal(err)
	}
	copy(ref.Model.Params, n.Init)
	step := func() time.Duration {
		t0 := time.Now()
		if _, err := optimizer.InnerStep(ref.Model, ref.Opt, in, tgt, spec.Data.Batch, spec.Data.SeqLen); err != nil {
			b.Fatal(err)
		}
		return time.Since(t0)
	}
	measure := func(b *testing.B, op func()) {
		var tStep, tOp, cStep, cOp time.Duration
		for b.Loop() {
			c0 := cpuTime()
			tStep += step()
			c1 := cpuTime()
			t0 := time.Now()
			op()
			tOp += time.Since(t0)
			cOp += cpuTime() - c1
			cStep += c1 - c0
		}
		if cStep > 0 {
			b.ReportMetric(float64(cOp)/float64(cStep), "cpu-x-step")
		}
		b.ReportMetric(float64(tStep.Milliseconds())/float64(b.N), "step-ms")
		b.ReportMetric(float64(tOp.Milliseconds())/float64(b.N), "op-ms")
		b.ReportMetric(float64(tOp)/float64(tStep), "x-step")
		b.ReportMetric(float64(tOp)/float64(tStep)/float64(H), "x-round")
	}
	for _, k := range []int{1, H} {
		rec := newRecorder(b, e, n, replay.WithCheckpointEvery(k))
		tr, err := n.NewTrainer(e, "peer", rec)
		if err != nil {
			b.Fatal(err)
		}
		c, blob, err := tr.Round(0, n.Init, fixture.Attack{})
		if err != nil {
			b.Fatal(err)
		}
		ch := replay.Challenge{Round: 0, Trainer: "peer", Commitment: c, Step: H - 2}
		var resp []byte
		b.Run(fmt.Sprintf("respond/k%d", k), func(b *testing.B) {
			measure(b, func() {
				if resp, err = rec.Respond(context.Background(), ch); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(len(resp))/1e6, "MB/response")
		})
		if k != 1 {
			continue
		}
		b.Run("check", func(b *testing.B) {
			measure(b, func() {
				if err := ck.Check(context.Background(), ch, resp, n.Init, blob); err != nil {
					b.Fatal(err)
				}
			})
			b.ReportMetric(float64(len(resp))/1e6, "MB/challenge")
			b.ReportMetric(float64(len(blob))/1e6, "MB/blob")
			b.ReportMetric(float64(16*len(n.Init))/1e6, "MB/state")
		})
	}
}

// BenchmarkStateHash is the trainer's per-step hashing (params, m, v).
func BenchmarkStateHash(b *testing.B) {
	n := benchNet(b)
	x := slices.Clone(n.Init)
	b.SetBytes(int64(12 * len(x)))
	for b.Loop() {
		replay.StateHash(x, x, x, 1, nil)
	}
}

// BenchmarkResponseZstd measures what zstd would save on a response of the
// reference model after a few rounds (when m, v and the error feedback are
// no longer mostly zero): it decides whether the wire format compresses.
func BenchmarkResponseZstd(b *testing.B) {
	n := benchNet(b)
	e := engine(b)
	rec := newRecorder(b, e, n)
	tr, err := n.NewTrainer(e, "peer", rec)
	if err != nil {
		b.Fatal(err)
	}
	global := slices.Clone(n.Init)
	var c replay.Commitment
	for r := range uint64(3) {
		var blob []byte
		if c, blob, err = tr.Round(r, global, fixture.Attack{}); err != nil {
			b.Fatal(err)
		}
		if err := n.Apply(global, blob, r); err != nil {
			b.Fatal(err)
		}
	}
	resp, err := rec.Respond(context.Background(), replay.Challenge{Round: 2, Trainer: "peer", Commitment: c, Step: 3})
	if err != nil {
		b.Fatal(err)
	}
	for _, lvl := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedBetterCompression} {
		b.Run(lvl.String(), func(b *testing.B) {
			enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(lvl), zstd.WithEncoderConcurrency(1))
			if err != nil {
				b.Fatal(err)
			}
			defer enc.Close()
			var z []byte
			b.SetBytes(int64(len(resp)))
			for b.Loop() {
				z = enc.EncodeAll(resp, z[:0])
			}
			b.ReportMetric(float64(len(z))/float64(len(resp)), "size-ratio")
		})
	}
}
