package attest

import (
	"bytes"
	"context"
	"encoding"
	"errors"
	"reflect"
	"testing"
)

// samples builds one valid, signed message of every type from a real
// exchange, in both opening modes.
func samples(t testing.TB) (ch *Challenge, cm *Commitment, reqs []*OpenRequest, ops []*Opening, att *Attestation, rec *CapacityRecord) {
	t.Helper()
	e := newEngine(t)
	p := newProver(t, e, "prover")
	ctx := context.Background()
	for _, spot := range []int{0, 5} {
		v := newVerifier(t, "verifier", WithSizes(MinN, 40), WithSpotRows(spot))
		c, err := v.Challenge(p.PublicKey(), 0.0001)
		if err != nil {
			t.Fatal(err)
		}
		m, err := p.Commit(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		if err := v.Committed(m); err != nil {
			t.Fatal(err)
		}
		rs, err := v.Requests(c.Nonce)
		if err != nil {
			t.Fatal(err)
		}
		var os []*Opening
		for _, q := range rs {
			op, err := p.Open(ctx, q)
			if err != nil {
				t.Fatal(err)
			}
			os = append(os, op)
		}
		a, err := v.Finish(ctx, c.Nonce, os)
		if err != nil {
			t.Fatal(err)
		}
		if a.Verdict != VerdictPass {
			t.Fatalf("sample attestation: %v", a.Verdict)
		}
		ch, cm, att = c, m, a
		reqs, ops = append(reqs, rs...), append(ops, os...)
	}
	rec = signedRecord(t, "prover", 3, 100, []Attestation{*att})
	return
}

type wireMsg interface {
	encoding.BinaryMarshaler
	encoding.BinaryUnmarshaler
}

func TestWireRoundTrip(t *testing.T) {
	ch, cm, reqs, ops, att, rec := samples(t)
	msgs := []struct {
		name string
		msg  wireMsg
		zero func() wireMsg
	}{
		{"challenge", ch, func() wireMsg { return new(Challenge) }},
		{"commitment", cm, func() wireMsg { return new(Commitment) }},
		{"attestation", att, func() wireMsg { return new(Attestation) }},
		{"record", rec, func() wireMsg { return new(CapacityRecord) }},
	}
	for _, q := range reqs {
		msgs = append(msgs, struct {
			name string
			msg  wireMsg
			zero func() wireMsg
		}{"open request", q, func() wireMsg { return new(OpenRequest) }})
	}
	for _, o := range ops {
		msgs = append(msgs, struct {
			name string
			msg  wireMsg
			zero func() wireMsg
		}{"opening", o, func() wireMsg { return new(Opening) }})
	}
	for _, m := range msgs {
		t.Run(m.name, func(t *testing.T) {
			b, err := m.msg.MarshalBinary()
			if err != nil {
				t.Fatal(err)
			}
			got := m.zero()
			if err := got.UnmarshalBinary(b); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, m.msg) {
				t.Errorf("round trip differs:\n got %+v\nwant %+v", got, m.msg)
			}
			// Every truncation and any trailing byte is rejected.
			for k := range len(b) {
				if err := m.zero().UnmarshalBinary(b[:k]); !errors.Is(err, ErrMalformed) {
					t.Fatalf("truncated to %d of %d bytes: %v", k, len(b), err)
				}
			}
			if err := m.zero().UnmarshalBinary(append(bytes.Clone(b), 0)); !errors.Is(err, ErrMalformed) {
				t.Errorf("trailing byte: %v", err)
			}
			bad := bytes.Clone(b)
			bad[0] = Version + 1
			if err := m.zero().UnmarshalBinary(bad); !errors.Is(err, ErrMalformed) {
				t.Errorf("wrong version: %v", err)
			}
		})
	}
	if len(mustMarshal(t, ch)) != ChallengeSize || len(mustMarshal(t, cm)) != CommitmentSize || len(mustMarshal(t, att)) != AttestationSize {
		t.Error("fixed sizes disagree with the encodings")
	}
}

