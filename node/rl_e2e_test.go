package node

import (
	"context"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/rl"
)

// rlTestGenesis is an RL-stage network starting from a policy briefly
// drilled on arithmetic (saved under dir), with partial credit so that the
// rewards of a group differ and every round's update moves the policy.
func rlTestGenesis(t *testing.T, dir string) Genesis {
	t.Helper()
	e, err := tensor.New(tensor.WithThreads(2))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m, err := model.New(TinyModel, e)
	if err != nil {
		t.Fatal(err)
	}
	m.Init(7)
	ad := optimizer.DefaultAdamW()
	ad.LR, ad.Warmup = 1e-2, 10
	if err := rl.Pretrain(context.Background(), m, rl.PretrainConfig{CorpusSeed: 3, CorpusBytes: 1 << 16, Arithmetic: true, Steps: 60, B: 8, T: 32, AdamW: ad}, nil); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "start.safetensors")
	if err := m.Save(path, nil); err != nil {
		t.Fatal(err)
	}
	g := testGenesis()
	g.Params.RoundMillis = 5000
	if raceEnabled {
		g.Params.RoundMillis = 8000
	}
	p := DefaultRLParams()
	p.GroupSize, p.Problems, p.MaxNew = 8, 2, 5
	p.FormatBonus, p.PartialCredit = 0.1, 0.5
	p.AdamW.LR = 1e-3
	p.Tasks = TaskSource{Kind: TasksArithmetic, Seed: 2, Count: 256}
	p.Checkpoint, p.CheckpointHash = path, Hash(m.StateHash())
	g.Stage, g.RL = StageRL, &p
	return g
}

// cheater tampers with its batch a different way each round: fabricated
// rewards, another model's rollouts passed off as the policy's, and a replay
// of an older batch under the new round's header.
type cheater struct {
	mu   sync.Mutex
	old  *rl.Batch
	used map[uint64]string // attack by round
}

func (c *cheater) attack(r uint64) string {
	return [...]string{"rewards", "model", "replay"}[r%3]
}

func (c *cheater) tamper(ctx context.Context, in TamperInput) (*rl.Batch, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b := in.Honest
	a := c.attack(in.Round.Index)
	if a == "replay" && c.old == nil {
		a = "rewards"
	}
	c.used[in.Round.Index] = a
	switch a {
	case "rewards":
		enc, err := b.Encode()
		if err != nil {
			return nil, err
		}
		c.old, _ = rl.Decode(enc) // kept honest, for a later replay
		for _, g := range b.Groups {
			for k := range g.Rollouts {
				g.Rollouts[k].Reward = 1
			}
		}
		return b, nil
	case "model":
		alt, err := model.New(in.Policy.Config, in.Policy.Engine())
		if err != nil {
			return nil, err
		}
		for i, x := range in.Policy.Params {
			alt.Params[i] = x * (1 + 0.02*float32(i%7-3)/3)
		}
		ro, err := rl.NewRoller(alt, in.Key, in.TaskSet, in.Config)
		if err != nil {
			return nil, err
		}
		fake, err := ro.Roll(ctx, in.Round)
		if err != nil {
			return nil, err
		}
		fake.PolicyHash = in.Honest.PolicyHash
		for _, g := range fake.Groups {
			for _, r := range g.Rollouts {
				r.Proof.ModelHash = fake.PolicyHash
				if err := r.Proof.Sign(in.Key); err != nil {
					return nil, err
				}
			}
		}
		return fake, nil
	}
	old := *c.old
	old.Round, old.Beacon, old.PolicyHash = in.Round.Index, in.Round.Beacon, b.PolicyHash
	return &old, nil
}

