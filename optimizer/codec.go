package optimizer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"math/bits"
)

// Blob format, version 1 (all integers little endian):
//
//	off  size  field
//	0    4     magic "TSLC"
//	4    1     format version (1)
//	5    1     quantisation scheme (1: sign + two per-chunk levels, see Compressed)
//	6    2     reserved, zero
//	8    32    model config hash
//	40   8     round
//	48   4     chunk size
//	52   4     k per full chunk
//	56   4     number of chunks
//	60   8     number of parameters
//	68   4     L: byte length of the index stream
//	72   8*C   per chunk: lo, hi (float32)
//	..   L     index stream
//	..   ceil(2*TotalK/8)  2-bit codes, four per byte, first in the low bits
//
// The index stream is a bit stream (LSB first) holding, for each chunk, a
// 4-bit Rice parameter p and then, for each kept index in increasing order,
// the gap g = idx - prev - 1 (prev = -1 before the first) as a Rice code:
// g>>p in unary (that many 1 bits, then a 0), then the low p bits of g.
// Gaps make duplicates and disorder unrepresentable. p is chosen per chunk
// to minimise the chunk's bits (ties to the smallest p searched) and the
// decoder insists on that choice, so the encoding of a contribution is
// unique. Unused bits of the last byte are zero.
//
// Why Rice: for 64 of 4096 the entropy of the index set is about 7.4 bits
// per index; Rice codes of the gaps reach about 7.6, against 12 for raw
// bit-packing; zstd over either gains nothing measurable (TestIndexCoding
// measures all of them), so the format does not use it.
const (
	blobMagic      = "TSLC"
	FormatVersion  = 1
	quantScheme    = 1
	headerSize     = 72
	riceParamBits  = 4
	maxRiceParam   = 1<<riceParamBits - 1
	scaleBytesEach = 8
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("malformed pseudo-gradient blob")

func malformed(format string, args ...any) error {
	return fmt.Errorf("optimizer: decode: %w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// EncodedSize is the size in bytes Encode will produce for c (which must be
// valid for ch).
func (ch *Chunking) EncodedSize(c *Compressed) int {
	return headerSize + scaleBytesEach*len(ch.Chunks) + ch.indexStreamBytes(c, nil) + codesBytes(ch.TotalK)
}

func codesBytes(n int) int { return (2*n + 7) / 8 }

// indexStreamBytes is the index stream's length in bytes; it records each
// chunk's Rice parameter in ps when ps is not nil.
func (ch *Chunking) indexStreamBytes(c *Compressed, ps []uint8) int {
	n := 0
	for ci, k := range ch.Chunks {
		p, b := riceChoose(c.Idx[k.Start : k.Start+k.K])
		if ps != nil {
			ps[ci] = uint8(p)
		}
		n += riceParamBits + b
	}
	return (n + 7) / 8
}

// riceChoose returns the Rice parameter minimising the bits of idx's gaps,
// and those bits.
func riceChoose(idx []uint16) (p, nbits int) {
	var sum int // sum of gaps
	prev := -1
	for _, i := range idx {
		sum += int(i) - prev - 1
		prev = int(i)
	}
	// The cost is convex in p; start near log2(mean gap) and look around.
	best, bestBits := 0, math.MaxInt
	guess := 0
	if len(idx) > 0 && sum > len(idx) {
		guess = bits.Len(uint(sum/len(idx))) - 1
	}
	for q := max(0, guess-2); q <= min(maxRiceParam, guess+2); q++ {
		b := len(idx) * (1 + q)
		prev = -1
		for _, i := range idx {
			b += (int(i) - prev - 1) >> q
			prev = int(i)
		}
		if b < bestBits {
			best, bestBits = q, b
		}
	}
	return best, bestBits
}

// Encode appends the blob of c to dst. c must be valid for ch (it is
// checked; a Compressed from SparseLoCo.Compress always is).
func (ch *Chunking) Encode(dst []byte, c *Compressed) ([]byte, error) {
	if err := ch.Validate(c); err != nil {
		return dst, fmt.Errorf("optimizer: encode: %w", err)
	}
	ps := make([]uint8, len(ch.Chunks))
	streamBytes := ch.indexStreamBytes(c, ps)
	size := headerSize + scaleBytesEach*len(ch.Chunks) + streamBytes + codesBytes(ch.TotalK)
	if size > math.MaxInt32 {
		return dst, fmt.Errorf("optimizer: encode: blob of %d bytes is too large", size)
	}
	start := len(dst)
	dst = append(dst, make([]byte, size)...)
	b := dst[start:]
	copy(b, blobMagic)
	b[4], b[5] = FormatVersion, quantScheme
	copy(b[8:40], ch.ConfigHash[:])
	le := binary.LittleEndian
	le.PutUint64(b[40:], c.Round)
	le.PutUint32(b[48:], uint32(ch.Size))
	le.PutUint32(b[52:], uint32(ch.K))
	le.PutUint32(b[56:], uint32(len(ch.Chunks)))
	le.PutUint64(b[60:], uint64(ch.NumParams))
	le.PutUint32(b[68:], uint32(streamBytes))
	off := headerSize
	for ci := range ch.Chunks {
		le.PutUint32(b[off:], math.Float32bits(c.Lo[ci]))
		le.PutUint32(b[off+4:], math.Float32bits(c.Hi[ci]))
		off += 8
	}
	w := bitWriter{buf: b[off : off+streamBytes]}
	for ci, k := range ch.Chunks {
		idx := c.Idx[k.Start : k.Start+k.K]
		p := int(ps[ci])
		w.write(uint64(p), riceParamBits)
		prev := -1
		for _, i := range idx {
			g := uint64(int(i) - prev - 1)
			prev = int(i)
			w.unary(g >> p)
			w.write(g&(1<<p-1), p)
		}
	}
	w.flush()
	off += streamBytes
	codes := b[off:]
	for j, cd := range c.Codes {
		codes[j>>2] |= cd << (2 * (j & 3))
	}
	return dst, nil
}

// Decode parses a blob strictly against the chunking the caller expects
// into out (from NewCompressed; reused, so decoding allocates nothing).
// It rejects a wrong magic, version, scheme or config hash, any header
// field that disagrees with ch, a blob shorter or longer than its fields
// say, non-finite or disordered scales, out-of-range indices, non-zero
// padding and trailing bytes. The round is returned in out.Round for the
// caller to check. On error out holds garbage.
func (ch *Chunking) Decode(blob []byte, out *Compressed) error {
	if len(out.Lo) != len(ch.Chunks) || len(out.Hi) != len(ch.Chunks) || len(out.Idx) != ch.TotalK || len(out.Codes) != ch.TotalK {
		return fmt.Errorf("optimizer: decode: output not shaped for this chunking (use NewCompressed)")
	}
	if len(blob) < headerSize {
		return malformed("%d bytes, shorter than the %d-byte header", len(blob), headerSize)
	}
	if string(blob[:4]) != blobMagic {
		return malformed("bad magic %q", blob[:4])
	}
	if blob[4] != FormatVersion {
		return malformed("format version %d, want %d", blob[4], FormatVersion)
	}
	if blob[5] != quantScheme {
		return malformed("quantisation scheme %d, want %d", blob[5], quantScheme)
	}
	if blob[6] != 0 || blob[7] != 0 {
		return malformed("reserved bytes not zero")
	}
	if [32]byte(blob[8:40]) != ch.ConfigHash {
		return malformed("model config hash %x does not match %x", blob[8:16], ch.ConfigHash[:8])
	}
	le := binary.LittleEndian
	out.Round = le.Uint64(blob[40:])
	if v := le.Uint32(blob[48:]); uint64(v) != uint64(ch.Size) {
		return malformed("chunk size %d, want %d", v, ch.Size)
	}
	if v := le.Uint32(blob[52:]); uint64(v) != uint64(ch.K) {
		return malformed("k %d, want %d", v, ch.K)
	}
	if v := le.Uint32(blob[56:]); uint64(v) != uint64(len(ch.Chunks)) {
		return malformed("%d chunks, want %d", v, len(ch.Chunks))
	}
	if v := le.Uint64(blob[60:]); v != uint64(ch.NumParams) {
		return malformed("%d parameters, want %d", v, ch.NumParams)
	}
	streamBytes := uint64(le.Uint32(blob[68:]))
	want := uint64(headerSize) + uint64(scaleBytesEach*len(ch.Chunks)) + streamBytes + uint64(codesBytes(ch.TotalK))
	if want > uint64(len(blob)) {
		return malformed("fields claim %d bytes, blob has %d", want, len(blob))
	}
	if want < uint64(len(blob)) {
		return malformed("%d trailing bytes", uint64(len(blob))-want)
	}
	off := headerSize
	for ci := range ch.Chunks {
		lo := math.Float32frombits(le.Uint32(blob[off:]))
		hi := math.Float32frombits(le.Uint32(blob[off+4:]))
		if err := checkScales(lo, hi); err != nil {
			return malformed("chunk %d: %v", ci, err)
		}
		out.Lo[ci], out.Hi[ci] = lo, hi
		off += 8
	}
	r := bitReader{buf: blob[off : off+int(streamBytes)]}
	for ci, k := range ch.Chunks {
		p := int(r.read(riceParamBits))
		prev := -1
		for j := k.Start; j < k.Start+k.K; j++ {
			// The gap must keep the index below k.Len: bound the unary part
			// so a hostile run of ones cannot loop long.
			if prev+1 >= k.Len {
				return malformed("chunk %d: %d indices do not fit in %d entries", ci, k.K, k.Len)
			}
			limit := uint64(k.Len-prev-2) >> p
			q, ok := r.unary(limit)
			if !ok {
				if r.err {
					return malformed("chunk %d: index stream truncated", ci)
				}
				return malformed("chunk %d: index out of range [0, %d)", ci, k.Len)
			}
			g := q<<p | r.read(p)
			i := uint64(prev+1) + g
			if i >= uint64(k.Len) {
				return malformed("chunk %d: index %d out of range [0, %d)", ci, i, k.Len)
			}
			out.Idx[j] = uint16(i)
			prev = int(i)
		}
		if r.err {
			return malformed("chunk %d: index stream truncated", ci)
		}
		// One contribution, one encoding: a blob's hash then identifies its
		// content, so re-encoding someone else's work gives the same CID.
		if q, _ := riceChoose(out.Idx[k.Start : k.Start+k.K]); q != p {
			return malformed("chunk %d: Rice parameter %d is not the canonical %d", ci, p, q)
		}
	}
	if used := (r.pos + 7) / 8; used != len(r.buf) {
		return malformed("index stream is %d bytes, %d used", len(r.buf), used)
	}
	if r.pos%8 != 0 && r.buf[len(r.buf)-1]>>(r.pos%8) != 0 {
		return malformed("index stream padding is not zero")
	}
	off += int(streamBytes)
	codes := blob[off:]
	for j := range out.Codes {
		out.Codes[j] = codes[j>>2] >> (2 * (j & 3)) & 3
	}
	if rem := ch.TotalK % 4; rem != 0 && codes[len(codes)-1]>>(2*rem) != 0 {
		return malformed("code padding is not zero")
	}
	return nil
}

// bitWriter writes LSB-first into a preallocated, zeroed buffer.
type bitWriter struct {
	buf  []byte
	pos  int // bytes written
	acc  uint64
	nacc int
}

func (w *bitWriter) write(v uint64, n int) {
	// n <= 15 here, so acc never overflows when nacc < 64-15 after draining.
	w.acc |= v << w.nacc
	w.nacc += n
	for w.nacc >= 8 {
		w.buf[w.pos] = byte(w.acc)
		w.pos++
		w.acc >>= 8
		w.nacc -= 8
	}
}

func (w *bitWriter) unary(q uint64) {
	for q >= 8 {
		w.write(0xff, 8)
		q -= 8
	}
	w.write(1<<q-1, int(q)+1) // q ones then a zero
}

func (w *bitWriter) flush() {
	if w.nacc > 0 {
		w.buf[w.pos] = byte(w.acc)
		w.pos++
		w.acc, w.nacc = 0, 0
	}
}

// bitReader reads LSB-first; reading past the end sets err and yields zeros.
type bitReader struct {
	buf []byte
	pos int // bits consumed
	err bool
}

func (r *bitReader) read(n int) uint64 {
	var v uint64
	for i := 0; i < n; {
		byteI := r.pos >> 3
		if byteI >= len(r.buf) {
			r.err = true
			return 0
		}
		bit := r.pos & 7
		take := min(8-bit, n-i)
		v |= uint64(r.buf[byteI]>>bit&(1<<take-1)) << i
		i += take
		r.pos += take
	}
	return v
}

// unary reads ones up to a zero; it fails (ok false) after more than limit
// ones or at the end of the buffer (err set).
func (r *bitReader) unary(limit uint64) (q uint64, ok bool) {
	for {
		byteI := r.pos >> 3
		if byteI >= len(r.buf) {
			r.err = true
			return q, false
		}
		bit := r.pos & 7
		b := r.buf[byteI] >> bit // remaining bits of this byte, low first
		ones := bits.TrailingZeros8(^b)
		avail := 8 - bit
		if ones < avail {
			q += uint64(ones)
			r.pos += ones + 1
			if q > limit {
				return q, false
			}
			return q, true
		}
		q += uint64(avail)
		r.pos += avail
		if q > limit {
			return q, false
		}
	}
}
