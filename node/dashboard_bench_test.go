package node

import (
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkDashboardAPI measures what one /api/status answer costs on a
// large, old network (10,000 rounds, 1,000 peers, 256 trainers scored over
// the kept rounds) against the plain status of the same node without the
// dashboard's sections: bytes per answer and encoding time, whose ratios to
// the baseline are reported.
func BenchmarkDashboardAPI(b *testing.B) {
	// Real peer IDs and varied values: what a real answer compresses like.
	src := rand.NewChaCha8([32]byte{7})
	rng := rand.New(src)
	ids := make([]string, dashPeers)
	for i := range ids {
		k, _, err := crypto.GenerateEd25519Key(src)
		if err != nil {
			b.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(k)
		ids[i] = id.String()
	}
	base := Status{Network: "n", Peer: "p", Role: "validator", Phases: map[string]PhaseStat{"train": {}}}
	scores := map[string]float64{}
	for i := range dashTrainers {
		scores[ids[i]] = rng.Float64()
	}
	base.Scores = scores
	full := base
	h := newHistory(historyCap)
	for r := range uint64(10000) {
		p := h.touch(r)
		p.valLoss.add(2 + rng.Float64())
		p.score.add(rng.Float64())
		p.bytesIn += rng.Int64N(1 << 20)
	}
	full.History = h.export()
	for i := range dashPeers {
		lat, last, sc := 100*rng.Float64(), uint64(9990+rng.IntN(10)), rng.Float64()
		full.PeerList = append(full.PeerList, PeerInfo{Peer: ids[i], Role: "trainer", Connected: true,
			Addr: "direct", Transport: "quic-v1", LatencyMS: &lat, LastRound: &last, LastSeen: &last, Score: &sc})
	}
	tab := &ScoreTable{Validator: "v"}
	for r := range uint64(dashRounds) {
		tab.Rounds = append(tab.Rounds, r)
	}
	for i := range dashTrainers {
		row := ScoreRow{Trainer: ids[i], Smoothed: rng.Float64()}
		for range dashRounds {
			row.Cells = append(row.Cells, &ScoreCell{Score: rng.Float64(), OK: true})
		}
		tab.Rows = append(tab.Rows, row)
	}
	full.ScoreTable = tab
	for i := range dashRejections {
		full.Rejections = append(full.Rejections, Rejection{Round: uint64(i), Kind: "stale", Reason: "verify: contribution rejected: base state 0102, want 0304"})
	}
	measure := func(b *testing.B, s Status, q dashQuery, gz bool) (bytes, ns float64) {
		var n int
		for b.Loop() {
			t := q.apply(s)
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("GET", "/api/status", nil)
			if gz {
				req.Header.Set("Accept-Encoding", "gzip")
			}
			writeJSON(rec, req, t)
			n = rec.Body.Len()
		}
		b.ReportMetric(float64(n), "bytes/answer")
		return float64(n), float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	}
	var baseBytes, baseNS float64
	b.Run("baseline-status", func(b *testing.B) {
		baseBytes, baseNS = measure(b, base, dashQuery{points: defaultPoints, peers: defaultPeers}, false)
	})
	for _, tc := range []struct {
		q  dashQuery
		gz bool
	}{{dashQuery{defaultPoints, defaultPeers}, false}, {dashQuery{defaultPoints, defaultPeers}, true}, {dashQuery{maxPoints, dashPeers}, false}, {dashQuery{maxPoints, dashPeers}, true}} {
		b.Run(fmt.Sprintf("dashboard-points=%d-peers=%d-gzip=%v", tc.q.points, tc.q.peers, tc.gz), func(b *testing.B) {
			n, ns := measure(b, full, tc.q, tc.gz)
			if baseBytes > 0 {
				b.ReportMetric(n/baseBytes, "x-baseline-bytes")
				b.ReportMetric(ns/baseNS, "x-baseline-time")
			}
		})
	}
}
