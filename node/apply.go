package node

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/p2p"
)

// manifestMsg is a verified manifest with the envelope it came in, whose
// encoding is stored as a blob (raw, cid) to form the chain.
type manifestMsg struct {
	m      *Manifest
	raw    []byte
	cid    cid.Cid
	sender peer.ID
	from   peer.ID // neighbour that forwarded it: a source for chain blobs
}

// manifestFromEnvelope checks that env is a manifest of g's network signed by
// one of g's validators, decodes it, and checks that its contributions
// follow from its embedded score vectors (checkChoice).
func manifestFromEnvelope(env *p2p.Envelope, g *Genesis) (*manifestMsg, error) {
	mm, err := decodeManifestEnvelope(env, g)
	if err != nil {
		return nil, err
	}
	if err := mm.checkChoice(g); err != nil {
		return nil, err
	}
	return mm, nil
}

// checkChoice verifies the manifest's choice of contributions; the error
// wraps errBadChoice.
func (mm *manifestMsg) checkChoice(g *Genesis) error {
	id, err := g.ID()
	if err != nil {
		return err
	}
	return checkChoice(g, id, mm.m)
}

// decodeManifestEnvelope is manifestFromEnvelope without the choice check.
func decodeManifestEnvelope(env *p2p.Envelope, g *Genesis) (*manifestMsg, error) {
	id, err := g.ID()
	if err != nil {
		return nil, err
	}
	if env.Network != id || env.Topic != p2p.TopicManifest {
		return nil, fmt.Errorf("node: envelope of network %s topic %q is not a manifest of %s", env.Network.Short(), env.Topic, id.Short())
	}
	if g.ValidatorRank(env.Sender) < 0 {
		return nil, fmt.Errorf("node: manifest signed by %s, not a validator", env.Sender)
	}
	m, err := DecodeManifest(env.Payload)
	if err != nil {
		return nil, err
	}
	if m.Round != env.Round {
		return nil, fmt.Errorf("node: manifest of round %d in an envelope of round %d", m.Round, env.Round)
	}
	raw, err := env.MarshalBinary()
	if err != nil {
		return nil, err
	}
	return &manifestMsg{m: m, raw: raw, cid: p2p.CIDOf(raw), sender: env.Sender}, nil
}

// parseManifestBlob verifies a manifest envelope fetched as a blob.
func parseManifestBlob(b []byte, g *Genesis) (*manifestMsg, error) {
	env, err := p2p.UnmarshalEnvelope(b)
	if err != nil {
		return nil, err
	}
	if err := env.Verify(); err != nil {
		return nil, err
	}
	return manifestFromEnvelope(env, g)
}

// onManifest files a manifest for processing, unless the fork choice
// rejects it outright.
func (n *Node) onManifest(ctx context.Context, mm *manifestMsg) {
	r := mm.m.Round
	if _, dup := n.seenCID[mm.cid]; dup || len(n.pending[r]) >= maxCandidates {
		return
	}
	n.seenCID[mm.cid] = r
	switch n.view.classify(n.link(mm)) {
	case alreadyHeld:
		return // applied by a catch-up before it came by gossip
	case losesFork:
		n.reject(mm, errForkLost)
		return
	}
	if !n.seenMan[r] && n.va != nil {
		n.va.replay.onManifest(ctx, mm) // once a round: the first manifest not rejected
	}
	n.seenMan[r] = true
	n.dash.onManifest(mm.m)
	n.pending[r] = append(n.pending[r], mm)
	n.processPending(ctx)
}

