package p2p

import (
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// ErrHashMismatch means bytes do not hash to the CID they were asked for.
var ErrHashMismatch = errors.New("p2p: blob hash does not match its CID")

// CIDOf returns the CIDv1 (raw codec, sha2-256) of data.
func CIDOf(data []byte) cid.Cid {
	sum := sha256.Sum256(data)
	return cidFromDigest(sum[:])
}

func cidFromDigest(d []byte) cid.Cid {
	m, err := mh.Encode(d, mh.SHA2_256)
	if err != nil {
		// Encode fails only for unknown codes or a bad digest length, and
		// both are constants here.
		panic(fmt.Sprintf("p2p: encoding sha2-256 multihash: %v", err))
	}
	return cid.NewCidV1(cid.Raw, m)
}

// CheckCID accepts exactly the CIDs this package issues: version 1, raw
// codec, sha2-256 with a 32-byte digest. It returns the digest.
func CheckCID(c cid.Cid) ([]byte, error) {
	if !c.Defined() {
		return nil, errors.New("p2p: undefined CID")
	}
	if c.Version() != 1 || c.Type() != cid.Raw {
		return nil, fmt.Errorf("p2p: CID %s: want version 1 with the raw codec", c)
	}
	d, err := mh.Decode(c.Hash())
	if err != nil {
		return nil, fmt.Errorf("p2p: CID %s: %w", c, err)
	}
	if d.Code != mh.SHA2_256 || len(d.Digest) != sha256.Size {
		return nil, fmt.Errorf("p2p: CID %s: want a sha2-256 multihash", c)
	}
	return d.Digest, nil
}

// verifyBlob checks that data hashes to c.
func verifyBlob(c cid.Cid, data []byte) error {
	want, err := CheckCID(c)
	if err != nil {
		return err
	}
	got := sha256.Sum256(data)
	if subtle.ConstantTimeCompare(got[:], want) != 1 {
		return fmt.Errorf("%w: %s", ErrHashMismatch, c)
	}
	return nil
}
