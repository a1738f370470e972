package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/node"
	"github.com/trinity-net/trinity/p2p"
)

// listFlag collects a repeatable string flag.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func runKeygen(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "keygen")
	out := fs.String("out", "", "key file to create (mode 0600), required")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("--out is required")
	}
	if _, err := os.Stat(*out); err == nil {
		return fmt.Errorf("%s exists; refusing to overwrite a key", *out)
	}
	// p2p's loader creates DIR/identity.key; a key file of any name is made
	// in a private temporary directory beside it and renamed into place.
	dir, err := os.MkdirTemp(filepath.Dir(*out), ".keygen")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	key, err := p2p.LoadOrCreateIdentity(dir)
	if err != nil {
		return err
	}
	if err := os.Rename(filepath.Join(dir, p2p.IdentityFile), *out); err != nil {
		return err
	}
	id, err := peer.IDFromPrivateKey(key)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%s\n", id)
	return nil
}

func runGenesis(_ context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "genesis")
	out := fs.String("out", "genesis.json", "genesis file to write")
	name := fs.String("network", "trinity", "network name")
	var validators, vkeys, boots listFlag
	fs.Var(&validators, "validator", "validator as PEER-ID[:STAKE] (repeatable; highest stake leads)")
	fs.Var(&vkeys, "validator-key", "validator key file (repeatable; stake 1)")
	fs.Var(&boots, "bootstrap", "bootstrap multiaddr ending in /p2p/<id> (repeatable)")
	start := fs.String("start", "+1m", "start of round 0: RFC 3339 time, or +DURATION from now")
	seed := fs.Uint64("seed", 1, "initial weight seed (and corpus seed)")
	cfg := node.TinyModel
	fs.IntVar(&cfg.Layers, "layers", cfg.Layers, "transformer blocks")
	fs.IntVar(&cfg.Width, "width", cfg.Width, "embedding width")
	fs.IntVar(&cfg.Heads, "heads", cfg.Heads, "attention heads")
	fs.IntVar(&cfg.Context, "context", cfg.Context, "maximum sequence length")
	dataPath := fs.String("data", "", "text file or folder, or llm.c shards (default: the embedded corpus)")
	corpusBytes := fs.Int("corpus-bytes", 4<<20, "size of the embedded corpus")
	hp := node.DefaultHyper()
	fs.Int64Var(&hp.RoundMillis, "round-ms", hp.RoundMillis, "round length in milliseconds")
	fs.IntVar(&hp.InnerSteps, "inner-steps", hp.InnerSteps, "inner AdamW steps per round (H)")
	fs.IntVar(&hp.TopK, "top-k", hp.TopK, "entries kept per chunk")
	fs.IntVar(&hp.ChunkSize, "chunk-size", hp.ChunkSize, "chunk size")
	outerLR := fs.Float64("outer-lr", float64(hp.OuterLR), "outer learning rate")
	var stage rlGenesisFlags
	stage.register(fs)
	replayOn := fs.Bool("replay", false, "proof of training work: validators replay sampled inner steps (default policy)")
	if err := parse(fs, args); err != nil {
		return err
	}
	hp.OuterLR = float32(*outerLR)
	if *replayOn {
		hp.Replay = node.DefaultReplayParams()
	}
	g := &node.Genesis{Version: node.GenesisVersion, Network: *name, WeightSeed: *seed, Model: cfg,
		Data: dataSpec(*dataPath, *seed, *corpusBytes, 0.05), Params: hp, Bootstrap: boots}
	t, err := parseStart(*start, time.Now())
	if err != nil {
		return err
	}
	g.Start = t
	if err := stage.apply(g, *out); err != nil {
		return err
	}
	for _, v := range validators {
		id, stake, _ := strings.Cut(v, ":")
		s := uint64(1)
		if stake != "" {
			if s, err = strconv.ParseUint(stake, 10, 64); err != nil {
				return fmt.Errorf("--validator %q: bad stake: %w", v, err)
			}
		}
		g.Validators = append(g.Validators, node.ValidatorKey{Peer: id, Stake: s})
	}
	for _, path := range vkeys {
		k, err := p2p.LoadIdentity(path)
		if err != nil {
			return err
		}
		id, err := peer.IDFromPrivateKey(k)
		if err != nil {
			return err
		}
		g.Validators = append(g.Validators, node.ValidatorKey{Peer: id.String(), Stake: 1})
	}
	sortValidators(g.Validators)
	if err := g.Save(*out); err != nil {
		return err
	}
	id, _ := g.ID()
	fmt.Fprintf(env.stdout, "wrote %s\nnetwork %s (%s), round 0 at %s, model %v\n", *out, id, g.Network, g.Start.Format(time.RFC3339), g.Model)
	return nil
}

