package node

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

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

// TestRLNetwork runs the RL stage over real libp2p on loopback: a validator,
// three honest rollout peers and four dishonest ones (fabricated rewards,
// another model's rollouts, tasks of its choosing, replays). Every round, every peer must hold the
// same policy hash; the honest batches are listed in the manifests and move
// the policy; the cheaters' never are, each being rejected for its reason,
// and their scores stay at zero. A rollout peer that joins at round 3
// catches up and contributes.
func TestRLNetwork(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end network test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	cheats := map[Adversary]error{AdversaryRLRewards: rl.ErrReward, AdversaryRLModel: rl.ErrProof, AdversaryRLOwnTasks: rl.ErrAssignment,
		AdversaryRLReplay: rl.ErrAssignment}
	tn, err := NewTestnet(ctx, TestnetConfig{Dir: dir, Trainers: 3, Model: rlTestGenesis(t, dir), Logger: testLogger(), StartDelay: 3 * time.Second,
		Adversaries: []Adversary{AdversaryRLRewards, AdversaryRLModel, AdversaryRLOwnTasks, AdversaryRLReplay}})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	if err := tn.Run(ctx); err != nil {
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

	contributed := contributions(tn)
	caughtUp := false
	for _, e := range tn.Events() {
		caughtUp = caughtUp || (e.Kind == EventCaughtUp && e.Peer == late.Peer)
	}
	t.Logf("late joiner: caught up %v, batches in the manifests of rounds %v", caughtUp, contributed[late.Peer])
	if !caughtUp || len(contributed[late.Peer]) == 0 {
		t.Errorf("the rollout peer that joined at round 3 did not catch up and contribute")
	}
	// Each cheater's verdicts, read on the validator's loop.
	v := validator.Node
	type verdict struct {
		round uint64
		e     ScoreEntry
	}
	done := make(chan map[peer.ID][]verdict, 1)
	smoothed := map[peer.ID]float64{}
	v.post(ctx, func() {
		out := map[peer.ID][]verdict{}
		for _, h := range v.va.book.History {
			for _, e := range h.Scores {
				p, _ := peer.Decode(e.Trainer)
				out[p] = append(out[p], verdict{h.Round, e})
			}
		}
		for k, s := range v.va.scoresSnapshot() {
			p, _ := peer.Decode(k)
			smoothed[p] = s
		}
		done <- out
	})
	verdicts := <-done
	for _, m := range members[1:] {
		t.Logf("%s: batches in the manifests of rounds %v, smoothed score %.2f", m.Name, contributed[m.Peer], smoothed[m.Peer])
		want, cheats := cheats[m.Adversary]
		if !cheats {
			for _, vd := range verdicts[m.Peer] {
				if !vd.e.OK {
					t.Logf("%s, round %d: not accepted: %s", m.Name, vd.round, vd.e.Reason)
				}
			}
			if m.Peer != late.Peer && len(contributed[m.Peer]) < rounds/2 {
				t.Errorf("%s: honest batches listed in only %d of %d rounds", m.Name, len(contributed[m.Peer]), rounds)
			}
			continue
		}
		if len(contributed[m.Peer]) > 0 {
			t.Errorf("%s: its batches are in the manifests of rounds %v", m.Name, contributed[m.Peer])
		}
		if smoothed[m.Peer] != 0 {
			t.Errorf("%s: smoothed score %v, want 0", m.Name, smoothed[m.Peer])
		}
		rejected := 0
		for _, vd := range verdicts[m.Peer] {
			t.Logf("%s, round %d: ok=%v %s", m.Name, vd.round, vd.e.OK, vd.e.Reason)
			if vd.e.OK {
				t.Errorf("%s: round %d: its batch passed", m.Name, vd.round)
			}
			if strings.HasPrefix(vd.e.Reason, want.Error()) {
				rejected++
			}
		}
		if rejected == 0 {
			t.Errorf("%s was never rejected for its reason %q", m.Name, want)
		}
	}
}
