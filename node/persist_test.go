package node

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify"
)

func TestStatePersistence(t *testing.T) {
	e, err := tensor.New(tensor.WithThreads(1))
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	m, _ := model.New(TinyModel, e)
	m.Init(9)
	dir := t.TempDir()
	if _, ok, err := loadState(dir, m, "net"); ok || err != nil {
		t.Fatalf("empty dir: ok %v err %v", ok, err)
	}
	c := p2p.CIDOf([]byte("manifest"))
	if err := saveState(dir, m, "net", savedState{Round: 12, Manifest: c}); err != nil {
		t.Fatal(err)
	}
	m2, _ := model.New(TinyModel, e)
	st, ok, err := loadState(dir, m2, "net")
	if err != nil || !ok || st.Round != 12 || st.Manifest != c || m2.StateHash() != m.StateHash() {
		t.Fatalf("round trip: %+v ok %v err %v", st, ok, err)
	}
	if _, _, err := loadState(dir, m2, "other-net"); err == nil {
		t.Fatal("state of another network accepted")
	}
	// A torn write cannot happen (rename), but a corrupt file must be an
	// error, not a panic.
	if err := os.WriteFile(filepath.Join(dir, stateFile), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, _, err := loadState(dir, m2, "net"); err == nil {
		t.Fatal("corrupt state accepted")
	}
	entries, _ := os.ReadDir(dir)
	for _, en := range entries {
		if strings.Contains(en.Name(), ".tmp") {
			t.Fatalf("temporary file left behind: %s", en.Name())
		}
	}
}

func TestTrainerStatePersistence(t *testing.T) {
	dir := t.TempDir()
	n := 100
	st := trainerState{Round: 4, EF: make([]float32, n), M: make([]float32, n), V: make([]float32, n), AdamSt: 33}
	for i := range n {
		st.EF[i], st.M[i], st.V[i] = float32(i), float32(2*i), float32(3*i)
	}
	if err := saveTrainerState(dir, st); err != nil {
		t.Fatal(err)
	}
	got := trainerState{EF: make([]float32, n), M: make([]float32, n), V: make([]float32, n)}
	ok, err := loadTrainerState(dir, &got)
	if err != nil || !ok || got.Round != 4 || got.AdamSt != 33 || got.EF[7] != 7 || got.M[7] != 14 || got.V[7] != 21 {
		t.Fatalf("round trip: ok %v err %v %+v", ok, err, got)
	}
	short := trainerState{EF: make([]float32, n+1), M: make([]float32, n), V: make([]float32, n)}
	if _, err := loadTrainerState(dir, &short); err == nil {
		t.Fatal("trainer state of another size accepted")
	}
}

func TestScoresPersistence(t *testing.T) {
	dir := t.TempDir()
	b := &scoreBook{Standing: map[string]*verify.Standing{"a": {Smoothed: 0.5, Strikes: 1, BannedUntil: 9}}, History: []ScoreRoundSummary{{Round: 2}}}
	if err := saveScores(dir, b); err != nil {
		t.Fatal(err)
	}
	got, err := loadScores(dir)
	if err != nil || *got.Standing["a"] != *b.Standing["a"] || len(got.History) != 1 {
		t.Fatalf("round trip: %+v %v", got, err)
	}
}

// TestStatusEndpoint starts a real (idle) trainer node and reads its JSON
// status and Prometheus metrics over HTTP.
func TestStatusEndpoint(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	g := validGenesis(t)
	g.Data.Bytes = 1 << 16
	n, err := New(ctx, Config{Genesis: g, Role: RoleTrainer, DataDir: t.TempDir(), ListenAddrs: loopbackAddrs(), Bootstrap: []string{}, Threads: 1},
		WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	defer n.Close()
	addrc := make(chan net.Addr, 1)
	sctx, scancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ServeStatus(sctx, "127.0.0.1:0", n, testLogger(), func(a net.Addr) { addrc <- a }) }()
	addr := <-addrc
	get := func(path string) string {
		resp, err := http.Get("http://" + addr.String() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: %s", path, resp.Status)
		}
		return string(b)
	}
	var st Status
	if err := json.Unmarshal([]byte(get("/status")), &st); err != nil {
		t.Fatal(err)
	}
	id, _ := g.ID()
	if st.Network != id.String() || st.Peer != n.ID().String() || st.Role != "trainer" || len(st.StateHash) != 64 {
		t.Fatalf("status %+v", st)
	}
	metrics := get("/metrics")
	for _, want := range []string{"# TYPE trinity_round gauge", `trinity_bytes_in_total{role="trainer"} 0`, `trinity_phase_seconds_total{role="trainer",phase="train"}`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	scancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