// processPending takes the pending manifests in round order (siblings by
// rank) and starts applying the first one the fork choice does not reject:
// directly when it extends the head from our state, else by walking its
// chain back (catch-up, or a reorg onto a winning branch).
func (n *Node) processPending(ctx context.Context) {
	if n.busy != "" || len(n.pending) == 0 {
		return
	}
	rounds := slices.Sorted(maps.Keys(n.pending))
	for _, r := range rounds {
		cands := n.pending[r]
		delete(n.pending, r)
		n.sortCandidates(cands)
		for i, mm := range cands {
			v := n.view.classify(n.link(mm))
			switch v {
			case alreadyHeld:
				continue
			case losesFork:
				n.reject(mm, errForkLost)
				continue
			}
			if rest := cands[i+1:]; len(rest) > 0 {
				n.pending[r] = slices.Clone(rest)
			}
			if v == extendsHead && mm.m.Base == n.hash {
				n.startReplay(ctx, "apply", mm)
				return
			}
			n.log.Info("state or chain differs from the manifest's; walking its chain", "manifest_round", r, "manifest_base", mm.m.Base.Short(), "state", n.hash.Short())
			n.startReplay(ctx, "catch-up", mm)
			return
		}
	}
}

// replayResult is what a replay job hands back to the loop.
type replayResult struct {
	last     *manifestMsg
	hash     Hash
	valLoss  float32
	count    int
	replayed int
	fromCP   bool
	reorg    bool        // abandons manifests we had applied
	join     int         // where links attach to the view (see chainView.attach)
	links    []chainLink // the manifests replayed, oldest first
	err      error
}

// startReplay brings the scratch model to target's result: directly when
// target.Base is the current state (apply), else by walking the manifest
// chain back to the current state or a checkpoint (catch-up).
func (n *Node) startReplay(ctx context.Context, name string, target *manifestMsg) {
	copy(n.work.Params, n.global.Params)
	have := n.hash
	view := n.view.clone()
	n.catching = name == "catch-up"
	// The corpus validation loss says nothing of an RL policy's rewards.
	validator := n.va != nil && n.rl == nil
	n.startJob(ctx, name, func(ctx context.Context) func() {
		res := n.replay(ctx, n.work, have, view, target)
		if res.err == nil && validator {
			res.valLoss = n.evaluate(n.work)
		}
		return func() { n.finishReplay(ctx, name, res) }
	})
}

func (n *Node) finishReplay(ctx context.Context, name string, res replayResult) {
	n.catching = false
	if res.err != nil {
		if errors.Is(res.err, context.Canceled) {
			return
		}
		if errors.Is(res.err, errForkLost) {
			n.reject(res.last, res.err)
			n.processPending(ctx)
			return
		}
		n.log.Warn(name+" failed", "target_round", res.last.m.Round, "err", res.err)
		n.emit(Event{Kind: EventDiverged, Round: res.last.m.Round, Hash: n.hash})
		// Forget the round so that a later manifest (or a re-announcement)
		// retries; the next manifest will trigger a catch-up if needed.
		return
	}
	n.global, n.work = n.work, n.global
	n.hash = res.hash
	n.next = res.last.m.Round + 1
	n.lastMan = res.last.cid
	n.lastCount = res.count
	n.view.attach(res.join, res.links)
	if validatorLoss := res.valLoss; !math.IsNaN(float64(validatorLoss)) {
		n.valLoss = validatorLoss
	}
	if cp := res.last.m.Checkpoint; cp.Round > n.checkpoint.Round || res.reorg {
		n.checkpoint = cp
	}
	if err := saveState(n.cfg.DataDir, n.global, n.netID.String(), savedState{Round: n.next, Manifest: n.lastMan}); err != nil {
		n.log.Error("saving state", "err", err)
	}
	n.metrics.applied.Add(1)
	kind := EventApplied
	switch {
	case res.reorg:
		kind = EventReorg
		n.metrics.reorgs.Add(1)
		n.log.Warn("switched to a winning branch", "round", res.last.m.Round, "replayed", res.replayed, "from_checkpoint", res.fromCP, "state", n.hash.Short())
	case name == "catch-up":
		kind = EventCaughtUp
		n.metrics.catchups.Add(1)
		n.log.Info("caught up", "round", res.last.m.Round, "replayed", res.replayed, "from_checkpoint", res.fromCP, "state", n.hash.Short())
	default:
		n.log.Info("round applied", "round", res.last.m.Round, "contributions", res.count, "state", n.hash.Short(), "val_loss", res.valLoss)
	}
	n.emit(Event{Kind: kind, Round: res.last.m.Round, Hash: n.hash, ValLoss: res.valLoss, Count: res.count, Other: res.last.sender, CID: res.last.cid})
	if n.next%uint64(n.gen.Params.CheckpointEvery) == 0 {
		n.storeCheckpoint(ctx)
	}
	n.processPending(ctx)
}

