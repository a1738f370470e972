// Package safetensors reads and writes float32 tensors in the safetensors
// format, the container trinity uses for model checkpoints.
//
// A file is an 8-byte little-endian header length N, then N bytes of a JSON
// object mapping each tensor name to {"dtype", "shape", "data_offsets"} plus
// an optional "__metadata__" object of string values, then the tensors' raw
// little-endian bytes. Offsets are relative to the start of the data section.
//
// Contract:
//   - Only dtype "F32" is supported; other dtypes are refused with an error
//     naming the dtype, never converted.
//   - The decoder is strict because checkpoints arrive from untrusted peers:
//     the header length is bounded by MaxHeaderSize and by the input size,
//     the JSON must be a single object without duplicate or unknown keys,
//     every shape must be non-negative and its element count times 4 must
//     equal its byte range, and the byte ranges must tile the data section
//     exactly (contiguous, non-overlapping, no gap, no trailing bytes). It
//     allocates no more than a small multiple of its input and never panics.
//   - Encode writes tensors in the order given, so the same tensors and
//     metadata always give the same bytes; Decode returns tensors in data
//     order, which for files written here is the order they were written.
//   - Write is atomic: a temporary file in the same directory is written,
//     synced and renamed over the destination, and the directory is synced.
package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"

	"github.com/trinity-net/trinity/internal/atomicfile"
)

// MaxHeaderSize bounds the JSON header, as the reference implementation
// does, so that a hostile length field cannot make a reader allocate
// unbounded memory before it has validated anything.
const MaxHeaderSize = 100 << 20

// maxRank bounds the number of dimensions of one tensor.
const maxRank = 16

// metadataKey is the reserved header key holding string metadata.
const metadataKey = "__metadata__"

// Tensor is one named float32 tensor, row-major.
type Tensor struct {
	Name  string
	Shape []int
	Data  []float32
}

// File is the decoded content of a safetensors file.
type File struct {
	Tensors  []Tensor
	Metadata map[string]string
}

// Tensor returns the tensor with the given name.
func (f *File) Tensor(name string) (Tensor, bool) {
	for _, t := range f.Tensors {
		if t.Name == name {
			return t, true
		}
	}
	return Tensor{}, false
}

// numElements multiplies the dimensions of shape, reporting overflow past
// limit or a negative dimension as an error.
func numElements(shape []int, limit int) (int, error) {
	if len(shape) > maxRank {
		return 0, fmt.Errorf("rank %d exceeds %d", len(shape), maxRank)
	}
	n := 1
	for _, d := range shape {
		if d < 0 {
			return 0, fmt.Errorf("negative dimension %d in shape %v", d, shape)
		}
		if d != 0 && n > limit/d {
			return 0, fmt.Errorf("shape %v has more than %d elements", shape, limit)
		}
		n *= d
	}
	return n, nil
}

// validName reports whether a tensor name is acceptable: non-empty, valid
// UTF-8 and not the reserved metadata key.
func validName(name string) error {
	switch {
	case name == "":
		return errors.New("empty tensor name")
	case name == metadataKey:
		return fmt.Errorf("tensor name %q is reserved", name)
	case !utf8.ValidString(name):
		return fmt.Errorf("tensor name %q is not valid UTF-8", name)
	}
	return nil
}

// headerEntry is one tensor's record in the JSON header.
type headerEntry struct {
	Dtype       string    `json:"dtype"`
	Shape       []int     `json:"shape"`
	DataOffsets [2]uint64 `json:"data_offsets"`
}

// encodeHeader builds the JSON header, padded with spaces so that the data
// section starts 8-byte aligned, as the reference writer does.
func encodeHeader(tensors []Tensor, meta map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	buf.WriteByte('{')
	first := true
	comma := func() {
		if !first {
			buf.WriteByte(',')
		}
		first = false
	}
	if len(meta) > 0 {
		keys := make([]string, 0, len(meta))
		for k, v := range meta {
			if !utf8.ValidString(k) || !utf8.ValidString(v) {
				return nil, fmt.Errorf("metadata %q is not valid UTF-8", k)
			}
			keys = append(keys, k)
		}
		sort.Strings(keys)
		comma()
		buf.WriteString(`"` + metadataKey + `":{`)
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			vb, _ := json.Marshal(meta[k])
			buf.Write(kb)
			buf.WriteByte(':')
			buf.Write(vb)
		}
		buf.WriteByte('}')
	}
	seen := make(map[string]bool, len(tensors))
	var off uint64
	for _, t := range tensors {
		if err := validName(t.Name); err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("duplicate tensor name %q", t.Name)
		}
		seen[t.Name] = true
		n, err := numElements(t.Shape, math.MaxInt/4)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		if n != len(t.Data) {
			return nil, fmt.Errorf("tensor %q: shape %v has %d elements but data has %d", t.Name, t.Shape, n, len(t.Data))
		}
		shape := t.Shape
		if shape == nil {
			shape = []int{} // a scalar is written as [], never null
		}
		e := headerEntry{Dtype: "F32", Shape: shape, DataOffsets: [2]uint64{off, off + 4*uint64(n)}}
		off = e.DataOffsets[1]
		nb, _ := json.Marshal(t.Name)
		eb, err := json.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("tensor %q: %w", t.Name, err)
		}
		comma()
		buf.Write(nb)
		buf.WriteByte(':')
		buf.Write(eb)
	}
	buf.WriteByte('}')
	for (8+buf.Len())%8 != 0 {
		buf.WriteByte(' ')
	}
	if buf.Len() > MaxHeaderSize {
		return nil, fmt.Errorf("header of %d bytes exceeds %d", buf.Len(), MaxHeaderSize)
	}
	return buf.Bytes(), nil
}

