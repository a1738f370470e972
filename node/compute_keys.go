package node

import (
	"crypto/ed25519"
	"fmt"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
)

// The compute market signs and checks with Ed25519 keys (verify/attest,
// verify/grail); peers are named by libp2p IDs of the same keys.

// ed25519Key is the standard-library form of a libp2p Ed25519 identity.
func ed25519Key(k crypto.PrivKey) (ed25519.PrivateKey, error) {
	if k == nil || k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("node: compute needs an Ed25519 identity")
	}
	raw, err := k.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("node: reading the Ed25519 identity: %v", err)
	}
	return ed25519.PrivateKey(raw), nil
}

// peerKey is the Ed25519 public key behind a peer ID.
func peerKey(id peer.ID) (ed25519.PublicKey, error) {
	pk, err := id.ExtractPublicKey()
	if err != nil {
		return nil, fmt.Errorf("node: peer %s: %w", id, err)
	}
	if pk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("node: peer %s has a non-Ed25519 key", id)
	}
	raw, err := pk.Raw()
	if err != nil {
		return nil, err
	}
	return ed25519.PublicKey(raw), nil
}

// keyPeer is the peer ID of an Ed25519 public key.
func keyPeer(pub ed25519.PublicKey) (peer.ID, error) {
	pk, err := crypto.UnmarshalEd25519PublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("node: peer key: %w", err)
	}
	return peer.IDFromPublicKey(pk)
}

// validatorKeys is the set of the genesis validators' Ed25519 keys.
func validatorKeys(g *Genesis) map[string]bool {
	keys := map[string]bool{}
	for _, v := range g.Validators {
		if id, err := peer.Decode(v.Peer); err == nil {
			if pk, err := peerKey(id); err == nil {
				keys[string(pk)] = true
			}
		}
	}
	return keys
}
