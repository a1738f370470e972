package data

import (
	"context"
	"encoding/hex"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestSpecLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	c, err := DefaultCorpus(5, 20000)
	if err != nil {
		t.Fatal(err)
	}
	toks := c.Tokens()
	h := TokensHash(toks)
	if err := WriteShard(filepath.Join(dir, "shards", "b.bin"), toks[10000:]); err == nil {
		t.Fatal("WriteShard into a missing folder succeeded")
	}
	if err := os.Mkdir(filepath.Join(dir, "shards"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, part := range map[string][]int32{"a.bin": toks[:10000], "b.bin": toks[10000:]} {
		if err := WriteShard(filepath.Join(dir, "shards", name), part); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "corpus.txt"), c.Text, 0o644); err != nil {
		t.Fatal(err)
	}
	specs := []Spec{
		{Kind: KindDefault, Seed: 5, Bytes: 20000, ValFraction: 0.1, Hash: hex.EncodeToString(h[:])},
		{Kind: KindText, Path: "corpus.txt", ValFraction: 0.1, Hash: hex.EncodeToString(h[:])},
		{Kind: KindShards, Path: "shards", ValFraction: 0.1, Hash: strings.ToUpper(hex.EncodeToString(h[:]))},
	}
	var first *Dataset
	for _, s := range specs {
		ds, err := Load(ctx, s, 256, dir)
		if err != nil {
			t.Fatalf("%s: %v", s.Kind, err)
		}
		if first == nil {
			first = ds
		} else if !reflect.DeepEqual(ds, first) {
			t.Errorf("%s: dataset differs", s.Kind)
		}
	}
	wrong := specs[0]
	wrong.Seed = 6
	if _, err := Load(ctx, wrong, 256, dir); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Errorf("hash mismatch: error %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := Load(cancelled, specs[2], 256, dir); err == nil {
		t.Error("Load with a cancelled context succeeded")
	}
	for _, s := range []Spec{
		{Kind: "web", ValFraction: 0.1},
		{Kind: KindDefault, Bytes: 0, ValFraction: 0.1},
		{Kind: KindDefault, Bytes: 100, Path: "x", ValFraction: 0.1},
		{Kind: KindText, ValFraction: 0.1},
		{Kind: KindShards, Path: "x", ValFraction: 1},
		{Kind: KindDefault, Bytes: 100, ValFraction: 0.1, Hash: "abc"},
	} {
		if err := s.Validate(); err == nil {
			t.Errorf("Validate(%+v) succeeded", s)
		}
	}
	if _, err := LoadShards(ctx, t.TempDir(), 256); err == nil {
		t.Error("LoadShards of an empty folder succeeded")
	}
}
