package node

import (
	"context"
	"fmt"

	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/replay"
)

// ReplayParams switches proof of training work (package verify/replay) on
// for a network and sets its policy. Every validator applies the same
// values, so they are part of the genesis.
type ReplayParams struct {
	Rate          float64 `json:"rate"`           // probability a validator challenges a trainer per round
	Checks        int     `json:"checks"`         // steps checked per challenge (s)
	ExcludeRounds int     `json:"exclude_rounds"` // see replay.Penalty
	WatchRounds   int     `json:"watch_rounds"`
}

// DefaultReplayParams is the package's default policy and penalty.
func DefaultReplayParams() *ReplayParams {
	p, q := replay.DefaultPolicy(), replay.DefaultPenalty()
	return &ReplayParams{Rate: p.Rate, Checks: p.Checks, ExcludeRounds: q.ExcludeRounds, WatchRounds: q.WatchRounds}
}

func (p *ReplayParams) policy() replay.Policy { return replay.Policy{Rate: p.Rate, Checks: p.Checks} }

func (p *ReplayParams) penalty() replay.Penalty {
	return replay.Penalty{ExcludeRounds: p.ExcludeRounds, WatchRounds: p.WatchRounds}
}

// validate accepts nil (replay off).
func (p *ReplayParams) validate(innerSteps int) error {
	if p == nil {
		return nil
	}
	if innerSteps > replay.MaxSteps {
		return fmt.Errorf("node: genesis params.replay: inner_steps %d above replay's %d", innerSteps, replay.MaxSteps)
	}
	if err := p.policy().Validate(); err != nil {
		return fmt.Errorf("node: genesis params.replay: %w", err)
	}
	if err := p.penalty().Validate(); err != nil {
		return fmt.Errorf("node: genesis params.replay: %w", err)
	}
	return nil
}

// The gossip topics of replay: validators' challenges and verdicts,
// trainers' responses (which name the response blob).
const (
	TopicReplayChallenge p2p.Topic = "replay-challenge"
	TopicReplayResponse  p2p.Topic = "replay-response"
	TopicReplayVerdict   p2p.Topic = "replay-verdict"
)

// replayTopics are the topics a network of genesis g joins beyond the
// built-in ones.
func replayTopics(g *Genesis) []p2p.Topic {
	if g.Params.Replay == nil {
		return nil
	}
	return []p2p.Topic{TopicReplayChallenge, TopicReplayResponse, TopicReplayVerdict}
}

// replaySpec is what trainers and validators of the network agree on to
// record and replay a step.
func (n *Node) replaySpec() replay.Spec {
	hp := n.gen.Params
	return replay.Spec{Model: n.gen.Model, AdamW: hp.AdamW, Steps: hp.InnerSteps, Chunking: n.ch, ErrorDecay: hp.ErrorDecay,
		Data: replay.DataSpec{Train: n.ds.Train, Seed: n.gen.WeightSeed, PageSize: hp.PageSize, PagesPerRound: hp.PagesPerRound,
			Batch: hp.Batch, SeqLen: hp.SeqLen}}
}

// Phases of replay the node measures (status.go).
const (
	phaseReplayRespond = "replay-respond" // trainer: one challenge answered
	phaseReplayCheck   = "replay-check"   // validator: one response checked
)

// replayChecks adds the gossip checks of the replay topics: challenges and
// verdicts come from genesis validators only; every payload decodes
// strictly and repeats its envelope's round.
func (n *Node) replayChecks(checks map[p2p.Topic]func(env *p2p.Envelope) error) {
	if n.gen.Params.Replay == nil {
		return
	}
	checks[TopicReplayChallenge] = n.fromValidator(ofEnvelopeRound(DecodeReplayChallenge))
	checks[TopicReplayResponse] = ofEnvelopeRound(DecodeReplayResponse)
	checks[TopicReplayVerdict] = n.fromValidator(ofEnvelopeRound(DecodeReplayVerdict))
}

func (m *ReplayChallenge) round() uint64 { return m.Round }
func (m *ReplayResponse) round() uint64  { return m.Round }
func (m *ReplayVerdict) round() uint64   { return m.Round }

// readReplay hands a replay payload to the role it concerns (gossip reader
// goroutine; the role runs on the loop).
func (n *Node) readReplay(ctx context.Context, t p2p.Topic, env *p2p.Envelope) {
	switch t {
	case TopicReplayChallenge:
		c, err := DecodeReplayChallenge(env.Payload)
		if err != nil || n.tr == nil || n.tr.replay == nil || c.Trainer != n.p2p.ID().String() {
			return
		}
		n.post(ctx, func() { n.tr.replay.onChallenge(env.Sender, c) })
	case TopicReplayResponse:
		m, err := DecodeReplayResponse(env.Payload)
		if err != nil || n.va == nil || n.va.replay == nil {
			return
		}
		n.post(ctx, func() { n.va.replay.onResponse(env.Sender, m) })
	case TopicReplayVerdict:
		m, err := DecodeReplayVerdict(env.Payload)
		if err != nil || n.va == nil || n.va.replay == nil {
			return
		}
		n.post(ctx, func() { n.va.replay.onVerdict(env.Sender, m) })
	}
}
