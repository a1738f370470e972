package rl

import (
	"fmt"
	"sync"
)

// Scores keeps each rollout peer's standing as an exponential moving average
// of its per-round outcome: 1 for an accepted batch, 0 for a rejected or
// missing one. A node weights or bans peers by it. Safe for concurrent use.
type Scores struct {
	mu    sync.Mutex
	alpha float64
	m     map[[32]byte]float64
}

// NewScores returns an empty table; alpha in (0, 1] is the weight of the
// newest round.
func NewScores(alpha float64) (*Scores, error) {
	if !(alpha > 0 && alpha <= 1) {
		return nil, fmt.Errorf("rl: scores: alpha %v not in (0, 1]", alpha)
	}
	return &Scores{alpha: alpha, m: make(map[[32]byte]float64)}, nil
}

// Record folds one round's verdict on peer's batch into its score (err is
// Validator.Check's result).
func (s *Scores) Record(peer [32]byte, err error) {
	x := 1.0
	if err != nil {
		x = 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[peer] = (1-s.alpha)*s.m[peer] + s.alpha*x
}

// Score is peer's current score (0 for an unknown peer).
func (s *Scores) Score(peer [32]byte) float64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.m[peer]
}
