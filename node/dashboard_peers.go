package node

import (
	"cmp"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
)

// peerTable lists connected peers and those seen in gossip of the kept
// rounds, validators first, then by score.
func (d *dashState) peerTable(n *Node, now time.Time) ([]PeerInfo, int) {
	self := n.p2p.ID()
	rows := map[peer.ID]*PeerInfo{}
	var totalStake uint64
	for _, v := range n.gen.Validators {
		totalStake += v.Stake
	}
	for _, ci := range n.p2p.Conns() {
		s := d.peer(ci.Peer)
		s.lastOnline = now
		rows[ci.Peer] = connRow(ci, s.wasRelayed)
		s.wasRelayed = s.wasRelayed || ci.Relayed
	}
	keep := time.Duration(n.gen.Params.KeepRounds) * n.gen.Params.RoundLength()
	for p, s := range d.seen {
		if p == self {
			continue
		}
		if rows[p] == nil {
			if now.Sub(s.lastOnline) > keep && !s.trainer {
				delete(d.seen, p)
				continue
			}
			rows[p] = &PeerInfo{Peer: p.String(), Role: "peer"}
		}
		pi := rows[p]
		if s.trainer {
			pi.Role = "trainer"
		}
		if s.announced {
			pi.LastSeen = &s.lastAnnounce
		}
		if s.contributed {
			pi.LastRound = &s.lastContrib
		}
	}
	// Trainers gone for longer than the kept rounds drop out of the table.
	r := n.clock.Round(now)
	for p, s := range d.seen {
		last := max(s.lastAnnounce, s.lastContrib)
		if s.trainer && rows[p] != nil && !rows[p].Connected && last+uint64(n.gen.Params.KeepRounds) < r {
			delete(rows, p)
			delete(d.seen, p)
		}
	}
	if d.bootIDs == nil {
		d.bootIDs = map[peer.ID]bool{}
		boots := n.cfg.Bootstrap
		if boots == nil {
			boots = n.gen.Bootstrap
		}
		for _, a := range boots {
			if ai, err := peer.AddrInfoFromString(a); err == nil {
				d.bootIDs[ai.ID] = true
			}
		}
	}
	scores := d.currentScores(n)
	for p, pi := range rows {
		if d.bootIDs[p] && pi.Role != "trainer" {
			pi.Role = "bootstrap"
		}
		if rank := n.gen.ValidatorRank(p); rank >= 0 {
			pi.Role = "validator"
			if totalStake > 0 {
				sh := float64(n.gen.Validators[rank].Stake) / float64(totalStake)
				pi.StakeShare = &sh
			}
		}
		if sc, ok := scores[p.String()]; ok {
			pi.Score = &sc
		}
	}
	out := make([]PeerInfo, 0, len(rows))
	for _, pi := range rows {
		out = append(out, *pi)
	}
	roleOrder := map[string]int{"validator": 0, "trainer": 1, "bootstrap": 2, "relay": 3, "peer": 4}
	slices.SortFunc(out, func(a, b PeerInfo) int {
		if c := cmp.Compare(roleOrder[a.Role], roleOrder[b.Role]); c != 0 {
			return c
		}
		if c := cmp.Compare(deref(b.Score), deref(a.Score)); c != 0 {
			return c
		}
		return strings.Compare(a.Peer, b.Peer)
	})
	total := len(out)
	if len(out) > dashPeers {
		out = out[:dashPeers]
	}
	return out, total
}

func deref(f *float64) float64 {
	if f == nil {
		return math.Inf(-1)
	}
	return *f
}

// connRow is a connected peer's row. A direct connection to a peer that was
// reached over a relay before, or that still has a relayed connection open
// beside it, is taken to be hole-punched (DCUtR upgrades relayed
// connections that way).
func connRow(ci p2p.ConnInfo, wasRelayed bool) *PeerInfo {
	pi := &PeerInfo{Peer: ci.Peer.String(), Role: "peer", Connected: true, Addr: "direct", Transport: ci.Transport}
	switch {
	case ci.Relayed:
		pi.Addr = "relayed"
	case wasRelayed || ci.Upgraded:
		pi.Addr = "hole-punched"
	}
	if ci.Relay {
		pi.Role = "relay"
	}
	if ci.Latency > 0 {
		ms := float64(ci.Latency.Microseconds()) / 1000
		pi.LatencyMS = &ms
	}
	return pi
}

// bootstrapStatus is the status of a bootstrap node: it holds no state, so
// its peers are all there is to show.
func bootstrapStatus(p *p2p.Node, id p2p.NetworkID, g *Genesis) Status {
	pl := bootstrapPeers(p, g)
	s := Status{Network: id.String(), Peer: p.ID().String(), Role: "bootstrap", Peers: len(p.Peers()),
		PeerList: pl, PeersSeen: len(pl)}
	if g != nil {
		now := time.Now()
		c := NewClock(g)
		s.Round, s.Phase = c.Round(now), c.Phase(now)
	}
	return s
}

// bootstrapPeers is the peer table of a bootstrap node, which follows no
// gossip: connected peers, validators named by the genesis.
func bootstrapPeers(p *p2p.Node, g *Genesis) []PeerInfo {
	var out []PeerInfo
	for _, ci := range p.Conns() {
		pi := connRow(ci, false)
		if g != nil && g.ValidatorRank(ci.Peer) >= 0 {
			pi.Role = "validator"
		}
		out = append(out, *pi)
		if len(out) == dashPeers {
			break
		}
	}
	return out
}
