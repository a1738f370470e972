package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/trinity-net/trinity/p2p"
)

// Round phases whose durations the node measures.
const (
	phaseTrain     = "train"
	phaseCompress  = "compress"
	phaseAnnounce  = "announce"
	phaseFetch     = "fetch"
	phaseValidate  = "validate"
	phaseAggregate = "aggregate"
	phaseScreen    = "screen" // validators' round-wide screens (copies, outliers)
)

var phaseNames = []string{phaseTrain, phaseCompress, phaseAnnounce, phaseFetch, phaseValidate, phaseAggregate, phaseScreen, phaseReplayRespond, phaseReplayCheck}

// metrics are counters shared by the loop and its goroutines.
type metrics struct {
	bytesIn, bytesOut atomic.Int64 // payloads: gossip payloads and blobs
	msgsIn, msgsOut   atomic.Int64
	blobsIn           atomic.Int64
	applied, catchups atomic.Int64
	reorgs, rejected  atomic.Int64
	announced, missed atomic.Int64
	mu                sync.Mutex
	phaseSum          map[string]time.Duration
	phaseCount        map[string]int64
}

func (m *metrics) observe(phase string, d time.Duration) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.phaseSum == nil {
		m.phaseSum, m.phaseCount = map[string]time.Duration{}, map[string]int64{}
	}
	m.phaseSum[phase] += d
	m.phaseCount[phase]++
}

// PhaseStat is the total time spent in a phase and how often.
type PhaseStat struct {
	Seconds float64 `json:"seconds"`
	Count   int64   `json:"count"`
}

func (m *metrics) phases() map[string]PhaseStat {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]PhaseStat{}
	for _, p := range phaseNames {
		out[p] = PhaseStat{Seconds: m.phaseSum[p].Seconds(), Count: m.phaseCount[p]}
	}
	return out
}

// Status is a node's state as the HTTP endpoint reports it.
type Status struct {
	Network            string               `json:"network"`
	Peer               string               `json:"peer"`
	Role               string               `json:"role"`
	Round              uint64               `json:"round"` // by the clock
	Phase              string               `json:"phase"`
	StateRound         uint64               `json:"state_round"` // next manifest round to apply
	StateHash          string               `json:"state_hash"`
	Head               string               `json:"head,omitempty"` // CID of the last manifest applied
	CatchingUp         bool                 `json:"catching_up"`
	Busy               string               `json:"busy,omitempty"`
	Peers              int                  `json:"peers"`
	LastLoss           *float64             `json:"last_loss,omitempty"` // trainer: mean inner loss
	ValLoss            *float64             `json:"val_loss,omitempty"`  // validator: global model
	Contributors       int                  `json:"contributors"`        // in the last manifest applied
	Checkpoint         CheckpointRef        `json:"checkpoint"`
	Scores             map[string]float64   `json:"scores,omitempty"`              // validator: smoothed
	ConsensusAgreement map[string]float64   `json:"validator_agreement,omitempty"` // validator: other validators' agreement with the consensus
	BytesIn            int64                `json:"bytes_in"`                      // every libp2p stream byte (see p2p.Traffic)
	BytesOut           int64                `json:"bytes_out"`                     //
	Traffic            p2p.Traffic          `json:"traffic"`                       // the same by protocol class
	RoundBytes         RoundBytes           `json:"round_bytes"`
	PayloadIn          int64                `json:"payload_bytes_in"`  // gossip payloads and fetched blobs
	PayloadOut         int64                `json:"payload_bytes_out"` // gossip payloads and own blobs (once)
	BlobsIn            int64                `json:"blobs_in"`
	Applied            int64                `json:"rounds_applied"`
	CatchUps           int64                `json:"catch_ups"`
	Reorgs             int64                `json:"reorgs"`             // switches to a winning branch
	Rejected           int64                `json:"manifests_rejected"` // manifests that lost the fork choice
	Announced          int64                `json:"announced"`
	Missed             int64                `json:"missed"`
	Phases             map[string]PhaseStat `json:"phases"`

	// For the dashboard (dashboard_status.go); bounded whatever the age
	// and size of the network.
	HeadRound  uint64         `json:"head_round"`    // highest manifest round seen + 1
	Behind     uint64         `json:"rounds_behind"` // head_round - state_round
	LastError  *ErrorNote     `json:"last_error,omitempty"`
	History    []RoundPoint   `json:"history,omitempty"`     // per round, downsampled
	PeerList   []PeerInfo     `json:"peer_list,omitempty"`   // at most dashPeers rows
	PeersSeen  int            `json:"peers_seen,omitempty"`  // rows before that cap
	ScoreTable *ScoreTable    `json:"score_table,omitempty"` // last rounds' verdicts
	Agreement  *Agreement     `json:"agreement,omitempty"`   // of the validators
	Rejections []Rejection    `json:"rejections,omitempty"`  // latest last
	Compute    *ComputeStatus `json:"compute,omitempty"`     // compute providers only
}