// sortValidators orders by decreasing stake, keeping the given order on ties.
func sortValidators(vs []node.ValidatorKey) {
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && vs[j].Stake > vs[j-1].Stake; j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}

func parseStart(s string, now time.Time) (time.Time, error) {
	if rest, ok := strings.CutPrefix(s, "+"); ok {
		d, err := time.ParseDuration(rest)
		if err != nil {
			return time.Time{}, fmt.Errorf("--start %q: %w", s, err)
		}
		return now.Add(d).Truncate(time.Second), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("--start %q: want RFC 3339 or +DURATION: %w", s, err)
	}
	return t, nil
}

// peerFlags are the flags join and validate share.
type peerFlags struct {
	genesis, dataDir, status string
	listen, boots            listFlag
	threads                  int
	mdns, dashboard          bool
	adversary                string
}

func (f *peerFlags) register(fs *flag.FlagSet, role string) {
	fs.StringVar(&f.genesis, "genesis", "", "genesis file, required")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (default ~/.trinity/<network>/"+role+")")
	fs.StringVar(&f.status, "status", "127.0.0.1:7070", "HTTP status endpoint (/status, /metrics, the dashboard); empty disables")
	fs.BoolVar(&f.dashboard, "dashboard", true, "serve the web dashboard at / of the status endpoint")
	fs.Var(&f.listen, "listen", "listen multiaddr (repeatable; default TCP and QUIC on port 4001)")
	fs.Var(&f.boots, "bootstrap", "bootstrap multiaddr (repeatable; default: the genesis's)")
	fs.IntVar(&f.threads, "threads", 0, "compute threads (0: all cores)")
	fs.BoolVar(&f.mdns, "mdns", false, "discover peers on the LAN")
	fs.StringVar(&f.adversary, "adversary", "", "misbehave on purpose, for testing the network's defences ("+adversaryNames(node.Role(role))+")")
}

func (f *peerFlags) config(role node.Role) (node.Config, error) {
	if f.genesis == "" {
		return node.Config{}, errors.New("--genesis is required")
	}
	g, err := node.LoadGenesis(f.genesis)
	if err != nil {
		return node.Config{}, err
	}
	id, _ := g.ID()
	dir := f.dataDir
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return node.Config{}, fmt.Errorf("no --data-dir and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".trinity", g.Network+"-"+id.Short(), string(role))
	}
	cfg := node.Config{Genesis: g, Role: role, DataDir: dir, ListenAddrs: f.listen, MDNS: f.mdns, Threads: f.threads,
		DataBaseDir: filepath.Dir(f.genesis)}
	if f.adversary != "" {
		if cfg.Adversary, err = node.ParseAdversary(f.adversary); err != nil {
			return node.Config{}, err
		}
	}
	if len(f.boots) > 0 {
		cfg.Bootstrap = f.boots
	}
	return cfg, nil
}

func runJoin(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "join")
	var pf peerFlags
	pf.register(fs, "trainer")
	role := fs.String("role", string(node.RoleTrainer), "trainer (pre-training stage) or rollout (RL stage)")
	if err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := pf.config(node.Role(*role))
	if err != nil {
		return err
	}
	return runPeer(ctx, env, cfg, pf)
}

func runValidate(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "validate")
	var pf peerFlags
	pf.register(fs, "validator")
	keyPath := fs.String("key", "", "the validator's key file (its peer ID must be in the genesis), required")
	attestEvery := fs.Duration("attest-compute", 0, "attest every compute provider once per this period (0: never); see docs/compute.md")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *keyPath == "" {
		return errors.New("--key is required")
	}
	key, err := p2p.LoadIdentity(*keyPath)
	if err != nil {
		return err
	}
	cfg, err := pf.config(node.RoleValidator)
	if err != nil {
		return err
	}
	opts := []node.Option{node.WithIdentity(key)}
	if *attestEvery > 0 {
		opts = append(opts, node.WithComputeAttestation(*attestEvery))
	}
	return runPeer(ctx, env, cfg, pf, opts...)
}

