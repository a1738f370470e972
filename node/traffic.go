package node

import "github.com/trinity-net/trinity/p2p"

// roundTraffic measures what the node's libp2p streams carried per round
// (gossip, blobs, DHT and protocol messages). Owned by the loop.
type roundTraffic struct {
	round     uint64      // the round being measured
	started   bool        // round is set
	start     p2p.Traffic // counters when it began
	last      p2p.Traffic // the last complete round's traffic
	lastRound uint64      // which round that was
	closed    bool        // last is set
}

// trackTraffic closes the measured round when the clock has moved past it,
// and reports it (EventTraffic: Bytes received, Count sent, both in bytes).
func (n *Node) trackTraffic(r uint64) {
	t := &n.traffic
	now := n.p2p.Traffic()
	switch {
	case !t.started:
		t.round, t.start, t.started = r, now, true
	case r > t.round:
		t.last, t.lastRound, t.closed = diffTraffic(now, t.start), t.round, true
		n.emit(Event{Kind: EventTraffic, Round: t.round, Bytes: t.last.In, Count: int(t.last.Out)})
		t.round, t.start = r, now
	}
}

func diffTraffic(a, b p2p.Traffic) p2p.Traffic {
	return p2p.Traffic{In: a.In - b.In, Out: a.Out - b.Out, GossipIn: a.GossipIn - b.GossipIn, GossipOut: a.GossipOut - b.GossipOut,
		BlobIn: a.BlobIn - b.BlobIn, BlobOut: a.BlobOut - b.BlobOut, DHTIn: a.DHTIn - b.DHTIn, DHTOut: a.DHTOut - b.DHTOut}
}
