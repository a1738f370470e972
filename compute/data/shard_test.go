package data

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func encodeShard(t testing.TB, toks []int32) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := EncodeShard(&buf, toks); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestShardRoundTrip(t *testing.T) {
	toks := make([]int32, 70000) // more than one internal write buffer
	for i := range toks {
		toks[i] = int32(i * 7 % 50257)
	}
	path := filepath.Join(t.TempDir(), "train_000.bin")
	if err := WriteShard(path, toks); err != nil {
		t.Fatal(err)
	}
	got, err := ReadShard(path, 50257)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, toks) {
		t.Error("shard round trip differs")
	}
	raw, _ := os.ReadFile(path)
	if len(raw) != 1024+2*len(toks) || binary.LittleEndian.Uint32(raw) != ShardMagic {
		t.Errorf("shard layout: %d bytes, magic %d", len(raw), binary.LittleEndian.Uint32(raw))
	}
	if _, err := ReadShard(path, 50000); err == nil || !strings.Contains(err.Error(), "outside the vocabulary") {
		t.Errorf("token >= vocab: error %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Dir(path)); len(entries) != 1 {
		t.Errorf("%d entries after WriteShard", len(entries))
	}
}

func TestShardErrors(t *testing.T) {
	good := encodeShard(t, []int32{1, 2, 3, 255})
	for n := 0; n < len(good); n++ {
		if _, err := DecodeShard(good[:n], 256); err == nil {
			t.Fatalf("accepted a shard truncated to %d of %d bytes", n, len(good))
		}
	}
	mod := func(off int, v uint32) []byte {
		b := bytes.Clone(good)
		binary.LittleEndian.PutUint32(b[off:], v)
		return b
	}
	tests := []struct {
		name  string
		data  []byte
		vocab int
		want  string
	}{
		{"bad magic", mod(0, 20240521), 256, "magic"},
		{"bad version", mod(4, 2), 256, "version"},
		{"zero count", mod(8, 0), 256, "token count"},
		{"negative count", mod(8, 0xffffffff), 256, "token count"},
		{"count too big", mod(8, 5), 256, "truncated"},
		{"trailing", append(bytes.Clone(good), 0, 0), 256, "after the"},
		{"token outside vocab", good, 255, "outside the vocabulary"},
		{"bad vocab", good, 0, "vocabulary"},
		{"huge vocab", good, 70000, "vocabulary"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeShard(tc.data, tc.vocab)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one mentioning %q", err, tc.want)
			}
		})
	}
	for _, toks := range [][]int32{nil, {-1}, {65536}} {
		if err := EncodeShard(&bytes.Buffer{}, toks); err == nil {
			t.Errorf("EncodeShard(%v) succeeded", toks)
		}
	}
	if _, err := ReadShard(filepath.Join(t.TempDir(), "missing.bin"), 256); err == nil {
		t.Error("ReadShard of a missing file succeeded")
	}
}

func FuzzDecodeShard(f *testing.F) {
	f.Add(encodeShard(f, []int32{1, 2, 3}), 256)
	f.Add(encodeShard(f, []int32{65535}), 65536)
	f.Add([]byte{1, 2, 3}, 256)
	f.Fuzz(func(t *testing.T, data []byte, vocab int) {
		toks, err := DecodeShard(data, vocab)
		if err != nil {
			return
		}
		if len(data) != 1024+2*len(toks) {
			t.Fatalf("%d tokens from %d bytes", len(toks), len(data))
		}
		for _, tok := range toks {
			if tok < 0 || int(tok) >= vocab {
				t.Fatalf("token %d outside vocabulary %d", tok, vocab)
			}
		}
		again, err := DecodeShard(encodeShard(t, toks), vocab)
		if err != nil || !reflect.DeepEqual(again, toks) {
			t.Fatalf("re-encoded shard differs: %v", err)
		}
	})
}

func TestLoadText(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("b.txt", "second")
	write("a.txt", "first")
	write("sub/c.txt", "third")
	write(".hidden", "secret")
	write(".git/x", "secret")
	got, err := LoadText(dir)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != "first\nsecond\nthird" {
		t.Errorf("folder text %q", got)
	}
	link := filepath.Join(t.TempDir(), "link")
	if err := os.Symlink(dir, link); err != nil {
		t.Fatal(err)
	}
	if got, err := LoadText(link); err != nil || string(got) != "first\nsecond\nthird" {
		t.Errorf("symlinked folder: %q, %v", got, err)
	}
	if got, err := LoadText(dir, WithSeparator("|")); err != nil || string(got) != "first|second|third" {
		t.Errorf("with separator: %q, %v", got, err)
	}
	if got, err := LoadText(filepath.Join(dir, "a.txt")); err != nil || string(got) != "first" {
		t.Errorf("single file: %q, %v", got, err)
	}
	if _, err := LoadText(dir, WithMaxBytes(10)); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Errorf("limit: error %v", err)
	}
	empty := t.TempDir()
	if _, err := LoadText(empty); err == nil || !strings.Contains(err.Error(), "no text files") {
		t.Errorf("empty folder: error %v", err)
	}
	if err := os.WriteFile(filepath.Join(empty, "blank.txt"), []byte(" \n\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadText(empty); err == nil || !strings.Contains(err.Error(), "no text") {
		t.Errorf("blank file: error %v", err)
	}
	if _, err := LoadText(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing path accepted")
	}
	if _, err := LoadText(dir, WithMaxBytes(0)); err == nil {
		t.Error("WithMaxBytes(0) accepted")
	}
}

func TestTokenizer(t *testing.T) {
	var tk Tokenizer = ByteTokenizer{}
	s := "héllo\x00\xff world"
	toks := tk.Encode(s)
	if tk.Vocab() != 256 || len(toks) != len(s) || tk.Decode(toks) != s {
		t.Errorf("round trip of %q: %v -> %q", s, toks, tk.Decode(toks))
	}
	if got := tk.Decode([]int32{'a', 256, -1, 'b'}); got != "a\uFFFD\uFFFDb" {
		t.Errorf("out-of-range tokens decode to %q", got)
	}
}
