package node

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
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

// rejectionKind sorts a verdict's reason into the kinds the dashboard
// counts. The reasons come from package verify and the validator role.
func rejectionKind(reason string) string {
	r := strings.ToLower(reason)
	has := func(s ...string) bool {
		for _, x := range s {
			if strings.Contains(r, x) {
				return true
			}
		}
		return false
	}
	switch {
	case has("copied", "duplicate"):
		return "copied"
	case has("base state", "blob for round"):
		return "stale"
	case has("non-finite", "not finite", "norm"):
		return "poisoned"
	case has("no improvement", "improves less"):
		return "unhelpful"
	case has("not served"):
		return "unavailable"
	case has("not scored in time"):
		return "late"
	}
	return "malformed"
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

// currentScores are the smoothed scores: this validator's own, else, over
// the validators, the mean of the latest smoothed score each published for
// the trainer in the kept rounds (a round's scores name only the trainers
// that contributed to it).
func (d *dashState) currentScores(n *Node) map[string]float64 {
	if n.va != nil {
		return n.va.scoresSnapshot()
	}
	type key struct {
		v       peer.ID
		trainer string
	}
	latest := map[key]float64{}
	for _, r := range d.keptRounds() {
		for v, s := range d.scores[r] {
			for _, e := range s.Entries {
				if !math.IsNaN(e.Smoothed) && !math.IsInf(e.Smoothed, 0) {
					latest[key{v, e.Trainer}] = e.Smoothed
				}
			}
		}
	}
	sum, cnt := map[string]float64{}, map[string]float64{}
	for k, s := range latest {
		sum[k.trainer] += s
		cnt[k.trainer]++
	}
	for k := range sum {
		sum[k] /= cnt[k]
	}
	return sum
}

// keptRounds lists the rounds with scores, oldest first.
func (d *dashState) keptRounds() []uint64 {
	rs := make([]uint64, 0, len(d.scores))
	for r := range d.scores {
		rs = append(rs, r)
	}
	slices.Sort(rs)
	return rs
}

// scoreTable is one validator's verdicts per trainer and round.
func (d *dashState) scoreTable(n *Node) *ScoreTable {
	var src peer.ID
	if n.va != nil {
		src = n.p2p.ID()
	} else {
		best := -1
		for _, byVal := range d.scores {
			for v := range byVal {
				if rk := n.gen.ValidatorRank(v); rk >= 0 && (best < 0 || rk < best) {
					best, src = rk, v
				}
			}
		}
		if best < 0 {
			return nil
		}
	}
	t := &ScoreTable{Validator: src.String()}
	rows := map[string]*ScoreRow{}
	for _, r := range d.keptRounds() {
		s := d.scores[r][src]
		if s == nil {
			continue
		}
		col := len(t.Rounds)
		t.Rounds = append(t.Rounds, r)
		for _, e := range s.Entries {
			row := rows[e.Trainer]
			if row == nil {
				if len(rows) == dashTrainers {
					continue
				}
				row = &ScoreRow{Trainer: e.Trainer}
				rows[e.Trainer] = row
			}
			for len(row.Cells) < col {
				row.Cells = append(row.Cells, nil)
			}
			c := &ScoreCell{Score: e.Score, OK: e.OK}
			if !e.OK {
				c.Kind, c.Reason = rejectionKind(e.Reason), e.Reason
			}
			row.Cells = append(row.Cells, c)
			row.Smoothed = e.Smoothed
		}
	}
	if len(t.Rounds) == 0 {
		return nil
	}
	for _, row := range rows {
		for len(row.Cells) < len(t.Rounds) {
			row.Cells = append(row.Cells, nil)
		}
		t.Rows = append(t.Rows, *row)
	}
	slices.SortFunc(t.Rows, func(a, b ScoreRow) int {
		if c := cmp.Compare(b.Smoothed, a.Smoothed); c != 0 {
			return c
		}
		return strings.Compare(a.Trainer, b.Trainer)
	})
	return t
}

// agreement compares the validators' verdicts on the contributions that
// several of them scored; nil when fewer than two validators published.
func (d *dashState) agreement() *Agreement {
	type tally struct{ n, agree int }
	per := map[peer.ID]*tally{}
	a := &Agreement{}
	for _, r := range d.keptRounds() {
		byVal := d.scores[r]
		if len(byVal) < 2 {
			continue
		}
		type verdict struct {
			v     peer.ID
			ok    bool
			score float64
		}
		byTrainer := map[string][]verdict{}
		for v, s := range byVal {
			for _, e := range s.Entries {
				if e.Reason == "not scored in time" {
					continue // no verdict
				}
				sc := e.Score
				if !e.OK {
					sc = 0 // as published: a rejected contribution scores 0
				}
				byTrainer[e.Trainer] = append(byTrainer[e.Trainer], verdict{v, e.OK, sc})
			}
		}
		ra := RoundAgreement{Round: r, Validators: len(byVal)}
		unanimous := 0
		for _, vs := range byTrainer {
			if len(vs) < 2 {
				continue
			}
			ra.Trainers++
			oks, lo, hi := 0, math.Inf(1), math.Inf(-1)
			for _, x := range vs {
				if x.ok {
					oks++
				}
				lo, hi = min(lo, x.score), max(hi, x.score)
			}
			if oks == 0 || oks == len(vs) {
				unanimous++
			}
			if !math.IsNaN(hi - lo) {
				ra.MaxSpread = max(ra.MaxSpread, hi-lo)
			}
			majority := 2*oks >= len(vs) // ties count as accepted
			for _, x := range vs {
				t := per[x.v]
				if t == nil {
					t = &tally{}
					per[x.v] = t
				}
				t.n++
				if x.ok == majority {
					t.agree++
				}
			}
		}
		if ra.Trainers > 0 {
			ra.Unanimous = float64(unanimous) / float64(ra.Trainers)
		}
		a.Rounds = append(a.Rounds, ra)
	}
	if len(a.Rounds) == 0 {
		return nil
	}
	for v, t := range per {
		va := ValidatorAgreement{Validator: v.String(), Verdicts: t.n}
		if t.n > 0 {
			va.Agree = float64(t.agree) / float64(t.n)
		}
		a.Validators = append(a.Validators, va)
	}
	slices.SortFunc(a.Validators, func(x, y ValidatorAgreement) int { return strings.Compare(x.Validator, y.Validator) })
	return a
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

// connRow is a connected peer's row. A direct connection to a peer that was
// reached over a relay before is taken to be hole-punched (DCUtR upgrades
// relayed connections that way).
func connRow(ci p2p.ConnInfo, wasRelayed bool) *PeerInfo {
	pi := &PeerInfo{Peer: ci.Peer.String(), Role: "peer", Connected: true, Addr: "direct", Transport: ci.Transport}
	switch {
	case ci.Relayed:
		pi.Addr = "relayed"
	case wasRelayed:
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
	return Status{Network: id.String(), Peer: p.ID().String(), Role: "bootstrap", Peers: len(p.Peers()),
		PeerList: pl, PeersSeen: len(pl)}
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

// dashScores files gossiped scores (loop goroutine).
func (n *Node) dashScores(from peer.ID, s *Scores) {
	var oldest uint64
	if r := n.clock.Round(time.Now()); r > dashRounds {
		oldest = r - dashRounds
	}
	n.dash.onScores(n.p2p.ID(), from, s, oldest)
}

// dashCopied records a contribution dropped for sharing its blob with others.
func (n *Node) dashCopied(r uint64, p peer.ID, same int) {
	n.dash.reject(Rejection{Round: r, Validator: n.p2p.ID().String(), Trainer: p.String(), Kind: "copied",
		Reason: fmt.Sprintf("copied: the same blob as %d other trainer(s)", same-1)})
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