// replay runs on a job goroutine and owns m. It walks target's chain back
// until it reaches our state or the checkpoint the target names, judging
// on the way where the chain meets ours (view), and applies it forward.
func (n *Node) replay(ctx context.Context, m *model.GPT, have Hash, view chainView, target *manifestMsg) replayResult {
	res := replayResult{last: target, valLoss: float32(math.NaN()), join: -2}
	chain := []*manifestMsg{target}
	cp := target.m.Checkpoint
	maxWalk := 2*n.gen.Params.CheckpointEvery + 4
	decided := false
	for cur := target; ; {
		if !decided {
			join, ok, reorg, err := view.judgeWalk(len(chain), n.link(cur))
			if err != nil {
				res.err = err
				return res
			}
			if ok {
				decided, res.join, res.reorg = true, join, reorg
				if reorg && cur == target && join >= 0 && join == view.headPos()-1 &&
					target.m.Base == view.links[join+1].base && target.m.Result == have {
					// A sibling of our head that leads to the same state
					// (the same contributions): only the chain changes.
					res.hash, res.links, res.count, res.replayed = have, []chainLink{n.link(target)}, len(target.m.Contributions), 1
					return res
				}
			}
		}
		if cur.m.Base == have {
			if !decided {
				// Our state, reached by another chain: follow it.
				res.join = -2
			}
			break
		}
		if cur.m.Base == cp.Hash {
			if err := n.loadCheckpoint(ctx, m, cp, target.from); err != nil {
				res.err = err
				return res
			}
			res.fromCP = true
			break
		}
		if len(chain) > maxWalk || cur.m.Prev == "" {
			res.err = fmt.Errorf("node: manifest chain from round %d reaches neither our state nor checkpoint %d", target.m.Round, cp.Round)
			return res
		}
		prev, err := n.fetchManifest(ctx, cur.m.Prev, cur.sender, target.from)
		if err != nil {
			res.err = err
			return res
		}
		if prev.m.Round >= cur.m.Round {
			res.err = fmt.Errorf("node: manifest chain goes forward from round %d to %d", cur.m.Round, prev.m.Round)
			return res
		}
		chain = append(chain, prev)
		cur = prev
	}
	slices.Reverse(chain)
	upd := make([]float32, n.ch.NumParams)
	for _, mm := range chain {
		if err := n.applyManifest(ctx, m, mm, upd, target.from); err != nil {
			res.err = err
			return res
		}
		res.count = len(mm.m.Contributions)
		res.links = append(res.links, n.link(mm))
	}
	res.hash = m.StateHash()
	res.replayed = len(chain)
	return res
}

// applyManifest fetches a manifest's blobs, aggregates them and takes the
// outer step on m, then checks the result hash.
func (n *Node) applyManifest(ctx context.Context, m *model.GPT, mm *manifestMsg, upd []float32, hint peer.ID) error {
	man := mm.m
	if n.rl != nil || man.Stage != "" {
		return n.applyRLManifest(ctx, m, mm)
	}
	if len(man.Contributions) > 0 {
		blobs, err := n.fetchContributions(ctx, man, mm.sender)
		if err != nil {
			return err
		}
		t0 := time.Now()
		if _, err := n.ch.Aggregate(upd, blobs, man.Round, optimizer.WithNormClip(n.gen.Params.NormClip)); err != nil {
			return fmt.Errorf("node: round %d: %w", man.Round, err)
		}
		if err := optimizer.OuterStep(m.Params, upd, n.gen.Params.OuterLR); err != nil {
			return err
		}
		n.metrics.observe(phaseAggregate, time.Since(t0))
	}
	if got := Hash(m.StateHash()); got != man.Result {
		return fmt.Errorf("node: round %d: state %s after applying, manifest says %s", man.Round, got.Short(), man.Result.Short())
	}
	return nil
}

