package main

import (
	"context"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/node"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/attest"
	"github.com/trinity-net/trinity/verify/grail"
	"github.com/trinity-net/trinity/verify/replay"
)

// runCompute dispatches `trinity compute serve|list|run`.
func runCompute(ctx context.Context, env *cliEnv, args []string) error {
	subs := map[string]func(context.Context, *cliEnv, []string) error{
		"serve": runComputeServe, "list": runComputeList, "run": runComputeRun,
	}
	if len(args) == 0 || subs[args[0]] == nil {
		fmt.Fprintf(env.stderr, "Usage: trinity compute <serve|list|run> [flags]\n\n"+
			"  serve  offer this machine's compute to a network (records, attestation, jobs)\n"+
			"  list   show the network's providers and their attested figures\n"+
			"  run    lease a provider for a job and verify its result\n")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return flag.ErrHelp
		}
		return errUsage
	}
	return subs[args[0]](ctx, env, args[1:])
}

// computeFlags are the flags every compute subcommand shares.
type computeFlags struct {
	genesis, dataDir, checkpoint, keyPath string
	listen, boots                         listFlag
	mdns, dhtServer                       bool
	ef                                    engineFlags
}

func (f *computeFlags) register(fs *flag.FlagSet, sub string) {
	fs.StringVar(&f.genesis, "genesis", "", "genesis file, required")
	fs.StringVar(&f.dataDir, "data-dir", "", "data directory (default ~/.trinity/<network>/compute-"+sub+")")
	fs.StringVar(&f.keyPath, "key", "", "key file (default: DATA-DIR/identity.key)")
	fs.StringVar(&f.checkpoint, "checkpoint", "", "run and verify jobs on this checkpoint (both sides must hold it; default: the genesis model theta_0)")
	fs.Var(&f.listen, "listen", "listen multiaddr (repeatable)")
	fs.Var(&f.boots, "bootstrap", "bootstrap multiaddr (repeatable; default: the genesis's)")
	fs.BoolVar(&f.mdns, "mdns", false, "discover peers on the LAN")
	fs.BoolVar(&f.dhtServer, "dht-server", false, "serve the DHT even when not publicly reachable (LAN networks without a bootstrap node)")
	f.ef.register(fs)
}

// computeSession is what a compute subcommand runs on.
type computeSession struct {
	g     *node.Genesis
	net   *p2p.Node
	key   []byte
	eng   *tensor.Engine
	ds    *data.Dataset
	opts  []node.ComputeOption
	close func()
}

func (f *computeFlags) open(ctx context.Context, env *cliEnv, sub string, defaultListen []string) (*computeSession, error) {
	if f.genesis == "" {
		return nil, errors.New("--genesis is required")
	}
	g, err := node.LoadGenesis(f.genesis)
	if err != nil {
		return nil, err
	}
	id, _ := g.ID()
	dir := f.dataDir
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("no --data-dir and no home directory: %w", err)
		}
		dir = filepath.Join(home, ".trinity", g.Network+"-"+id.Short(), "compute-"+sub)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	var key crypto.PrivKey
	if f.keyPath != "" {
		if key, err = p2p.LoadIdentity(f.keyPath); err != nil {
			return nil, err
		}
	}
	s := &computeSession{g: g}
	var closers []func()
	s.close = func() {
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	}
	fail := func(err error) (*computeSession, error) { s.close(); return nil, err }
	if s.eng, err = f.ef.engine(); err != nil {
		return nil, err
	}
	closers = append(closers, s.eng.Close)
	if f.checkpoint != "" {
		m, _, err := model.Load(f.checkpoint, s.eng)
		if err != nil {
			return fail(err)
		}
		s.opts = append(s.opts, node.WithJobModel(m))
	}
	if s.ds, err = data.Load(ctx, g.Data, g.Model.Vocab, filepath.Dir(f.genesis)); err != nil {
		return fail(fmt.Errorf("loading the genesis dataset: %w", err))
	}
	listen := []string(f.listen)
	if len(listen) == 0 {
		listen = defaultListen
	}
	hc := node.ComputeHostConfig{Genesis: g, DataDir: dir, ListenAddrs: listen, MDNS: f.mdns, Key: key}
	if f.dhtServer {
		hc.DHTMode = p2p.DHTServer
	}
	if len(f.boots) > 0 {
		hc.Bootstrap = f.boots
	}
	var priv []byte
	if s.net, priv, err = node.NewComputeHost(ctx, hc, env.log); err != nil {
		return fail(err)
	}
	s.key = priv
	closers = append(closers, func() { _ = s.net.Close() })
	return s, nil
}

// clientListen lets clients pick free ports, so they run beside a peer.
var clientListen = []string{"/ip4/0.0.0.0/tcp/0", "/ip4/0.0.0.0/udp/0/quic-v1"}

