package node

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/verify/replay"
)

// hostileModes are the ways the hostile trainer of TestReplayHostileResponses
// answers, one per round, with the failure every one must give.
var hostileModes = []struct {
	name   string
	reason replay.Reason
	tamper func(b []byte, n int) ([]byte, int64, bool)
}{
	{"garbage", replay.Malformed, func(b []byte, _ int) ([]byte, int64, bool) {
		out := make([]byte, len(b))
		for i := range out {
			out[i] = byte(i*131 + 7)
		}
		return out, int64(len(out)), true
	}},
	{"truncated", replay.Malformed, func(b []byte, _ int) ([]byte, int64, bool) { return b[:len(b)-100], int64(len(b) - 100), true }},
	{"wrong merkle path", replay.BadProof, func(b []byte, n int) ([]byte, int64, bool) {
		// The first hash of the proof of leaf j follows state j and the
		// proof's length byte.
		b[56+replay.SnapshotSize(n, replay.PartsAll)+1] ^= 1
		return b, int64(len(b)), true
	}},
	{"wrong shape", replay.Malformed, func(b []byte, _ int) ([]byte, int64, bool) {
		b[56+8]++ // state j's vector length
		return b, int64(len(b)), true
	}},
	{"non-finite", replay.Malformed, func(b []byte, _ int) ([]byte, int64, bool) {
		copy(b[56+24:], []byte{0, 0, 0xc0, 0x7f}) // params[0] = NaN
		return b, int64(len(b)), true
	}},
	{"oversized, announced", replay.Malformed, func(b []byte, n int) ([]byte, int64, bool) {
		b = append(b, make([]byte, replay.MaxResponseSize(n))...)
		return b, int64(len(b)), true
	}},
	{"oversized, size understated", replay.Unanswered, func(b []byte, n int) ([]byte, int64, bool) {
		size := int64(len(b))
		return append(b, make([]byte, replay.MaxResponseSize(n))...), size, true
	}},
	{"silent", replay.Unanswered, func(b []byte, _ int) ([]byte, int64, bool) { return nil, 0, false }},
}

