package rl

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/trinity-net/trinity/verify/grail"
)

func TestHonestAccepted(t *testing.T) {
	cfg, ts := testConfig(), testTasks(t)
	rd := testRound(3)
	batches := rollAll(t, 3, rd, cfg, ts)
	v, err := NewValidator(tinyPolicy(t, 2), ts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	seen := NewSeen()
	for i, b := range batches {
		blob, err := b.Encode()
		if err != nil {
			t.Fatal(err)
		}
		d, err := Decode(blob)
		if err != nil {
			t.Fatal(err)
		}
		vd, err := v.Check(context.Background(), d, Expect{Round: rd, Peer: pubOf(testKey(byte(i)))}, seen)
		if err != nil {
			t.Fatalf("honest batch %d rejected: %v", i, err)
		}
		if vd.Rollouts != cfg.Problems*cfg.GroupSize || vd.Verified != vd.Rollouts {
			t.Fatalf("verdict %+v", vd)
		}
	}
	if seen.Len() != 3*cfg.Problems*cfg.GroupSize {
		t.Fatalf("seen holds %d digests", seen.Len())
	}
	// The same batch again (a duplicate announcement) is refused.
	if _, err := v.Check(context.Background(), batches[0], Expect{Round: rd, Peer: pubOf(testKey(0))}, seen); !errors.Is(err, ErrDuplicate) {
		t.Fatalf("resubmitted batch: %v", err)
	}
	// Sampled verification: one group in full, still accepted.
	cfg2 := cfg
	cfg2.VerifyGroups = 1
	v2, err := NewValidator(tinyPolicy(t, 1), ts, cfg2)
	if err != nil {
		t.Fatal(err)
	}
	vd, err := v2.Check(context.Background(), batches[1], Expect{Round: rd, Peer: pubOf(testKey(1)), Challenge: []byte("later")}, nil)
	if err != nil || vd.Verified != cfg.GroupSize {
		t.Fatalf("sampled check: %+v %v", vd, err)
	}
}

func TestAttacksRejected(t *testing.T) {
	cfg, ts := testConfig(), testTasks(t)
	m := tinyPolicy(t, 1)
	ctx := context.Background()
	cheat := testKey(9)
	old := testRound(4)
	prev, err := honestBatch(ctx, m, cheat, ts, cfg, old)
	if err != nil {
		t.Fatal(err)
	}
	rd := testRound(5)
	other, err := honestBatch(ctx, m, testKey(0), ts, cfg, rd)
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewValidator(tinyPolicy(t, 2), ts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	exp := Expect{Round: rd, Peer: pubOf(cheat)}
	for _, c := range []struct {
		a    Attack
		want []error
	}{
		{AttackOtherModel, []error{ErrProof}},
		{AttackRewards, []error{ErrReward}},
		{AttackOwnTasks, []error{ErrAssignment}},
		{AttackReplay, []error{ErrAssignment, ErrBinding}},
		{AttackCopy, []error{ErrAssignment}},
	} {
		t.Run(c.a.String(), func(t *testing.T) {
			b, err := Forge(ctx, c.a, m, cheat, ts, cfg, rd, prev, other)
			if err != nil {
				t.Fatal(err)
			}
			blob, err := b.Encode()
			if err != nil {
				t.Fatal(err)
			}
			d, err := Decode(blob)
			if err != nil {
				t.Fatal(err)
			}
			seen := NewSeen()
			_, err = v.Check(ctx, d, exp, seen)
			if err == nil {
				t.Fatal("accepted")
			}
			if !slices.ContainsFunc(c.want, func(w error) bool { return errors.Is(err, w) }) {
				t.Fatalf("rejected for %v, want %v", err, c.want)
			}
			if seen.Len() != 0 {
				t.Fatal("a rejected batch left digests behind")
			}
		})
	}
	// Plain replay: the old batch unchanged is stale.
	if _, err := v.Check(ctx, prev, exp, nil); !errors.Is(err, ErrStale) {
		t.Fatalf("old batch: %v", err)
	}
	// Another peer's batch announced by the cheater.
	if _, err := v.Check(ctx, other, exp, nil); !errors.Is(err, ErrPeer) {
		t.Fatalf("foreign batch: %v", err)
	}
}

// TestTampering covers single-field lies inside otherwise honest batches.
func TestTampering(t *testing.T) {
	cfg, ts := testConfig(), testTasks(t)
	ctx := context.Background()
	rd := testRound(6)
	key := testKey(1)
	exp := Expect{Round: rd, Peer: pubOf(key)}
	v, err := NewValidator(tinyPolicy(t, 2), ts, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		edit func(b *Batch)
		want error
	}{
		{"policy header", func(b *Batch) { b.PolicyHash[0] ^= 1 }, ErrPolicy},
		{"task set", func(b *Batch) { b.TaskSet[0] ^= 1 }, ErrTaskSet},
		{"round", func(b *Batch) { b.Round++ }, ErrStale},
		{"dropped group", func(b *Batch) { b.Groups = b.Groups[:1] }, ErrAssignment},
		{"dropped rollout", func(b *Batch) { b.Groups[0].Rollouts = b.Groups[0].Rollouts[1:] }, ErrShape},
		{"swapped rollouts", func(b *Batch) {
			r := b.Groups[0].Rollouts
			r[0], r[1] = r[1], r[0]
		}, ErrBinding},
		{"duplicated rollout", func(b *Batch) {
			r := b.Groups[0].Rollouts
			r[1] = r[0]
		}, ErrBinding},
		{"edited token", func(b *Batch) {
			p := b.Groups[1].Rollouts[2].Proof
			p.Tokens[0] = (p.Tokens[0] + 1) % 256
			b.Groups[1].Rollouts[2].Reward = cfg.Reward(ts.Tasks[b.Groups[1].Task], string(bytesOf(p.Tokens)))
			if err := p.Sign(key); err != nil {
				t.Fatal(err)
			}
		}, ErrProof},
		{"replayed rollouts", func(b *Batch) {
			// Rollouts of the same task proved in an earlier round.
			rl, err := NewRoller(tinyPolicy(t, 1), key, ts, cfg)
			if err != nil {
				t.Fatal(err)
			}
			g := b.Groups[0]
			old := testRound(2)
			for k := range g.Rollouts {
				p, err := rl.prover.Prove(ctx, RolloutBeacon(old.Beacon, old.Index, g.Task, k), g.Rollouts[k].Proof.Prompt, cfg.MaxNew, cfg.Sampling)
				if err != nil {
					t.Fatal(err)
				}
				g.Rollouts[k] = Rollout{Reward: cfg.Reward(ts.Tasks[g.Task], string(bytesOf(p.Tokens))), Proof: p}
			}
		}, ErrBinding},
		{"unsigned edit", func(b *Batch) { b.Groups[0].Rollouts[0].Proof.Sketches[0] ^= 1 }, ErrPeer},
		{"greedy sampling", func(b *Batch) {
			p := b.Groups[0].Rollouts[0].Proof
			p.Sampling = grail.Sampling{}
			if err := p.Sign(key); err != nil {
				t.Fatal(err)
			}
		}, ErrBinding},
	} {
		t.Run(c.name, func(t *testing.T) {
			b, err := honestBatch(ctx, tinyPolicy(t, 1), key, ts, cfg, rd)
			if err != nil {
				t.Fatal(err)
			}
			c.edit(b)
			if _, err := v.Check(ctx, b, exp, nil); !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}