// fetchContributions gets a manifest's blobs, in parallel.
func (n *Node) fetchContributions(ctx context.Context, man *Manifest, hint peer.ID) ([][]byte, error) {
	// The manifest's signer scored, hence holds, every blob it lists.
	t0 := time.Now()
	blobs := make([][]byte, len(man.Contributions))
	errs := make([]error, len(man.Contributions))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for i, c := range man.Contributions {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			id, _ := peer.Decode(c.Peer) // checked by DecodeManifest
			blobs[i], errs[i] = n.fetchContribution(ctx, c.CID, man.Round, id, hint)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("node: round %d contributions: %w", man.Round, err)
	}
	n.metrics.observe(phaseFetch, time.Since(t0))
	return blobs, nil
}

// fetchContribution gets one blob of a manifest: from its contributor when
// it is connected (spreading the load), but only for a short while, since
// a contributor that died still looks connected until its connection times
// out; then from the manifest's signer, which holds every blob it lists.
func (n *Node) fetchContribution(ctx context.Context, cs string, round uint64, contributor, signer peer.ID) ([]byte, error) {
	if contributor != signer && contributor != n.p2p.ID() && n.p2p.Connectedness(contributor) == network.Connected {
		qctx, cancel := context.WithTimeout(ctx, n.quickFetch)
		b, err := n.fetchBlob(qctx, cs, round, n.maxBlob(), contributor)
		cancel()
		if err == nil || ctx.Err() != nil {
			return b, err
		}
		n.log.Debug("contributor did not serve its blob; asking the manifest's signer", "round", round, "contributor", contributor, "err", err)
	}
	return n.fetchBlob(ctx, cs, round, n.maxBlob(), signer, contributor)
}

// provideLater stores a blob (already in the local store) on the DHT in the
// background.
func (n *Node) provideLater(ctx context.Context, blob []byte, round uint64) {
	n.spawn(func() {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if _, err := n.p2p.Put(pctx, blob, p2p.WithRound(round)); err != nil && ctx.Err() == nil {
			n.log.Debug("providing blob", "round", round, "err", err)
		}
	})
}

// maxBlob bounds a contribution blob: the codec's size for this chunking
// is far below it (values are 2 bits, indices about 8).
func (n *Node) maxBlob() int64 {
	if n.rl != nil {
		return n.rl.maxBlob
	}
	return int64(64+8*len(n.ch.Chunks)) + 4*int64(n.ch.TotalK) + 1024
}

// fetchBlob gets a blob by CID string, trying the hinted peers first.
func (n *Node) fetchBlob(ctx context.Context, cs string, round uint64, maxSize int64, hints ...peer.ID) ([]byte, error) {
	c, err := parseCID(cs)
	if err != nil {
		return nil, err
	}
	local := n.p2p.Has(c)
	var from []peer.ID
	for _, h := range hints {
		if h != "" && h != n.p2p.ID() {
			from = append(from, h)
		}
	}
	fctx, cancel := context.WithTimeout(ctx, max(n.clock.Length, 10*time.Second))
	defer cancel()
	b, err := n.p2p.Get(fctx, c, p2p.FromPeers(from...), p2p.WithRound(round), p2p.WithMaxSize(maxSize))
	if err != nil {
		return nil, fmt.Errorf("node: fetching %s: %w", cs, err)
	}
	if !local {
		n.metrics.bytesIn.Add(int64(len(b)))
		n.metrics.blobsIn.Add(1)
	}
	return b, nil
}

func (n *Node) fetchManifest(ctx context.Context, cs string, hints ...peer.ID) (*manifestMsg, error) {
	b, err := n.fetchBlob(ctx, cs, 0, 1<<20, hints...)
	if err != nil {
		return nil, err
	}
	mm, err := parseManifestBlob(b, n.gen)
	if err != nil {
		return nil, fmt.Errorf("node: manifest blob %s: %w", cs, err)
	}
	mm.from = hints[len(hints)-1]
	return mm, nil
}

