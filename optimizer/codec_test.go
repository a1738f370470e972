package optimizer

import (
	"encoding/binary"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

// compressedBlob returns a valid blob for ch from a random pseudo-gradient.
func compressedBlob(t testing.TB, ch *Chunking, seed uint64, round uint64) ([]byte, *Compressed) {
	t.Helper()
	s, err := NewSparseLoCo(ch)
	if err != nil {
		t.Fatal(err)
	}
	c := ch.NewCompressed()
	if err := s.Compress(round, randVec(rand.New(rand.NewPCG(seed, 1)), ch.NumParams, 1e-3), c); err != nil {
		t.Fatal(err)
	}
	blob, err := ch.Encode(nil, c)
	if err != nil {
		t.Fatal(err)
	}
	return blob, c
}

func TestCodecRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		lens    []int
		size, k int
	}{
		{[]int{100000, 257, 4096}, 4096, 64},
		{[]int{100000, 257, 4096}, 4096, 32},
		{[]int{5000}, 16, 16}, // everything kept
		{[]int{5000, 3}, 64, 1},
		{[]int{70000}, 65536, 700},
	} {
		ch := testChunking(t, tc.lens, tc.size, tc.k)
		blob, c := compressedBlob(t, ch, 11, 42)
		if len(blob) != ch.EncodedSize(c) {
			t.Fatalf("blob %d bytes, EncodedSize %d", len(blob), ch.EncodedSize(c))
		}
		got := ch.NewCompressed()
		if err := ch.Decode(blob, got); err != nil {
			t.Fatalf("%v: %v", tc, err)
		}
		if got.Round != 42 || !slices.Equal(got.Idx, c.Idx) || !slices.Equal(got.Codes, c.Codes) ||
			!slices.Equal(got.Lo, c.Lo) || !slices.Equal(got.Hi, c.Hi) {
			t.Fatalf("%v: round trip differs", tc)
		}
		again, err := ch.Encode(nil, got)
		if err != nil || !slices.Equal(again, blob) {
			t.Fatalf("%v: re-encoding differs (%v)", tc, err)
		}
	}
}

// rawBlob assembles a blob field by field so tests can write what Encode
// never would.
type rawBlob struct {
	version, scheme byte
	hash            [32]byte
	size, k, chunks uint32
	params          uint64
	scales          []float32
	stream          []byte
	codes           []byte
	streamLen       int // -1: len(stream)
}

func (r rawBlob) bytes() []byte {
	b := make([]byte, headerSize)
	copy(b, blobMagic)
	b[4], b[5] = r.version, r.scheme
	copy(b[8:], r.hash[:])
	le := binary.LittleEndian
	le.PutUint64(b[40:], 9)
	le.PutUint32(b[48:], r.size)
	le.PutUint32(b[52:], r.k)
	le.PutUint32(b[56:], r.chunks)
	le.PutUint64(b[60:], r.params)
	sl := r.streamLen
	if sl < 0 {
		sl = len(r.stream)
	}
	le.PutUint32(b[68:], uint32(sl))
	for _, s := range r.scales {
		b = le.AppendUint32(b, math.Float32bits(s))
	}
	b = append(b, r.stream...)
	return append(b, r.codes...)
}

// stream codes the given per-chunk (p, gaps) lists.
func stream(chunks ...[]uint64) []byte {
	buf := make([]byte, 1024)
	w := bitWriter{buf: buf}
	for _, c := range chunks {
		p := int(c[0])
		w.write(uint64(p), riceParamBits)
		for _, g := range c[1:] {
			w.unary(g >> p)
			w.write(g&(1<<p-1), p)
		}
	}
	w.flush()
	return buf[:w.pos]
}

