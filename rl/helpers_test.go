package rl

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"sync"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
)

var tinyCfg = model.Config{Vocab: 256, Context: 32, Layers: 1, Heads: 2, Width: 32}

var (
	tinyOnce   sync.Once
	tinyParams []float32
	tinyErr    error
)

// tinyPolicy returns a tiny model briefly pre-trained on the default corpus
// (so that it writes short lines and rewards vary), on its own engine.
func tinyPolicy(t testing.TB, threads int) *model.GPT {
	t.Helper()
	tinyOnce.Do(func() {
		e, err := tensor.New(tensor.WithThreads(2))
		if err != nil {
			tinyErr = err
			return
		}
		defer e.Close()
		m, err := model.New(tinyCfg, e)
		if err != nil {
			tinyErr = err
			return
		}
		m.Init(3)
		ad := optimizer.DefaultAdamW()
		ad.LR = 1e-2
		ad.Warmup = 10
		tinyErr = Pretrain(context.Background(), m, PretrainConfig{CorpusSeed: 2, CorpusBytes: 1 << 18, Steps: 150, B: 8, T: 32, AdamW: ad}, nil)
		tinyParams = m.Params
	})
	if tinyErr != nil {
		t.Fatal(tinyErr)
	}
	e, err := tensor.New(tensor.WithThreads(threads))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	m, err := model.New(tinyCfg, e)
	if err != nil {
		t.Fatal(err)
	}
	copy(m.Params, tinyParams)
	return m
}

func testKey(i byte) ed25519.PrivateKey {
	s := sha256.Sum256([]byte{'k', i})
	return ed25519.NewKeyFromSeed(s[:])
}

func pubOf(k ed25519.PrivateKey) (p [32]byte) {
	copy(p[:], k.Public().(ed25519.PublicKey))
	return p
}

func testConfig() Config {
	c := DefaultConfig()
	c.GroupSize = 4
	c.Problems = 2
	c.MaxNew = 4
	c.FormatBonus = 0.1
	c.AdamW.LR = 1e-3
	return c
}

func testTasks(t testing.TB) *TaskSet {
	ts, err := ArithmeticTaskSet(5, 64)
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

func testRound(r uint64) Round {
	return Round{Index: r, Beacon: sha256.Sum256([]byte{'b', byte(r)})}
}