func runComputeServe(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "compute serve")
	var cf computeFlags
	cf.register(fs, "serve")
	claim := fs.Float64("claim-gflops", 0, "claim this GEMM rate instead of the measured one (attestation downgrades over-claims)")
	benchN := fs.Int("bench-n", 1024, "GEMM benchmark size")
	benchTime := fs.Duration("bench-time", 2*time.Second, "time budget of each benchmark (GEMM, training)")
	ttl := fs.Duration("record-ttl", 10*time.Minute, "capacity record lifetime (republished every third of it)")
	if err := parse(fs, args); err != nil {
		return err
	}
	s, err := cf.open(ctx, env, "serve", nil)
	if err != nil {
		return err
	}
	defer s.close()
	opts := append(s.opts, node.WithBenchmark(*benchN, *benchTime), node.WithRecordTTL(*ttl))
	if *claim > 0 {
		opts = append(opts, node.WithClaim(*claim))
	}
	id, _ := s.g.ID()
	fmt.Fprintf(env.stdout, "compute provider %s on network %s (%s); measuring...\n", s.net.ID(), id.Short(), s.g.Network)
	p, err := node.NewComputeProvider(ctx, s.net, s.g, s.key, s.eng, s.ds, env.log, opts...)
	if err != nil {
		return err
	}
	prof, gemm, train := p.Measured()
	fmt.Fprintf(env.stdout, "hardware %s\n", prof.Summary())
	fmt.Fprintf(env.stdout, "claim    GEMM %.1f GFLOP/s (n=%d, %s x%d), training %.0f tokens/s\n", gemm.GFLOPs, gemm.N, gemm.ISA, gemm.Threads, train.TokensPerSec)
	for _, a := range s.net.Addrs() {
		fmt.Fprintf(env.stdout, "listening %s\n", a)
	}
	err = p.Run(ctx)
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(env.stdout, "stopped")
		return nil
	}
	return err
}

// newClient opens a client session, waits for peers and gathers records
// (gossip while waiting, then the DHT).
func newClient(ctx context.Context, env *cliEnv, cf *computeFlags, wait time.Duration, vopts ...attest.VerifierOption) (*node.ComputeClient, *computeSession, func(), error) {
	s, err := cf.open(ctx, env, "client", clientListen)
	if err != nil {
		return nil, nil, nil, err
	}
	c, err := node.NewComputeClient(s.net, s.g, s.key, s.eng, s.ds, env.log, s.opts, vopts...)
	if err != nil {
		s.close()
		return nil, nil, nil, err
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(rctx)
	}()
	stop := func() {
		cancel()
		<-done
		s.close()
	}
	// Records arrive by gossip as providers republish; the DHT and the
	// peers met give the rest. Stop early once two rounds of discovery
	// agree on the providers.
	deadline := time.Now().Add(wait)
	prev := -1
	for time.Now().Before(deadline) && ctx.Err() == nil {
		dctx, dcancel := context.WithTimeout(ctx, time.Until(deadline))
		n, err := c.Discover(dctx)
		dcancel()
		env.log.Debug("compute: discovery", "records", n, "err", err)
		k := len(c.List())
		if k > 0 && k == prev {
			break
		}
		prev = k
		select {
		case <-ctx.Done():
		case <-time.After(500 * time.Millisecond):
		}
	}
	return c, s, stop, ctx.Err()
}

func parseSizes(s string) (lo, hi int, err error) {
	a, b, ok := strings.Cut(s, ",")
	if !ok {
		b = a
	}
	if lo, err = strconv.Atoi(a); err == nil {
		hi, err = strconv.Atoi(b)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("--sizes %q: want N or LO,HI", s)
	}
	return lo, hi, nil
}

func runComputeList(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "compute list")
	var cf computeFlags
	cf.register(fs, "client")
	wait := fs.Duration("wait", 5*time.Second, "time to gather records from the network")
	doAttest := fs.Bool("attest", false, "challenge every provider (matrix-multiply attestation) before listing")
	sizes := fs.String("sizes", "1024,2048", "with --attest: challenge sizes n, LO,HI")
	if err := parse(fs, args); err != nil {
		return err
	}
	lo, hi, err := parseSizes(*sizes)
	if err != nil {
		return err
	}
	c, _, stop, err := newClient(ctx, env, &cf, *wait, attest.WithSizes(lo, hi))
	if err != nil {
		if stop != nil {
			stop()
		}
		return err
	}
	defer stop()
	if *doAttest {
		for _, p := range c.List() {
			id, err := peerOf(p)
			if err != nil {
				continue
			}
			a, err := c.Attest(ctx, id)
			if err != nil {
				fmt.Fprintf(env.stderr, "attesting %s: %v\n", id, err)
				continue
			}
			fmt.Fprintf(env.stdout, "attested %s: %s, n=%d, %.1f GFLOP/s against a claim of %.1f (soundness 2^-%d)\n",
				id, a.Verdict, a.N, a.AttestedGFLOPs, a.ClaimedGFLOPs, a.SoundnessBits)
		}
	}
	printProviders(env.stdout, c.List())
	return nil
}

func peerOf(p attest.Provider) (peer.ID, error) {
	pk, err := crypto.UnmarshalEd25519PublicKey(p.Peer)
	if err != nil {
		return "", err
	}
	return peer.IDFromPublicKey(pk)
}