func TestDecodeRejects(t *testing.T) {
	// One tensor of 20 entries, chunks of 16: chunk 0 keeps 2 of 16,
	// chunk 1 keeps 1 of 4.
	ch := testChunking(t, []int{20}, 16, 2)
	if len(ch.Chunks) != 2 || ch.Chunks[0].K != 2 || ch.Chunks[1].K != 1 {
		t.Fatalf("unexpected chunking %+v", ch.Chunks)
	}
	good := func() rawBlob {
		return rawBlob{
			version: FormatVersion, scheme: quantScheme, hash: ch.ConfigHash, size: 16, k: 2, chunks: 2, params: 20,
			scales: []float32{0.5, 1, 0.25, 0.25},
			// chunk 0: indices 3, 9 (gaps 3, 5), chunk 1: index 2 (gap 2);
			// p chosen as the encoder does.
			stream:    stream([]uint64{canonP([]uint16{3, 9}), 3, 5}, []uint64{canonP([]uint16{2}), 2}),
			codes:     []byte{0b10_01_11},
			streamLen: -1,
		}
	}
	if err := ch.Decode(good().bytes(), ch.NewCompressed()); err != nil {
		t.Fatalf("baseline blob rejected: %v", err)
	}
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	cases := []struct {
		name string
		edit func(r *rawBlob) []byte
		want string
	}{
		{"empty", func(r *rawBlob) []byte { return nil }, "shorter than"},
		{"truncated header", func(r *rawBlob) []byte { return r.bytes()[:50] }, "shorter than"},
		{"bad magic", func(r *rawBlob) []byte { b := r.bytes(); b[0] = 'X'; return b }, "magic"},
		{"future version", func(r *rawBlob) []byte { r.version = 2; return r.bytes() }, "version"},
		{"unknown scheme", func(r *rawBlob) []byte { r.scheme = 7; return r.bytes() }, "scheme"},
		{"reserved set", func(r *rawBlob) []byte { b := r.bytes(); b[7] = 1; return b }, "reserved"},
		{"other model", func(r *rawBlob) []byte { r.hash[0] ^= 1; return r.bytes() }, "config hash"},
		{"chunk size", func(r *rawBlob) []byte { r.size = 32; return r.bytes() }, "chunk size"},
		{"k", func(r *rawBlob) []byte { r.k = 3; return r.bytes() }, "k 3"},
		{"chunk count", func(r *rawBlob) []byte { r.chunks = 1 << 30; return r.bytes() }, "chunks"},
		{"param count", func(r *rawBlob) []byte { r.params = 1 << 40; return r.bytes() }, "parameters"},
		{"claims more than its size", func(r *rawBlob) []byte { r.streamLen = 1<<32 - 1; return r.bytes() }, "claim"},
		{"truncated body", func(r *rawBlob) []byte { b := r.bytes(); return b[:len(b)-1] }, "claim"},
		{"trailing bytes", func(r *rawBlob) []byte { return append(r.bytes(), 0) }, "trailing"},
		{"NaN scale", func(r *rawBlob) []byte { r.scales[1] = nan; return r.bytes() }, "not finite"},
		{"Inf scale", func(r *rawBlob) []byte { r.scales[2] = inf; r.scales[3] = inf; return r.bytes() }, "not finite"},
		{"negative scale", func(r *rawBlob) []byte { r.scales[0] = -1; return r.bytes() }, "ordered"},
		{"lo above hi", func(r *rawBlob) []byte { r.scales[0] = 2; return r.bytes() }, "ordered"},
		{"index out of range", func(r *rawBlob) []byte {
			r.stream = stream([]uint64{canonP([]uint16{3, 9}), 3, 5}, []uint64{0, 4}) // index 4 of 4
			return r.bytes()
		}, "out of range"},
		{"second index out of range", func(r *rawBlob) []byte {
			r.stream = stream([]uint64{0, 3, 12}, []uint64{canonP([]uint16{2}), 2}) // 3, 16
			return r.bytes()
		}, "out of range"},
		{"long unary run", func(r *rawBlob) []byte {
			r.stream = append([]byte{0xf0}, slices.Repeat([]byte{0xff}, 100)...)
			return r.bytes()
		}, "out of range"},
		{"stream truncated", func(r *rawBlob) []byte {
			r.stream = stream([]uint64{canonP([]uint16{3, 9}), 3, 5})[:1]
			return r.bytes()
		}, "truncated"},
		{"stream too long", func(r *rawBlob) []byte { r.stream = append(r.stream, 0); return r.bytes() }, "used"},
		{"stream padding", func(r *rawBlob) []byte { r.stream[len(r.stream)-1] |= 0x80; return r.bytes() }, "padding"},
		{"code padding", func(r *rawBlob) []byte { r.codes[0] |= 0xc0; return r.bytes() }, "padding"},
		{"non-canonical Rice parameter", func(r *rawBlob) []byte {
			p := canonP([]uint16{3, 9}) + 1
			r.stream = stream([]uint64{p, 3, 5}, []uint64{canonP([]uint16{2}), 2})
			return r.bytes()
		}, "canonical"},
	}
	for _, tc := range cases {
		r := good()
		err := ch.Decode(tc.edit(&r), ch.NewCompressed())
		if err == nil {
			t.Errorf("%s: accepted", tc.name)
			continue
		}
		if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %q, want ErrMalformed mentioning %q", tc.name, err, tc.want)
		}
	}
}

func canonP(idx []uint16) uint64 { p, _ := riceChoose(idx); return uint64(p) }

func TestEncodeRejectsInvalid(t *testing.T) {
	ch := testChunking(t, []int{20}, 16, 2)
	mk := func() *Compressed {
		c := ch.NewCompressed()
		c.Lo = []float32{1, 1}
		c.Hi = []float32{1, 1}
		c.Idx = []uint16{3, 9, 2}
		return c
	}
	for name, edit := range map[string]func(c *Compressed){
		"duplicate index": func(c *Compressed) { c.Idx[1] = 3 },
		"unsorted":        func(c *Compressed) { c.Idx[0], c.Idx[1] = 9, 3 },
		"out of range":    func(c *Compressed) { c.Idx[2] = 4 },
		"code too wide":   func(c *Compressed) { c.Codes[0] = 4 },
		"NaN scale":       func(c *Compressed) { c.Hi[0] = float32(math.NaN()) },
		"short":           func(c *Compressed) { c.Idx = c.Idx[:2] },
	} {
		c := mk()
		edit(c)
		if _, err := ch.Encode(nil, c); err == nil {
			t.Errorf("%s: encoded", name)
		}
	}
	if _, err := ch.Encode(nil, mk()); err != nil {
		t.Fatal(err)
	}
}

func FuzzDecode(f *testing.F) {
	ch, err := NewChunkingLens([]int{300, 20, 64}, [32]byte{9}, 64, 8)
	if err != nil {
		f.Fatal(err)
	}
	blob, _ := compressedBlob(f, ch, 1, 3)
	f.Add(blob)
	f.Add(blob[:len(blob)-1])
	f.Add(blob[:headerSize])
	f.Add(append(slices.Clone(blob), 0))
	flipped := slices.Clone(blob)
	flipped[headerSize+8*len(ch.Chunks)+3] ^= 0x10
	f.Add(flipped)
	f.Add([]byte{})
	out := ch.NewCompressed()
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := ch.Decode(b, out); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error not wrapping ErrMalformed: %v", err)
			}
			return
		}
		// Anything accepted is valid and is the unique encoding of itself.
		if err := ch.Validate(out); err != nil {
			t.Fatalf("decoded invalid contribution: %v", err)
		}
		again, err := ch.Encode(nil, out)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(again, b) {
			t.Fatalf("accepted a non-canonical encoding")
		}
	})
}
