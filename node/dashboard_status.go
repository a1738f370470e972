package node

// The parts of Status that the dashboard shows beyond the counters: the
// node's per-round history, the peers it sees, the validators' scores and
// verdicts, the last error and, when a compute provider fills it, attested
// throughput. Everything here is bounded whatever the network's size or age.

// Bounds of the dashboard sections.
const (
	dashRounds     = 8             // rounds of scores kept (score table, agreement)
	dashRejections = 64            // rejections kept
	dashPeers      = 1024          // rows of the peer table
	maxSeen        = 4 * dashPeers // peers tracked from gossip
	dashTrainers   = 256           // rows of the score table
)

// PeerInfo is one row of the peer table.
type PeerInfo struct {
	Peer       string   `json:"peer"`
	Role       string   `json:"role"`                        // validator, trainer, bootstrap, relay, or peer when unknown
	Connected  bool     `json:"connected"`                   // a connection is open now
	Addr       string   `json:"addr,omitempty"`              // direct, hole-punched or relayed (when connected)
	Transport  string   `json:"transport,omitempty"`         // tcp, quic-v1, relay
	LatencyMS  *float64 `json:"latency_ms,omitempty"`        // peerstore moving average
	LastRound  *uint64  `json:"last_contribution,omitempty"` // last manifest round that included it
	LastSeen   *uint64  `json:"last_announced,omitempty"`    // last round it announced a contribution
	Score      *float64 `json:"score,omitempty"`             // smoothed, by the validators
	StakeShare *float64 `json:"stake,omitempty"`             // validator: share of the genesis stake
}

// ScoreCell is one validator's verdict on one trainer in one round.
type ScoreCell struct {
	Score  float64 `json:"score"`
	OK     bool    `json:"ok"`
	Kind   string  `json:"kind,omitempty"` // rejection kind when not OK
	Reason string  `json:"reason,omitempty"`
}

// ScoreRow is a trainer's verdicts over ScoreTable.Rounds (nil: not scored).
type ScoreRow struct {
	Trainer  string       `json:"trainer"`
	Smoothed float64      `json:"smoothed"`
	Cells    []*ScoreCell `json:"cells"`
}

// ScoreTable is one validator's scores over the last rounds: this node's own
// on a validator, else the best-ranked validator's that published.
type ScoreTable struct {
	Validator string     `json:"validator"`
	Rounds    []uint64   `json:"rounds"`
	Rows      []ScoreRow `json:"rows"`
}

// Rejection is a contribution a validator turned down, and why.
type Rejection struct {
	Round     uint64 `json:"round"`
	Validator string `json:"validator"`
	Trainer   string `json:"trainer"`
	Kind      string `json:"kind"` // malformed, stale, poisoned, unhelpful, copied, unavailable, late, replay, unexplained
	Reason    string `json:"reason"`
}

// ValidatorAgreement is how often a validator's verdicts matched the
// majority of the validators that scored the same contribution.
type ValidatorAgreement struct {
	Validator string  `json:"validator"`
	Verdicts  int     `json:"verdicts"` // on contributions at least two validators scored
	Agree     float64 `json:"agree"`    // fraction matching the majority
}

// RoundAgreement is the validators' agreement on one round.
type RoundAgreement struct {
	Round      uint64  `json:"round"`
	Validators int     `json:"validators"`
	Trainers   int     `json:"trainers"`  // scored by at least two validators
	Unanimous  float64 `json:"unanimous"` // fraction of those with one verdict
	MaxSpread  float64 `json:"max_spread"`
}

// Agreement summarises the validators' score agreement over the kept rounds.
type Agreement struct {
	Validators []ValidatorAgreement `json:"validators"`
	Rounds     []RoundAgreement     `json:"rounds"`
}

// ErrorNote is the last warning or error the node logged.
type ErrorNote struct {
	Time    string `json:"time"` // RFC 3339
	Level   string `json:"level"`
	Message string `json:"message"`
}

// ComputeStatus is what a compute provider reports about its attested
// throughput; nil on nodes that provide no compute. Fill it with
// Node.ReportCompute.
type ComputeStatus struct {
	Device     string  `json:"device,omitempty"`
	Unit       string  `json:"unit"`       // e.g. "tokens/s"
	Throughput float64 `json:"throughput"` // last attested value
	Attested   bool    `json:"attested"`   // the last value passed attestation
	Round      uint64  `json:"round"`      // of the last value
}
