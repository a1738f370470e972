package replay_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/trinity-net/trinity/verify/replay"
	"github.com/trinity-net/trinity/verify/replay/internal/fixture"
)

// Keeping every k-th state and recomputing gives the same answers as keeping
// every state, and a restarted recorder answers from its files.
func TestRecorderCheckpointInterval(t *testing.T) {
	e := engine(t)
	n := tinyNet(t, e)
	var resps [][][]byte
	var commits []replay.Commitment
	dirs := map[int]string{}
	for _, k := range []int{1, 2, 4, 100} {
		dirs[k] = t.TempDir()
		rec, err := replay.NewRecorder(e, n.Spec(), dirs[k], replay.WithCheckpointEvery(k))
		if err != nil {
			t.Fatal(err)
		}
		tr, err := n.NewTrainer(e, "peer", rec)
		if err != nil {
			t.Fatal(err)
		}
		p := playRound(t, tr, 2, n.Init, fixture.Attack{})
		size, err := rec.DiskBytes()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("k=%d: %d bytes on disk for a round of %d steps (%.1f states of %d params)", k, size, p.c.Steps, float64(size)/float64(16*len(n.Init)), len(n.Init))
		var rs [][]byte
		for j := range p.c.Steps {
			ch := replay.Challenge{Round: 2, Trainer: "peer", Commitment: p.c, Step: j}
			b, err := rec.Respond(context.Background(), ch)
			if err != nil {
				t.Fatal(err)
			}
			rs = append(rs, b)
		}
		resps = append(resps, rs)
		commits = append(commits, p.c)
	}
	for i := 1; i < len(resps); i++ {
		if commits[i] != commits[0] {
			t.Fatal("commitments differ between checkpoint intervals")
		}
		for j := range resps[i] {
			if !bytes.Equal(resps[i][j], resps[0][j]) {
				t.Fatalf("interval %d: response to step %d differs from k=1's", i, j)
			}
		}
	}
	// Restart: a new recorder over the same files answers the same.
	rec, err := replay.NewRecorder(e, n.Spec(), dirs[4], replay.WithCheckpointEvery(4))
	if err != nil {
		t.Fatal(err)
	}
	b, err := rec.Respond(context.Background(), replay.Challenge{Round: 2, Trainer: "peer", Commitment: commits[0], Step: 3})
	if err != nil || !bytes.Equal(b, resps[0][3]) {
		t.Fatalf("restarted recorder: %v", err)
	}
	// Corrupt a kept state: the recorder notices instead of sending it.
	path := filepath.Join(dirs[4], "round-2", "state-00004")
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	raw[24+4*100+2] ^= 1 // a parameter's mantissa
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Respond(context.Background(), replay.Challenge{Round: 2, Trainer: "peer", Commitment: commits[0], Step: 5}); err == nil {
		t.Fatal("answered from a corrupted state")
	}
}

func TestRecorderBoundsAndErrors(t *testing.T) {
	e := engine(t)
	n := tinyNet(t, e)
	dir := t.TempDir()
	rec, err := replay.NewRecorder(e, n.Spec(), dir, replay.WithRetainRounds(2), replay.WithCheckpointEvery(3))
	if err != nil {
		t.Fatal(err)
	}
	tr, err := n.NewTrainer(e, "peer", rec)
	if err != nil {
		t.Fatal(err)
	}
	global := slices.Clone(n.Init)
	var last played
	var perRound int64
	for r := range uint64(6) {
		last = playRound(t, tr, r, global, fixture.Attack{})
		if err := n.Apply(global, last.blob, r); err != nil {
			t.Fatal(err)
		}
		size, _ := rec.DiskBytes()
		if r == 0 {
			perRound = size
		}
		if size > 2*perRound+perRound/10 {
			t.Fatalf("round %d: %d bytes kept, more than two rounds' %d", r, size, 2*perRound)
		}
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 2 {
		t.Fatalf("%d round directories kept, want 2", len(ents))
	}
	// Old rounds cannot be answered; the latest can, and not after Cleanup.
	ch := replay.Challenge{Round: 5, Trainer: "peer", Commitment: last.c, Step: 1}
	if _, err := rec.Respond(context.Background(), ch); err != nil {
		t.Fatal(err)
	}
	for name, bad := range map[string]replay.Challenge{
		"old round":      {Round: 1, Trainer: "peer", Commitment: last.c, Step: 1},
		"other trainer":  {Round: 5, Trainer: "someone", Commitment: last.c, Step: 1},
		"other root":     {Round: 5, Trainer: "peer", Commitment: replay.Commitment{Steps: last.c.Steps}, Step: 1},
		"step past end":  {Round: 5, Trainer: "peer", Commitment: last.c, Step: last.c.Steps},
		"negative step":  {Round: 5, Trainer: "peer", Commitment: last.c, Step: -1},
		"unknown round ": {Round: 99, Trainer: "peer", Commitment: last.c, Step: 1},
	} {
		if _, err := rec.Respond(context.Background(), bad); err == nil {
			t.Errorf("%s: answered", name)
		}
	}
	if err := rec.Cleanup(6); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Respond(context.Background(), ch); err == nil {
		t.Fatal("answered after cleanup")
	}
	if size, _ := rec.DiskBytes(); size != 0 {
		t.Fatalf("%d bytes left after cleanup", size)
	}
	// Misuse.
	if err := rec.Record(global, global, global, 1); err == nil {
		t.Error("record outside a round accepted")
	}
	st := replay.State{Params: global, M: global, V: global, EF: global}
	if err := rec.Begin(7, "peer", &st); err != nil {
		t.Fatal(err)
	}
	if _, err := rec.Commit(global); err == nil {
		t.Error("commit before all steps accepted")
	}
	if err := rec.Record(global[:3], global, global, 1); err == nil {
		t.Error("short vector recorded")
	}
	short := replay.State{Params: global[:3], M: global, V: global, EF: global}
	if err := rec.Begin(8, "peer", &short); err == nil {
		t.Error("begin with a short vector accepted")
	}
}
