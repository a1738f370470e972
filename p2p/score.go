package p2p

import (
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Gossipsub v1.1 score thresholds. The invalid-message penalty is the
// weight times the squared count: one invalid message (-25) stops us taking
// gossip from the peer, two (-100) put it below graylistThreshold, after
// which everything it sends is dropped unread until the penalty decays
// (1 % left after an hour). Honest peers never send an envelope that fails
// these checks, so two strikes are enough; consumer validators should
// return ErrIgnore rather than reject when in doubt.
const (
	gossipThreshold      = -20
	publishThreshold     = -40
	graylistThreshold    = -80
	acceptPXThreshold    = 5
	opportunisticGraft   = 2
	invalidMessageWeight = -25
)

// scoreParams returns the peer scoring of trinity's topics. Only what
// honest low-rate traffic cannot trip is penalised: invalid messages and
// protocol misbehaviour. Mesh delivery deficits are not, because rounds are
// minutes long and a topic is often quiet.
func scoreParams(id NetworkID, topics []Topic) (*pubsub.PeerScoreParams, *pubsub.PeerScoreThresholds) {
	tp := make(map[string]*pubsub.TopicScoreParams, len(topics))
	for _, t := range topics {
		tp[id.topicName(t)] = &pubsub.TopicScoreParams{
			TopicWeight:                     1,
			TimeInMeshWeight:                0.01,
			TimeInMeshQuantum:               time.Second,
			TimeInMeshCap:                   300,
			FirstMessageDeliveriesWeight:    1,
			FirstMessageDeliveriesDecay:     pubsub.ScoreParameterDecay(10 * time.Minute),
			FirstMessageDeliveriesCap:       20,
			InvalidMessageDeliveriesWeight:  invalidMessageWeight,
			InvalidMessageDeliveriesDecay:   pubsub.ScoreParameterDecay(time.Hour),
			MeshMessageDeliveriesDecay:      pubsub.ScoreParameterDecay(time.Minute),
			MeshFailurePenaltyDecay:         pubsub.ScoreParameterDecay(time.Minute),
			MeshMessageDeliveriesCap:        1,
			MeshMessageDeliveriesThreshold:  1,
			MeshMessageDeliveriesWindow:     10 * time.Millisecond,
			MeshMessageDeliveriesActivation: time.Minute,
		}
	}
	_, loopback, _ := net.ParseCIDR("127.0.0.0/8")
	params := &pubsub.PeerScoreParams{
		Topics:                      tp,
		TopicScoreCap:               50,
		AppSpecificScore:            func(peer.ID) float64 { return 0 },
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -5,
		IPColocationFactorThreshold: 8, // several home peers may share one NAT address
		IPColocationFactorWhitelist: []*net.IPNet{loopback},
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 30 * time.Minute,
	}
	return params, &pubsub.PeerScoreThresholds{
		GossipThreshold:             gossipThreshold,
		PublishThreshold:            publishThreshold,
		GraylistThreshold:           graylistThreshold,
		AcceptPXThreshold:           acceptPXThreshold,
		OpportunisticGraftThreshold: opportunisticGraft,
	}
}
