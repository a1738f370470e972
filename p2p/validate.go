package p2p

import (
	"context"
	"errors"
	"fmt"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ValidatorFunc is a consumer's check of a message's payload. It runs after
// the envelope checks, so env is well-formed, signed by from, of this
// network, topic and round window. Returning an error that wraps ErrIgnore
// drops the message without penalty (e.g. a duplicate); any other error
// rejects it and lowers the forwarding peer's score.
type ValidatorFunc func(ctx context.Context, from peer.ID, env *Envelope) error

// ErrIgnore, wrapped by a ValidatorFunc's error, drops a message without
// penalising its sender.
var ErrIgnore = errors.New("p2p: message ignored")

// RegisterValidator sets (or with nil, removes) the consumer's validator of
// t, replacing any earlier one.
func (n *Node) RegisterValidator(t Topic, f ValidatorFunc) error {
	if _, ok := n.topics[t]; !ok {
		return fmt.Errorf("p2p: registering validator: unknown topic %q", t)
	}
	n.valMu.Lock()
	defer n.valMu.Unlock()
	if f == nil {
		delete(n.validators, t)
	} else {
		n.validators[t] = f
	}
	return nil
}

// validator adapts checkMessage to pubsub; the decoded envelope rides along
// in ValidatorData so subscribers do not decode twice.
func (n *Node) validator(t Topic) pubsub.ValidatorEx {
	return func(ctx context.Context, from peer.ID, m *pubsub.Message) pubsub.ValidationResult {
		env, res, err := n.checkMessage(ctx, t, m.GetFrom(), m.GetData())
		if err != nil {
			n.log.Debug("gossip message dropped", "topic", t, "from", from, "author", m.GetFrom(), "verdict", verdictName(res), "err", err)
			return res
		}
		m.ValidatorData = env
		return pubsub.ValidationAccept
	}
}

func verdictName(r pubsub.ValidationResult) string {
	switch r {
	case pubsub.ValidationAccept:
		return "accept"
	case pubsub.ValidationIgnore:
		return "ignore"
	}
	return "reject"
}

// checkMessage runs the envelope checks in order of cost, cheapest first,
// then the consumer's validator. Malformed or forged messages are rejected
// (the sender is penalised); well-formed but untimely ones are ignored,
// since an honest peer with a lagging clock or round can send them.
func (n *Node) checkMessage(ctx context.Context, t Topic, author peer.ID, data []byte) (*Envelope, pubsub.ValidationResult, error) {
	reject := pubsub.ValidationReject
	if len(data) > n.cfg.MaxMessageSize {
		return nil, reject, fmt.Errorf("%w: %d bytes exceeds %d", ErrBadEnvelope, len(data), n.cfg.MaxMessageSize)
	}
	env, err := UnmarshalEnvelope(data)
	if err != nil {
		return nil, reject, err
	}
	if env.Network != n.cfg.NetworkID {
		return nil, reject, fmt.Errorf("%w: network %s, want %s", ErrBadEnvelope, env.Network.Short(), n.cfg.NetworkID.Short())
	}
	if env.Topic != t {
		return nil, reject, fmt.Errorf("%w: topic %q on %q", ErrBadEnvelope, env.Topic, t)
	}
	if env.Sender != author {
		return nil, reject, fmt.Errorf("%w: sender %s is not the author %s", ErrBadEnvelope, env.Sender, author)
	}
	if err := env.Verify(); err != nil {
		return nil, reject, err
	}
	if n.roundWindow != nil {
		if lo, hi := n.roundWindow(); env.Round < lo || env.Round > hi {
			return nil, pubsub.ValidationIgnore, fmt.Errorf("round %d outside window [%d, %d]", env.Round, lo, hi)
		}
	}
	now := n.now()
	if ts := env.Time(); ts.After(now.Add(n.cfg.MaxClockSkew)) || ts.Before(now.Add(-n.cfg.MaxMessageAge)) {
		return nil, pubsub.ValidationIgnore, fmt.Errorf("timestamp %v too far from local time %v", ts, now)
	}
	n.valMu.RLock()
	f := n.validators[t]
	n.valMu.RUnlock()
	if f != nil {
		if err := f(ctx, author, env); err != nil {
			if errors.Is(err, ErrIgnore) {
				return nil, pubsub.ValidationIgnore, err
			}
			return nil, reject, err
		}
	}
	return env, pubsub.ValidationAccept, nil
}
