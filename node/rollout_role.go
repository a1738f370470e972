package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/rl"
)

// RoleRollout generates proved rollouts in the RL stage.
const RoleRollout Role = "rollout"

// rolloutRole is the rollout peer's part of the state machine: once per
// round, as soon as the previous round's manifest is applied, roll out the
// assigned tasks with the current policy, store the batch blob and announce
// it on TopicRollout.
type rolloutRole struct {
	n     *Node
	m     *model.GPT // the policy copy a rollout job owns
	key   ed25519.PrivateKey
	tried triedRounds
}

func newRolloutRole(n *Node) (*rolloutRole, error) {
	if n.rl == nil {
		return nil, fmt.Errorf("node: role %q needs a genesis of stage %q (this network's is %q)", RoleRollout, StageRL, n.gen.stage())
	}
	m, err := model.New(n.gen.Model, n.eng)
	if err != nil {
		return nil, err
	}
	sk := n.p2p.Host().Peerstore().PrivKey(n.p2p.ID())
	if sk == nil {
		return nil, errors.New("node: rollout role: no private key for the host")
	}
	raw, err := sk.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("node: rollout role: the identity is not an ed25519 key")
	}
	return &rolloutRole{n: n, m: m, key: ed25519.PrivateKey(raw), tried: triedRounds{}}, nil
}

// tick starts round r's rollouts when the node holds theta_r, or gives the
// round up when too little of its window is left.
func (ro *rolloutRole) tick(ctx context.Context, now time.Time, r uint64) time.Time {
	n := ro.n
	c := n.clock
	deadline := c.AnnounceBy(r)
	switch {
	case now.Before(c.Start):
		return c.Start
	case ro.tried[r]:
		return c.RoundStart(r + 1)
	case n.busy != "" || n.catching || len(n.pending) > 0:
		return deadline // the job's end wakes the loop earlier
	case n.next < r && now.Before(c.RoundStart(r).Add(c.Length/10)) && n.next+1 == r:
		// Give the previous round's manifest a tenth of the round to come.
		return c.RoundStart(r).Add(c.Length / 10)
	}
	ro.tried.mark(r)
	if n.next+1 < r || !now.Before(deadline) {
		// Rounds behind: rollouts of this state would be refused; the next
		// manifest triggers a catch-up.
		n.metrics.missed.Add(1)
		n.emit(Event{Kind: EventMissed, Round: r})
		return c.RoundStart(r + 1)
	}
	copy(ro.m.Params, n.global.Params)
	base, rd := n.hash, n.rl.currentRound(r)
	n.contributionJob(ctx, "rollout", "rollouts", r, deadline, func(ctx context.Context) (*Announcement, error) {
		return ro.roll(ctx, rd, base)
	}, nil)
	return deadline
}

// roll runs on the job goroutine and owns ro.m.
func (ro *rolloutRole) roll(ctx context.Context, rd rl.Round, base Hash) (*Announcement, error) {
	n, s := ro.n, ro.n.rl
	t0 := time.Now()
	roller, err := rl.NewRoller(ro.m, ro.key, s.ts, s.cfg)
	if err != nil {
		return nil, err
	}
	b, err := roller.Roll(ctx, rd)
	if err != nil {
		return nil, fmt.Errorf("node: round %d: %w", rd.Index, err)
	}
	if b, err = n.adv.rewriteRollouts(ctx, rolloutInput{round: rd, honest: b, policy: ro.m, key: ro.key, ts: s.ts, cfg: s.cfg}); err != nil {
		return nil, fmt.Errorf("node: round %d: %w", rd.Index, err)
	}
	blob, err := b.Encode()
	if err != nil {
		return nil, err
	}
	n.metrics.observe(phaseTrain, time.Since(t0))
	var sum float64
	var cnt int
	for _, g := range b.Groups {
		for _, r := range g.Rollouts {
			sum += r.Reward
			cnt++
		}
	}
	c, err := n.p2p.Store().Put(blob, p2p.WithRound(rd.Index))
	if err != nil {
		return nil, fmt.Errorf("node: storing rollouts: %w", err)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("node: round %d: announcement deadline passed: %w", rd.Index, err)
	}
	a := &Announcement{V: WireVersion, Round: rd.Index, Base: base, CID: c.String(), Size: int64(len(blob)), Reward: sum / float64(max(cnt, 1))}
	n.publish(context.WithoutCancel(ctx), TopicRollout, rd.Index, a)
	n.provideLater(ctx, blob, rd.Index)
	n.metrics.bytesOut.Add(int64(len(blob)))
	return a, nil
}
