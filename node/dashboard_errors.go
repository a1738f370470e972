package node

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// maxErrorLen bounds the last error the status shows.
const maxErrorLen = 400

// errorCapture remembers the last warning or error a node logged, for the
// status page. It wraps the node's logger, so every Warn and Error of the
// node and its p2p layer is caught without the call sites knowing.
type errorCapture struct {
	mu     sync.Mutex
	last   *ErrorNote
	redact string // the data directory, replaced in messages
}

// wrap returns a logger that also records into c.
func (c *errorCapture) wrap(l *slog.Logger, dataDir string) *slog.Logger {
	c.redact = dataDir
	return slog.New(&captureHandler{inner: l.Handler(), c: c})
}

func (c *errorCapture) note() *ErrorNote {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last == nil {
		return nil
	}
	n := *c.last
	return &n
}

func (c *errorCapture) record(t time.Time, lvl slog.Level, msg string, attrs []slog.Attr) {
	var b strings.Builder
	b.WriteString(msg)
	for _, a := range attrs {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value.Resolve())
		if b.Len() > maxErrorLen {
			break
		}
	}
	s := b.String()
	// Paths inside the data directory say nothing a dashboard reader needs
	// and hint at where the key lives: name the directory instead.
	if c.redact != "" {
		s = strings.ReplaceAll(s, c.redact, "<data-dir>")
	}
	if len(s) > maxErrorLen {
		s = s[:maxErrorLen] + "…"
	}
	c.mu.Lock()
	c.last = &ErrorNote{Time: t.UTC().Format(time.RFC3339), Level: lvl.String(), Message: s}
	c.mu.Unlock()
}

// captureHandler passes records on and records warnings and errors (with
// the record's own attributes; those added by With name the node itself).
type captureHandler struct {
	inner slog.Handler
	c     *errorCapture
}

func (h *captureHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn || h.inner.Enabled(ctx, l)
}

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		attrs := make([]slog.Attr, 0, r.NumAttrs())
		r.Attrs(func(a slog.Attr) bool {
			attrs = append(attrs, a)
			return true
		})
		h.c.record(r.Time, r.Level, r.Message, attrs)
	}
	if !h.inner.Enabled(ctx, r.Level) {
		return nil
	}
	return h.inner.Handle(ctx, r)
}

func (h *captureHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &captureHandler{inner: h.inner.WithAttrs(as), c: h.c}
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	return &captureHandler{inner: h.inner.WithGroup(name), c: h.c}
}
