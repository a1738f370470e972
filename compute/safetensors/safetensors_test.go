package safetensors

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func sample() ([]Tensor, map[string]string) {
	ts := []Tensor{
		{Name: "wte", Shape: []int{3, 2}, Data: []float32{1, -2, 3.5, float32(math.Inf(1)), 0, -0.125}},
		{Name: "scalar", Shape: []int{}, Data: []float32{42}},
		{Name: "empty", Shape: []int{0, 5}, Data: []float32{}},
		{Name: "h.0.ln_1.weight", Shape: []int{4}, Data: []float32{1, 1, 1, float32(math.NaN())}},
	}
	return ts, map[string]string{"config": `{"vocab":256}`, "step": "7", "unicode": "héllo"}
}

func encode(t *testing.T, ts []Tensor, meta map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Encode(&buf, ts, meta); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// raw assembles a file from a literal header and a data section.
func raw(header string, body []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(body))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, body...)
}

func sameBits(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

func TestRoundTrip(t *testing.T) {
	ts, meta := sample()
	data := encode(t, ts, meta)
	if hl := binary.LittleEndian.Uint64(data); (8+hl)%8 != 0 {
		t.Errorf("data section starts at %d, not 8-byte aligned", 8+hl)
	}
	f, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(f.Metadata, meta) {
		t.Errorf("metadata %v, want %v", f.Metadata, meta)
	}
	if len(f.Tensors) != len(ts) {
		t.Fatalf("%d tensors, want %d", len(f.Tensors), len(ts))
	}
	for i, want := range ts {
		got := f.Tensors[i]
		if got.Name != want.Name || !reflect.DeepEqual(got.Shape, want.Shape) || !sameBits(got.Data, want.Data) {
			t.Errorf("tensor %d = %+v, want %+v", i, got, want)
		}
		byName, ok := f.Tensor(want.Name)
		if !ok || byName.Name != want.Name {
			t.Errorf("Tensor(%q) not found", want.Name)
		}
	}
	if _, ok := f.Tensor("missing"); ok {
		t.Error("Tensor(missing) found")
	}
	// Encoding is deterministic: the same input gives the same bytes.
	if again := encode(t, ts, meta); !bytes.Equal(again, data) {
		t.Error("two encodings of the same tensors differ")
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "ckpt.safetensors")
	ts, meta := sample()
	if err := os.WriteFile(path, []byte("old content"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Write(path, ts, meta); err != nil {
		t.Fatal(err)
	}
	f, err := Read(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != len(ts) || !sameBits(f.Tensors[0].Data, ts[0].Data) {
		t.Errorf("read back %+v", f.Tensors)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries after Write, want only the file", len(entries))
	}
	// A failed write leaves the previous file untouched and no temporary.
	bad := []Tensor{{Name: "x", Shape: []int{2}, Data: []float32{1}}}
	if err := Write(path, bad, nil); err == nil {
		t.Fatal("Write with a mismatched shape succeeded")
	}
	if f2, err := Read(path); err != nil || len(f2.Tensors) != len(ts) {
		t.Errorf("previous file damaged by a failed write: %v", err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("failed write left %d entries", len(entries))
	}
	if _, err := Read(filepath.Join(dir, "missing")); err == nil {
		t.Error("Read of a missing file succeeded")
	}
	if _, err := Read(dir); err == nil {
		t.Error("Read of a directory succeeded")
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name    string
		tensors []Tensor
		meta    map[string]string
		want    string
	}{
		{"shape mismatch", []Tensor{{Name: "a", Shape: []int{2, 2}, Data: []float32{1, 2, 3}}}, nil, "elements"},
		{"duplicate", []Tensor{{Name: "a", Shape: []int{1}, Data: []float32{1}}, {Name: "a", Shape: []int{1}, Data: []float32{1}}}, nil, "duplicate"},
		{"empty name", []Tensor{{Name: "", Shape: []int{1}, Data: []float32{1}}}, nil, "empty"},
		{"reserved name", []Tensor{{Name: "__metadata__", Shape: []int{1}, Data: []float32{1}}}, nil, "reserved"},
		{"negative dim", []Tensor{{Name: "a", Shape: []int{-1}, Data: nil}}, nil, "negative"},
		{"bad utf8 meta", nil, map[string]string{"k": "\xff"}, "UTF-8"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := Encode(&bytes.Buffer{}, tc.tensors, tc.meta)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	ts, meta := sample()
	data := encode(t, ts, meta)
	for n := 0; n < len(data); n++ {
		if _, err := Decode(data[:n]); err == nil {
			t.Fatalf("Decode accepted a file truncated to %d of %d bytes", n, len(data))
		}
	}
	if _, err := Decode(append(bytes.Clone(data), 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("trailing byte: error %v", err)
	}
}

func TestDecodeErrors(t *testing.T) {
	body8 := make([]byte, 8)
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, MaxHeaderSize+1)
	long := make([]byte, 8)
	binary.LittleEndian.PutUint64(long, math.MaxUint64)
	tests := []struct {
		name string
		data []byte
		want string
	}{
		{"header too large", huge, "exceeds"},
		{"header length overflow", long, "exceeds"},
		{"header past end", raw(`{}`, nil)[:9], "truncated"},
		{"not json", raw(`{"a":`, nil), "invalid JSON"},
		{"not an object", raw(`[1,2]`, nil), "not a JSON object"},
		{"trailing json", raw(`{} {}`, nil), "invalid JSON"},
		{"bad utf8", raw("{\"\xff\":{}}", nil), "UTF-8"},
		{"wrong dtype", raw(`{"a":{"dtype":"F16","shape":[4],"data_offsets":[0,8]}}`, body8), `unsupported dtype "F16"`},
		{"missing dtype", raw(`{"a":{"shape":[2],"data_offsets":[0,8]}}`, body8), "missing dtype"},
		{"missing shape", raw(`{"a":{"dtype":"F32","data_offsets":[0,8]}}`, body8), "missing shape"},
		{"null shape", raw(`{"a":{"dtype":"F32","shape":null,"data_offsets":[0,8]}}`, body8), "missing shape"},
		{"three offsets", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8,8]}}`, body8), "data_offsets"},
		{"unknown field", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}}`, body8), "unknown field"},
		{"negative offset", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[-1,8]}}`, body8), "tensor"},
		{"fractional dim", raw(`{"a":{"dtype":"F32","shape":[1.5],"data_offsets":[0,8]}}`, body8), "tensor"},
		{"negative dim", raw(`{"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}}`, body8), "negative"},
		{"shape overflow", raw(`{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}}`, body8), "more than"},
		{"shape mismatch", raw(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, body8), "needs 12 bytes"},
		{"reversed", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}}`, body8), "reversed"},
		{"past end", raw(`{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`, body8), "truncated"},
		{"overlap", raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, body8), "overlap"},
		{"gap", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, body8), "gap"},
		{"uncovered tail", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, body8), "trailing bytes"},
		{"duplicate tensor", raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, body8), "duplicate key"},
		{"duplicate metadata", raw(`{"__metadata__":{"k":"1","k":"2"}}`, nil), "duplicate key"},
		{"metadata not string", raw(`{"__metadata__":{"k":1}}`, nil), "must be a string"},
		{"metadata not object", raw(`{"__metadata__":[1]}`, nil), "not a JSON object"},
		{"empty name", raw(`{"":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}`, body8[:4]), "empty tensor name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Decode(tc.data)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", f)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q, want one mentioning %q", err, tc.want)
			}
		})
	}
}

func TestDecodeForeignLayout(t *testing.T) {
	// Other writers may order header keys differently from the data and
	// omit padding; such files are valid.
	body := make([]byte, 12)
	binary.LittleEndian.PutUint32(body[0:], math.Float32bits(1))
	binary.LittleEndian.PutUint32(body[4:], math.Float32bits(2))
	binary.LittleEndian.PutUint32(body[8:], math.Float32bits(3))
	data := raw(`{"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}, "a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]}}`, body)
	f, err := Decode(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(f.Tensors) != 2 || f.Tensors[0].Name != "a" || !sameBits(f.Tensors[0].Data, []float32{1, 2}) || !sameBits(f.Tensors[1].Data, []float32{3}) {
		t.Errorf("decoded %+v", f.Tensors)
	}
	if f.Metadata == nil {
		t.Error("nil metadata map for a file without metadata")
	}
}

func FuzzDecode(f *testing.F) {
	ts, meta := sample()
	var buf bytes.Buffer
	if err := Encode(&buf, ts, meta); err != nil {
		f.Fatal(err)
	}
	f.Add(buf.Bytes())
	f.Add(raw(`{}`, nil))
	f.Add(raw(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)))
	f.Add(raw(`{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[0],"data_offsets":[4,4]}}`, make([]byte, 4)))
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := Decode(data)
		if err != nil {
			return
		}
		// Anything accepted holds exactly as many floats as the data
		// section has bytes / 4, and re-encodes to a file that decodes
		// to the same tensors.
		hl := binary.LittleEndian.Uint64(data)
		if !json.Valid(data[8 : 8+hl]) {
			t.Fatal("accepted an invalid JSON header")
		}
		total := 0
		for _, ts := range file.Tensors {
			total += len(ts.Data)
		}
		if uint64(total)*4 != uint64(len(data))-8-hl {
			t.Fatalf("tensors hold %d floats, data section is %d bytes", total, uint64(len(data))-8-hl)
		}
		var out bytes.Buffer
		if err := Encode(&out, file.Tensors, file.Metadata); err != nil {
			t.Fatalf("re-encoding an accepted file: %v", err)
		}
		again, err := Decode(out.Bytes())
		if err != nil {
			t.Fatalf("decoding a re-encoded file: %v", err)
		}
		if len(again.Tensors) != len(file.Tensors) || !reflect.DeepEqual(again.Metadata, file.Metadata) {
			t.Fatal("re-encoded file differs")
		}
		for i := range again.Tensors {
			if again.Tensors[i].Name != file.Tensors[i].Name || !sameBits(again.Tensors[i].Data, file.Tensors[i].Data) {
				t.Fatalf("tensor %d differs after re-encoding", i)
			}
		}
	})
}

func BenchmarkDecode(b *testing.B) {
	data := make([]float32, 3290624)
	for i := range data {
		data[i] = float32(i)
	}
	var buf bytes.Buffer
	if err := Encode(&buf, []Tensor{{Name: "params", Shape: []int{len(data)}, Data: data}}, nil); err != nil {
		b.Fatal(err)
	}
	enc := buf.Bytes()
	b.SetBytes(int64(len(enc)))
	b.ResetTimer()
	for b.Loop() {
		if _, err := Decode(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(enc))*float64(b.N)/b.Elapsed().Seconds()/1e9, "GB/s")
}