// Encode writes tensors (all F32) and metadata in safetensors format to w.
func Encode(w io.Writer, tensors []Tensor, meta map[string]string) error {
	hdr, err := encodeHeader(tensors, meta)
	if err != nil {
		return fmt.Errorf("safetensors: encoding header: %w", err)
	}
	var lenBuf [8]byte
	binary.LittleEndian.PutUint64(lenBuf[:], uint64(len(hdr)))
	if _, err := w.Write(lenBuf[:]); err != nil {
		return fmt.Errorf("safetensors: writing header length: %w", err)
	}
	if _, err := w.Write(hdr); err != nil {
		return fmt.Errorf("safetensors: writing header: %w", err)
	}
	// Convert through a fixed-size buffer so that encoding a large
	// checkpoint does not double its memory.
	buf := make([]byte, 64<<10)
	for _, t := range tensors {
		data := t.Data
		for len(data) > 0 {
			n := min(len(data), len(buf)/4)
			for i, v := range data[:n] {
				binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
			}
			if _, err := w.Write(buf[:4*n]); err != nil {
				return fmt.Errorf("safetensors: writing tensor %q: %w", t.Name, err)
			}
			data = data[n:]
		}
	}
	return nil
}

// Write stores tensors and metadata at path atomically.
func Write(path string, tensors []Tensor, meta map[string]string) error {
	if err := atomicfile.Write(path, func(w io.Writer) error { return Encode(w, tensors, meta) }); err != nil {
		return fmt.Errorf("safetensors: %w", err)
	}
	return nil
}

// Read loads and decodes the safetensors file at path.
func Read(path string) (*File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("safetensors: %s is not a regular file", path)
	}
	size := st.Size()
	if size > math.MaxInt-1 {
		return nil, fmt.Errorf("safetensors: %s is too large (%d bytes)", path, size)
	}
	data := make([]byte, size)
	if _, err := io.ReadFull(f, data); err != nil {
		return nil, fmt.Errorf("safetensors: reading %s: %w", path, err)
	}
	// A file that grew while being read is not the file that was measured.
	var one [1]byte
	if n, _ := f.Read(one[:]); n != 0 {
		return nil, fmt.Errorf("safetensors: %s changed while being read", path)
	}
	file, err := Decode(data)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return file, nil
}

// Decode parses a complete safetensors file held in data.
func Decode(data []byte) (*File, error) {
	if len(data) < 8 {
		return nil, fmt.Errorf("safetensors: truncated: %d bytes, need at least 8 for the header length", len(data))
	}
	n := binary.LittleEndian.Uint64(data[:8])
	if n > MaxHeaderSize {
		return nil, fmt.Errorf("safetensors: header length %d exceeds the limit of %d", n, MaxHeaderSize)
	}
	if n > uint64(len(data)-8) {
		return nil, fmt.Errorf("safetensors: truncated: header length %d but only %d bytes follow", n, len(data)-8)
	}
	entries, meta, err := parseHeader(data[8 : 8+n])
	if err != nil {
		return nil, fmt.Errorf("safetensors: header: %w", err)
	}
	body := data[8+n:]
	if err := checkLayout(entries, uint64(len(body))); err != nil {
		return nil, fmt.Errorf("safetensors: %w", err)
	}
	f := &File{Metadata: meta, Tensors: make([]Tensor, len(entries))}
	for i, e := range entries {
		raw := body[e.DataOffsets[0]:e.DataOffsets[1]]
		vals := make([]float32, len(raw)/4)
		for j := range vals {
			vals[j] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*j:]))
		}
		f.Tensors[i] = Tensor{Name: e.name, Shape: e.Shape, Data: vals}
	}
	return f, nil
}

type namedEntry struct {
	name string
	headerEntry
}

