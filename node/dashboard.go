package node

import (
	"compress/gzip"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// The dashboard is a page embedded in the binary (node/web: HTML, one
// script, one style sheet, no external resource) served on the status
// endpoint's port. The script polls GET /api/status, which is the Status
// snapshot with its history downsampled to the points the plots need, and
// draws the plots as SVG itself.

//go:embed web/index.html web/app.js web/style.css
var webFS embed.FS

// dashAsset is an embedded file and its content type.
type dashAsset struct {
	path, ctype string
}

var dashAssets = map[string]dashAsset{
	"app.js":    {"web/app.js", "text/javascript; charset=utf-8"},
	"style.css": {"web/style.css", "text/css; charset=utf-8"},
}

// Query limits of the dashboard's endpoints.
const (
	defaultPoints = 160
	maxPoints     = 2000
	defaultPeers  = 256
	maxQueryLen   = 256
)

// StatusOption configures StatusHandler and ServeStatus.
type StatusOption func(*statusOptions)

type statusOptions struct{ dashboard bool }

// WithDashboard switches the dashboard (/, /static/, /api/status) on or off
// (default on); /status and /metrics are always served.
func WithDashboard(on bool) StatusOption { return func(o *statusOptions) { o.dashboard = on } }

// dashQuery is the parsed query of a dashboard request.
type dashQuery struct {
	points int // history points wanted
	peers  int // peer table rows wanted
}

// dashParams are the query parameters, each an integer in [lo, hi].
var dashParams = map[string]struct {
	lo, hi int
	field  func(*dashQuery) *int
}{
	"points": {2, maxPoints, func(q *dashQuery) *int { return &q.points }},
	"peers":  {1, dashPeers, func(q *dashQuery) *int { return &q.peers }},
}

// parseDashQuery accepts each of dashParams at most once, in range; anything
// else is an error (a 400 for the client).
func parseDashQuery(raw string) (dashQuery, error) {
	q := dashQuery{points: defaultPoints, peers: defaultPeers}
	if len(raw) > maxQueryLen {
		return q, fmt.Errorf("query longer than %d bytes", maxQueryLen)
	}
	vals, err := url.ParseQuery(raw)
	if err != nil {
		return q, fmt.Errorf("malformed query: %w", err)
	}
	for k, vs := range vals {
		p, ok := dashParams[k]
		if !ok {
			return q, fmt.Errorf("unknown parameter %q", k)
		}
		if len(vs) != 1 {
			return q, fmt.Errorf("parameter %q given %d times", k, len(vs))
		}
		v, err := strconv.Atoi(vs[0])
		if err != nil || v < p.lo || v > p.hi {
			return q, fmt.Errorf("%s must be an integer from %d to %d", k, p.lo, p.hi)
		}
		*p.field(&q) = v
	}
	return q, nil
}

// registerDashboard adds the page, its assets and its data endpoint.
func registerDashboard(mux *http.ServeMux, src StatusSource) {
	query := func(w http.ResponseWriter, r *http.Request) (dashQuery, bool) {
		q, err := parseDashQuery(r.URL.RawQuery)
		if err != nil {
			http.Error(w, "bad request: "+err.Error(), http.StatusBadRequest)
			return q, false
		}
		return q, true
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		if _, ok := query(w, r); !ok {
			return
		}
		serveAsset(w, dashAsset{"web/index.html", "text/html; charset=utf-8"})
	})
	mux.HandleFunc("GET /static/{name}", func(w http.ResponseWriter, r *http.Request) {
		a, ok := dashAssets[r.PathValue("name")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		if r.URL.RawQuery != "" {
			http.Error(w, "bad request: assets take no query", http.StatusBadRequest)
			return
		}
		serveAsset(w, a)
	})
	mux.HandleFunc("GET /api/status", func(w http.ResponseWriter, r *http.Request) {
		q, ok := query(w, r)
		if !ok {
			return
		}
		writeJSON(w, r, q.apply(src.Status()))
	})
}

// apply trims a status to what the query asks for.
func (q dashQuery) apply(s Status) Status {
	s.History = downsample(s.History, q.points)
	if len(s.PeerList) > q.peers {
		s.PeerList = s.PeerList[:q.peers]
	}
	return s
}

// writeJSON encodes v, gzipped when the client takes it: the answer of a
// large network is mostly repeated keys and peer IDs, and shrinks several
// times (see BenchmarkDashboardAPI).
func writeJSON(w http.ResponseWriter, r *http.Request, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Add("Vary", "Accept-Encoding")
	var out io.Writer = w
	if acceptsGzip(r.Header.Get("Accept-Encoding")) {
		w.Header().Set("Content-Encoding", "gzip")
		zw, _ := gzip.NewWriterLevel(w, gzip.BestSpeed) // a valid level: no error
		defer zw.Close()
		out = zw
	}
	_ = json.NewEncoder(out).Encode(v)
}

// acceptsGzip reports whether an Accept-Encoding header lists gzip with a
// non-zero quality.
func acceptsGzip(h string) bool {
	for _, part := range strings.Split(h, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			return strings.ReplaceAll(strings.TrimSpace(params), " ", "") != "q=0"
		}
	}
	return false
}

func serveAsset(w http.ResponseWriter, a dashAsset) {
	b, err := webFS.ReadFile(a.path)
	if err != nil {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", a.ctype)
	_, _ = w.Write(b)
}

// secureHeaders sets the headers every response of the status endpoint
// carries: nothing is cached (it is live data), nothing is sniffed, framed
// or loaded from elsewhere.
func secureHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Cache-Control", "no-store")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; "+
			"connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
		h.ServeHTTP(w, r)
	})
}
