package replay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/trinity-net/trinity/verify/replay"
	"github.com/trinity-net/trinity/verify/replay/internal/fixture"
)

// FuzzCheck feeds arbitrary responses to a validator: never a panic, only
// Failures, and the only accepted response is the trainer's own (the
// encoding is unique).
func FuzzCheck(f *testing.F) {
	e := engine(f)
	n := tinyNet(f, e)
	ck := newChecker(f, e, n)
	tr := newTrainer(f, e, n, "peer")
	p := playRound(f, tr, 1, n.Init, fixture.Attack{})
	ch := replay.Challenge{Round: 1, Trainer: "peer", Commitment: p.c, Step: 2}
	valid, err := tr.Rec.Respond(context.Background(), ch)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add(valid[:100])
	f.Add(valid[:len(valid)-40])
	f.Add([]byte("TRSP\x01\x00\x00\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		err := ck.Check(context.Background(), ch, b, p.global, p.blob)
		if err == nil {
			if !bytes.Equal(b, valid) {
				t.Fatal("a response other than the trainer's was accepted")
			}
			return
		}
		if !errors.Is(err, replay.ErrFailed) {
			t.Fatalf("not a failure: %v", err)
		}
	})
}

// FuzzDecodeSnapshot: strict decoding, and what decodes re-encodes to the
// same bytes.
func FuzzDecodeSnapshot(f *testing.F) {
	const n = 8
	s := testState(n)
	for _, parts := range []replay.Parts{replay.PartsAll, replay.PartsNone, replay.PartParams, replay.PartM | replay.PartEF} {
		b, err := replay.AppendSnapshot(nil, &s, s.Digests(), parts, n)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(byte(parts), b)
	}
	f.Fuzz(func(t *testing.T, want byte, b []byte) {
		parts := replay.Parts(want) & replay.PartsAll
		var st replay.State
		d, used, err := replay.DecodeSnapshot(b, n, parts, &st)
		if err != nil {
			if !errors.Is(err, replay.ErrMalformed) {
				t.Fatalf("error without ErrMalformed: %v", err)
			}
			return
		}
		again, err := replay.AppendSnapshot(nil, &st, d, parts, n)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again, b[:used]) {
			t.Fatal("decoded snapshot re-encodes differently")
		}
	})
}

// FuzzLedgerJSON: a persisted ledger never panics the decoder, and what
// decodes re-encodes to bytes that decode to the same encoding.
func FuzzLedgerJSON(f *testing.F) {
	l, err := replay.NewLedger(replay.DefaultPenalty())
	if err != nil {
		f.Fatal(err)
	}
	l.Fail("a", 3)
	l.Fail("b", 9)
	valid, err := json.Marshal(l)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add([]byte(`{"penalty":{"ExcludeRounds":1,"WatchRounds":2},"offences":[]}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		var got replay.Ledger
		if json.Unmarshal(b, &got) != nil {
			return
		}
		again, err := json.Marshal(&got)
		if err != nil {
			t.Fatal(err)
		}
		var got2 replay.Ledger
		if err := json.Unmarshal(again, &got2); err != nil {
			t.Fatalf("re-decoding %s: %v", again, err)
		}
		if again2, _ := json.Marshal(&got2); !bytes.Equal(again, again2) {
			t.Fatalf("not stable: %s vs %s", again, again2)
		}
	})
}
