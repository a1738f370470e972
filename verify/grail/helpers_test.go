package grail

import (
	"crypto/ed25519"
	"testing"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
)

// tinyConfig keeps model tests fast.
var tinyConfig = model.Config{Vocab: 256, Context: 64, Layers: 2, Heads: 2, Width: 64}

func newEngine(t testing.TB, opts ...tensor.Option) *tensor.Engine {
	t.Helper()
	e, err := tensor.New(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	return e
}

func newModel(t testing.TB, cfg model.Config, seed uint64, e *tensor.Engine) *model.GPT {
	t.Helper()
	m, err := model.New(cfg, e)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(seed)
	return m
}

func testKey(b byte) ed25519.PrivateKey {
	var s [ed25519.SeedSize]byte
	s[0] = b
	return ed25519.NewKeyFromSeed(s[:])
}

func beaconOf(b byte) [32]byte {
	var x [32]byte
	for i := range x {
		x[i] = b + byte(i)
	}
	return x
}
