package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// TestDashboardInBrowser runs a validator and two trainers, serves their
// dashboards, loads them in headless Chromium over the DevTools protocol and
// reads from the DOM that the loss plot has points and that the peer table
// lists every other peer (the bootstrap node and the trainers), then loads
// a status whose peer-supplied strings are markup and checks that they show
// as text; with no console error, CSP violation or failed load on the way.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end dashboard test")
	}
	bin := findBrowser()
	if bin == "" {
		t.Skip("no headless browser: install Debian's chromium package (.ci/run does) or set TRINITY_BROWSER")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const trainers = 2
	tn, err := NewTestnet(ctx, TestnetConfig{Dir: t.TempDir(), Trainers: trainers, Model: testGenesis(), Logger: testLogger(), StartDelay: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer tn.Close()
	if err := tn.Run(ctx); err != nil {
		t.Fatal(err)
	}
	urls := map[string]string{}
	sctx, scancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() { scancel(); wg.Wait() }()
	for _, ns := range tn.StatusSources() {
		addrc := make(chan net.Addr, 1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ServeStatus(sctx, "127.0.0.1:0", ns.Source, testLogger(), func(a net.Addr) { addrc <- a }); err != nil {
				t.Error(err)
			}
		}()
		urls[ns.Name] = "http://" + (<-addrc).String() + "/"
	}
	// Three rounds applied: the validator has measured the loss three times.
	L := tn.Genesis.Params.RoundLength()
	if _, err := tn.WaitRound(ctx, 2, 4*L+20*time.Second); err != nil {
		t.Fatal(err)
	}

	br, err := startBrowser(ctx, t, bin)
	if err != nil {
		t.Fatal(err)
	}
	defer br.close()
	for _, tc := range []struct {
		name, series string
	}{
		{"validator-0", "validation loss"},
		{"trainer-0", "training loss (own)"},
	} {
		page, err := br.open(ctx, urls[tc.name])
		if err != nil {
			t.Fatal(err)
		}
		// Every other peer: the bootstrap node, the validator, the trainers.
		wantRows := trainers + 2 - 1
		var dom domState
		deadline := time.Now().Add(4*L + 20*time.Second)
		for {
			if dom, err = page.dom(ctx); err != nil {
				t.Fatal(err)
			}
			if dom.Updates >= 2 && dom.points(tc.series) >= 2 && dom.Rows == wantRows {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the page did not render in time: %+v", tc.name, dom)
			}
			time.Sleep(500 * time.Millisecond)
		}
		if d := dom.path(tc.series); strings.Count(d, "L") < 1 || !strings.HasPrefix(d, "M") {
			t.Errorf("%s: %s path %q is not a line", tc.name, tc.series, d)
		}
		roles := strings.Join(dom.Roles, " ")
		if strings.Count(roles, "trainer") < trainers-1 || !strings.Contains(roles, "bootstrap") {
			t.Errorf("%s: peer roles %q: want the trainers and the bootstrap node", tc.name, roles)
		}
		if tc.name == "validator-0" && !dom.Scores {
			t.Errorf("%s: no score table", tc.name)
		}
		t.Logf("%s: %d updates, %s: %d points, %d peer rows (%s)", tc.name, dom.Updates, tc.series, dom.points(tc.series), dom.Rows, roles)
	}
	checkHostileText(ctx, t, br, sctx, &wg)
	time.Sleep(time.Second) // let late console messages arrive
	for _, e := range br.consoleErrors() {
		t.Errorf("browser console: %s", e)
	}
}

// hostile is markup a hostile peer could put in what it sends (a rejection
// reason comes from another validator, a peer ID from anyone).
const hostile = `<img src=x onerror="document.title='pwned'"><script>document.title='pwned'</script>`

// checkHostileText serves a status whose peer-supplied strings are markup
// and checks that the page shows them as text: no element made of them, no
// script run (the CSP would also block it, and report it as an error).
func checkHostileText(ctx context.Context, t *testing.T, br *browser, sctx context.Context, wg *sync.WaitGroup) {
	t.Helper()
	one := 1.0
	st := fixedStatus{Role: "validator", Peer: hostile, Network: hostile, Phase: hostile, StateHash: hostile,
		History:    []RoundPoint{{Round: 0, Rounds: 1, ValLoss: &one}, {Round: 1, Rounds: 1, ValLoss: &one}},
		PeerList:   []PeerInfo{{Peer: hostile, Role: hostile, Connected: true, Addr: hostile, Transport: hostile}},
		ScoreTable: &ScoreTable{Validator: hostile, Rounds: []uint64{1}, Rows: []ScoreRow{{Trainer: hostile, Cells: []*ScoreCell{{Kind: hostile, Reason: hostile}}}}},
		Rejections: []Rejection{{Round: 1, Validator: hostile, Trainer: hostile, Kind: hostile, Reason: hostile}},
		LastError:  &ErrorNote{Level: hostile, Message: hostile, Time: hostile},
		Compute:    &ComputeStatus{Device: hostile, Unit: hostile}}
	addrc := make(chan net.Addr, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := ServeStatus(sctx, "127.0.0.1:0", st, testLogger(), func(a net.Addr) { addrc <- a }); err != nil {
			t.Error(err)
		}
	}()
	page, err := br.open(ctx, "http://"+(<-addrc).String()+"/")
	if err != nil {
		t.Fatal(err)
	}
	const q = `JSON.stringify({updates: Number(document.body.dataset.updates || 0), imgs: document.querySelectorAll("img, script:not([src])").length,
		title: document.title, shown: document.body.innerText.split("onerror").length - 1})`
	var got struct {
		Updates, Imgs, Shown int
		Title                string
	}
	deadline := time.Now().Add(30 * time.Second)
	for got.Updates < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the hostile status page did not render: %+v", got)
		}
		time.Sleep(300 * time.Millisecond)
		v, err := page.eval(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if v != "" {
			if err := json.Unmarshal([]byte(v), &got); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got.Imgs != 0 || strings.Contains(got.Title, "pwned") || got.Shown < 5 {
		t.Errorf("peer-supplied markup: %d elements made of it, title %q, shown as text %d times (want 0, no pwned, >= 5)", got.Imgs, got.Title, got.Shown)
	}
}

// findBrowser looks for Chromium or Chrome.
func findBrowser() string {
	if b := os.Getenv("TRINITY_BROWSER"); b != "" {
		return b
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "headless_shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// domState is what the test reads from the page.
type domState struct {
	Updates int `json:"updates"`
	Loss    []struct {
		Name   string `json:"name"`
		Points int    `json:"points"`
		D      string `json:"d"`
	} `json:"loss"`
	Rows   int      `json:"rows"`
	Roles  []string `json:"roles"`
	Scores bool     `json:"scores"`
	Status string   `json:"status"`
}

func (d domState) points(series string) int {
	for _, s := range d.Loss {
		if s.Name == series {
			return s.Points
		}
	}
	return 0
}

func (d domState) path(series string) string {
	for _, s := range d.Loss {
		if s.Name == series {
			return s.D
		}
	}
	return ""
}

const domQuery = `(() => {
  if (!document.body || !document.getElementById("updated")) return "";
  const q = s => Array.from(document.querySelectorAll(s));
  return JSON.stringify({
    updates: Number(document.body.dataset.updates || 0),
    loss: q("#loss-plot path.series").map(p => ({name: p.dataset.name, points: Number(p.dataset.points), d: p.getAttribute("d")})),
    rows: q("#peers tbody tr").length,
    roles: q("#peers tbody tr td:nth-child(2) .pill").map(e => e.textContent),
    scores: !document.getElementById("scores-card").classList.contains("hidden"),
    status: document.getElementById("updated").textContent,
  });
})()`

// browser is headless Chromium driven over the DevTools protocol (a
// websocket of JSON messages; sessions flattened onto the one socket).
type browser struct {
	cmd     *exec.Cmd
	ws      *websocket.Conn
	wmu     sync.Mutex
	next    atomic.Int64
	mu      sync.Mutex
	pending map[int64]chan cdpMsg
	errs    []string
	done    chan struct{}
}

type cdpMsg struct {
	ID        int64           `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	Params    json.RawMessage `json:"params,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://\S+)`)

func startBrowser(ctx context.Context, t *testing.T, bin string) (*browser, error) {
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--no-first-run", "--no-default-browser-check", "--remote-debugging-port=0", "--remote-allow-origins=*",
		"--user-data-dir="+t.TempDir(), "--window-size=1400,1200", "about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	b := &browser{cmd: cmd, pending: map[int64]chan cdpMsg{}, done: make(chan struct{})}
	wsURL := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if m := devtoolsRE.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case wsURL <- m[1]:
				default:
				}
			}
		}
	}()
	var u string
	select {
	case u = <-wsURL:
	case <-time.After(60 * time.Second):
		b.close()
		return nil, errors.New("the browser printed no DevTools address in 60 s")
	}
	if b.ws, _, err = websocket.DefaultDialer.DialContext(ctx, u, nil); err != nil {
		b.close()
		return nil, fmt.Errorf("devtools websocket: %w", err)
	}
	go b.read()
	return b, nil
}

func (b *browser) read() {
	defer close(b.done)
	for {
		var m cdpMsg
		if err := b.ws.ReadJSON(&m); err != nil {
			return
		}
		if m.ID != 0 {
			b.mu.Lock()
			ch := b.pending[m.ID]
			delete(b.pending, m.ID)
			b.mu.Unlock()
			if ch != nil {
				ch <- m
			}
			continue
		}
		if e := consoleError(m); e != "" {
			b.mu.Lock()
			b.errs = append(b.errs, e)
			b.mu.Unlock()
		}
	}
}

// consoleError describes an event that is an error on the page: console
// errors and assertions, uncaught exceptions, and browser log errors (CSP
// violations, failed loads).
func consoleError(m cdpMsg) string {
	switch m.Method {
	case "Runtime.consoleAPICalled":
		var p struct {
			Type string `json:"type"`
			Args []struct {
				Value       any    `json:"value"`
				Description string `json:"description"`
			} `json:"args"`
		}
		if json.Unmarshal(m.Params, &p) == nil && (p.Type == "error" || p.Type == "assert") {
			return fmt.Sprintf("console.%s %v", p.Type, p.Args)
		}
	case "Runtime.exceptionThrown":
		return "uncaught exception: " + string(m.Params)
	case "Log.entryAdded":
		var p struct {
			Entry struct {
				Level, Text, URL string
			} `json:"entry"`
		}
		if json.Unmarshal(m.Params, &p) == nil && p.Entry.Level == "error" {
			return fmt.Sprintf("log error: %s (%s)", p.Entry.Text, p.Entry.URL)
		}
	}
	return ""
}

func (b *browser) call(ctx context.Context, session, method string, params, result any) error {
	id := b.next.Add(1)
	ch := make(chan cdpMsg, 1)
	b.mu.Lock()
	b.pending[id] = ch
	b.mu.Unlock()
	raw, err := json.Marshal(params)
	if err != nil {
		return err
	}
	b.wmu.Lock()
	err = b.ws.WriteJSON(cdpMsg{ID: id, Method: method, Params: raw, SessionID: session})
	b.wmu.Unlock()
	if err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case m := <-ch:
		if m.Error != nil {
			return fmt.Errorf("%s: %s", method, m.Error.Message)
		}
		if result != nil {
			return json.Unmarshal(m.Result, result)
		}
		return nil
	case <-b.done:
		return fmt.Errorf("%s: the browser went away", method)
	case <-ctx.Done():
		return fmt.Errorf("%s: %w", method, ctx.Err())
	}
}

// page is one tab.
type page struct {
	b       *browser
	session string
}

// open loads url in a new tab with console and log reporting on.
func (b *browser) open(ctx context.Context, url string) (*page, error) {
	var tgt struct {
		TargetID string `json:"targetId"`
	}
	if err := b.call(ctx, "", "Target.createTarget", map[string]any{"url": "about:blank"}, &tgt); err != nil {
		return nil, err
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	if err := b.call(ctx, "", "Target.attachToTarget", map[string]any{"targetId": tgt.TargetID, "flatten": true}, &att); err != nil {
		return nil, err
	}
	p := &page{b: b, session: att.SessionID}
	for _, m := range []string{"Runtime.enable", "Log.enable", "Page.enable"} {
		if err := b.call(ctx, p.session, m, map[string]any{}, nil); err != nil {
			return nil, err
		}
	}
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	if err := b.call(ctx, p.session, "Page.navigate", map[string]any{"url": url}, &nav); err != nil {
		return nil, err
	}
	if nav.ErrorText != "" {
		return nil, fmt.Errorf("navigating to %s: %s", url, nav.ErrorText)
	}
	return p, nil
}

// eval evaluates a JavaScript expression that yields a string.
func (p *page) eval(ctx context.Context, expr string) (string, error) {
	var res struct {
		Result struct {
			Value string `json:"value"`
		} `json:"result"`
		ExceptionDetails json.RawMessage `json:"exceptionDetails"`
	}
	if err := p.b.call(ctx, p.session, "Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true}, &res); err != nil {
		return "", err
	}
	if len(res.ExceptionDetails) > 0 {
		return "", fmt.Errorf("evaluating %.40q: %s", expr, res.ExceptionDetails)
	}
	return res.Result.Value, nil
}

// dom evaluates domQuery in the page.
func (p *page) dom(ctx context.Context) (domState, error) {
	var d domState
	v, err := p.eval(ctx, domQuery)
	if err != nil || v == "" {
		return d, err // "": the page is not loaded yet
	}
	return d, json.Unmarshal([]byte(v), &d)
}

func (b *browser) consoleErrors() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.errs...)
}

func (b *browser) close() {
	if b.ws != nil {
		_ = b.ws.Close()
		<-b.done
	}
	if b.cmd.Process != nil {
		_ = b.cmd.Process.Kill()
	}
	_ = b.cmd.Wait()
}