func mustMarshal(t testing.TB, m encoding.BinaryMarshaler) []byte {
	t.Helper()
	b, err := m.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestWireRejects(t *testing.T) {
	ch, _, _, ops, att, _ := samples(t)
	var full, spot *Opening
	for _, o := range ops {
		if o.Kind == OpenRange && full == nil {
			full = o
		}
		if o.Kind == OpenSpot {
			spot = o
		}
	}
	n := full.N
	tests := []struct {
		name string
		msg  wireMsg
		b    func() []byte
	}{
		{"challenge n too small", new(Challenge), func() []byte {
			b := mustMarshal(t, ch)
			b[1+32+32+3] = MinN - 1
			b[1+32+32+2] = 0
			return b
		}},
		{"challenge deadline before issue", new(Challenge), func() []byte {
			c := *ch
			c.Deadline = c.IssuedAt
			b, _ := c.body()
			return append(b, c.Signature...)
		}},
		{"opening entry beyond bound", new(Opening), func() []byte {
			o := *full
			o.Values = append([]int32(nil), full.Values...)
			b := mustMarshal(t, &o)
			// Replace the first entry (offset 1+32+1+4+4+4) with a huge one.
			head := 1 + 32 + 1 + 4 + 4 + 4
			huge := appendEntry(nil, int32(EntryBound(n)+1))
			_, k := decodeOne(b[head:])
			return append(append(append([]byte(nil), b[:head]...), huge...), b[head+k:]...)
		}},
		{"opening non-minimal varint", new(Opening), func() []byte {
			b := mustMarshal(t, full)
			head := 1 + 32 + 1 + 4 + 4 + 4
			_, k := decodeOne(b[head:])
			// Stretch the first entry by one byte: continuation bit on its
			// last byte, then a zero byte.
			out := append([]byte(nil), b[:head+k]...)
			out[head+k-1] |= 0x80
			out = append(out, 0)
			return append(out, b[head+k:]...)
		}},
		{"opening rows beyond n", new(Opening), func() []byte {
			b := mustMarshal(t, full)
			b[1+32+1+4+3] = byte(n) // lo = n
			return b
		}},
		{"opening huge count", new(Opening), func() []byte {
			b := mustMarshal(t, full)
			copy(b[1+32+1+4+4:], []byte{0xff, 0xff, 0xff, 0xff})
			return b
		}},
		{"spot proof length", new(Opening), func() []byte {
			o := *spot
			o.Proofs = append([][]hash(nil), spot.Proofs...)
			o.Proofs[0] = append(o.Proofs[0], hash{})
			return marshalUnchecked(&o)
		}},
		{"spot rows not increasing", new(Opening), func() []byte {
			o := *spot
			o.Indices = append([]int(nil), spot.Indices...)
			o.Indices[1] = o.Indices[0]
			return marshalUnchecked(&o)
		}},
		{"request kind", new(OpenRequest), func() []byte { return append([]byte{Version}, append(make([]byte, 32), 9, 0, 0, 0, 0, 0, 0, 0, 1)...) }},
		{"request empty range", new(OpenRequest), func() []byte { return append([]byte{Version}, append(make([]byte, 32), 1, 0, 0, 0, 5, 0, 0, 0, 5)...) }},
		{"request zero spot rows", new(OpenRequest), func() []byte { return append([]byte{Version}, append(make([]byte, 32), 2, 0, 0)...) }},
		{"attestation NaN rate", new(Attestation), func() []byte {
			b := mustMarshal(t, att)
			off := 1 + 32*4 + 4 + 2 + 8 + 8
			copy(b[off:], []byte{0x7f, 0xf8, 0, 0, 0, 0, 0, 1})
			return b
		}},
		{"attestation bad verdict", new(Attestation), func() []byte {
			b := mustMarshal(t, att)
			b[1+32*4+4+2+8+8+8+1] = 9
			return b
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.b()
			if b == nil {
				t.Skip("sample has no short entry to stretch")
			}
			if err := tc.msg.UnmarshalBinary(b); !errors.Is(err, ErrMalformed) {
				t.Errorf("got %v, want ErrMalformed", err)
			}
		})
	}
}

func decodeOne(b []byte) (int32, int) {
	r := reader{b: b}
	v := r.entry(1 << 30)
	return v, r.off
}

// marshalUnchecked encodes a spot opening without MarshalBinary's checks,
// to produce inputs a strict encoder would refuse.
func marshalUnchecked(o *Opening) []byte {
	b := []byte{Version}
	b = append(b, o.Nonce[:]...)
	b = append(b, byte(o.Kind), 0, 0, byte(o.N>>8), byte(o.N))
	b = append(b, 0, byte(len(o.Indices)))
	for k, i := range o.Indices {
		b = append(b, byte(i>>24), byte(i>>16), byte(i>>8), byte(i))
		for _, v := range o.Values[k*o.N : (k+1)*o.N] {
			b = appendEntry(b, v)
		}
		b = append(b, byte(len(o.Proofs[k])))
		for _, h := range o.Proofs[k] {
			b = append(b, h[:]...)
		}
	}
	return b
}

// fuzzCanonical checks that whatever decodes re-encodes to the same bytes:
// the encodings are canonical, which signatures and hashes rely on.
func fuzzCanonical(f *testing.F, seeds [][]byte, zero func() wireMsg) {
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m := zero()
		if err := m.UnmarshalBinary(b); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("decode error does not wrap ErrMalformed: %v", err)
			}
			return
		}
		again, err := m.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded message does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}

var fuzzSamples struct {
	ch, cm, att, rec []byte
	reqs, ops        [][]byte
}

func fuzzSeeds(f *testing.F) {
	if fuzzSamples.ch != nil {
		return
	}
	ch, cm, reqs, ops, att, rec := samples(f)
	fuzzSamples.ch, fuzzSamples.cm = mustMarshal(f, ch), mustMarshal(f, cm)
	fuzzSamples.att, fuzzSamples.rec = mustMarshal(f, att), mustMarshal(f, rec)
	for _, q := range reqs {
		fuzzSamples.reqs = append(fuzzSamples.reqs, mustMarshal(f, q))
	}
	for _, o := range ops {
		fuzzSamples.ops = append(fuzzSamples.ops, mustMarshal(f, o))
	}
}

func FuzzChallenge(f *testing.F) {
	fuzzSeeds(f)
	fuzzCanonical(f, [][]byte{fuzzSamples.ch, {Version}}, func() wireMsg { return new(Challenge) })
}

func FuzzCommitment(f *testing.F) {
	fuzzSeeds(f)
	fuzzCanonical(f, [][]byte{fuzzSamples.cm}, func() wireMsg { return new(Commitment) })
}

func FuzzOpenRequest(f *testing.F) {
	fuzzSeeds(f)
	fuzzCanonical(f, fuzzSamples.reqs, func() wireMsg { return new(OpenRequest) })
}

func FuzzOpening(f *testing.F) {
	fuzzSeeds(f)
	fuzzCanonical(f, fuzzSamples.ops, func() wireMsg { return new(Opening) })
}

func FuzzAttestation(f *testing.F) {
	fuzzSeeds(f)
	fuzzCanonical(f, [][]byte{fuzzSamples.att}, func() wireMsg { return new(Attestation) })
}

func FuzzCapacityRecord(f *testing.F) {
	fuzzSeeds(f)
	fuzzCanonical(f, [][]byte{fuzzSamples.rec}, func() wireMsg { return new(CapacityRecord) })
}
