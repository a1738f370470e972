package main

import (
	"context"
	"fmt"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/verify/grail"
)

func runGenerate(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "generate")
	var ef engineFlags
	ef.register(fs)
	ckpt := fs.String("checkpoint", "", "model checkpoint (safetensors), required")
	prompt := fs.String("prompt", "\n", "text to continue")
	n := fs.Int("n", 200, "tokens to generate")
	temp := fs.Float64("temperature", 0.8, "sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 40, "sample among the k most likely tokens (0: all)")
	seed := fs.Uint64("seed", 1, "sampling seed (without --proof)")
	proofOut := fs.String("proof", "", "also write a GRAIL proof of the generation to this file")
	beacon := fs.String("beacon", "", "with --proof: public randomness to bind the proof to (64 hex digits; default: random)")
	dataDir := fs.String("data-dir", defaultDataDir(), "with --proof: directory holding the peer identity that signs the proof")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *ckpt == "" {
		return fmt.Errorf("--checkpoint is required")
	}
	m, closeEngine, err := ef.loadModel(*ckpt)
	if err != nil {
		return err
	}
	defer closeEngine()
	var tok data.ByteTokenizer
	p := tok.Encode(*prompt)
	if len(p) == 0 {
		return fmt.Errorf("--prompt must not be empty")
	}
	if *proofOut != "" {
		return generateWithProof(ctx, env, m, p, *n, grail.Sampling{Temperature: float32(*temp), TopK: *topK}, *proofOut, *dataDir, *beacon)
	}
	out, err := m.Generate(ctx, p, *n, model.Sampler{Temperature: float32(*temp), TopK: *topK, Seed: *seed}, nil)
	if err != nil {
		return err
	}
	fmt.Fprintln(env.stdout, tok.Decode(out)) // out begins with the prompt
	return nil
}