// RoundBytes is what a node's libp2p streams carried in one round.
type RoundBytes struct {
	Round uint64 `json:"round"`
	In    int64  `json:"in"`
	Out   int64  `json:"out"`
}

func optFloat(f float32) *float64 {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return nil
	}
	v := float64(f)
	return &v
}

// publishStatus snapshots the loop's state (called on the loop goroutine).
func (n *Node) publishStatus() {
	now := time.Now()
	s := &Status{Network: n.netID.String(), Peer: n.p2p.ID().String(), Role: string(n.cfg.Role),
		Round: n.clock.Round(now), Phase: n.clock.Phase(now), StateRound: n.next, StateHash: n.hash.String(),
		CatchingUp: n.catching, Busy: n.busy, Peers: len(n.p2p.Peers()), LastLoss: optFloat(n.lastLoss),
		ValLoss: optFloat(n.valLoss), Contributors: n.lastCount, Checkpoint: n.checkpoint,
		PayloadIn: n.metrics.bytesIn.Load(), PayloadOut: n.metrics.bytesOut.Load(), BlobsIn: n.metrics.blobsIn.Load(),
		Applied: n.metrics.applied.Load(), CatchUps: n.metrics.catchups.Load(),
		Reorgs: n.metrics.reorgs.Load(), Rejected: n.metrics.rejected.Load(),
		Announced: n.metrics.announced.Load(), Missed: n.metrics.missed.Load(), Phases: n.metrics.phases()}
	s.Traffic = n.p2p.Traffic()
	s.BytesIn, s.BytesOut = s.Traffic.In, s.Traffic.Out
	if t := n.traffic; t.closed {
		s.RoundBytes = RoundBytes{Round: t.lastRound, In: t.last.In, Out: t.last.Out}
	}
	if n.lastMan.Defined() {
		s.Head = n.lastMan.String()
	}
	if n.va != nil {
		s.Scores = n.va.scoresSnapshot()
		s.ConsensusAgreement = maps.Clone(n.va.book.Agreement)
	}
	n.fillDashboard(s, now)
	n.status.Store(s)
}

// Status returns the latest snapshot; safe from any goroutine.
func (n *Node) Status() Status {
	if s := n.status.Load(); s != nil {
		return *s
	}
	return Status{}
}

// StatusSource is anything with a Status snapshot.
type StatusSource interface{ Status() Status }

// ServeStatus serves the status handler (StatusHandler) on addr until ctx
// ends. ready, if not nil, receives the bound address (useful with port 0).
func ServeStatus(ctx context.Context, addr string, src StatusSource, log *slog.Logger, ready func(net.Addr), opts ...StatusOption) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("node: status endpoint: %w", err)
	}
	if ready != nil {
		ready(ln.Addr())
	}
	srv := &http.Server{Handler: StatusHandler(src, opts...), ReadHeaderTimeout: 5 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute, MaxHeaderBytes: 16 << 10}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case <-ctx.Done():
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
		<-errc
		return nil
	case err := <-errc:
		if errors.Is(err, http.ErrServerClosed) {
			return nil
		}
		log.Error("status endpoint stopped", "err", err)
		return fmt.Errorf("node: status endpoint: %w", err)
	}
}

// StatusHandler serves GET /status (JSON), GET /metrics (Prometheus text
// format) and, unless WithDashboard(false), the dashboard (dashboard.go).
func StatusHandler(src StatusSource, opts ...StatusOption) http.Handler {
	o := statusOptions{dashboard: true}
	for _, f := range opts {
		f(&o)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(src.Status())
	})
	mux.HandleFunc("GET /metrics", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		WriteMetrics(w, src.Status())
	})
	if o.dashboard {
		registerDashboard(mux, src)
	}
	return secureHeaders(mux)
}