// parseHeader decodes the JSON header token by token so that duplicate keys,
// which encoding/json would silently merge, are detected.
func parseHeader(hdr []byte) ([]namedEntry, map[string]string, error) {
	if !utf8.Valid(hdr) {
		return nil, nil, errors.New("not valid UTF-8")
	}
	if !json.Valid(hdr) {
		return nil, nil, errors.New("invalid JSON")
	}
	dec := json.NewDecoder(bytes.NewReader(hdr))
	tok, err := dec.Token()
	if err != nil {
		return nil, nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, nil, errors.New("not a JSON object")
	}
	var entries []namedEntry
	var meta map[string]string
	seen := make(map[string]bool)
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, nil, fmt.Errorf("invalid JSON: %w", err)
		}
		key, ok := tok.(string)
		if !ok {
			return nil, nil, fmt.Errorf("invalid JSON key %v", tok)
		}
		if seen[key] {
			return nil, nil, fmt.Errorf("duplicate key %q", key)
		}
		seen[key] = true
		if key == metadataKey {
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return nil, nil, fmt.Errorf("metadata: %w", err)
			}
			if meta, err = parseMetadata(raw); err != nil {
				return nil, nil, fmt.Errorf("metadata: %w", err)
			}
			continue
		}
		if err := validName(key); err != nil {
			return nil, nil, err
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", key, err)
		}
		e, err := parseEntry(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("tensor %q: %w", key, err)
		}
		entries = append(entries, namedEntry{name: key, headerEntry: e})
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return nil, nil, fmt.Errorf("invalid JSON: %w", err)
	}
	// Only the padding spaces the format allows may follow the object.
	if strings.TrimRight(string(hdr[dec.InputOffset():]), " \t\r\n") != "" {
		return nil, nil, errors.New("trailing data after the JSON object")
	}
	if meta == nil {
		meta = map[string]string{}
	}
	return entries, meta, nil
}

func parseMetadata(raw []byte) (map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return nil, errors.New("not a JSON object")
	}
	meta := map[string]string{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key, ok := tok.(string)
		if !ok {
			return nil, fmt.Errorf("invalid key %v", tok)
		}
		if _, dup := meta[key]; dup {
			return nil, fmt.Errorf("duplicate key %q", key)
		}
		var v string
		if err := dec.Decode(&v); err != nil {
			return nil, fmt.Errorf("key %q: value must be a string: %w", key, err)
		}
		meta[key] = v
	}
	return meta, nil
}

func parseEntry(raw []byte) (headerEntry, error) {
	var e struct {
		Dtype       *string   `json:"dtype"`
		Shape       *[]int    `json:"shape"`
		DataOffsets *[]uint64 `json:"data_offsets"`
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&e); err != nil {
		return headerEntry{}, err
	}
	switch {
	case e.Dtype == nil:
		return headerEntry{}, errors.New("missing dtype")
	case e.Shape == nil || *e.Shape == nil:
		return headerEntry{}, errors.New("missing shape")
	case e.DataOffsets == nil || len(*e.DataOffsets) != 2:
		return headerEntry{}, errors.New("data_offsets must be [begin, end]")
	case *e.Dtype != "F32":
		return headerEntry{}, fmt.Errorf("unsupported dtype %q: only F32 is supported", *e.Dtype)
	}
	off := *e.DataOffsets
	return headerEntry{Dtype: *e.Dtype, Shape: *e.Shape, DataOffsets: [2]uint64{off[0], off[1]}}, nil
}

// checkLayout verifies that shapes match byte ranges and that the ranges
// tile [0, bodyLen) exactly, then sorts entries into data order.
func checkLayout(entries []namedEntry, bodyLen uint64) error {
	for _, e := range entries {
		begin, end := e.DataOffsets[0], e.DataOffsets[1]
		if begin > end {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] are reversed", e.name, begin, end)
		}
		if end > bodyLen {
			return fmt.Errorf("truncated: tensor %q ends at %d but the data section has %d bytes", e.name, end, bodyLen)
		}
		n, err := numElements(e.Shape, math.MaxInt/4)
		if err != nil {
			return fmt.Errorf("tensor %q: %w", e.name, err)
		}
		if uint64(n)*4 != end-begin {
			return fmt.Errorf("tensor %q: shape %v needs %d bytes but data_offsets span %d", e.name, e.Shape, uint64(n)*4, end-begin)
		}
	}
	// Stable sort by offsets (ties only between empty tensors) gives a
	// deterministic order for files written by Encode.
	slices.SortStableFunc(entries, func(a, b namedEntry) int {
		if c := cmpU64(a.DataOffsets[0], b.DataOffsets[0]); c != 0 {
			return c
		}
		return cmpU64(a.DataOffsets[1], b.DataOffsets[1])
	})
	var pos uint64
	for _, e := range entries {
		if e.DataOffsets[0] < pos {
			return fmt.Errorf("tensor %q: data_offsets [%d, %d] overlap the previous tensor ending at %d", e.name, e.DataOffsets[0], e.DataOffsets[1], pos)
		}
		if e.DataOffsets[0] > pos {
			return fmt.Errorf("tensor %q: gap in the data section from %d to %d", e.name, pos, e.DataOffsets[0])
		}
		pos = e.DataOffsets[1]
	}
	if pos != bodyLen {
		return fmt.Errorf("%d trailing bytes after the last tensor (data section %d bytes, tensors cover %d)", bodyLen-pos, bodyLen, pos)
	}
	return nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