func printProviders(w io.Writer, list []attest.Provider) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no providers found")
		return
	}
	tw := tabwriter.NewWriter(w, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PEER\tSTATUS\tCLAIM GFLOP/s\tATTESTED\tEFFECTIVE\tTRAIN TOKENS/s\tATTESTERS\tHARDWARE\tEXPIRES")
	for _, p := range list {
		id, err := peerOf(p)
		name := id.String()
		if err != nil {
			name = hex.EncodeToString(p.Peer)
		}
		var claim float64
		hwSum, exp := "-", "-"
		if r := p.Record; r != nil {
			claim = r.GemmGFLOPs
			hwSum = r.Profile.Summary()
			exp = time.Until(time.Unix(0, r.ExpiresAt)).Round(time.Second).String()
		}
		fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%.1f\t%.0f\t%d\t%s\t%s\n", name, p.Status, claim, p.AttestedGFLOPs,
			p.EffectiveGFLOPs, p.EffectiveTokensPerSec, p.Attesters, hwSum, exp)
	}
	_ = tw.Flush()
}

func runComputeRun(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "compute run")
	var cf computeFlags
	cf.register(fs, "client")
	wait := fs.Duration("wait", 5*time.Second, "time to find providers (without --peer)")
	peerFlag := fs.String("peer", "", "provider to lease (default: the best-rated one found)")
	job := fs.String("job", node.JobGenerate, "job kind: generate or train")
	prompt := fs.String("prompt", "\n", "generate: text to continue")
	tokens := fs.Int("tokens", 64, "generate: tokens to generate")
	temp := fs.Float64("temperature", 0.8, "generate: sampling temperature (0: greedy)")
	topK := fs.Int("top-k", 40, "generate: sample among the k most likely tokens (0: all)")
	pagesFlag := fs.String("pages", "0,1,2,3", "train: training-split pages, comma-separated")
	steps := fs.Int("steps", 4, "train: inner steps")
	checks := fs.Int("checks", 2, "train: steps replayed bit for bit to check the result")
	if err := parse(fs, args); err != nil {
		return err
	}
	var pages []int
	if *job == node.JobTrain {
		for _, f := range strings.Split(*pagesFlag, ",") {
			p, err := strconv.Atoi(strings.TrimSpace(f))
			if err != nil {
				return fmt.Errorf("--pages %q: %w", *pagesFlag, err)
			}
			pages = append(pages, p)
		}
	} else if *job != node.JobGenerate {
		return fmt.Errorf("--job %q: want generate or train", *job)
	}
	w := *wait
	if *peerFlag != "" {
		w = 0
	}
	c, _, stop, err := newClient(ctx, env, &cf, w)
	if err != nil {
		if stop != nil {
			stop()
		}
		return err
	}
	defer stop()
	var target peer.ID
	if *peerFlag != "" {
		if target, err = peer.Decode(*peerFlag); err != nil {
			return fmt.Errorf("--peer: %w", err)
		}
		// The DHT finds the named peer's addresses once the routing table
		// has peers: retry its record until then.
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		for {
			_, err := c.FetchRecord(cctx, target)
			if err == nil {
				break
			}
			if cctx.Err() != nil {
				return fmt.Errorf("reaching %s: %w", target, err)
			}
			time.Sleep(300 * time.Millisecond)
		}
	} else {
		for _, p := range c.List() {
			if p.Status == attest.StatusFaulty || p.Status == attest.StatusUnresponsive {
				continue
			}
			if target, err = peerOf(p); err == nil {
				break
			}
		}
		if target == "" {
			return errors.New("no usable provider found (try a longer --wait or --peer)")
		}
	}
	start := time.Now()
	switch *job {
	case node.JobGenerate:
		var tok data.ByteTokenizer
		p := tok.Encode(*prompt)
		if len(p) == 0 {
			return errors.New("--prompt must not be empty")
		}
		gen, err := c.Generate(ctx, target, p, *tokens, grail.Sampling{Temperature: float32(*temp), TopK: *topK})
		if err != nil {
			return err
		}
		fmt.Fprintf(env.stdout, "provider %s generated %d tokens in %v; GRAIL proof verified (%d positions sketch-checked, every token checked)\n",
			target, len(gen.Tokens), time.Since(start).Round(time.Millisecond), len(gen.Report.Challenged))
		fmt.Fprintln(env.stdout, tok.Decode(append(p, gen.Tokens...)))
	case node.JobTrain:
		tr, err := c.Train(ctx, target, pages, *steps, *checks)
		if err != nil {
			return err
		}
		d := replay.VectorDigest(tr.Params)
		fmt.Fprintf(env.stdout, "provider %s trained %d steps on pages %v in %v; replayed steps %v bit for bit: verified\n"+
			"result parameters digest %x\n", target, tr.Steps, pages, time.Since(start).Round(time.Millisecond), tr.Checked, d[:8])
	}
	return nil
}
