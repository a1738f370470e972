package node

import (
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
)

// newStatusNode is a real trainer node (not running) for the handler tests.
func newStatusNode(t *testing.T) (*Node, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g := validGenesis(t)
	g.Data.Bytes = 1 << 16
	dir := t.TempDir()
	n, err := New(ctx, Config{Genesis: g, Role: RoleTrainer, DataDir: dir, ListenAddrs: loopbackAddrs(), Bootstrap: []string{}, Threads: 1},
		WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.Close() })
	return n, dir
}

func fetch(t *testing.T, h http.Handler, method, target string) (*http.Response, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(method, "http://node"+target, nil))
	resp := rec.Result()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// TestDashboardRoutes checks every route's status, content type and
// security headers, hostile queries and paths included.
func TestDashboardRoutes(t *testing.T) {
	n, _ := newStatusNode(t)
	h := StatusHandler(n)
	for _, tc := range []struct {
		method, target string
		code           int
		ctype          string
	}{
		{"GET", "/", 200, "text/html; charset=utf-8"},
		{"GET", "/?points=300", 200, "text/html; charset=utf-8"},
		{"GET", "/static/app.js", 200, "text/javascript; charset=utf-8"},
		{"GET", "/static/style.css", 200, "text/css; charset=utf-8"},
		{"GET", "/api/status", 200, "application/json"},
		{"GET", "/api/status?points=2", 200, "application/json"},
		{"GET", "/api/status?points=2000", 200, "application/json"},
		{"GET", "/api/status?points=20&peers=1", 200, "application/json"},
		{"GET", "/api/status?peers=0", 400, ""},
		{"GET", "/api/status?peers=1025", 400, ""},
		{"GET", "/status", 200, "application/json"},
		{"GET", "/metrics", 200, "text/plain; version=0.0.4"},
		{"HEAD", "/", 200, "text/html; charset=utf-8"},
		// Hostile or wrong queries: 4xx, never a panic.
		{"GET", "/api/status?points=1", 400, ""},
		{"GET", "/api/status?points=2001", 400, ""},
		{"GET", "/api/status?points=-5", 400, ""},
		{"GET", "/api/status?points=9999999999999999999999", 400, ""},
		{"GET", "/api/status?points=abc", 400, ""},
		{"GET", "/api/status?points=", 400, ""},
		{"GET", "/api/status?points=3&points=4", 400, ""},
		{"GET", "/api/status?key=1", 400, ""},
		{"GET", "/api/status?points=%zz", 400, ""},
		{"GET", "/api/status?points=3;x=1", 400, ""},
		{"GET", "/api/status?points=" + strings.Repeat("9", 300), 400, ""},
		{"GET", "/?file=../../identity.key", 400, ""},
		{"GET", "/static/app.js?v=1", 400, ""},
		{"GET", "/static/identity.key", 404, ""},
		{"GET", "/static/..%2fidentity.key", 404, ""},
		{"GET", "/static/", 404, ""},
		{"GET", "/identity.key", 404, ""},
		{"GET", "/web/app.js", 404, ""},
		{"POST", "/", 405, ""},
		{"POST", "/api/status", 405, ""},
		{"DELETE", "/status", 405, ""},
	} {
		resp, body := fetch(t, h, tc.method, tc.target)
		if resp.StatusCode != tc.code {
			t.Errorf("%s %s: %d, want %d (%s)", tc.method, tc.target, resp.StatusCode, tc.code, body)
			continue
		}
		if tc.ctype != "" && resp.Header.Get("Content-Type") != tc.ctype {
			t.Errorf("%s %s: Content-Type %q, want %q", tc.method, tc.target, resp.Header.Get("Content-Type"), tc.ctype)
		}
		for k, want := range map[string]string{"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY"} {
			if got := resp.Header.Get(k); got != want {
				t.Errorf("%s %s: %s %q, want %q", tc.method, tc.target, k, got, want)
			}
		}
		if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("%s %s: CSP %q", tc.method, tc.target, csp)
		}
	}
}

