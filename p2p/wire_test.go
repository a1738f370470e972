package p2p

import (
	"bytes"
	"errors"
	"testing"

	"github.com/klauspost/compress/zstd"
)

func TestRequestRoundTrip(t *testing.T) {
	c := CIDOf([]byte("hello"))
	q := blobRequest{cid: c, acceptZstd: true, maxSize: 12345}
	r := bytes.NewReader(append(q.marshal(), 0xff)) // a byte past the frame stays unread
	got, err := readRequest(r)
	if err != nil {
		t.Fatal(err)
	}
	if got != q {
		t.Fatalf("got %+v want %+v", got, q)
	}
	if r.Len() != 1 {
		t.Fatal("readRequest read past the frame")
	}
}

func TestReadRequestRejects(t *testing.T) {
	good := blobRequest{cid: CIDOf([]byte("x")), maxSize: 1}.marshal()
	mut := func(i int, v byte) []byte { b := append([]byte(nil), good...); b[i] = v; return b }
	v0 := CIDOf([]byte("x"))
	cases := map[string][]byte{
		"empty":         nil,
		"bad version":   mut(0, 9),
		"unknown flag":  mut(1, 0x80),
		"zero cid len":  mut(10, 0),
		"huge cid len":  mut(10, 200),
		"truncated cid": good[:len(good)-3],
		"garbage cid":   append(good[:11:11], bytes.Repeat([]byte{0xff}, int(good[10]))...),
		"dag-pb cid": func() []byte {
			q := blobRequest{cid: v0, maxSize: 1}.marshal()
			q[11+1] = 0x70 // codec byte of a CIDv1: dag-pb instead of raw
			return q
		}(),
	}
	for name, b := range cases {
		t.Run(name, func(t *testing.T) {
			if _, err := readRequest(bytes.NewReader(b)); !errors.Is(err, errBadFrame) {
				t.Fatalf("got %v, want errBadFrame", err)
			}
		})
	}
}

func TestReadResponseHeader(t *testing.T) {
	cases := []struct {
		name    string
		h       responseHeader
		max     uint64
		wantErr error
	}{
		{"ok raw", responseHeader{status: statusOK, size: 10, wireLen: 10}, 10, nil},
		{"ok zstd", responseHeader{status: statusOK, encoding: encodingZstd, size: 1000, wireLen: 50}, 1000, nil},
		{"not found", responseHeader{status: statusNotFound}, 10, nil},
		{"too large", responseHeader{status: statusOK, size: 11, wireLen: 11}, 10, ErrTooLarge},
		{"raw length mismatch", responseHeader{status: statusOK, size: 10, wireLen: 9}, 10, errBadFrame},
		{"zstd bigger than bound", responseHeader{status: statusOK, encoding: encodingZstd, size: 10, wireLen: 5000}, 10, errBadFrame},
		{"unknown encoding", responseHeader{status: statusOK, encoding: 7, size: 1, wireLen: 1}, 10, errBadFrame},
		{"unknown status", responseHeader{status: 99}, 10, errBadFrame},
		{"error with body", responseHeader{status: statusBusy, size: 3}, 10, errBadFrame},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readResponseHeader(bytes.NewReader(tc.h.marshal()), tc.max)
			if tc.wantErr == nil {
				if err != nil || got != tc.h {
					t.Fatalf("got %+v, %v", got, err)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("got %v, want %v", err, tc.wantErr)
			}
		})
	}
}

func TestReadZstdBounds(t *testing.T) {
	enc, _ := zstd.NewWriter(nil)
	defer enc.Close()
	plain := bytes.Repeat([]byte("trinity "), 4096)
	z := enc.EncodeAll(plain, nil)
	got, err := readZstd(bytes.NewReader(z), uint64(len(plain)), nil)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("honest body: %v", err)
	}
	// A body that inflates past the announced size (a zip bomb) is cut.
	if _, err := readZstd(bytes.NewReader(z), uint64(len(plain)/2), nil); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("bomb: got %v, want ErrTooLarge", err)
	}
	if _, err := readZstd(bytes.NewReader(z), uint64(len(plain)+1), nil); err == nil {
		t.Fatal("short body accepted")
	}
	if _, err := readZstd(bytes.NewReader([]byte("not zstd at all")), 10, nil); err == nil {
		t.Fatal("garbage accepted")
	}
}

func FuzzReadRequest(f *testing.F) {
	f.Add(blobRequest{cid: CIDOf([]byte("a")), acceptZstd: true, maxSize: 1 << 20}.marshal())
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 64})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		q, err := readRequest(bytes.NewReader(b))
		if err != nil {
			return
		}
		if _, err := CheckCID(q.cid); err != nil {
			t.Fatalf("accepted a request for an invalid CID: %v", err)
		}
		if m := q.marshal(); !bytes.Equal(m, b[:len(m)]) {
			t.Fatal("re-encoding differs")
		}
	})
}

func FuzzReadResponseHeader(f *testing.F) {
	f.Add(responseHeader{status: statusOK, size: 5, wireLen: 5}.marshal(), uint64(10))
	f.Add(responseHeader{status: statusOK, encoding: encodingZstd, size: 5, wireLen: 3}.marshal(), uint64(10))
	f.Add(responseHeader{status: statusNotFound}.marshal(), uint64(10))
	f.Fuzz(func(t *testing.T, b []byte, max uint64) {
		h, err := readResponseHeader(bytes.NewReader(b), max)
		if err != nil || h.status != statusOK {
			return
		}
		if h.size > max || (h.encoding == encodingRaw && h.wireLen != h.size) || h.wireLen > maxZstdWire(h.size) {
			t.Fatalf("accepted out-of-bounds header %+v for max %d", h, max)
		}
	})
}

func FuzzReadZstd(f *testing.F) {
	enc, _ := zstd.NewWriter(nil)
	f.Add(enc.EncodeAll([]byte("hello hello hello"), nil), uint16(17))
	f.Add(enc.EncodeAll(make([]byte, 5000), nil), uint16(100))
	enc.Close()
	f.Fuzz(func(t *testing.T, b []byte, n uint16) {
		out, err := readZstd(bytes.NewReader(b), uint64(n), nil)
		if err == nil && len(out) != int(n) {
			t.Fatalf("returned %d bytes, want %d", len(out), n)
		}
	})
}
