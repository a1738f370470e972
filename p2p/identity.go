package p2p

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/trinity-net/trinity/internal/atomicfile"

	"github.com/libp2p/go-libp2p/core/crypto"
)

// IdentityFile is the name of the node's key file inside the data directory.
const IdentityFile = "identity.key"

// maxIdentityFileSize bounds what LoadIdentity reads: an Ed25519 key in
// libp2p's protobuf encoding is 68 bytes.
const maxIdentityFileSize = 4096

// LoadOrCreateIdentity returns the Ed25519 private key stored in
// dir/identity.key, creating it (mode 0600, atomically) if it does not exist.
// A file readable by group or others, or one that does not hold an Ed25519
// key, is refused rather than silently replaced.
func LoadOrCreateIdentity(dir string) (crypto.PrivKey, error) {
	path := filepath.Join(dir, IdentityFile)
	k, err := LoadIdentity(path)
	if err == nil {
		return k, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("p2p: creating data directory: %w", err)
	}
	priv, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		return nil, fmt.Errorf("p2p: generating identity: %w", err)
	}
	raw, err := crypto.MarshalPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("p2p: encoding identity: %w", err)
	}
	// Link, not rename, so that of two processes starting at once one wins
	// and the other loads the winner's key instead of overwriting it.
	if err := atomicfile.WriteFile(path, raw, atomicfile.Perm(0o600), atomicfile.Exclusive()); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return LoadIdentity(path)
		}
		return nil, fmt.Errorf("p2p: writing identity: %w", err)
	}
	return priv, nil
}

// LoadIdentity reads an Ed25519 private key written by LoadOrCreateIdentity.
func LoadIdentity(path string) (crypto.PrivKey, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("p2p: opening identity: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("p2p: identity %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("p2p: identity %s is not a regular file", path)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("p2p: identity %s has mode %04o; it must not be accessible by group or others (chmod 600)", path, perm)
	}
	if st.Size() > maxIdentityFileSize {
		return nil, fmt.Errorf("p2p: identity %s is %d bytes, too large for a key", path, st.Size())
	}
	raw := make([]byte, st.Size())
	if _, err := f.ReadAt(raw, 0); err != nil {
		return nil, fmt.Errorf("p2p: reading identity %s: %w", path, err)
	}
	k, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("p2p: identity %s is corrupt: %w", path, err)
	}
	if k.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("p2p: identity %s holds a %v key, want Ed25519", path, k.Type())
	}
	return k, nil
}