// TestDashboardGzip: the data endpoint compresses for clients that ask, and
// only for them.
func TestDashboardGzip(t *testing.T) {
	n, _ := newStatusNode(t)
	h := StatusHandler(n)
	for _, tc := range []struct {
		accept string
		gz     bool
	}{{"", false}, {"gzip", true}, {"br, GZIP;q=0.5", true}, {"gzip;q=0", false}, {"deflate", false}, {"gzip-ish", false}} {
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "/api/status", nil)
		req.Header.Set("Accept-Encoding", tc.accept)
		h.ServeHTTP(rec, req)
		var body io.Reader = rec.Body
		if got := rec.Header().Get("Content-Encoding") == "gzip"; got != tc.gz {
			t.Errorf("Accept-Encoding %q: gzip %v, want %v", tc.accept, got, tc.gz)
			continue
		}
		if tc.gz {
			zr, err := gzip.NewReader(rec.Body)
			if err != nil {
				t.Fatal(err)
			}
			body = zr
		}
		var st Status
		if err := json.NewDecoder(body).Decode(&st); err != nil || st.Peer != n.ID().String() {
			t.Errorf("Accept-Encoding %q: decoding the answer: %v (peer %q)", tc.accept, err, st.Peer)
		}
	}
}

func TestDashboardOff(t *testing.T) {
	n, _ := newStatusNode(t)
	h := StatusHandler(n, WithDashboard(false))
	for target, code := range map[string]int{"/": 404, "/static/app.js": 404, "/api/status": 404, "/status": 200, "/metrics": 200} {
		if resp, _ := fetch(t, h, "GET", target); resp.StatusCode != code {
			t.Errorf("dashboard off: GET %s: %d, want %d", target, resp.StatusCode, code)
		}
	}
}

