package node

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/trinity-net/trinity/p2p"
)

// Fork choice.
//
// Manifests chain by Prev, so two manifests built on the same parent are a
// fork. Forks happen when two validators publish for the same round (the
// fallback did not hear the lead in time) or when a validator publishes on a
// stale head (it was paused, partitioned or restarted and has not heard the
// manifests published meanwhile). Every peer settles a fork with the same
// rule, which depends only on the manifests, never on when or in which order
// they arrived:
//
//   - A manifest is applied only when it descends from the peer's head: its
//     Prev is the head, or its chain, walked back, reaches the head.
//   - Otherwise it forks from the peer's chain at some manifest P. The
//     branch after P that holds more manifests wins (the longest chain);
//     between equally long branches, the one whose first manifest after P is
//     for the earlier round wins (a manifest for a later round on the same
//     parent was built by a validator that missed the round in between), then
//     the one whose first manifest is signed by the lower validator rank, then
//     the lower CID.
//   - The peer switches to the winning branch (a reorg: it replays it from a
//     checkpoint) or drops the losing manifest.
//
// So the lowest rank wins a same-round race only while the round is the
// latest one: once a manifest is built on either side, that side is longer.
// A stale validator's manifest for round R on a parent older than the head
// loses to the branch the network built meanwhile, whatever its rank, so
// applied rounds are never rolled back in its favour. A time window on the
// rank preference would split peers whose clocks or delivery times fall on
// either side of it, which no later manifest could mend.

// maxChainView bounds the applied chain a node remembers.
const maxChainView = 64

// maxCandidates bounds the manifests kept for one round.
const maxCandidates = 8

// errForkLost is the fork choice rejecting a manifest's branch.
var errForkLost = errors.New("node: manifest's branch loses the fork choice")

// chainLink is one applied manifest, as the fork choice sees it.
type chainLink struct {
	cid          string
	prev         string // "" for the first manifest of the network
	round        uint64
	rank         int // signer's validator rank
	base, result Hash
}

func linkOf(mm *manifestMsg, g *Genesis) chainLink {
	return chainLink{cid: mm.cid.String(), prev: mm.m.Prev, round: mm.m.Round, rank: g.ValidatorRank(mm.sender), base: mm.m.Base, result: mm.m.Result}
}

func (n *Node) link(mm *manifestMsg) chainLink { return linkOf(mm, n.gen) }

// chainView is the tail of the chain a node applied, oldest first. root is
// the manifest links[0] builds on ("" for the genesis state); with no links,
// root is the head.
type chainView struct {
	root  string
	links []chainLink
}

func (v *chainView) headPos() int { return len(v.links) - 1 }

// position finds the manifest with CID c: -1 for root, i for links[i].
func (v *chainView) position(c string) (int, bool) {
	for i := len(v.links) - 1; i >= 0; i-- {
		if v.links[i].cid == c {
			return i, true
		}
	}
	return -1, c == v.root
}

func (v *chainView) hasRound(r uint64) bool {
	return slices.ContainsFunc(v.links, func(l chainLink) bool { return l.round == r })
}

func (v *chainView) clone() chainView {
	return chainView{root: v.root, links: slices.Clone(v.links)}
}

// attach replaces what follows links[join] (join -1: root; -2: everything)
// with the manifests of added that come after it.
func (v *chainView) attach(join int, added []chainLink) {
	switch {
	case join == -2:
		v.links = v.links[:0]
		if len(added) > 0 {
			v.root = added[0].prev
		}
	case join >= 0:
		v.links = v.links[:join+1]
		after := v.links[join].round
		added = slices.DeleteFunc(slices.Clone(added), func(l chainLink) bool { return l.round <= after })
	default:
		v.links = v.links[:0]
	}
	v.links = append(v.links, added...)
	if k := len(v.links) - maxChainView; k > 0 {
		v.root = v.links[k-1].cid
		v.links = slices.Delete(v.links, 0, k)
	}
}

// verdict is the fork choice's judgement of one manifest.
type verdict int

const (
	extendsHead verdict = iota // its parent is our head
	unknownFork                // its parent is not in our view: walk its chain
	winsFork                   // it forks from our chain and wins
	losesFork                  // it forks from our chain and loses
	alreadyHeld                // it is in our chain
)

// classify judges l by its parent alone.
func (v *chainView) classify(l chainLink) verdict {
	pos, ok := v.position(l.prev)
	switch {
	case !ok && len(v.links) > 0 && l.round < v.links[0].round:
		// Older than all we remember, on a parent we do not know: its
		// branch cannot be longer than ours.
		return losesFork
	case !ok:
		return unknownFork
	case pos == v.headPos():
		return extendsHead
	case v.links[pos+1].cid == l.cid:
		return alreadyHeld
	case pos >= 0 && l.round <= v.links[pos].round:
		return losesFork // a chain must go forward
	case beats(1, l, v.headPos()-pos, v.links[pos+1]):
		return winsFork
	}
	return losesFork
}

// beats reports whether a branch of n manifests starting with first is
// preferred to a branch of m manifests starting with rival, both built on
// the same manifest.
func beats(n int, first chainLink, m int, rival chainLink) bool {
	switch {
	case n != m:
		return n > m
	case first.round != rival.round:
		return first.round < rival.round
	case first.rank != rival.rank:
		return first.rank < rival.rank
	}
	return strings.Compare(first.cid, rival.cid) < 0
}

