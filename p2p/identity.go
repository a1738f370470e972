package p2p

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

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
	if err := writeFileAtomic(path, raw, 0o600, true); err != nil {
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

// writeFileAtomic writes data to a temporary file in path's directory, syncs
// it and moves it into place, so a crash leaves either the old file or the
// new one. With exclusive set, an existing path is an fs.ErrExist error.
func writeFileAtomic(path string, data []byte, perm os.FileMode, exclusive bool) (err error) {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	tmpName := tmp.Name()
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmpName)
		}
	}()
	if err = tmp.Chmod(perm); err != nil {
		return err
	}
	if _, err = tmp.Write(data); err != nil {
		return err
	}
	if err = tmp.Sync(); err != nil {
		return err
	}
	if err = tmp.Close(); err != nil {
		return err
	}
	if exclusive {
		if err = os.Link(tmpName, path); err != nil {
			return err
		}
		_ = os.Remove(tmpName)
	} else if err = os.Rename(tmpName, path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
