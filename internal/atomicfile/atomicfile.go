// Package atomicfile writes files so that a crash at any point leaves either
// the old file or the complete new one, never a torn one: the bytes go to a
// temporary file in the same directory, which is synced, renamed over the
// target, and the directory synced so that the rename itself is durable.
//
// Every package of trinity that persists state (keys, checkpoints, blobs,
// proofs, node state) writes through here.
package atomicfile

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Option adjusts a write.
type Option func(*config)

type config struct {
	perm      os.FileMode
	exclusive bool
}

// Perm sets the file's mode (default 0o644).
func Perm(p os.FileMode) Option { return func(c *config) { c.perm = p } }

// Exclusive refuses to replace an existing file: the write fails with an
// error satisfying errors.Is(err, fs.ErrExist), and the old file is kept.
func Exclusive() Option { return func(c *config) { c.exclusive = true } }

// Write creates or replaces path with what write produces. If write fails,
// path is left untouched and the temporary file removed.
func Write(path string, write func(io.Writer) error, opts ...Option) (err error) {
	cfg := config{perm: 0o644}
	for _, o := range opts {
		o(&cfg)
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if err = f.Chmod(cfg.perm); err != nil {
		return fmt.Errorf("atomicfile: %w", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	if err = write(bw); err != nil {
		return err
	}
	if err = bw.Flush(); err != nil {
		return fmt.Errorf("atomicfile: writing %s: %w", tmp, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("atomicfile: syncing %s: %w", tmp, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("atomicfile: closing %s: %w", tmp, err)
	}
	if cfg.exclusive {
		// A hard link fails when path exists, where a rename would replace it.
		if err = os.Link(tmp, path); err != nil {
			return fmt.Errorf("atomicfile: %w", err)
		}
		_ = os.Remove(tmp)
	} else if err = os.Rename(tmp, path); err != nil {
		return fmt.Errorf("atomicfile: renaming %s to %s: %w", tmp, path, err)
	}
	return syncDir(dir)
}

// WriteFile is Write of a byte slice.
func WriteFile(path string, data []byte, opts ...Option) error {
	return Write(path, func(w io.Writer) error {
		_, err := io.Copy(w, bytes.NewReader(data))
		return err
	}, opts...)
}

// syncDir makes a rename in dir durable. Some filesystems cannot sync a
// directory; that is not an error worth failing a write for.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("atomicfile: opening directory %s: %w", dir, err)
	}
	defer d.Close()
	_ = d.Sync()
	return nil
}