// judgeWalk judges a chain walked back from a target as far as cur, which
// is the walk's count-th manifest: join is where the chain meets the view
// (-2: before anything the view remembers), decided whether it did, reorg
// whether following it abandons some of the view.
func (v *chainView) judgeWalk(count int, cur chainLink) (join int, decided, reorg bool, err error) {
	if pos, ok := v.position(cur.prev); ok {
		if pos == v.headPos() {
			return pos, true, false, nil
		}
		if v.links[pos+1].cid == cur.cid {
			// cur is ours: the target descends from links[pos+1] but
			// not from the head, so it forks later; keep walking.
			return 0, false, false, nil
		}
		if pos >= 0 && cur.round <= v.links[pos].round {
			return 0, true, false, fmt.Errorf("%w: round %d built on round %d", errForkLost, cur.round, v.links[pos].round)
		}
		if !beats(count, cur, v.headPos()-pos, v.links[pos+1]) {
			return 0, true, false, fmt.Errorf("%w: %d manifests from round %d (rank %d) against our %d from round %d (rank %d)",
				errForkLost, count, cur.round, cur.rank, v.headPos()-pos, v.links[pos+1].round, v.links[pos+1].rank)
		}
		return pos, true, true, nil
	}
	if len(v.links) > 0 && cur.round <= v.links[0].round {
		// It forked before anything we remember, so our branch holds at
		// least every manifest we remember.
		if count <= len(v.links) {
			return 0, true, false, fmt.Errorf("%w: it forked before round %d", errForkLost, v.links[0].round)
		}
		return -2, true, true, nil
	}
	return 0, false, false, nil
}

// loadView rebuilds the applied chain from the manifests in the local blob
// store, walking back from the last manifest applied.
func loadView(st *p2p.Store, g *Genesis, last cid.Cid) chainView {
	if !last.Defined() {
		return chainView{}
	}
	v := chainView{root: last.String()}
	var rev []chainLink
	for c := last; len(rev) < maxChainView; {
		b, err := st.Get(c)
		if err != nil {
			break
		}
		mm, err := parseManifestBlob(b, g)
		if err != nil || (len(rev) > 0 && mm.m.Round >= rev[len(rev)-1].round) {
			break
		}
		rev = append(rev, linkOf(mm, g))
		v.root = mm.m.Prev
		if mm.m.Prev == "" {
			break
		}
		if c, err = cid.Decode(mm.m.Prev); err != nil {
			break
		}
	}
	slices.Reverse(rev)
	v.links = rev
	return v
}

// sortCandidates orders a round's manifests as the fork choice prefers
// them among siblings: lower rank, then lower CID.
func (n *Node) sortCandidates(ms []*manifestMsg) {
	slices.SortFunc(ms, func(a, b *manifestMsg) int {
		if ra, rb := n.gen.ValidatorRank(a.sender), n.gen.ValidatorRank(b.sender); ra != rb {
			return ra - rb
		}
		return bytes.Compare(a.cid.Bytes(), b.cid.Bytes())
	})
}

// reject drops a manifest the fork choice refused.
func (n *Node) reject(mm *manifestMsg, why error) {
	r := mm.m.Round
	n.metrics.rejected.Add(1)
	n.log.Info("manifest rejected", "round", r, "signer", mm.sender, "cid", mm.cid, "reason", why)
	if len(n.pending[r]) == 0 && !n.view.hasRound(r) {
		delete(n.seenMan, r) // a fallback validator may still publish the round
	}
	n.emit(Event{Kind: EventRejected, Round: r, Other: mm.sender, CID: mm.cid})
}

// rejectChoice drops a manifest whose contributions do not follow from its
// score vectors (checkChoice). It never entered the round's candidates, so
// a fallback validator still publishes the round.
func (n *Node) rejectChoice(mm *manifestMsg, why error) {
	if _, dup := n.seenCID[mm.cid]; dup {
		return
	}
	n.seenCID[mm.cid] = mm.m.Round
	n.metrics.rejected.Add(1)
	n.log.Warn("manifest rejected", "round", mm.m.Round, "signer", mm.sender, "cid", mm.cid, "reason", why)
	n.emit(Event{Kind: EventRejected, Round: mm.m.Round, Other: mm.sender, CID: mm.cid})
}

// leadSlot is when a validator of the given rank may publish round r's
// manifest, if at all. One that is in step (it holds the manifests of the
// rounds before r but perhaps the last, still being applied, and its loop
// has not stalled this round) publishes in its rank's slot. One that is
// behind (it missed a whole round's manifest) or whose loop stalled (the
// process was paused, or it just started) may be stale: it publishes only
// after every validator in step (slot rank+V, before the round ends) if no
// manifest has come. One that is both does not publish the round at all: a
// stale validator catches up instead of publishing.
func (n *Node) leadSlot(r uint64, rank int) (time.Time, bool) {
	c := n.clock
	behind := n.next+1 < r
	stalled := n.liveSince.After(c.RoundStart(r))
	switch {
	case !behind && !stalled:
		return c.ManifestAt(r, rank), true
	case behind && stalled:
		return c.RoundStart(r + 1), false
	}
	// Past every validator in step, but before the round ends.
	f := c.Hyper.ManifestAt + float64(rank+len(n.gen.Validators))*c.Hyper.FallbackStep
	f = min(f, max(1-c.Hyper.FallbackStep/2, c.Hyper.ManifestAt+float64(rank)*c.Hyper.FallbackStep))
	return c.At(r, f), true
}

// checkStall notes that the loop woke long after it planned to, by half a
// round or more: the process was paused (or starved far beyond what load
// alone does), so what it knows may be stale.
func (n *Node) checkStall(now time.Time) {
	slack := max(n.clock.Length/2, time.Second)
	if !n.planned.IsZero() && now.Sub(n.planned) > slack {
		n.liveSince = now
		n.log.Warn("event loop stalled", "late", now.Sub(n.planned).Round(time.Millisecond))
	}
}
