package p2p

import (
	"strings"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/metrics"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
)

// Traffic is what a node's libp2p streams carried since it started, in
// bytes: every stream's payload as the swarm reads and writes it (gossip,
// blob exchange, DHT, identify, protocol negotiation), not the transport's
// own framing, encryption or handshakes.
type Traffic struct {
	In, Out             int64 // all streams
	GossipIn, GossipOut int64 // gossipsub
	BlobIn, BlobOut     int64 // blob exchange
	DHTIn, DHTOut       int64 // Kademlia
}

// Traffic returns the bytes moved so far; safe from any goroutine.
func (n *Node) Traffic() Traffic {
	b := n.bw
	if b == nil {
		return Traffic{}
	}
	return Traffic{In: b.in[classAll].Load(), Out: b.out[classAll].Load(),
		GossipIn: b.in[classGossip].Load(), GossipOut: b.out[classGossip].Load(),
		BlobIn: b.in[classBlob].Load(), BlobOut: b.out[classBlob].Load(),
		DHTIn: b.in[classDHT].Load(), DHTOut: b.out[classDHT].Load()}
}

// bandwidthOption installs the node's byte counter in the host.
func (n *Node) bandwidthOption() libp2p.Option {
	id := n.cfg.NetworkID
	n.bw = &bandwidth{gossip: id.gossipProtocol(), blob: id.BlobProtocol(), dht: string(id.protocolPrefix()) + "/kad/"}
	return libp2p.BandwidthReporter(n.bw)
}

const (
	classAll = iota
	classGossip
	classBlob
	classDHT
	classOther
	numClasses
)

// bandwidth is a metrics.Reporter of plain totals by protocol class: exact
// at any moment (libp2p's BandwidthCounter folds bytes in once a second)
// and of fixed size (it keeps a meter per peer and per protocol).
type bandwidth struct {
	gossip, blob protocol.ID
	dht          string
	in, out      [numClasses]atomic.Int64
}

var _ metrics.Reporter = (*bandwidth)(nil)

func (b *bandwidth) class(p protocol.ID) int {
	switch {
	case p == b.gossip:
		return classGossip
	case p == b.blob:
		return classBlob
	case strings.HasPrefix(string(p), b.dht):
		return classDHT
	}
	return classOther
}

// The swarm calls LogSentMessage and LogSentMessageStream for the same
// bytes: the totals come from the first, the classes from the second.
func (b *bandwidth) LogSentMessage(n int64) { b.out[classAll].Add(n) }
func (b *bandwidth) LogRecvMessage(n int64) { b.in[classAll].Add(n) }
func (b *bandwidth) LogSentMessageStream(n int64, p protocol.ID, _ peer.ID) {
	b.out[b.class(p)].Add(n)
}
func (b *bandwidth) LogRecvMessageStream(n int64, p protocol.ID, _ peer.ID) {
	b.in[b.class(p)].Add(n)
}

// The per-peer and per-protocol queries of metrics.Reporter are not kept.
func (b *bandwidth) GetBandwidthForPeer(peer.ID) metrics.Stats         { return metrics.Stats{} }
func (b *bandwidth) GetBandwidthForProtocol(protocol.ID) metrics.Stats { return metrics.Stats{} }
func (b *bandwidth) GetBandwidthByPeer() map[peer.ID]metrics.Stats     { return nil }
func (b *bandwidth) GetBandwidthByProtocol() map[protocol.ID]metrics.Stats {
	return nil
}
func (b *bandwidth) GetBandwidthTotals() metrics.Stats {
	return metrics.Stats{TotalIn: b.in[classAll].Load(), TotalOut: b.out[classAll].Load()}
}
func (b *bandwidth) Reset() {
	for i := range numClasses {
		b.in[i].Store(0)
		b.out[i].Store(0)
	}
}
func (b *bandwidth) TrimIdle(time.Time) {}