// WriteMetrics renders s in the Prometheus text exposition format.
func WriteMetrics(w io.Writer, s Status) {
	g := func(name, help, typ string, v float64, labels string) {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s %s\n%s%s %g\n", name, help, name, typ, name, labels, v)
	}
	lbl := fmt.Sprintf("{role=%q}", s.Role)
	g("trinity_round", "Current round by the clock.", "gauge", float64(s.Round), lbl)
	g("trinity_state_round", "Next manifest round to apply.", "gauge", float64(s.StateRound), lbl)
	g("trinity_peers", "Connected peers.", "gauge", float64(s.Peers), lbl)
	g("trinity_bytes_in_total", "Bytes received on libp2p streams (gossip, blobs, DHT, protocol messages).", "counter", float64(s.BytesIn), lbl)
	g("trinity_bytes_out_total", "Bytes sent on libp2p streams (gossip, blobs, DHT, protocol messages).", "counter", float64(s.BytesOut), lbl)
	g("trinity_gossip_bytes_in_total", "Bytes received on gossipsub streams.", "counter", float64(s.Traffic.GossipIn), lbl)
	g("trinity_gossip_bytes_out_total", "Bytes sent on gossipsub streams.", "counter", float64(s.Traffic.GossipOut), lbl)
	g("trinity_blob_bytes_in_total", "Bytes received on blob exchange streams.", "counter", float64(s.Traffic.BlobIn), lbl)
	g("trinity_blob_bytes_out_total", "Bytes sent on blob exchange streams.", "counter", float64(s.Traffic.BlobOut), lbl)
	g("trinity_payload_bytes_in_total", "Payload bytes received (gossip payloads and fetched blobs).", "counter", float64(s.PayloadIn), lbl)
	g("trinity_payload_bytes_out_total", "Payload bytes sent (gossip payloads and own blobs).", "counter", float64(s.PayloadOut), lbl)
	g("trinity_round_bytes_in", "Bytes received on libp2p streams in the last complete round.", "gauge", float64(s.RoundBytes.In), lbl)
	g("trinity_round_bytes_out", "Bytes sent on libp2p streams in the last complete round.", "gauge", float64(s.RoundBytes.Out), lbl)
	g("trinity_rounds_applied_total", "Manifests applied.", "counter", float64(s.Applied), lbl)
	g("trinity_catch_ups_total", "Catch-ups from the manifest chain or a checkpoint.", "counter", float64(s.CatchUps), lbl)
	g("trinity_reorgs_total", "Switches to a winning branch of the manifest chain.", "counter", float64(s.Reorgs), lbl)
	g("trinity_manifests_rejected_total", "Manifests that lost the fork choice.", "counter", float64(s.Rejected), lbl)
	g("trinity_announced_total", "Contributions announced.", "counter", float64(s.Announced), lbl)
	g("trinity_missed_total", "Rounds a trainer did not contribute to.", "counter", float64(s.Missed), lbl)
	g("trinity_contributors", "Contributions in the last manifest applied.", "gauge", float64(s.Contributors), lbl)
	if s.LastLoss != nil {
		g("trinity_train_loss", "Mean inner training loss of the last round.", "gauge", *s.LastLoss, lbl)
	}
	if s.ValLoss != nil {
		g("trinity_val_loss", "Validation loss of the global model.", "gauge", *s.ValLoss, lbl)
	}
	fmt.Fprintf(w, "# HELP trinity_phase_seconds_total Time spent per round phase.\n# TYPE trinity_phase_seconds_total counter\n")
	names := make([]string, 0, len(s.Phases))
	for p := range s.Phases {
		names = append(names, p)
	}
	sort.Strings(names)
	for _, p := range names {
		fmt.Fprintf(w, "trinity_phase_seconds_total{role=%q,phase=%q} %g\n", s.Role, p, s.Phases[p].Seconds)
	}
	fmt.Fprintf(w, "# HELP trinity_phase_count_total Phase executions.\n# TYPE trinity_phase_count_total counter\n")
	for _, p := range names {
		fmt.Fprintf(w, "trinity_phase_count_total{role=%q,phase=%q} %d\n", s.Role, p, s.Phases[p].Count)
	}
}
