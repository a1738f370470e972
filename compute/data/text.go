package data

import (
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// TextOption configures LoadText.
type TextOption func(*textConfig) error

type textConfig struct {
	sep      string
	maxBytes int64
}

// WithSeparator sets the text placed between the files of a folder
// (default "\n").
func WithSeparator(sep string) TextOption {
	return func(c *textConfig) error { c.sep = sep; return nil }
}

// WithMaxBytes bounds the total text LoadText will read (default 4 GiB).
func WithMaxBytes(n int64) TextOption {
	return func(c *textConfig) error {
		if n < 1 {
			return fmt.Errorf("data: max bytes %d must be positive", n)
		}
		c.maxBytes = n
		return nil
	}
}

// LoadText reads training text from path: a regular file, or a folder whose
// regular files (recursively, skipping names starting with '.', not
// following symbolic links inside the folder) are read in lexical order of
// their paths and joined with the separator.
//
// Bytes are taken as they are: a binary file is not refused but trains the
// model on its bytes, since the byte tokenizer can represent anything. The
// result is empty only if an error is returned.
func LoadText(path string, opts ...TextOption) ([]byte, error) {
	cfg := textConfig{sep: "\n", maxBytes: 4 << 30}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	var files []string
	switch {
	case st.Mode().IsRegular():
		files = []string{path}
	case st.IsDir():
		// WalkDir does not follow a symbolic link even at the root.
		root, err := filepath.EvalSymlinks(path)
		if err != nil {
			return nil, fmt.Errorf("data: %w", err)
		}
		// WalkDir visits entries in lexical order, so the result does not
		// depend on the file system's directory order.
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if p != root && strings.HasPrefix(d.Name(), ".") {
				if d.IsDir() {
					return filepath.SkipDir
				}
				return nil
			}
			if d.Type().IsRegular() {
				files = append(files, p)
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("data: listing %s: %w", path, err)
		}
		if len(files) == 0 {
			return nil, fmt.Errorf("data: folder %s holds no text files", path)
		}
	default:
		return nil, fmt.Errorf("data: %s is neither a regular file nor a folder", path)
	}
	var out []byte
	for i, f := range files {
		if i > 0 {
			out = append(out, cfg.sep...)
		}
		if out, err = appendFile(out, f, cfg.maxBytes); err != nil {
			return nil, err
		}
	}
	if len(strings.TrimSpace(string(out))) == 0 {
		return nil, fmt.Errorf("data: %s holds no text", path)
	}
	return out, nil
}

func appendFile(dst []byte, path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	defer f.Close()
	room := limit - int64(len(dst))
	if room < 0 {
		room = 0
	}
	b, err := io.ReadAll(io.LimitReader(f, room+1))
	if err != nil {
		return nil, fmt.Errorf("data: reading %s: %w", path, err)
	}
	if int64(len(b)) > room {
		return nil, fmt.Errorf("data: text exceeds the limit of %d bytes at %s", limit, path)
	}
	return append(dst, b...), nil
}
