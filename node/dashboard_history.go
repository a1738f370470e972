package node

import "math"

// historyCap is how many points a node keeps of its per-round history.
// When full, neighbouring points merge in pairs (each then covers twice the
// rounds), so a node's whole life fits in a fixed size: thousands of rounds
// cost the same memory and JSON as a few hundred.
const historyCap = 256

// RoundPoint is one point of a node's per-round history: a round, or after
// downsampling, Rounds consecutive rounds starting at Round. Values are means
// over the rounds that had one (nil: none had); bytes are sums.
type RoundPoint struct {
	Round        uint64   `json:"round"`
	Rounds       uint64   `json:"rounds"`               // rounds covered (1 until merged)
	ValLoss      *float64 `json:"val_loss,omitempty"`   // global model, after the round's manifest
	TrainLoss    *float64 `json:"train_loss,omitempty"` // own mean inner loss (trainer)
	Score        *float64 `json:"score,omitempty"`      // own contribution's mean score by the validators (trainer)
	Contributors *float64 `json:"contributors,omitempty"`
	Throughput   *float64 `json:"throughput,omitempty"` // attested compute (ComputeStatus), units per second
	BytesIn      int64    `json:"bytes_in"`
	BytesOut     int64    `json:"bytes_out"`
}

// mean is a running mean that knows whether it has a value.
type mean struct {
	sum float64
	n   float64
}

func (m *mean) add(v float64) {
	if !math.IsNaN(v) && !math.IsInf(v, 0) {
		m.sum += v
		m.n++
	}
}

func (m *mean) merge(o mean) { m.sum += o.sum; m.n += o.n }

func (m mean) ptr() *float64 {
	if m.n == 0 {
		return nil
	}
	v := m.sum / m.n
	return &v
}

// histPoint is a RoundPoint while it is being accumulated.
type histPoint struct {
	round, rounds                                  uint64
	valLoss, trainLoss, score, contrib, throughput mean
	bytesIn, bytesOut                              int64
}

func (p *histPoint) merge(o *histPoint) {
	p.rounds = o.round + o.rounds - p.round
	p.valLoss.merge(o.valLoss)
	p.trainLoss.merge(o.trainLoss)
	p.score.merge(o.score)
	p.contrib.merge(o.contrib)
	p.throughput.merge(o.throughput)
	p.bytesIn += o.bytesIn
	p.bytesOut += o.bytesOut
}

func (p *histPoint) export() RoundPoint {
	return RoundPoint{Round: p.round, Rounds: p.rounds, ValLoss: p.valLoss.ptr(), TrainLoss: p.trainLoss.ptr(),
		Score: p.score.ptr(), Contributors: p.contrib.ptr(), Throughput: p.throughput.ptr(),
		BytesIn: p.bytesIn, BytesOut: p.bytesOut}
}

// history is a per-round series of bounded size. Every point covers the
// same number of rounds (width) except the last, which is still filling.
type history struct {
	pts   []histPoint
	width uint64
	limit int
}

func newHistory(limit int) *history {
	return &history{width: 1, limit: max(limit, 2)}
}

// at returns the point that covers round r, creating it (and merging pairs
// when full) if r is past the last point. Events of a round often arrive in
// the next one (a manifest is applied after its round), so earlier points
// are looked up; a round older than the first point, or in a gap between
// points, goes to the point before it.
func (h *history) at(r uint64) *histPoint {
	if n := len(h.pts); n > 0 {
		last := &h.pts[n-1]
		if r < last.round+h.width {
			i := n - 1
			for i > 0 && h.pts[i].round > r {
				i--
			}
			return &h.pts[i]
		}
	}
	if len(h.pts) == h.limit {
		h.halve()
		if last := &h.pts[len(h.pts)-1]; r < last.round+h.width {
			return last
		}
	}
	start := r - r%h.width
	h.pts = append(h.pts, histPoint{round: start, rounds: 1 + r - start})
	return &h.pts[len(h.pts)-1]
}

// halve merges neighbouring points and doubles the width. Points start at
// multiples of the width, so merged pairs stay aligned.
func (h *history) halve() {
	h.width *= 2
	out := h.pts[:0]
	for i := 0; i < len(h.pts); {
		p := h.pts[i]
		p.round -= p.round % h.width
		i++
		for i < len(h.pts) && h.pts[i].round < p.round+h.width {
			p.merge(&h.pts[i])
			i++
		}
		out = append(out, p)
	}
	h.pts = out
}

// touch returns the point of round r, its span extended to cover r.
func (h *history) touch(r uint64) *histPoint {
	p := h.at(r)
	if end := r + 1; end > p.round+p.rounds {
		p.rounds = end - p.round
	}
	return p
}

// export copies the series.
func (h *history) export() []RoundPoint {
	out := make([]RoundPoint, len(h.pts))
	for i := range h.pts {
		out[i] = h.pts[i].export()
	}
	return out
}

// downsample merges pts into at most n points of equal span in rounds
// (means of means weighted by rounds covered; sums of bytes). The page asks
// for as many points as it has pixels.
func downsample(pts []RoundPoint, n int) []RoundPoint {
	if n <= 0 || len(pts) <= n {
		return pts
	}
	per := (len(pts) + n - 1) / n
	out := make([]RoundPoint, 0, n)
	for i := 0; i < len(pts); i += per {
		g := pts[i:min(i+per, len(pts))]
		var vl, tl, sc, co, th mean
		p := RoundPoint{Round: g[0].Round}
		for _, q := range g {
			w := float64(max(q.Rounds, 1))
			for _, f := range []struct {
				m *mean
				v *float64
			}{{&vl, q.ValLoss}, {&tl, q.TrainLoss}, {&sc, q.Score}, {&co, q.Contributors}, {&th, q.Throughput}} {
				if f.v != nil {
					f.m.sum += *f.v * w
					f.m.n += w
				}
			}
			p.BytesIn += q.BytesIn
			p.BytesOut += q.BytesOut
			p.Rounds = q.Round + q.Rounds - p.Round
		}
		p.ValLoss, p.TrainLoss, p.Score, p.Contributors, p.Throughput = vl.ptr(), tl.ptr(), sc.ptr(), co.ptr(), th.ptr()
		out = append(out, p)
	}
	return out
}