// TestDashboardKeepsSecrets: no response carries the private key or the
// data directory's path, even when the last error logged names a file in it.
func TestDashboardKeepsSecrets(t *testing.T) {
	n, dir := newStatusNode(t)
	n.log.Warn("reading a file failed", "path", filepath.Join(dir, p2p.IdentityFile), "err", "permission denied")
	n.publishStatus()
	raw, err := os.ReadFile(filepath.Join(dir, p2p.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	k, err := p2p.LoadIdentity(filepath.Join(dir, p2p.IdentityFile))
	if err != nil {
		t.Fatal(err)
	}
	kb, err := crypto.MarshalPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	rk, _ := k.Raw()
	secrets := []string{dir, string(raw), hex.EncodeToString(kb), base64.StdEncoding.EncodeToString(kb), hex.EncodeToString(rk),
		base64.StdEncoding.EncodeToString(rk), base64.StdEncoding.EncodeToString(rk[:32])}
	h := StatusHandler(n)
	for _, target := range []string{"/", "/static/app.js", "/api/status", "/status", "/metrics"} {
		_, body := fetch(t, h, "GET", target)
		for _, s := range secrets {
			if s != "" && strings.Contains(body, s) {
				t.Errorf("GET %s exposes a secret (%.20q...)", target, s)
			}
		}
	}
	_, body := fetch(t, h, "GET", "/api/status")
	var st Status
	if err := json.Unmarshal([]byte(body), &st); err != nil {
		t.Fatal(err)
	}
	if st.LastError == nil || !strings.Contains(st.LastError.Message, "<data-dir>/"+p2p.IdentityFile) || st.LastError.Level != "WARN" {
		t.Errorf("last error %+v: want the warning with the data directory redacted", st.LastError)
	}
}

func TestParseDashQuery(t *testing.T) {
	for _, tc := range []struct {
		raw    string
		points int
		ok     bool
	}{
		{"", defaultPoints, true},
		{"peers=3", defaultPoints, true},
		{"peers=3&points=7", 7, true},
		{"peers=3&peers=4", 0, false},
		{"points=2", 2, true},
		{"points=2000", 2000, true},
		{"points=0", 0, false},
		{"points=+5", 0, false}, // "+" is a space
		{"points=0x10", 0, false},
		{"points=1e3", 0, false},
		{"points", 0, false},
		{"points=5&points=5", 0, false},
		{"POINTS=5", 0, false},
		{"x", 0, false},
		{"%", 0, false},
	} {
		q, err := parseDashQuery(tc.raw)
		if (err == nil) != tc.ok || (tc.ok && q.points != tc.points) {
			t.Errorf("parseDashQuery(%q) = %+v, %v; want points %d ok %v", tc.raw, q, err, tc.points, tc.ok)
		}
	}
}

func FuzzParseDashQuery(f *testing.F) {
	for _, s := range []string{"", "points=5", "points=2000", "points=%zz", "points=1&points=2", "a=b;c", strings.Repeat("x", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := parseDashQuery(raw)
		if err == nil && (q.points < 2 || q.points > maxPoints || q.peers < 1 || q.peers > dashPeers) {
			t.Fatalf("parseDashQuery(%q) accepted %+v", raw, q)
		}
	})
}

// TestHistoryBounded: ten thousand rounds stay within historyCap points
// that cover every round once, with sums and means preserved.
func TestHistoryBounded(t *testing.T) {
	h := newHistory(historyCap)
	const rounds = 10000
	var bytesIn int64
	for r := uint64(0); r < rounds; r++ {
		p := h.touch(r)
		p.bytesIn += int64(r)
		bytesIn += int64(r)
		p.valLoss.add(2)
		if r%2 == 0 {
			p.score.add(1)
		} else {
			p.score.add(math.NaN()) // ignored
		}
		if len(h.pts) > historyCap {
			t.Fatalf("round %d: %d points", r, len(h.pts))
		}
	}
	pts := h.export()
	var next uint64
	var sum int64
	for i, p := range pts {
		if p.Round != next {
			t.Fatalf("point %d starts at round %d, want %d", i, p.Round, next)
		}
		next = p.Round + p.Rounds
		sum += p.BytesIn
		if p.ValLoss == nil || *p.ValLoss != 2 || p.Score == nil || *p.Score != 1 {
			t.Fatalf("point %d: val loss %v score %v, want 2 and 1", i, p.ValLoss, p.Score)
		}
	}
	if next != rounds || sum != bytesIn {
		t.Fatalf("history covers rounds [0, %d) with %d bytes; want [0, %d) with %d", next, sum, rounds, bytesIn)
	}
	if len(pts) < historyCap/2 {
		t.Fatalf("only %d points kept of %d", len(pts), historyCap)
	}
	for _, n := range []int{2, 7, 100, 1000} {
		ds := downsample(pts, n)
		var s int64
		for _, p := range ds {
			s += p.BytesIn
			if p.ValLoss == nil || math.Abs(*p.ValLoss-2) > 1e-12 {
				t.Fatalf("downsample(%d): val loss %v", n, p.ValLoss)
			}
		}
		if len(ds) > n || s != bytesIn || ds[0].Round != 0 || ds[len(ds)-1].Round+ds[len(ds)-1].Rounds != rounds {
			t.Fatalf("downsample(%d): %d points, %d bytes, want <= %d points, %d bytes, rounds [0, %d)", n, len(ds), s, n, bytesIn, rounds)
		}
	}
}

// TestHistoryLateEvent: a value of a round that arrives in a later round
// (a manifest is applied after its round) lands on its own round's point.
func TestHistoryLateEvent(t *testing.T) {
	h := newHistory(8)
	for r := range uint64(7) {
		h.touch(r)
	}
	h.touch(5).valLoss.add(1)
	h.touch(6).valLoss.add(3)
	pts := h.export()
	if len(pts) != 7 || pts[5].ValLoss == nil || *pts[5].ValLoss != 1 || *pts[6].ValLoss != 3 {
		t.Fatalf("history %+v: want val loss 1 at round 5 and 3 at round 6", pts)
	}
	h.touch(7)
	h.touch(12).valLoss.add(5) // past the cap: pairs merge
	pts = h.export()
	if len(pts) != 5 || pts[2].Round != 4 || pts[2].Rounds != 2 || *pts[2].ValLoss != 1 || *pts[len(pts)-1].ValLoss != 5 {
		t.Fatalf("after merging: %+v", pts)
	}
}

func TestRejectionKind(t *testing.T) {
	for reason, kind := range map[string]string{
		"verify: contribution rejected: base state 0102, want 0304": "stale",
		"verify: contribution rejected: blob for round 3, want 4":   "stale",
		"verify: contribution rejected: non-finite value":           "poisoned",
		"verify: contribution rejected: norm 1e9 exceeds 100":       "poisoned",
		"loss after the contribution is not finite":                 "poisoned",
		"no improvement on its own batch (-0.01 nats)":              "unhelpful",
		"own batch improves less than a random one (0.1 < 0.2)":     "unhelpful",
		"copied: the same blob as 1 other trainer(s)":               "copied",
		"blob not served":    "unavailable",
		"not scored in time": "late",
		"verify: contribution rejected: sparseloco: bad header": "malformed",
		"announced size exceeds the codec's bound":              "malformed",
		"": "unexplained",
		"replay: excluded (failed or unanswered challenge, or no commitment)": "replay",
	} {
		if got := rejectionKind(reason); got != kind {
			t.Errorf("rejectionKind(%q) = %q, want %q", reason, got, kind)
		}
	}
}

func testPeer(t *testing.T, seed byte) peer.ID {
	t.Helper()
	k, _, err := crypto.GenerateEd25519Key(strings.NewReader(strings.Repeat(string(rune('a'+seed)), 64)))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := peer.IDFromPrivateKey(k)
	return id
}

// TestAgreement: three validators, one of which dissents on one trainer.
func TestAgreement(t *testing.T) {
	d := newDashState()
	v := []peer.ID{testPeer(t, 1), testPeer(t, 2), testPeer(t, 3)}
	tr := []string{testPeer(t, 4).String(), testPeer(t, 5).String()}
	for i, vid := range v {
		s := &Scores{Round: 7, Entries: []ScoreEntry{{Trainer: tr[0], OK: true, Score: 0.5}, {Trainer: tr[1], OK: i != 2, Score: 0.4}}}
		if i == 2 {
			s.Entries[1].Reason = "verify: contribution rejected: non-finite value"
		}
		d.onScores(testPeer(t, 9), vid, s, 0)
	}
	a := d.agreement()
	if a == nil || len(a.Rounds) != 1 || len(a.Validators) != 3 {
		t.Fatalf("agreement %+v", a)
	}
	if r := a.Rounds[0]; r.Trainers != 2 || r.Unanimous != 0.5 || r.Validators != 3 || math.Abs(r.MaxSpread-0.4) > 1e-12 {
		t.Errorf("round agreement %+v, want 2 trainers, half unanimous, spread 0.4", r)
	}
	for _, va := range a.Validators {
		want := 1.0
		if va.Validator == v[2].String() {
			want = 0.5
		}
		if va.Verdicts != 2 || va.Agree != want {
			t.Errorf("validator %s: %+v, want 2 verdicts, agree %v", va.Validator, va, want)
		}
	}
	if len(d.rejects) != 1 || d.rejects[0].Kind != "poisoned" || d.rejects[0].Validator != v[2].String() {
		t.Errorf("rejections %+v", d.rejects)
	}
	for i := range 2 * dashRejections {
		d.reject(Rejection{Round: uint64(i)})
	}
	if len(d.rejects) != dashRejections || d.rejects[len(d.rejects)-1].Round != 2*dashRejections-1 {
		t.Errorf("rejection ring holds %d, last round %d", len(d.rejects), d.rejects[len(d.rejects)-1].Round)
	}
	// A flood of announcers is not tracked past maxSeen.
	for i := range maxSeen + 10 {
		d.onAnnouncement(peer.ID(fmt.Sprint(i)), &Announcement{Round: 1})
	}
	if len(d.seen) != maxSeen {
		t.Errorf("%d peers tracked after a flood of announcers, want %d", len(d.seen), maxSeen)
	}
}

// TestCurrentScores: on a node that is not a validator, a trainer's score
// is the validators' mean of the latest smoothed score each gave it, even if
// it was not in the latest round.
func TestCurrentScores(t *testing.T) {
	n, _ := newStatusNode(t)
	v1, _ := peer.Decode(n.gen.Validators[0].Peer)
	v2, _ := peer.Decode(n.gen.Validators[1].Peer)
	a, b := testPeer(t, 4).String(), testPeer(t, 5).String()
	d := n.dash
	d.onScores(n.ID(), v1, &Scores{Round: 5, Entries: []ScoreEntry{{Trainer: a, OK: true, Smoothed: 0.1}}}, 0)
	d.onScores(n.ID(), v1, &Scores{Round: 6, Entries: []ScoreEntry{{Trainer: a, OK: true, Smoothed: 0.3}}}, 0)
	d.onScores(n.ID(), v2, &Scores{Round: 6, Entries: []ScoreEntry{{Trainer: a, OK: true, Smoothed: 0.5}}}, 0)
	d.onScores(n.ID(), v1, &Scores{Round: 7, Entries: []ScoreEntry{{Trainer: b, OK: true, Smoothed: 0.2}}}, 0)
	got := d.currentScores(n)
	if len(got) != 2 || math.Abs(got[a]-0.4) > 1e-12 || got[b] != 0.2 {
		t.Fatalf("current scores %v: want %s 0.4 and %s 0.2", got, a, b)
	}
	// The table is the best-ranked validator's: v1's rounds 5-7.
	tab := d.scoreTable(n)
	if tab == nil || tab.Validator != v1.String() || len(tab.Rounds) != 3 || len(tab.Rows) != 2 {
		t.Fatalf("score table %+v: want v1's, 3 rounds, 2 trainers", tab)
	}
}

// TestReportCompute: attested throughput shows in the status and its
// history; a node that reports none has no compute section.
func TestReportCompute(t *testing.T) {
	n, _ := newStatusNode(t)
	n.publishStatus()
	if st := n.Status(); st.Compute != nil {
		t.Fatalf("compute section %+v on a node that reported none", st.Compute)
	}
	n.ReportCompute(0, ComputeStatus{Device: "cpu", Unit: "tokens/s", Throughput: math.NaN(), Attested: true}) // ignored
	n.ReportCompute(0, ComputeStatus{Device: "cpu", Unit: "tokens/s", Throughput: 1000, Attested: true})
	n.ReportCompute(0, ComputeStatus{Device: "cpu", Unit: "tokens/s", Throughput: 3000, Attested: true})
	n.ReportCompute(0, ComputeStatus{Device: "cpu", Unit: "tokens/s", Throughput: 9999, Attested: false}) // not in the history
	n.dash.builtAt = time.Time{}                                                                          // rebuild the views now
	n.publishStatus()
	st := n.Status()
	if st.Compute == nil || st.Compute.Throughput != 9999 || st.Compute.Attested || st.Compute.Unit != "tokens/s" {
		t.Fatalf("compute section %+v: want the last report", st.Compute)
	}
	var got *float64
	for _, p := range st.History {
		if p.Throughput != nil {
			got = p.Throughput
		}
	}
	if got == nil || *got != 2000 {
		t.Fatalf("throughput history %v: want the mean of the attested reports, 2000", got)
	}
}

func TestConnRow(t *testing.T) {
	p := testPeer(t, 1)
	for _, tc := range []struct {
		ci         p2p.ConnInfo
		wasRelayed bool
		addr, role string
	}{
		{p2p.ConnInfo{Peer: p, Transport: "tcp"}, false, "direct", "peer"},
		{p2p.ConnInfo{Peer: p, Relayed: true, Transport: "relay"}, false, "relayed", "peer"},
		{p2p.ConnInfo{Peer: p, Relayed: true, Transport: "relay"}, true, "relayed", "peer"},
		{p2p.ConnInfo{Peer: p, Transport: "quic-v1"}, true, "hole-punched", "peer"},
		{p2p.ConnInfo{Peer: p, Transport: "quic-v1", Upgraded: true}, false, "hole-punched", "peer"},
		{p2p.ConnInfo{Peer: p, Transport: "tcp", Relay: true, Latency: 1500 * time.Microsecond}, false, "direct", "relay"},
	} {
		r := connRow(tc.ci, tc.wasRelayed)
		if r.Addr != tc.addr || r.Role != tc.role || !r.Connected || r.Peer != p.String() || r.Transport != tc.ci.Transport {
			t.Errorf("connRow(%+v, %v) = %+v, want addr %s role %s", tc.ci, tc.wasRelayed, r, tc.addr, tc.role)
		}
		if (tc.ci.Latency > 0) != (r.LatencyMS != nil) || (r.LatencyMS != nil && *r.LatencyMS != 1.5) {
			t.Errorf("connRow(%+v): latency %v", tc.ci, r.LatencyMS)
		}
	}
}

// fixedStatus serves one Status snapshot: the handler's input, for fuzzing
// it without a running node.
type fixedStatus Status

func (f fixedStatus) Status() Status { return Status(f) }

// FuzzDashboardHandler: any path and query gets a 2xx, 400, 404 or 405,
// never a panic or a 5xx.
func FuzzDashboardHandler(f *testing.F) {
	hist := newHistory(historyCap)
	for r := range uint64(1000) {
		hist.touch(r).valLoss.add(float64(r))
	}
	lat := 3.0
	handler := StatusHandler(fixedStatus{Role: "validator", History: hist.export(), PeerList: []PeerInfo{{Peer: "x", LatencyMS: &lat}}})
	for _, s := range []string{"/", "/api/status?points=5", "/static/app.js", "/static/x", "/status?x", "/%zz", "/api/status?points=5&peers=2", "//api/status", "/api/../status"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, target string) {
		u, err := url.ParseRequestURI(target)
		if err != nil || u.Host != "" || u.Scheme != "" {
			return // not a request line a server would route
		}
		rec := httptest.NewRecorder()
		req := httptest.NewRequest("GET", "http://node/", nil)
		req.URL = u
		req.RequestURI = target
		handler.ServeHTTP(rec, req)
		switch c := rec.Code; {
		case c >= 200 && c < 400, c == 400, c == 404, c == 405:
		default:
			t.Fatalf("GET %q: %d", target, c)
		}
	})
}
