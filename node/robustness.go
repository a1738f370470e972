package node

import (
	"errors"
	"fmt"
	"slices"

	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerReport is what became of one trainer's work over a testnet run, as
// the lead validator (validator-0) saw it.
type PeerReport struct {
	Name      string
	Peer      peer.ID
	Adversary Adversary // "" for an honest trainer
	Announced int       // rounds in which the lead recorded a contribution of it
	Included  []uint64  // rounds whose manifest holds its blob
	// Detected is the first round the lead rejected its contribution (for
	// any reason but unavailability); -1 when it never did.
	Detected int64
	Reason   string // the lead's reason then
	// IncludedAfter counts manifests after Detected that hold its blob.
	IncludedAfter int
	Smoothed      float64 // the lead's standing of it at the end
	Banned        bool    // banned by the lead at the end
}

// Report summarises every trainer's fate from the lead validator's score
// record (its scores file) and the manifests it stores. Call it while the
// testnet runs (it reads the lead's blob store).
func (t *Testnet) Report() ([]PeerReport, error) {
	ms := t.Members()
	var lead *Member
	for i := range ms {
		if ms[i].Role == RoleValidator && ms[i].Node != nil && ms[i].Adversary == "" {
			lead = &ms[i]
			break
		}
	}
	if lead == nil {
		return nil, errors.New("node: testnet report: no honest validator running")
	}
	book, err := loadScores(lead.Dir)
	if err != nil {
		return nil, fmt.Errorf("node: testnet report: %w", err)
	}
	included := contributions(t) // the manifests the first honest validator holds
	var out []PeerReport
	for _, m := range ms {
		if m.Role != RoleTrainer || m.Peer == "" {
			continue
		}
		rep := PeerReport{Name: m.Name, Peer: m.Peer, Adversary: m.Adversary, Detected: -1, Included: slices.Compact(included[m.Peer])}
		for _, h := range book.History {
			for _, e := range h.Scores {
				if e.Trainer != m.Peer.String() {
					continue
				}
				rep.Announced++
				if !e.OK && rep.Detected < 0 && e.Reason != reasonNotScored && e.Reason != reasonNotServed {
					rep.Detected, rep.Reason = int64(h.Round), e.Reason
				}
			}
		}
		for _, r := range rep.Included {
			if rep.Detected >= 0 && int64(r) > rep.Detected {
				rep.IncludedAfter++
			}
		}
		if s := book.Standing[m.Peer.String()]; s != nil {
			rep.Smoothed = s.Smoothed
			rep.Banned = s.BannedUntil > 0 && len(book.History) > 0 && s.Banned(book.History[len(book.History)-1].Round+1)
		}
		out = append(out, rep)
	}
	return out, nil
}
