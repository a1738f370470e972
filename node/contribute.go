package node

import (
	"context"
	"time"
)

// triedRounds are the rounds a contributing role has attempted (done or
// given up), so that it tries each at most once; only the last few are kept.
type triedRounds map[uint64]bool

// mark records round r and forgets rounds more than 4 before it.
func (t triedRounds) mark(r uint64) {
	t[r] = true
	for k := range t {
		if k+4 < r {
			delete(t, k)
		}
	}
}

// contributionJob runs one round's contribution (a trainer's pseudo-gradient
// or a rollout peer's batch) as the node's job: work builds and announces it
// on the job goroutine before deadline; then, on the loop, done (if set) sees
// the outcome first, and a failure counts as a missed round and a success as
// an announcement (metrics, log line "<what> announced", event). A job cut
// short by the node stopping counts as neither.
func (n *Node) contributionJob(ctx context.Context, job, what string, r uint64, deadline time.Time,
	work func(ctx context.Context) (*Announcement, error), done func(a *Announcement, took time.Duration, err error)) {
	n.startJob(ctx, job, func(ctx context.Context) func() {
		jctx, cancel := context.WithDeadline(ctx, deadline)
		defer cancel()
		t0 := time.Now()
		a, err := work(jctx)
		took := time.Since(t0)
		return func() {
			if done != nil {
				done(a, took, err)
			}
			if err != nil {
				if ctx.Err() == nil {
					n.metrics.missed.Add(1)
					n.log.Warn(what+" not announced", "round", r, "err", err)
					n.emit(Event{Kind: EventMissed, Round: r})
				}
				return
			}
			n.metrics.announced.Add(1)
			n.log.Info(what+" announced", "round", r, "loss", a.Loss, "reward", a.Reward, "bytes", a.Size, "cid", a.CID, "took", took.Round(time.Millisecond))
			c, _ := parseCID(a.CID)
			n.emit(Event{Kind: EventAnnounced, Round: r, Loss: a.Loss, Bytes: a.Size, CID: c})
		}
	})
}
