package main

import (
	"bytes"
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trinity-net/trinity/node"
)

func TestKeygenAndGenesis(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "v.key")
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"keygen", "--out", key}, &out, &errb); code != 0 {
		t.Fatalf("keygen: %d %s", code, errb.String())
	}
	id := strings.TrimSpace(out.String())
	if !strings.HasPrefix(id, "12D3") {
		t.Fatalf("keygen printed %q", id)
	}
	if code := run(context.Background(), []string{"keygen", "--out", key}, &out, &errb); code == 0 {
		t.Fatal("keygen overwrote an existing key")
	}
	gpath := filepath.Join(dir, "genesis.json")
	out.Reset()
	args := []string{"genesis", "--out", gpath, "--validator-key", key, "--validator", "not-a-peer:5", "--start", "+1h"}
	if code := run(context.Background(), args, &out, &errb); code == 0 {
		t.Fatal("genesis accepted a malformed validator peer ID")
	}
	args = []string{"genesis", "--out", gpath, "--validator-key", key, "--start", "2030-01-02T03:04:05Z", "--round-ms", "3000", "--layers", "3"}
	if code := run(context.Background(), args, &out, &errb); code != 0 {
		t.Fatalf("genesis: %d %s", code, errb.String())
	}
	g, err := node.LoadGenesis(gpath)
	if err != nil {
		t.Fatal(err)
	}
	if g.Validators[0].Peer != id || g.Params.RoundMillis != 3000 || g.Model.Layers != 3 || g.Model.Width != node.TinyModel.Width ||
		!g.Start.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Fatalf("genesis %+v", g)
	}
	nid, _ := g.ID()
	if !strings.Contains(out.String(), nid.String()) {
		t.Fatalf("genesis did not print the network ID: %s", out.String())
	}
}

func TestParseStart(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"+90s", now.Add(90 * time.Second), true},
		{"2027-05-06T07:08:09Z", time.Date(2027, 5, 6, 7, 8, 9, 0, time.UTC), true},
		{"+soon", time.Time{}, false},
		{"tomorrow", time.Time{}, false},
	} {
		got, err := parseStart(tc.in, now)
		if (err == nil) != tc.ok || (tc.ok && !got.Equal(tc.want)) {
			t.Errorf("parseStart(%q) = %v, %v", tc.in, got, err)
		}
	}
}
