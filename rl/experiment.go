package rl

import (
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
)

// ExperimentConfig sizes Experiment. Zero fields take
// DefaultExperimentConfig's values.
type ExperimentConfig struct {
	Model      model.Config
	Pretrain   []PretrainConfig // stages run in order, each with a fresh AdamW
	Checkpoint string           // pre-trained policy to start from; empty: pre-train one
	SaveAs     string           // if set, where to save the policy pre-trained here
	RL         Config
	Peers      int    // honest rollout peers (each also replicates the update)
	Cheater    bool   // add one rollout peer that cheats, a different way each round
	Rounds     int    // RL rounds
	TrainTasks int    // tasks of the training split in the RL task set
	Heldout    int    // held-out tasks evaluated greedily (at most the split's size)
	EvalEvery  int    // evaluate every this many rounds (and after the last)
	Seed       uint64 // identities, beacons and task draws
}

// DefaultExperimentConfig is the run reported in docs/rl.md: a few minutes
// on 2 cores, pre-training included.
func DefaultExperimentConfig() ExperimentConfig {
	ad := optimizer.DefaultAdamW()
	ad.LR, ad.Warmup, ad.TotalSteps, ad.MinLRFrac = 3e-3, 50, 3200, 0.1
	drill := PretrainConfig{CorpusSeed: 1, CorpusBytes: 4 << 20, Arithmetic: true, Steps: 3200, B: 32, T: 32, AdamW: ad}
	rl := DefaultConfig()
	rl.Problems = 8
	return ExperimentConfig{
		Model:      model.Config{Vocab: 256, Context: 64, Layers: 4, Heads: 4, Width: 128},
		Pretrain:   []PretrainConfig{drill},
		RL:         rl,
		Peers:      3,
		Cheater:    true,
		Rounds:     30,
		TrainTasks: 4096,
		Heldout:    1555,
		EvalEvery:  10,
		Seed:       1,
	}
}

func (c *ExperimentConfig) fill() {
	d := DefaultExperimentConfig()
	if c.Model == (model.Config{}) {
		c.Model = d.Model
	}
	if len(c.Pretrain) == 0 {
		c.Pretrain = d.Pretrain
	}
	if c.RL.GroupSize == 0 {
		c.RL = d.RL
	}
	if c.Peers == 0 {
		c.Peers = d.Peers
	}
	if c.Rounds == 0 {
		c.Rounds = d.Rounds
	}
	if c.TrainTasks == 0 {
		c.TrainTasks = d.TrainTasks
	}
	if c.Heldout == 0 {
		c.Heldout = d.Heldout
	}
	if c.EvalEvery == 0 {
		c.EvalEvery = d.EvalEvery
	}
}

// peer is one in-process participant: its own engine, policy replica and
// identity.
type peer struct {
	e      *tensor.Engine
	m      *model.GPT
	pol    *Policy
	key    ed25519.PrivateKey
	pub    [32]byte
	prev   *Batch // an old honest batch (the replay attack re-sends it)
	cheats bool
}

