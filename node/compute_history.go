package node

import (
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/verify/attest"
)

// Bounds of a client's attestation history.
const (
	historyPerProvider = 64
	historyProviders   = 1024
)

// AttestationPoint is one attestation of a provider, as a client filed it
// (its own, or a trusted attester's from gossip), for throughput history.
type AttestationPoint struct {
	At       time.Time // issued
	Attester peer.ID
	N        int
	Verdict  string
	Attested float64 // GFLOP/s; 0 unless pass or overclaim
	Claimed  float64 // GFLOP/s
}

// computeHistory keeps the latest attestations per provider, bounded.
type computeHistory struct {
	mu     sync.Mutex
	points map[peer.ID][]AttestationPoint
}

func (h *computeHistory) add(a *attest.Attestation) {
	subject, err := keyPeer(a.Subject)
	if err != nil {
		return
	}
	attester, err := keyPeer(a.Attester)
	if err != nil {
		return
	}
	p := AttestationPoint{At: time.Unix(0, a.IssuedAt), Attester: attester, N: a.N, Verdict: a.Verdict.String(),
		Attested: a.AttestedGFLOPs, Claimed: a.ClaimedGFLOPs}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.points == nil {
		h.points = map[peer.ID][]AttestationPoint{}
	}
	pts, ok := h.points[subject]
	if !ok && len(h.points) >= historyProviders {
		return
	}
	for _, q := range pts {
		if q.Attester == p.Attester && q.At.Equal(p.At) {
			return // the same attestation again (gossip and record)
		}
	}
	pts = append(pts, p)
	sort.Slice(pts, func(i, j int) bool { return pts[i].At.Before(pts[j].At) })
	if len(pts) > historyPerProvider {
		pts = pts[len(pts)-historyPerProvider:]
	}
	h.points[subject] = pts
}

// History returns the attestations the client filed, per provider, oldest
// first (at most 64 per provider): attested throughput over time.
func (c *ComputeClient) History() map[peer.ID][]AttestationPoint {
	c.hist.mu.Lock()
	defer c.hist.mu.Unlock()
	out := make(map[peer.ID][]AttestationPoint, len(c.hist.points))
	for k, v := range c.hist.points {
		out[k] = append([]AttestationPoint(nil), v...)
	}
	return out
}
