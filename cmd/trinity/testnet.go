package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"sync"
	"time"

	"github.com/trinity-net/trinity/node"
	"github.com/trinity-net/trinity/p2p"
)

func runTestnet(ctx context.Context, env *cliEnv, args []string) error {
	fs := newFlags(env, "testnet")
	trainers := fs.Int("trainers", 4, "trainers")
	validators := fs.Int("validators", 1, "validators (the first leads; the others take over in order)")
	rounds := fs.Int("rounds", 20, "rounds to run (0: until Ctrl-C)")
	tpl := node.DefaultTestnetGenesis()
	fs.Int64Var(&tpl.Params.RoundMillis, "round-ms", tpl.Params.RoundMillis, "round length in milliseconds")
	fs.IntVar(&tpl.Params.InnerSteps, "inner-steps", tpl.Params.InnerSteps, "inner steps per round (H)")
	fs.IntVar(&tpl.Data.Bytes, "corpus-bytes", tpl.Data.Bytes, "size of the embedded corpus")
	dir := fs.String("dir", "", "data directories of the peers (default: a temporary directory, removed at the end)")
	status := fs.String("status", "", "serve the lead validator's status endpoint on this address (default: --dashboard-addr)")
	dashboard := fs.Bool("dashboard", true, "serve every node's dashboard (and /status, /metrics) on --dashboard-addr")
	dashAddr := fs.String("dashboard-addr", "127.0.0.1:0", "address of the first node's dashboard; the others take the next ports (port 0: any free ports)")
	verbose := fs.Bool("v", false, "log every node's events to stderr")
	replayOn := fs.Bool("replay", false, "proof of training work: validators replay sampled inner steps (default policy)")
	advFlag := fs.String("adversaries", "", "extra peers playing adversaries, as MODE[:N],... (modes: "+adversaryNames()+")")
	if err := parse(fs, args); err != nil {
		return err
	}
	if *replayOn {
		tpl.Params.Replay = node.DefaultReplayParams()
	}
	advs, err := parseAdversaries(*advFlag)
	if err != nil {
		return err
	}
	if *trainers < 1 || *validators < 1 || *rounds < 0 {
		return fmt.Errorf("--trainers and --validators must be >= 1 and --rounds >= 0")
	}
	runPath, cleanup, err := runDir(*dir, "trinity-testnet")
	if err != nil {
		return err
	}
	defer cleanup()
	log := nodeLogger(env, *verbose)
	tn, err := node.NewTestnet(ctx, node.TestnetConfig{Dir: runPath, Trainers: *trainers, Validators: *validators, Model: tpl, Logger: log, StartDelay: 3 * time.Second, Adversaries: advs})
	if err != nil {
		return err
	}
	defer tn.Close()
	g := tn.Genesis
	id, _ := g.ID()
	fmt.Fprintf(env.stdout, "testnet %s: bootstrap + %d validator(s) + %d trainers on 127.0.0.1\nmodel %v\n", id.Short(), *validators, *trainers, g.Model)
	fmt.Fprintf(env.stdout, "rounds of %v: H=%d inner steps of %dx%d tokens, top-%d of %d per chunk, outer lr %g\n",
		g.Params.RoundLength(), g.Params.InnerSteps, g.Params.Batch, g.Params.SeqLen, g.Params.TopK, g.Params.ChunkSize, g.Params.OuterLR)
	if h, ok := corpusEntropy(g.Data); ok {
		fmt.Fprintf(env.stdout, "embedded corpus: best achievable loss %.4f nats/byte\n", h)
	}
	if err := tn.Run(ctx); err != nil {
		return err
	}
	var wg sync.WaitGroup
	defer wg.Wait()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if err := serveTestnetStatus(sctx, env, &wg, tn, *status, *dashAddr, *dashboard); err != nil {
		return err
	}
	fmt.Fprintf(env.stdout, "%5s  %8s  %13s  %16s  %8s  %10s  %s\n", "round", "val loss", "contributions", "bytes/trainer", "vs fp32", "bytes/peer", "state (peers agreeing)")
	timeout := 4*g.Params.RoundLength() + 30*time.Second
	var last node.RoundReport
	for r := uint64(0); *rounds == 0 || r < uint64(*rounds); r++ {
		rep, err := tn.WaitRound(ctx, r, timeout)
		if errors.Is(err, context.Canceled) || ctx.Err() != nil {
			fmt.Fprintln(env.stdout, "interrupted")
			break
		}
		if err != nil {
			return err
		}
		agree := "agree"
		if !rep.HashesAgree {
			agree = "DIVERGED"
		}
		vl := "      -"
		if !math.IsNaN(float64(rep.ValLoss)) {
			vl = fmt.Sprintf("%8.4f", rep.ValLoss)
		}
		ratio := "-"
		if rep.BlobBytes > 0 {
			ratio = fmt.Sprintf("1/%.0f", float64(rep.DenseBytes)/float64(rep.BlobBytes))
		}
		if rep.Peers == 0 {
			fmt.Fprintf(env.stdout, "%5d  no manifest (round skipped)\n", r)
			continue
		}
		fmt.Fprintf(env.stdout, "%5d  %s  %6d of %-4d  %16s  %8s  %10s  %s (%d/%d %s)\n", r, vl, rep.Contributors, *trainers+trainerAdversaries(advs),
			human(rep.BlobBytes), ratio, human(rep.NetBytes), rep.Hash.Short(), rep.Peers, rep.Running, agree)
		last = rep
	}
	printPhases(env, tn, last)
	if len(advs) > 0 {
		printAdversaries(env, tn)
	}
	return nil
}

// printPhases prints the mean time per phase over all peers.
func printPhases(env *cliEnv, tn *node.Testnet, last node.RoundReport) {
	sum := map[string]node.PhaseStat{}
	var in, out, pin, pout int64
	var tr p2p.Traffic
	for _, m := range tn.Members() {
		if m.Node == nil {
			continue
		}
		s := m.Node.Status()
		for p, st := range s.Phases {
			a := sum[p]
			a.Seconds += st.Seconds
			a.Count += st.Count
			sum[p] = a
		}
		in += s.BytesIn
		out += s.BytesOut
		pin += s.PayloadIn
		pout += s.PayloadOut
		tr.GossipIn += s.Traffic.GossipIn
		tr.BlobIn += s.Traffic.BlobIn
		tr.DHTIn += s.Traffic.DHTIn
	}
	names := make([]string, 0, len(sum))
	for p := range sum {
		names = append(names, p)
	}
	sort.Strings(names)
	fmt.Fprintf(env.stdout, "\nmean time per phase execution (all peers):\n")
	for _, p := range names {
		if st := sum[p]; st.Count > 0 {
			fmt.Fprintf(env.stdout, "  %-10s %8.1f ms  (%d times)\n", p, 1000*st.Seconds/float64(st.Count), st.Count)
		}
	}
	fmt.Fprintf(env.stdout, "libp2p bytes: %s in, %s out over all peers; received: gossip %s, blobs %s, DHT %s, other %s (payloads: %s in, %s out)\n",
		human(in), human(out), human(tr.GossipIn), human(tr.BlobIn), human(tr.DHTIn), human(in-tr.GossipIn-tr.BlobIn-tr.DHTIn), human(pin), human(pout))
	if !math.IsNaN(float64(last.ValLoss)) {
		fmt.Fprintf(env.stdout, "final validation loss %.4f, state %s\n", last.ValLoss, last.Hash.Short())
	}
}
