package p2p

import (
	"context"
	"fmt"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Topic names a gossip topic: 1-32 characters of [a-z0-9-]. On the wire it
// is namespaced by the network ID.
type Topic string

// The built-in topics.
const (
	TopicGradient   Topic = "gradient"   // trainers' gradient announcements
	TopicScore      Topic = "score"      // validators' scores
	TopicManifest   Topic = "manifest"   // the lead validator's round manifest
	TopicCheckpoint Topic = "checkpoint" // checkpoint announcements
)

// BuiltinTopics lists the topics every node joins.
func BuiltinTopics() []Topic {
	return []Topic{TopicGradient, TopicScore, TopicManifest, TopicCheckpoint}
}

// subscriptionBuffer is how many verified messages wait for a slow reader
// before pubsub drops the oldest for it.
const subscriptionBuffer = 1024

// pubsubFraming is the room pubsub's protobuf framing needs around our
// envelope (author, seqno, signature, key, topic).
const pubsubFraming = 4 << 10

// gossipOptions are the options every trinity gossipsub instance shares:
// namespaced protocol, strict signing, size limit, topic allowlist.
func gossipOptions(id NetworkID, topics []Topic, maxMsg int) []pubsub.Option {
	names := make([]string, len(topics))
	for i, t := range topics {
		names[i] = id.topicName(t)
	}
	proto := id.gossipProtocol()
	return []pubsub.Option{
		pubsub.WithGossipSubProtocols([]protocol.ID{proto}, func(f pubsub.GossipSubFeature, p protocol.ID) bool {
			return p == proto && (f == pubsub.GossipSubFeatureMesh || f == pubsub.GossipSubFeaturePX || f == pubsub.GossipSubFeatureIdontwant)
		}),
		pubsub.WithMessageSignaturePolicy(pubsub.StrictSign),
		pubsub.WithMaxMessageSize(maxMsg + pubsubFraming),
		pubsub.WithSubscriptionFilter(pubsub.WrapLimitSubscriptionFilter(pubsub.NewAllowlistSubscriptionFilter(names...), len(names))),
	}
}

func (n *Node) allTopics() []Topic {
	return append(BuiltinTopics(), n.cfg.ExtraTopics...)
}

func (n *Node) startPubSub(inspectEvery time.Duration) error {
	topics := n.allTopics()
	params, thresholds := scoreParams(n.cfg.NetworkID, topics)
	opts := gossipOptions(n.cfg.NetworkID, topics, n.cfg.MaxMessageSize)
	opts = append(opts,
		pubsub.WithPeerScore(params, thresholds),
		pubsub.WithPeerScoreInspect(pubsub.PeerScoreInspectFn(n.setScores), inspectEvery),
		// Peer exchange on prune helps newcomers find the mesh; only
		// bootstrap/relay nodes, which see everyone, hand it out.
		pubsub.WithPeerExchange(n.cfg.RelayService),
		// Our messages are few and small; sending our own to every topic
		// peer (not only the mesh) gets them out fast even while meshes
		// re-form, and defeats a mesh full of sybils.
		pubsub.WithFloodPublish(true),
		pubsub.WithLogger(n.log),
	)
	ps, err := pubsub.NewGossipSub(n.ctx, n.host, opts...)
	if err != nil {
		return fmt.Errorf("p2p: starting gossipsub: %w", err)
	}
	n.ps = ps
	for _, t := range topics {
		name := n.cfg.NetworkID.topicName(t)
		if err := ps.RegisterTopicValidator(name, n.validator(t)); err != nil {
			return fmt.Errorf("p2p: registering validator for %s: %w", t, err)
		}
		pt, err := ps.Join(name)
		if err != nil {
			return fmt.Errorf("p2p: joining %s: %w", t, err)
		}
		n.topics[t] = pt
	}
	return nil
}

func (n *Node) setScores(m map[peer.ID]float64) {
	n.scoresMu.Lock()
	defer n.scoresMu.Unlock()
	n.scores = m
}

// PeerScore returns p's gossipsub score as of the last inspection (see
// WithScoreInspectPeriod); false if p has none.
func (n *Node) PeerScore(p peer.ID) (float64, bool) {
	n.scoresMu.Lock()
	defer n.scoresMu.Unlock()
	s, ok := n.scores[p]
	return s, ok
}

// Message is a verified gossip message.
type Message struct {
	Envelope     *Envelope
	ReceivedFrom peer.ID // the neighbour that forwarded it
	Local        bool    // published by this node
}

// Subscription yields the verified messages of one topic.
type Subscription struct {
	topic Topic
	self  peer.ID
	sub   *pubsub.Subscription
}

// Next blocks for the next message or until ctx ends or the subscription is
// cancelled.
func (s *Subscription) Next(ctx context.Context) (*Message, error) {
	m, err := s.sub.Next(ctx)
	if err != nil {
		return nil, fmt.Errorf("p2p: %s subscription: %w", s.topic, err)
	}
	env, ok := m.ValidatorData.(*Envelope)
	if !ok {
		// Our validator always sets it; anything else is a bug.
		return nil, fmt.Errorf("p2p: %s subscription: message without a verified envelope", s.topic)
	}
	return &Message{Envelope: env, ReceivedFrom: m.ReceivedFrom, Local: m.ReceivedFrom == s.self}, nil
}

// Cancel ends the subscription.
func (s *Subscription) Cancel() { s.sub.Cancel() }

// Topic returns the subscribed topic.
func (s *Subscription) Topic() Topic { return s.topic }

// Subscribe starts receiving verified messages on t.
func (n *Node) Subscribe(t Topic) (*Subscription, error) {
	pt, ok := n.topics[t]
	if !ok {
		return nil, fmt.Errorf("p2p: subscribing: unknown topic %q", t)
	}
	sub, err := pt.Subscribe(pubsub.WithBufferSize(subscriptionBuffer))
	if err != nil {
		return nil, fmt.Errorf("p2p: subscribing to %s: %w", t, err)
	}
	return &Subscription{topic: t, self: n.host.ID(), sub: sub}, nil
}

// Publish signs payload in an envelope for round and publishes it on t.
// The node's own validators run on it first, as they would anywhere else.
func (n *Node) Publish(ctx context.Context, t Topic, round uint64, payload []byte) error {
	pt, ok := n.topics[t]
	if !ok {
		return fmt.Errorf("p2p: publishing: unknown topic %q", t)
	}
	env := &Envelope{Version: EnvelopeVersion, Network: n.cfg.NetworkID, Topic: t, Round: round,
		Timestamp: n.now().UnixNano(), Payload: payload}
	if err := env.Sign(n.key); err != nil {
		return err
	}
	b, err := env.MarshalBinary()
	if err != nil {
		return err
	}
	if len(b) > n.cfg.MaxMessageSize {
		return fmt.Errorf("p2p: publishing on %s: %d-byte message exceeds %d", t, len(b), n.cfg.MaxMessageSize)
	}
	if err := pt.Publish(ctx, b); err != nil {
		return fmt.Errorf("p2p: publishing on %s: %w", t, err)
	}
	return nil
}

// TopicPeers returns the peers known to be subscribed to t.
func (n *Node) TopicPeers(t Topic) []peer.ID {
	pt, ok := n.topics[t]
	if !ok {
		return nil
	}
	return pt.ListPeers()
}