// Experiment pre-trains a policy on the embedded default corpus (or loads
// cfg.Checkpoint), then runs RL rounds in process: rollout peers generate
// proved batches concurrently, a validator checks every batch, the accepted
// ones form the round's manifest, and every peer applies the GRPO update to
// its own replica; the replicas' state hashes must agree after every round.
// It prints one line per round to out.
func Experiment(ctx context.Context, cfg ExperimentConfig, out io.Writer) error {
	cfg.fill()
	if err := cfg.RL.Validate(); err != nil {
		return err
	}
	pf := func(format string, a ...any) { fmt.Fprintf(out, format, a...) }
	start := time.Now()

	// Reference policy: pre-trained here or loaded.
	e0, err := tensor.New(tensor.WithThreads(2))
	if err != nil {
		return fmt.Errorf("rl: experiment: %w", err)
	}
	defer e0.Close()
	var base *model.GPT
	if cfg.Checkpoint != "" {
		if base, _, err = model.Load(cfg.Checkpoint, e0); err != nil {
			return fmt.Errorf("rl: experiment: %w", err)
		}
		pf("policy: loaded %s (%v)\n", cfg.Checkpoint, base.Config)
	} else {
		if base, err = model.New(cfg.Model, e0); err != nil {
			return fmt.Errorf("rl: experiment: %w", err)
		}
		base.Init(cfg.Seed)
		for i, pc := range cfg.Pretrain {
			var last float32
			if err := Pretrain(ctx, base, pc, func(_ int, l float32) { last = l }); err != nil {
				return err
			}
			src := "the default corpus"
			if pc.Arithmetic {
				src = "the arithmetic drill (training split)"
			}
			pf("policy: %v, pre-training stage %d: %d AdamW steps of %dx%d tokens (lr %g) on %s, %v so far, last loss %.3f\n",
				cfg.Model, i, pc.Steps, pc.B, pc.T, pc.AdamW.LR, src, time.Since(start).Round(time.Second), last)
		}
		if cfg.SaveAs != "" {
			if err := base.Save(cfg.SaveAs, nil); err != nil {
				return fmt.Errorf("rl: experiment: %w", err)
			}
		}
	}
	ts, err := ArithmeticTaskSet(cfg.Seed, cfg.TrainTasks)
	if err != nil {
		return err
	}
	held, err := data.ArithmeticTasks(cfg.Seed, data.SplitHeldout, cfg.Heldout)
	if err != nil {
		return fmt.Errorf("rl: experiment: %w", err)
	}
	enc := PromptEncoder{Prefix: cfg.RL.Prefix}
	evalMax := cfg.RL.MaxNew
	// Training-split accuracy on a fixed slice of the RL task set shows what
	// RL learns on the problems it sees, next to what generalises.
	seenTasks := ts.Tasks[:min(len(ts.Tasks), 500)]

	// Peers: honest ones first, then the cheater.
	n := cfg.Peers
	if cfg.Cheater {
		n++
	}
	peers := make([]*peer, n)
	defer func() {
		for _, p := range peers {
			if p != nil && p.e != nil {
				p.e.Close()
			}
		}
	}()
	for i := range peers {
		p := &peer{cheats: i >= cfg.Peers}
		if p.e, err = tensor.New(tensor.WithThreads(1)); err != nil {
			return fmt.Errorf("rl: experiment: %w", err)
		}
		if p.m, err = model.New(base.Config, p.e); err != nil {
			return fmt.Errorf("rl: experiment: %w", err)
		}
		copy(p.m.Params, base.Params)
		ref, err := refCopy(base, p.e, cfg.RL)
		if err != nil {
			return err
		}
		if p.pol, err = NewPolicy(p.m, ref, ts, cfg.RL); err != nil {
			return err
		}
		seed := sha256.Sum256(binary.LittleEndian.AppendUint64([]byte("rl/experiment/key"), cfg.Seed+uint64(i)))
		p.key = ed25519.NewKeyFromSeed(seed[:])
		copy(p.pub[:], p.key.Public().(ed25519.PublicKey))
		peers[i] = p
	}
	// The validator is one more replica; it evaluates held-out accuracy.
	ve, err := tensor.New(tensor.WithThreads(2))
	if err != nil {
		return fmt.Errorf("rl: experiment: %w", err)
	}
	defer ve.Close()
	vm, err := model.New(base.Config, ve)
	if err != nil {
		return fmt.Errorf("rl: experiment: %w", err)
	}
	copy(vm.Params, base.Params)
	vref, err := refCopy(base, ve, cfg.RL)
	if err != nil {
		return err
	}
	vpol, err := NewPolicy(vm, vref, ts, cfg.RL)
	if err != nil {
		return err
	}

	evalStart := time.Now()
	before, err := Evaluate(ctx, vm, held, enc, evalMax)
	if err != nil {
		return err
	}
	lo, hi := before.Wilson()
	trainBefore, err := Evaluate(ctx, vm, seenTasks, enc, evalMax)
	if err != nil {
		return err
	}
	pf("held-out greedy accuracy before RL: %d/%d = %.1f%% (95%% CI %.1f-%.1f%%), evaluated in %v; training split %.1f%% of %d\n",
		before.Correct, before.Total, 100*before.Accuracy(), 100*lo, 100*hi, time.Since(evalStart).Round(time.Millisecond), 100*trainBefore.Accuracy(), trainBefore.Total)
	opt := fmt.Sprintf("AdamW lr %g", cfg.RL.AdamW.LR)
	if cfg.RL.SGDLR > 0 {
		opt = fmt.Sprintf("SGD lr %g", cfg.RL.SGDLR)
	}
	pf("RL: %d honest rollout peers%s, %d tasks each, G=%d, %d new tokens at %v, %d epoch(s), %s, partial credit %g\n",
		cfg.Peers, map[bool]string{true: " + 1 cheater", false: ""}[cfg.Cheater], cfg.RL.Problems, cfg.RL.GroupSize, cfg.RL.MaxNew, cfg.RL.Sampling, cfg.RL.Epochs, opt, cfg.RL.PartialCredit)
	pf("%5s %8s %8s %9s %9s %10s %10s %12s %7s %6s %6s %6s %s\n", "round", "reward", "correct", "accepted", "rejected", "blob MB", "fetched MB", "heldout/train", "time", "groups", "gnorm", "passes", "hash (replicas agreeing)")

	seen := NewSeen()
	scores, err := NewScores(0.3)
	if err != nil {
		return err
	}
	rlStart := time.Now()
	var totAcc, totRej int
	var totBytes int64
	beacon := sha256.Sum256(binary.LittleEndian.AppendUint64([]byte("rl/experiment/genesis"), cfg.Seed))
	last := before
	for r := range cfg.Rounds {
		roundStart := time.Now()
		rd := Round{Index: uint64(r), Beacon: beacon}
		// Rollouts, concurrently: each honest peer on its own engine; then
		// the cheater, who may use what the others published.
		blobs := make([][]byte, len(peers))
		errs := make([]error, len(peers))
		var wg sync.WaitGroup
		for i, p := range peers[:cfg.Peers] {
			wg.Add(1)
			go func() {
				defer wg.Done()
				b, err := honestBatch(ctx, p.m, p.key, ts, cfg.RL, rd)
				if err == nil {
					blobs[i], err = b.Encode()
				}
				errs[i] = err
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return err
		}
		attackName := ""
		if cfg.Cheater {
			c := peers[cfg.Peers]
			a := Attack(r % int(NumAttacks))
			if a == AttackReplay && c.prev == nil {
				a = AttackRewards
			}
			attackName = a.String()
			other, err := Decode(blobs[0])
			if err != nil {
				return err
			}
			b, err := Forge(ctx, a, c.m, c.key, ts, cfg.RL, rd, c.prev, other)
			if err != nil {
				return fmt.Errorf("rl: experiment: cheater: %w", err)
			}
			if blobs[cfg.Peers], err = b.Encode(); err != nil {
				return fmt.Errorf("rl: experiment: cheater: %w", err)
			}
			if a == AttackRewards {
				// Keep the honest rollouts for a later replay.
				if c.prev, err = honestBatch(ctx, c.m, c.key, ts, cfg.RL, rd); err != nil {
					return err
				}
			}
		}
		// Validation: decode, check, build the manifest.
		val, err := NewValidator(vm, ts, cfg.RL)
		if err != nil {
			return err
		}
		var manifest []*Batch
		var acc, rej int
		var blobBytes int64
		var reasons []string
		for i, blob := range blobs {
			blobBytes += int64(len(blob))
			b, err := Decode(blob)
			if err == nil {
				_, err = val.Check(ctx, b, Expect{Round: rd, Peer: peers[i].pub}, seen)
			}
			scores.Record(peers[i].pub, err)
			if err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				if b != nil {
					rej += len(b.Groups) * cfg.RL.GroupSize
				}
				reasons = append(reasons, attackName+": "+reasonOf(err))
				if !peers[i].cheats {
					return fmt.Errorf("rl: experiment: honest peer %d rejected: %w", i, err)
				}
				continue
			}
			if peers[i].cheats {
				return fmt.Errorf("rl: experiment: round %d: the cheater's batch was accepted", r)
			}
			acc += len(b.Groups) * cfg.RL.GroupSize
			manifest = append(manifest, b)
		}
		// Every replica (each peer and the validator) fetches every listed
		// batch it did not make and applies the update.
		var fetched int64
		for _, b := range manifest {
			bb, _ := b.Encode()
			fetched += int64(len(bb)) * int64(len(peers))
		}
		reps := append([]*Policy{vpol}, make([]*Policy, 0, len(peers))...)
		for _, p := range peers {
			reps = append(reps, p.pol)
		}
		stats := make([]UpdateStats, len(reps))
		uerrs := make([]error, len(reps))
		// Replicas share 2 cores: run them two at a time.
		sem := make(chan struct{}, 2)
		for i, pol := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				stats[i], uerrs[i] = pol.Update(ctx, slices.Clone(manifest))
			}()
		}
		wg.Wait()
		if err := errors.Join(uerrs...); err != nil {
			return err
		}
		h := vpol.Hash()
		agree := 0
		for _, pol := range reps {
			if pol.Hash() == h {
				agree++
			}
		}
		if agree != len(reps) {
			return fmt.Errorf("rl: experiment: round %d: only %d of %d replicas hold %x", r, agree, len(reps), h[:8])
		}
		evalStr := ""
		if (r+1)%cfg.EvalEvery == 0 || r == cfg.Rounds-1 {
			if last, err = Evaluate(ctx, vm, held, enc, evalMax); err != nil {
				return err
			}
			tr, err := Evaluate(ctx, vm, seenTasks, enc, evalMax)
			if err != nil {
				return err
			}
			evalStr = fmt.Sprintf("%.1f%%/%.1f%%", 100*last.Accuracy(), 100*tr.Accuracy())
		}
		st := stats[0]
		totAcc, totRej, totBytes = totAcc+acc, totRej+rej, totBytes+blobBytes+fetched
		pf("%5d %8.3f %8d %9d %9d %10.2f %10.2f %12s %6.1fs %6s %6.3f %6d %x (%d/%d) %v\n", r, st.MeanReward, st.Correct, acc, rej,
			float64(blobBytes)/1e6, float64(fetched)/1e6, evalStr, time.Since(roundStart).Seconds(), fmt.Sprintf("%d/%d", st.Informative, st.Groups), st.GradNorm, st.Passes, h[:6], agree, len(reps), reasons)
		// The next round's randomness: the hash of this round's manifest.
		mh := sha256.New()
		mh.Write(beacon[:])
		for _, b := range manifest {
			bb, _ := b.Encode()
			id := ID(bb)
			mh.Write(id[:])
		}
		mh.Sum(beacon[:0])
	}
	lo, hi = before.Wilson()
	lo2, hi2 := last.Wilson()
	pf("\nheld-out greedy accuracy: before %.1f%% (95%% CI %.1f-%.1f%%), after %d rounds %.1f%% (95%% CI %.1f-%.1f%%) on %d problems\n",
		100*before.Accuracy(), 100*lo, 100*hi, cfg.Rounds, 100*last.Accuracy(), 100*lo2, 100*hi2, last.Total)
	g, l, z := before.McNemar(last)
	pf("paired on the same problems: %d gained, %d lost, McNemar z = %.2f\n", g, l, z)
	pf("peer scores:")
	for i, p := range peers {
		pf(" %d:%.2f", i, scores.Score(p.pub))
	}
	pf(" (the last is the cheater when there is one)\n")
	pf("rollouts accepted %d, rejected %d; bytes moved %.1f MB; RL wall time %v; total %v\n",
		totAcc, totRej, float64(totBytes)/1e6, time.Since(rlStart).Round(time.Second), time.Since(start).Round(time.Second))
	return nil
}

// refCopy gives a replica its own frozen reference policy on its engine
// when the KL term needs one (models are not safe for concurrent use).
func refCopy(base *model.GPT, e *tensor.Engine, cfg Config) (*model.GPT, error) {
	if cfg.KLCoef == 0 {
		return nil, nil
	}
	ref, err := model.New(base.Config, e)
	if err != nil {
		return nil, fmt.Errorf("rl: experiment: %w", err)
	}
	copy(ref.Params, base.Params)
	return ref, nil
}

// reasonOf names the rejection reason of err.
func reasonOf(err error) string {
	for _, r := range []error{ErrMalformed, ErrStale, ErrPolicy, ErrTaskSet, ErrPeer, ErrAssignment, ErrShape, ErrBinding, ErrDuplicate, ErrReward, ErrProof} {
		if errors.Is(err, r) {
			return r.Error()
		}
	}
	return err.Error()
}