// Checkpoint metadata: every peer encodes the same state with the same
// metadata, so every peer's checkpoint blob has the same bytes and CID.
func checkpointMeta(round uint64, netID string) map[string]string {
	return map[string]string{metaRound: strconv.FormatUint(round, 10), metaNetwork: netID}
}

// storeCheckpoint stores the current state as a checkpoint blob.
func (n *Node) storeCheckpoint(ctx context.Context) {
	var buf bytes.Buffer
	if err := n.global.EncodeCheckpoint(&buf, checkpointMeta(n.next, n.netID.String())); err != nil {
		n.log.Error("encoding checkpoint", "err", err)
		return
	}
	raw := buf.Bytes()
	ref := CheckpointRef{Round: n.next, Hash: n.hash, CID: p2p.CIDOf(raw).String()}
	n.checkpoint = ref
	announce := n.va != nil && n.va.rank == 0
	n.spawn(func() {
		pctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if _, err := n.p2p.Put(pctx, raw, p2p.WithRound(ref.Round)); err != nil {
			n.log.Warn("providing checkpoint", "round", ref.Round, "err", err)
		}
		if announce {
			n.publish(ctx, p2p.TopicCheckpoint, ref.Round, &CheckpointAnnouncement{V: WireVersion, Ref: ref, Size: int64(len(raw))})
		}
	})
	n.emit(Event{Kind: EventCheckpoint, Round: ref.Round, Hash: ref.Hash, Bytes: int64(len(raw))})
}

// loadCheckpoint fetches and verifies a checkpoint into m.
func (n *Node) loadCheckpoint(ctx context.Context, m *model.GPT, cp CheckpointRef, hint peer.ID) error {
	if cp.CID == "" {
		n.initState(m)
	} else {
		limit := int64(n.ch.NumParams)*4 + 1<<20
		b, err := n.fetchBlob(ctx, cp.CID, cp.Round, limit, hint)
		if err != nil {
			return fmt.Errorf("node: checkpoint of round %d: %w", cp.Round, err)
		}
		got, _, err := model.LoadBytes(b, n.eng)
		if err != nil {
			return fmt.Errorf("node: checkpoint of round %d: %w", cp.Round, err)
		}
		if got.Config != n.gen.Model {
			return fmt.Errorf("node: checkpoint of round %d is for model %v", cp.Round, got.Config)
		}
		copy(m.Params, got.Params)
	}
	if h := Hash(m.StateHash()); h != cp.Hash {
		return fmt.Errorf("node: checkpoint of round %d hashes to %s, want %s", cp.Round, h.Short(), cp.Hash.Short())
	}
	return nil
}

// evaluate is the mean validation loss of m.
func (n *Node) evaluate(m *model.GPT) float32 {
	hp := n.gen.Params
	in := make([]int32, hp.Batch*hp.SeqLen)
	tgt := make([]int32, len(in))
	var sum float64
	k := n.val.Len()
	for i := range k {
		if err := n.val.Fill(i, in, tgt); err != nil {
			return float32(math.NaN())
		}
		l, err := m.Forward(in, tgt, hp.Batch, hp.SeqLen)
		if err != nil {
			return float32(math.NaN())
		}
		sum += float64(l)
	}
	return float32(sum / float64(k))
}

// publish encodes and publishes a payload, counting its bytes.
func (n *Node) publish(ctx context.Context, t p2p.Topic, round uint64, v any) {
	b, err := encodeMsg(v)
	if err != nil {
		n.log.Error("encoding", "topic", t, "err", err)
		return
	}
	if err := n.p2p.Publish(ctx, t, round, b); err != nil {
		if ctx.Err() == nil {
			n.log.Warn("publishing", "topic", t, "round", round, "err", err)
		}
		return
	}
	n.metrics.msgsOut.Add(1)
	n.metrics.bytesOut.Add(int64(len(b)))
}