// runPeer runs a trainer or validator until ctx ends, printing a progress
// line per round.
func runPeer(ctx context.Context, env *cliEnv, cfg node.Config, pf peerFlags, opts ...node.Option) error {
	pr := &progress{w: env.stdout, tty: isTerminal(env.stdout)}
	opts = append(opts, node.WithLogger(env.log), node.WithObserver(pr.event))
	n, err := node.New(ctx, cfg, opts...)
	if err != nil {
		return err
	}
	defer n.Close()
	pr.n = n
	fmt.Fprintf(env.stdout, "%s %s on network %s (%s)\ndata %s\n", cfg.Role, n.ID(), n.NetworkID().Short(), cfg.Genesis.Network, cfg.DataDir)
	for _, a := range n.P2P().Addrs() {
		fmt.Fprintf(env.stdout, "listening %s\n", a)
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if pf.status != "" {
		a, err := startStatus(ctx, env, &wg, pf.status, n, pf.dashboard)
		if err != nil {
			return err
		}
		fmt.Fprintln(env.stdout, statusLine(a, pf.dashboard))
	}
	if g := cfg.Genesis; time.Now().Before(g.Start) {
		fmt.Fprintf(env.stdout, "round 0 starts at %s (in %s)\n", g.Start.Format(time.RFC3339), time.Until(g.Start).Round(time.Second))
	}
	err = n.Run(ctx)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(env.stdout, "\nstopped")
		return nil
	}
	return err
}

// progress prints one line per applied round.
type progress struct {
	w   io.Writer
	tty bool
	n   *node.Node
}

func (p *progress) event(e node.Event) {
	switch e.Kind {
	case node.EventApplied, node.EventCaughtUp:
	case node.EventMissed:
		fmt.Fprintf(p.w, "round %d: missed (not enough time to train in the window)\n", e.Round)
		return
	default:
		return
	}
	s := p.n.Status()
	line := fmt.Sprintf("round %5d  %-9s state %s  contributions %2d  peers %2d  in %s out %s", e.Round, e.Kind, e.Hash.Short(), e.Count, s.Peers, human(s.BytesIn), human(s.BytesOut))
	if !math.IsNaN(float64(e.ValLoss)) {
		line += fmt.Sprintf("  val loss %.4f", e.ValLoss)
	}
	if s.LastLoss != nil {
		line += fmt.Sprintf("  train loss %.4f", *s.LastLoss)
	}
	fmt.Fprintln(p.w, line)
}

func human(b int64) string {
	switch {
	case b >= 1<<30:
		return fmt.Sprintf("%.1fGiB", float64(b)/(1<<30))
	case b >= 1<<20:
		return fmt.Sprintf("%.1fMiB", float64(b)/(1<<20))
	case b >= 1<<10:
		return fmt.Sprintf("%.1fKiB", float64(b)/(1<<10))
	}
	return fmt.Sprintf("%dB", b)
}

func runBootstrap(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "bootstrap")
	genesis := fs.String("genesis", "", "genesis file (for the network ID), required")
	dataDir := fs.String("data-dir", "", "data directory (default ~/.trinity/<network>/bootstrap)")
	keyPath := fs.String("key", "", "key file (default: DATA-DIR/identity.key); its peer ID is what the genesis's bootstrap addresses name")
	status := fs.String("status", "127.0.0.1:7071", "HTTP status endpoint (and dashboard); empty disables")
	dashboard := fs.Bool("dashboard", true, "serve the web dashboard at / of the status endpoint")
	var listen listFlag
	fs.Var(&listen, "listen", "listen multiaddr (repeatable; default TCP and QUIC on port 4001)")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *genesis == "" {
		return errors.New("--genesis is required")
	}
	g, err := node.LoadGenesis(*genesis)
	if err != nil {
		return err
	}
	id, _ := g.ID()
	dir := *dataDir
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return err
		}
		dir = filepath.Join(home, ".trinity", g.Network+"-"+id.Short(), "bootstrap")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var key crypto.PrivKey
	if *keyPath != "" {
		if key, err = p2p.LoadIdentity(*keyPath); err != nil {
			return err
		}
	}
	b, err := node.NewBootstrap(ctx, node.BootstrapConfig{Genesis: g, DataDir: dir, ListenAddrs: listen, Key: key, Logger: env.log})
	if err != nil {
		return err
	}
	defer b.Close()
	fmt.Fprintf(env.stdout, "bootstrap/relay %s on network %s\n", b.P2P().ID(), id.Short())
	for _, a := range b.P2P().Addrs() {
		fmt.Fprintf(env.stdout, "listening %s\n", a)
	}
	if *status != "" {
		return node.ServeStatus(ctx, *status, b, env.log, func(a net.Addr) {
			fmt.Fprintln(env.stdout, statusLine(a, *dashboard))
		}, node.WithDashboard(*dashboard))
	}
	<-ctx.Done()
	return nil
}

// corpusEntropy is the best achievable loss on the embedded corpus.
func corpusEntropy(spec data.Spec) (float64, bool) {
	if spec.Kind != data.KindDefault {
		return 0, false
	}
	// The entropy is a property of the source, not of a generated sample.
	src, err := data.DefaultSource()
	if err != nil {
		return 0, false
	}
	return src.EntropyPerByte(), true
}
