package p2p

import (
	"encoding/hex"
	"fmt"

	"github.com/libp2p/go-libp2p/core/protocol"
)

// NetworkID identifies a trinity network: the hash of its genesis file.
type NetworkID [32]byte

// ParseNetworkID parses the 64-hex-digit form of a network ID.
func ParseNetworkID(s string) (NetworkID, error) {
	var id NetworkID
	b, err := hex.DecodeString(s)
	if err != nil {
		return id, fmt.Errorf("p2p: parsing network ID: %w", err)
	}
	if len(b) != len(id) {
		return id, fmt.Errorf("p2p: parsing network ID: got %d bytes, want %d", len(b), len(id))
	}
	copy(id[:], b)
	return id, nil
}

// String returns the full hex form.
func (id NetworkID) String() string { return hex.EncodeToString(id[:]) }

// Short returns the first 8 bytes in hex: long enough that two genesis files
// never collide by accident, short enough for protocol IDs and topic names.
func (id NetworkID) Short() string { return hex.EncodeToString(id[:8]) }

// IsZero reports whether the ID is unset.
func (id NetworkID) IsZero() bool { return id == NetworkID{} }

// protocolPrefix is the root of every protocol ID of the network, and also the
// Kademlia DHT prefix (kad-dht appends /kad/1.0.0).
func (id NetworkID) protocolPrefix() protocol.ID {
	return protocol.ID("/trinity/" + id.Short())
}

// BlobProtocol is the stream protocol of the blob exchange.
func (id NetworkID) BlobProtocol() protocol.ID {
	return id.protocolPrefix() + "/blob/1.0.0"
}

// gossipProtocol is the namespaced gossipsub v1.2 protocol, so that gossip of
// two networks never meets even on a shared host.
func (id NetworkID) gossipProtocol() protocol.ID {
	return id.protocolPrefix() + "/meshsub/1.2.0"
}

// topicName is the pubsub topic string of a trinity topic.
func (id NetworkID) topicName(t Topic) string {
	return "/trinity/" + id.Short() + "/" + string(t) + "/1"
}

// mdnsService is the mDNS service name; it must be a DNS label.
func (id NetworkID) mdnsService() string { return "trinity-" + id.Short() }
