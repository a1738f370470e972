package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/grail"
)

// defaultDataDir is where a peer keeps its identity and state.
func defaultDataDir() string {
	if home, err := os.UserHomeDir(); err == nil {
		return filepath.Join(home, ".trinity")
	}
	return ".trinity"
}

// loadSigner returns the peer's Ed25519 identity from dir as a crypto.Signer,
// creating it on first use.
func loadSigner(dir string) (ed25519.PrivateKey, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	k, err := p2p.LoadOrCreateIdentity(dir)
	if err != nil {
		return nil, err
	}
	raw, err := k.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("identity in %s is not an Ed25519 key", dir)
	}
	return ed25519.PrivateKey(raw), nil
}

// parseBeacon reads 32 bytes of hex; empty draws a fresh random beacon.
func parseBeacon(s string) ([32]byte, error) {
	var b [32]byte
	if s == "" {
		_, err := rand.Read(b[:])
		return b, err
	}
	raw, err := hex.DecodeString(s)
	if err != nil || len(raw) != 32 {
		return b, fmt.Errorf("--beacon must be 64 hex digits")
	}
	copy(b[:], raw)
	return b, nil
}

// generateWithProof samples like generate and writes a GRAIL proof of it.
func generateWithProof(ctx context.Context, env *cliEnv, m *model.GPT, prompt []int32, n int, s grail.Sampling, out, dataDir, beaconHex string) error {
	key, err := loadSigner(dataDir)
	if err != nil {
		return err
	}
	beacon, err := parseBeacon(beaconHex)
	if err != nil {
		return err
	}
	pr, err := grail.NewProver(m, key)
	if err != nil {
		return err
	}
	proof, err := pr.Prove(ctx, beacon, prompt, n, s)
	if err != nil {
		return err
	}
	if err := proof.WriteFile(out); err != nil {
		return err
	}
	var tok data.ByteTokenizer
	fmt.Fprintln(env.stdout, tok.Decode(append(append([]int32{}, proof.Prompt...), proof.Tokens...)))
	fmt.Fprintf(env.stderr, "proof: %s (beacon %x, model %x)\n", out, beacon, proof.ModelHash)
	return nil
}

func runVerifyProof(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "verify-proof")
	var ef engineFlags
	ef.register(fs)
	ckpt := fs.String("checkpoint", "", "the model the proof claims (safetensors), required")
	beaconHex := fs.String("beacon", "", "the beacon the prover had to use (hex); empty accepts the proof's own")
	peerHex := fs.String("peer", "", "the prover's Ed25519 public key (hex); empty accepts any signer")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if *ckpt == "" || fs.NArg() != 1 {
		fmt.Fprintln(env.stderr, "usage: trinity verify-proof --checkpoint F [--beacon HEX] [--peer HEX] PROOF")
		return errUsage
	}
	proof, err := grail.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	exp := grail.Expect{Beacon: proof.Beacon}
	if *beaconHex != "" {
		if exp.Beacon, err = parseBeacon(*beaconHex); err != nil {
			return err
		}
	} else {
		fmt.Fprintln(env.stderr, "note: no --beacon given; the proof is checked against its own beacon")
	}
	if *peerHex != "" {
		if exp.Peer, err = hex.DecodeString(*peerHex); err != nil {
			return fmt.Errorf("--peer: %w", err)
		}
	}
	m, closeEngine, err := ef.loadModel(*ckpt)
	if err != nil {
		return err
	}
	defer closeEngine()
	v, err := grail.NewVerifier(m)
	if err != nil {
		return err
	}
	rep, err := v.Check(ctx, proof, exp)
	if err != nil {
		return fmt.Errorf("proof rejected: %w", err)
	}
	fmt.Fprintf(env.stdout, "proof accepted: %d tokens by peer %x; %d positions challenged, max sketch distance %d (tolerance %d)\n",
		rep.Tokens, proof.Peer, len(rep.Challenged), rep.MaxSketchDist, rep.MaxTolerance)
	return nil
}
