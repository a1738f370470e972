package node

import (
	"math"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// dashState collects what the dashboard shows. Its hooks run on the loop
// goroutine (except ReportCompute and the log capture, which lock), so the
// collection costs a few map writes per message; the views are rebuilt at
// most once a second, or when something changed, and published with Status.
type dashState struct {
	hist      *history
	bytesIn   int64 // counters as last folded into hist
	bytesOut  int64
	head      uint64 // highest manifest round seen + 1
	seen      map[peer.ID]*peerSeen
	scores    map[uint64]map[peer.ID]*Scores // round -> validator -> scores
	rejects   []Rejection                    // ring, oldest first once full
	dirty     bool
	builtAt   time.Time
	view      dashView
	bootIDs   map[peer.ID]bool // the bootstrap peers this node dials
	errs      errorCapture
	computeMu sync.Mutex
	compute   *ComputeStatus
	samples   []computeSample // reported, not yet folded into hist
}

type peerSeen struct {
	trainer      bool
	lastAnnounce uint64
	announced    bool
	lastContrib  uint64
	contributed  bool
	wasRelayed   bool // seen over a relay once: a later direct connection was hole-punched
	lastOnline   time.Time
}

type computeSample struct {
	round uint64
	v     float64
}

// dashView is the published part: immutable once built.
type dashView struct {
	history    []RoundPoint
	peers      []PeerInfo
	peersTotal int
	table      *ScoreTable
	agreement  *Agreement
	rejections []Rejection
}

func newDashState() *dashState {
	return &dashState{hist: newHistory(historyCap), seen: map[peer.ID]*peerSeen{},
		scores: map[uint64]map[peer.ID]*Scores{}, dirty: true}
}

func (d *dashState) peer(p peer.ID) *peerSeen {
	s := d.seen[p]
	if s == nil {
		s = &peerSeen{}
		d.seen[p] = s
	}
	return s
}

// onAnnouncement: a trainer announced a contribution. Anyone may announce,
// so past maxSeen peers, new ones are not tracked (until old ones age out).
func (d *dashState) onAnnouncement(from peer.ID, a *Announcement) {
	if d.seen[from] == nil && len(d.seen) >= maxSeen {
		return
	}
	s := d.peer(from)
	s.trainer, s.announced = true, true
	s.lastAnnounce = max(s.lastAnnounce, a.Round)
	d.dirty = true
}

// onManifest: a manifest (not yet applied) names the round's contributors.
func (d *dashState) onManifest(m *Manifest) {
	d.head = max(d.head, m.Round+1)
	for _, c := range m.Contributions {
		p, err := peer.Decode(c.Peer)
		if err != nil {
			continue
		}
		s := d.peer(p)
		s.trainer, s.contributed = true, true
		s.lastContrib = max(s.lastContrib, m.Round)
	}
	d.dirty = true
}

// onScores files a validator's scores (own ones included) and, for self,
// the score of its own contribution.
func (d *dashState) onScores(self, from peer.ID, s *Scores, oldest uint64) {
	if s.Round < oldest {
		return
	}
	if d.scores[s.Round] == nil {
		d.scores[s.Round] = map[peer.ID]*Scores{}
	}
	if d.scores[s.Round][from] != nil {
		return
	}
	d.scores[s.Round][from] = s
	for r := range d.scores {
		if r+dashRounds <= s.Round {
			delete(d.scores, r)
		}
	}
	for _, e := range s.Entries {
		if e.Trainer == self.String() {
			sc := e.Score
			if !e.OK {
				sc = 0
			}
			d.hist.touch(s.Round).score.add(sc)
		}
		if !e.OK {
			d.reject(Rejection{Round: s.Round, Validator: from.String(), Trainer: e.Trainer, Kind: rejectionKind(e.Reason), Reason: e.Reason})
		}
	}
	d.dirty = true
}

func (d *dashState) reject(r Rejection) {
	if len(d.rejects) == dashRejections {
		copy(d.rejects, d.rejects[1:])
		d.rejects = d.rejects[:dashRejections-1]
	}
	d.rejects = append(d.rejects, r)
	d.dirty = true
}

// onEvent folds the node's own events into the history.
func (d *dashState) onEvent(e Event) {
	switch e.Kind {
	case EventApplied:
		p := d.hist.touch(e.Round)
		p.valLoss.add(float64(e.ValLoss))
		p.contrib.add(float64(e.Count))
	case EventAnnounced:
		d.hist.touch(e.Round).trainLoss.add(float64(e.Loss))
	default:
		return
	}
	d.dirty = true
}

// observe folds the byte counters into the current round and the compute
// samples reported since the last call.
func (d *dashState) observe(r uint64, in, out int64) {
	if in != d.bytesIn || out != d.bytesOut || len(d.hist.pts) == 0 {
		p := d.hist.touch(r)
		p.bytesIn += in - d.bytesIn
		p.bytesOut += out - d.bytesOut
		d.bytesIn, d.bytesOut = in, out
	}
	d.computeMu.Lock()
	samples := d.samples
	d.samples = nil
	d.computeMu.Unlock()
	for _, s := range samples {
		d.hist.touch(s.round).throughput.add(s.v)
		d.dirty = true
	}
}

// snapshot returns the current views, rebuilding them when something
// changed (at most once per second) or every few seconds for latencies.
func (d *dashState) snapshot(n *Node, now time.Time) dashView {
	if now.Sub(d.builtAt) < time.Second || (!d.dirty && now.Sub(d.builtAt) < 5*time.Second) {
		return d.view
	}
	d.builtAt, d.dirty = now, false
	d.view = dashView{history: d.hist.export(), rejections: slices.Clone(d.rejects)}
	d.view.peers, d.view.peersTotal = d.peerTable(n, now)
	d.view.table = d.scoreTable(n)
	d.view.agreement = d.agreement()
	return d.view
}

// ReportCompute records an attested throughput measurement of round (units
// per second); safe from any goroutine. The dashboard then shows the
// compute section and the throughput history.
func (n *Node) ReportCompute(round uint64, c ComputeStatus) {
	d := n.dash
	if math.IsNaN(c.Throughput) || math.IsInf(c.Throughput, 0) {
		return
	}
	c.Round = round
	d.computeMu.Lock()
	defer d.computeMu.Unlock()
	d.compute = &c
	if c.Attested && len(d.samples) < historyCap {
		d.samples = append(d.samples, computeSample{round, c.Throughput})
	}
}

func (d *dashState) computeStatus() *ComputeStatus {
	d.computeMu.Lock()
	defer d.computeMu.Unlock()
	if d.compute == nil {
		return nil
	}
	c := *d.compute
	return &c
}

// dashScores files gossiped scores (loop goroutine).
func (n *Node) dashScores(from peer.ID, s *Scores) {
	var oldest uint64
	if r := n.clock.Round(time.Now()); r > dashRounds {
		oldest = r - dashRounds
	}
	n.dash.onScores(n.p2p.ID(), from, s, oldest)
}

// fillDashboard adds the dashboard's sections to a status snapshot (loop
// goroutine).
func (n *Node) fillDashboard(s *Status, now time.Time) {
	d := n.dash
	d.observe(s.Round, s.BytesIn, s.BytesOut)
	v := d.snapshot(n, now)
	s.HeadRound = max(d.head, n.next)
	s.Behind = s.HeadRound - n.next
	s.LastError = d.errs.note()
	s.History, s.PeerList, s.PeersSeen = v.history, v.peers, v.peersTotal
	s.ScoreTable, s.Agreement, s.Rejections = v.table, v.agreement, v.rejections
	s.Compute = d.computeStatus()
}
