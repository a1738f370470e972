package p2p

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestStorePutGetReopen(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenStore(dir, 1<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a pseudo-gradient, compressed")
	c, err := s.Put(data, WithRound(7))
	if err != nil {
		t.Fatal(err)
	}
	if c != CIDOf(data) {
		t.Fatal("Put returned a CID other than CIDOf")
	}
	if c.Version() != 1 || c.Prefix().Codec != 0x55 {
		t.Fatalf("CID %s is not v1 raw", c)
	}
	got, err := s.Get(c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("Get: %v", err)
	}
	// A leftover temp file from a crash is cleaned at open.
	if err := os.WriteFile(filepath.Join(dir, ".x.tmp-123"), []byte("junk"), 0o644); err != nil {
		t.Fatal(err)
	}
	s2, err := OpenStore(dir, 1<<20, 4<<20)
	if err != nil {
		t.Fatal(err)
	}
	info, ok := s2.Stat(c)
	if !ok || !info.HasRound || info.Round != 7 || info.Size != int64(len(data)) {
		t.Fatalf("reopened store lost metadata: %+v %v", info, ok)
	}
	if s2.Size() != int64(len(data)) {
		t.Fatalf("size %d", s2.Size())
	}
	if _, err := os.Stat(filepath.Join(dir, ".x.tmp-123")); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("temp file not cleaned")
	}
}

func TestStoreLimits(t *testing.T) {
	s, err := OpenStore(t.TempDir(), 100, 250)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(make([]byte, 101)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversize blob: %v", err)
	}
	for i := range 2 {
		if _, err := s.Put(bytes.Repeat([]byte{byte(i)}, 100)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Put(bytes.Repeat([]byte{9}, 100)); !errors.Is(err, ErrStoreFull) {
		t.Fatalf("full store: %v", err)
	}
	// The same blob again costs nothing.
	if _, err := s.Put(bytes.Repeat([]byte{0}, 100)); err != nil {
		t.Fatalf("re-put: %v", err)
	}
}

func TestStoreCorruptionDetected(t *testing.T) {
	dir := t.TempDir()
	s, _ := OpenStore(dir, 1<<20, 1<<20)
	c, _ := s.Put([]byte("original"))
	if err := os.WriteFile(filepath.Join(dir, c.String()), []byte("tampered"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(c); !errors.Is(err, ErrHashMismatch) {
		t.Fatalf("got %v, want ErrHashMismatch", err)
	}
	if s.Has(c) {
		t.Fatal("corrupt blob still indexed")
	}
}

func TestStoreGC(t *testing.T) {
	s, _ := OpenStore(t.TempDir(), 1<<20, 1<<20)
	now := time.Unix(1_000_000, 0)
	s.now = func() time.Time { return now }
	old, _ := s.Put([]byte("old, untagged"))
	r3, _ := s.Put([]byte("round 3"), WithRound(3))
	now = now.Add(time.Hour)
	r5, _ := s.Put([]byte("round 5"), WithRound(5))
	fresh, _ := s.Put([]byte("fresh, untagged"))

	cases := []struct {
		name    string
		p       GCPolicy
		removed int
	}{
		{"nothing selected", GCPolicy{}, 0},
		{"by round", GCPolicy{BeforeRound: 5}, 1},
		{"by age", GCPolicy{MaxAge: 30 * time.Minute}, 1},
	}
	for _, tc := range cases {
		n, _, err := s.GC(tc.p)
		if err != nil || n != tc.removed {
			t.Fatalf("%s: removed %d (%v), want %d", tc.name, n, err, tc.removed)
		}
	}
	if s.Has(old) || s.Has(r3) || !s.Has(r5) || !s.Has(fresh) {
		t.Fatalf("wrong blobs kept: old %v r3 %v r5 %v fresh %v", s.Has(old), s.Has(r3), s.Has(r5), s.Has(fresh))
	}
	if s.Size() != int64(len("round 5")+len("fresh, untagged")) {
		t.Fatalf("size %d after GC", s.Size())
	}
}