// TestReplayHostileResponses runs, with every trainer challenged every
// round: a hostile trainer answering each round in another malformed way
// (garbage, truncated, wrong Merkle path, wrong shape, NaN, oversized,
// silent), an honest trainer that abandons two rounds after training them
// (its optimizer state must roll back, or its next round's start would not
// match its carry), and an honest trainer restarted right after announcing
// (it answers from its files). The hostile trainer fails every round with
// the expected reason; the validator keeps running (every round applied,
// states agree) and keeps no response blob; the honest trainers are never
// flagged.
func TestReplayHostileResponses(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end network test")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	g := replayTestGenesis()
	tn, err := NewTestnet(ctx, TestnetConfig{Dir: t.TempDir(), Trainers: 3, Model: g, Logger: testLogger(), StartDelay: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	if err := tn.Run(ctx); err != nil {
		t.Fatal(err)
	}
	ms := tn.Members()
	np := tn.Genesis.Model.NumParams()
	restarted, abandoner, hostile := 1, 2, 3
	var mu sync.Mutex
	modeOf := map[uint64]int{} // round -> hostile mode
	ms[hostile].Node.tr.replay.hooks.Store(&replayHooks{tamper: func(r uint64, _ int, b []byte) ([]byte, int64, bool) {
		mu.Lock()
		i, ok := modeOf[r]
		if !ok {
			i = len(modeOf) % len(hostileModes)
			modeOf[r] = i
		}
		mu.Unlock()
		return hostileModes[i].tamper(b, np)
	}})
	abandoned := map[uint64]bool{2: true, 5: true}
	ms[abandoner].Node.tr.replay.hooks.Store(&replayHooks{abandon: func(r uint64) bool { return abandoned[r] }})

	L := tn.Genesis.Params.RoundLength()
	clock := NewClock(tn.Genesis)
	rounds := uint64(len(hostileModes) + 3)
	for r := uint64(0); r < rounds; r++ {
		if r == 3 {
			// Restart trainer-0 after it announced round 3, before the
			// round's challenges.
			time.Sleep(time.Until(clock.At(3, g.Params.AnnounceBy+0.05)))
			if err := tn.Stop(restarted); err != nil {
				t.Fatal(err)
			}
			if err := tn.Restart(restarted); err != nil {
				t.Fatal(err)
			}
		}
		rep, err := tn.WaitRound(ctx, r, 4*L+20*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.HashesAgree {
			t.Errorf("round %d: peers disagree on the state", r)
		}
	}
	ms = tn.Members()
	log := ms[0].Node.ReplayLog()
	fails := map[peer.ID]map[uint64]string{}
	passes := map[peer.ID]int{}
	for _, rec := range log {
		switch rec.Kind {
		case "fail":
			if fails[rec.Trainer] == nil {
				fails[rec.Trainer] = map[uint64]string{}
			}
			fails[rec.Trainer][rec.Round] = rec.Reason
		case "pass":
			passes[rec.Trainer]++
		}
	}
	for _, i := range []int{restarted, abandoner} {
		if len(fails[ms[i].Peer]) > 0 {
			t.Errorf("honest %s flagged: %v", ms[i].Name, fails[ms[i].Peer])
		}
		if passes[ms[i].Peer] == 0 {
			t.Errorf("honest %s never passed a challenge", ms[i].Name)
		}
	}
	t.Logf("passes: %s %d, %s %d", ms[restarted].Name, passes[ms[restarted].Peer], ms[abandoner].Name, passes[ms[abandoner].Peer])
	mu.Lock()
	defer mu.Unlock()
	tested := map[int]bool{}
	for r, i := range modeOf {
		if r+2 >= rounds {
			continue // its deadline may not have passed
		}
		m := hostileModes[i]
		got := fails[ms[hostile].Peer][r]
		t.Logf("round %d: %-28s -> %s", r, m.name, got)
		if got != m.reason.String() {
			t.Errorf("round %d: hostile response %q failed with %q, want %q", r, m.name, got, m.reason)
		}
		tested[i] = true
	}
	if len(tested) < len(hostileModes)-2 {
		t.Errorf("only %d of %d hostile modes were exercised", len(tested), len(hostileModes))
	}
	// A trainer answers only the steps the beacon gives: a challenge naming
	// others, or more of them, is refused; the right one is accepted.
	trn, vid := ms[abandoner].Node, ms[0].Peer
	type outcome struct {
		bad, good []int
		err       error
	}
	res := make(chan outcome, 1)
	trn.post(ctx, func() {
		x := trn.tr.replay
		var o outcome
		defer func() { res <- o }()
		var r uint64
		var cm replay.Commitment
		for r = rounds; r > 0; r-- {
			if c, err := x.rec.Committed(r); err == nil {
				cm = c
				break
			}
		}
		beacon := Hash{byte(r), 1, 2, 3}
		want, err := replay.Derive(beacon[:], r, vid.String(), trn.ID().String(), cm, replay.Policy{Rate: 1, Checks: 1})
		if err != nil || cm.Steps == 0 {
			o.err = fmt.Errorf("no committed round to challenge (%v)", err)
			return
		}
		x.pending = nil
		delete(x.seen, respKey{r, vid}) // its real challenge of that round was answered
		j := want[0].Step
		for _, steps := range [][]int{{(j + 1) % cm.Steps}, {j, j}} {
			x.onChallenge(vid, &ReplayChallenge{V: WireVersion, Round: r, Trainer: trn.ID().String(), Beacon: beacon, Steps: steps})
		}
		o.bad = x.pendingSteps()
		x.onChallenge(vid, &ReplayChallenge{V: WireVersion, Round: r, Trainer: trn.ID().String(), Beacon: beacon, Steps: []int{j}})
		o.good = x.pendingSteps()
	})
	if o := <-res; o.err != nil {
		t.Error(o.err)
	} else if len(o.bad) != 0 || len(o.good) != 1 {
		t.Errorf("bogus challenges left %v pending (want none), the right one %v (want one step)", o.bad, o.good)
	}

	// The validator keeps no response blob (bounded disk).
	for _, info := range ms[0].Node.P2P().Store().List() {
		if info.Size > 1<<20 {
			t.Errorf("validator still stores a %d-byte blob (a response?)", info.Size)
		}
	}
}