// TestRLNetwork runs the RL stage over real libp2p on loopback: a validator,
// three honest rollout peers and a dishonest one. Every round, every peer
// must hold the same policy hash; the honest batches are listed in the
// manifests and move the policy; the cheater's never are, each attack being
// rejected for its reason, and its score stays at zero. A rollout peer that
// joins at round 3 catches up and contributes.
func TestRLNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end network test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	tn, err := NewTestnet(ctx, TestnetConfig{Dir: dir, Trainers: 3, Model: rlTestGenesis(t, dir), Logger: testLogger(), StartDelay: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	if err := tn.Run(ctx); err != nil {
		t.Fatal(err)
	}
	ch := &cheater{used: map[uint64]string{}}
	bad, err := tn.AddRollout(WithRolloutTamper(ch.tamper))
	if err != nil {
		t.Fatal(err)
	}
	members := tn.Members()
	validator := members[0]
	L := tn.Genesis.Params.RoundLength()
	const rounds = 7
	var prev Hash
	var late Member
	moved := 0
	for r := uint64(0); r < rounds; r++ {
		if r == 3 {
			// A late joiner replays the RL rounds it missed (from the chain
			// or a checkpoint) before it can roll out.
			if late, err = tn.AddRollout(); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := tn.WaitRound(ctx, r, 4*L+20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		st, _ := validator.Node.rl.Stats(r)
		t.Logf("round %d: %d batches, %d/%d peers, policy %s agree=%v; update: %d rollouts, mean reward %.3f, %d/%d groups informative",
			r, rep.Contributors, rep.Peers, rep.Running, rep.Hash.Short(), rep.HashesAgree, st.Rollouts, st.MeanReward, st.Informative, st.Groups)
		if !rep.HashesAgree {
			t.Errorf("round %d: peers disagree on the policy", r)
		}
		if rep.Peers > 0 && rep.Hash != prev && rep.Contributors > 0 {
			moved++
		}
		prev = rep.Hash
	}
	if moved == 0 {
		t.Errorf("no round's update moved the policy")
	}

	contributed := contributionsByPeer(t, tn)
	if got := contributed[bad.Peer]; len(got) > 0 {
		t.Errorf("the cheater's batches are in the manifests of rounds %v", got)
	}
	caughtUp := false
	for _, e := range tn.Events() {
		caughtUp = caughtUp || (e.Kind == EventCaughtUp && e.Peer == late.Peer)
	}
	t.Logf("late joiner: caught up %v, batches in the manifests of rounds %v", caughtUp, contributed[late.Peer])
	if !caughtUp || len(contributed[late.Peer]) == 0 {
		t.Errorf("the rollout peer that joined at round 3 did not catch up and contribute")
	}
	for _, m := range members[1:] {
		if m.Peer == bad.Peer {
			continue
		}
		t.Logf("%s: batches in the manifests of rounds %v", m.Name, contributed[m.Peer])
		if len(contributed[m.Peer]) < rounds/2 {
			t.Errorf("%s: honest batches listed in only %d of %d rounds", m.Name, len(contributed[m.Peer]), rounds)
		}
	}
	// Each attack was tried and rejected for its reason.
	v := validator.Node
	type verdict struct {
		round uint64
		e     ScoreEntry
	}
	done := make(chan []verdict, 1)
	var score float64
	v.post(ctx, func() {
		var out []verdict
		for _, h := range v.va.book.History {
			for _, e := range h.Scores {
				if e.Trainer == bad.Peer.String() {
					out = append(out, verdict{h.Round, e})
				}
			}
		}
		score = v.va.book.Smoothed[bad.Peer.String()]
		done <- out
	})
	verdicts := <-done
	if score != 0 {
		t.Errorf("the cheater's smoothed score is %v, want 0", score)
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	want := map[string]error{"rewards": rl.ErrReward, "model": rl.ErrProof, "replay": rl.ErrAssignment}
	rejected := map[string]bool{}
	for _, vd := range verdicts {
		a := ch.used[vd.round]
		t.Logf("cheater, round %d (%s): ok=%v %s", vd.round, a, vd.e.OK, vd.e.Reason)
		if vd.e.OK {
			t.Errorf("round %d: the cheater's batch (%s) passed", vd.round, a)
		}
		if w := want[a]; w != nil && strings.HasPrefix(vd.e.Reason, w.Error()) {
			rejected[a] = true
		}
	}
	for a := range want {
		if !rejected[a] {
			t.Errorf("attack %q was never rejected for its reason %q", a, want[a])
		}
	}
}
