package p2p

import (
	"context"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"
)

// ErrNoRoutingPeers means the DHT routing table is empty: there is nobody to
// announce to or ask yet.
var ErrNoRoutingPeers = errors.New("p2p: DHT routing table is empty")

// KeyCID is the CID a well-known key is provided under on the DHT: the
// network's DHT stores provider records only, so a key names the set of
// peers that provide it, and what each offers is asked of the peer itself.
func KeyCID(key string) cid.Cid {
	return CIDOf([]byte("trinity/dht-key/v1\x00" + key))
}

// ProvideKey announces this node as a provider of key. Kademlia provider
// records expire (48 h in kad-dht): callers re-announce periodically, and
// after an ErrNoRoutingPeers once peers are known.
func (n *Node) ProvideKey(ctx context.Context, key string) error {
	if n.dht.RoutingTable().Size() == 0 {
		return ErrNoRoutingPeers
	}
	c := KeyCID(key)
	if err := n.dht.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("p2p: providing key %q: %w", key, err)
	}
	return nil
}

// FindKeyProviders returns up to limit peers (other than this one) that
// provide key, as the DHT knows them when ctx ends or the search completes.
func (n *Node) FindKeyProviders(ctx context.Context, key string, limit int) ([]peer.AddrInfo, error) {
	if limit <= 0 {
		return nil, fmt.Errorf("p2p: finding providers of %q: limit %d", key, limit)
	}
	if n.dht.RoutingTable().Size() == 0 {
		return nil, ErrNoRoutingPeers
	}
	// Leaving the loop early must stop the search's goroutine.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var out []peer.AddrInfo
	for ai := range n.dht.FindProvidersAsync(ctx, KeyCID(key), limit+1) {
		if ai.ID == n.host.ID() || ai.ID == "" {
			continue
		}
		out = append(out, ai)
		if len(out) == limit {
			break
		}
	}
	return out, nil
}
