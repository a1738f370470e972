package node

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify/attest"
	"github.com/trinity-net/trinity/verify/grail"
	"github.com/trinity-net/trinity/verify/replay"
)

// ComputeClient finds the network's compute providers, attests them and
// leases them jobs whose results it verifies before returning them. It
// shares the caller's p2p node (with TopicCapacity, see NewComputeHost).
type ComputeClient struct {
	net      *p2p.Node
	gen      *Genesis
	netID    p2p.NetworkID
	eng      *tensor.Engine
	ds       *data.Dataset
	model    *model.GPT // the job model, to verify against
	modelH   Hash
	book     *attest.Book
	verifier *attest.Verifier
	log      *slog.Logger

	vmu  sync.Mutex // the model is used by one verification at a time
	hist computeHistory
}

// NewComputeClient makes a client that signs attestations with key (net's
// identity). verifierOpts tune the attestation challenges. Its book counts
// the client's own attestations and the genesis validators'.
func NewComputeClient(net *p2p.Node, g *Genesis, key ed25519.PrivateKey, e *tensor.Engine, ds *data.Dataset,
	log *slog.Logger, opts []ComputeOption, verifierOpts ...attest.VerifierOption) (*ComputeClient, error) {
	cfg, id, err := computeSetup(net, g, key, opts)
	if err != nil {
		return nil, err
	}
	c := &ComputeClient{net: net, gen: g, netID: id, eng: e, ds: ds, log: log}
	if c.model, err = jobModel(g, e, cfg); err != nil {
		return nil, err
	}
	c.modelH = c.model.StateHash()
	// Only the client's own attestations and the genesis validators' count:
	// anyone can sign an attestation, and a Wrong one marks its subject
	// faulty, so an open filter would let any peer smear any provider.
	trusted := validatorKeys(g)
	trusted[string(key.Public().(ed25519.PublicKey))] = true
	accept := func(k ed25519.PublicKey) bool { return trusted[string(k)] }
	if c.book, err = attest.NewBook(id, attest.WithAttesters(accept)); err != nil {
		return nil, err
	}
	vopts := append([]attest.VerifierOption{attest.WithVerifierEngine(e), attest.WithVerifierLogger(log)}, verifierOpts...)
	if c.verifier, err = attest.NewVerifier(key, id, vopts...); err != nil {
		return nil, err
	}
	if err := registerCapacityValidator(net, id); err != nil {
		return nil, err
	}
	return c, nil
}

// Book is the client's view of the providers.
func (c *ComputeClient) Book() *attest.Book { return c.book }

// ModelHash is the state hash of the model jobs run on.
func (c *ComputeClient) ModelHash() Hash { return c.modelH }

// Run files the records and attestations gossiped on TopicCapacity into the
// book until ctx ends.
func (c *ComputeClient) Run(ctx context.Context) error {
	sub, err := c.net.Subscribe(TopicCapacity)
	if err != nil {
		return err
	}
	defer sub.Cancel()
	for {
		msg, err := sub.Next(ctx)
		if err != nil {
			return ctx.Err()
		}
		rec, a, err := decodeCapacity(msg.Envelope.Payload)
		if err != nil {
			continue
		}
		c.file(rec, a)
	}
}

func (c *ComputeClient) file(rec *attest.CapacityRecord, a *attest.Attestation) {
	now := time.Now()
	var err error
	if rec != nil {
		err = c.book.AddRecord(rec, now)
	} else {
		err = c.book.AddAttestation(a, now)
	}
	if err != nil && !errors.Is(err, attest.ErrReplay) {
		c.log.Debug("compute: capacity message not filed", "err", err)
	}
	if err == nil && a != nil {
		c.hist.add(a)
	}
}

// Discover finds providers, asks each for its record and files what
// verifies: the providers of CapacityKey on the DHT, and the peers seen on
// TopicCapacity or connected (which finds providers on a LAN or a young
// network whose DHT has no servers yet). It returns how many records it got; the error
// is the DHT's when nothing else was found either.
func (c *ComputeClient) Discover(ctx context.Context) (int, error) {
	// A lookup runs until it has all the providers asked for or ctx ends:
	// leave time for fetching the records.
	lookup := 10 * time.Second
	if d, ok := ctx.Deadline(); ok {
		lookup = min(lookup, time.Until(d)/2)
	}
	lctx, cancel := context.WithTimeout(ctx, lookup)
	found, derr := c.net.FindKeyProviders(lctx, CapacityKey(c.netID), 100)
	cancel()
	c.log.Debug("compute: capacity providers on the DHT", "found", len(found), "err", derr)
	seen := map[peer.ID]bool{c.net.ID(): true}
	for _, ai := range found {
		seen[ai.ID] = true
	}
	// Peers on the topic, and peers already connected (a provider may be
	// our bootstrap peer before its subscription has reached us); those
	// that serve no records answer at once that they do not.
	for _, id := range append(c.net.TopicPeers(TopicCapacity), c.net.Peers()...) {
		if !seen[id] {
			seen[id] = true
			found = append(found, peer.AddrInfo{ID: id})
		}
	}
	got := 0
	for _, ai := range found {
		if ctx.Err() != nil {
			break
		}
		if len(ai.Addrs) > 0 {
			_ = c.net.Connect(ctx, ai)
		}
		if _, err := c.FetchRecord(ctx, ai.ID); err != nil {
			c.log.Debug("compute: fetching record", "peer", ai.ID, "err", err)
			continue
		}
		got++
	}
	if got == 0 && derr != nil {
		return 0, derr
	}
	return got, nil
}

// FetchRecord asks p for its capacity record and files it.
func (c *ComputeClient) FetchRecord(ctx context.Context, p peer.ID) (*attest.CapacityRecord, error) {
	b, err := c.net.Request(ctx, p, reqRecord, nil, attest.MaxRecordSize, 30*time.Second)
	if err != nil {
		return nil, err
	}
	var rec attest.CapacityRecord
	if err := rec.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	if err := rec.Verify(); err != nil {
		return nil, err
	}
	if id, err := keyPeer(rec.Peer); err != nil || id != p {
		return nil, fmt.Errorf("node: %s sent the record of %s", p, id)
	}
	c.file(&rec, nil)
	return &rec, nil
}

// streamTransport carries one attestation over the request service.
type streamTransport struct {
	net *p2p.Node
	p   peer.ID
}

func (t streamTransport) Commit(ctx context.Context, ch *attest.Challenge) (*attest.Commitment, error) {
	b, err := ch.MarshalBinary()
	if err != nil {
		return nil, err
	}
	timeout := 5 * time.Minute
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Millisecond)
	}
	out, err := t.net.Request(ctx, t.p, reqCommit, b, attest.CommitmentSize, timeout)
	if err != nil {
		return nil, err
	}
	var cm attest.Commitment
	if err := cm.UnmarshalBinary(out); err != nil {
		return nil, err
	}
	return &cm, nil
}

func (t streamTransport) Open(ctx context.Context, q *attest.OpenRequest) (*attest.Opening, error) {
	b, err := q.MarshalBinary()
	if err != nil {
		return nil, err
	}
	out, err := t.net.Request(ctx, t.p, reqOpen, b, attest.MaxOpeningSize, time.Minute)
	if err != nil {
		return nil, err
	}
	var op attest.Opening
	if err := op.UnmarshalBinary(out); err != nil {
		return nil, err
	}
	return &op, nil
}

// Attest challenges provider p (whose record must be known: its claim is
// what the attestation is compared with), files the signed attestation in
// the book and publishes it on TopicCapacity, whatever the verdict.
func (c *ComputeClient) Attest(ctx context.Context, p peer.ID) (*attest.Attestation, error) {
	pub, err := peerKey(p)
	if err != nil {
		return nil, err
	}
	prov, ok := c.book.Provider(pub, time.Now())
	if !ok || prov.Record == nil {
		if _, err := c.FetchRecord(ctx, p); err != nil {
			return nil, fmt.Errorf("node: no capacity record of %s: %w", p, err)
		}
		prov, _ = c.book.Provider(pub, time.Now())
	}
	a, err := c.verifier.Attest(ctx, streamTransport{net: c.net, p: p}, pub, prov.Record.GemmGFLOPs)
	if err != nil {
		return nil, err
	}
	c.file(nil, a)
	if msg, err := encodeCapacity(capacityKindAttestation, a); err == nil {
		if err := c.net.Publish(ctx, TopicCapacity, capacityRound(c.gen), msg); err != nil {
			c.log.Debug("compute: publishing attestation", "err", err)
		}
	}
	return a, nil
}

// List rates the known providers (attest.Book.List).
func (c *ComputeClient) List() []attest.Provider { return c.book.List(time.Now()) }

// ErrJobRejected is wrapped by the error of a job whose result failed
// verification: the provider lied or is broken.
var ErrJobRejected = errors.New("node: job result rejected")

func reject(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrJobRejected, fmt.Sprintf(format, args...))
}

// Generation is a verified generation job's output.
type Generation struct {
	Proof  *grail.Proof
	Tokens []int32
	Report grail.Report
}

// Generate leases p to generate n tokens after prompt and verifies the
// GRAIL proof on receipt: bound to a beacon drawn here, p's key, the prompt
// and sampling, with challenged positions drawn after the proof arrived.
// A result that fails is returned as an error wrapping ErrJobRejected.
func (c *ComputeClient) Generate(ctx context.Context, p peer.ID, prompt []int32, n int, s grail.Sampling) (*Generation, error) {
	pub, err := peerKey(p)
	if err != nil {
		return nil, err
	}
	j := &JobRequest{V: WireVersion, Kind: JobGenerate, Model: c.modelH, Prompt: prompt, Tokens: n,
		Temperature: s.Temperature, TopK: s.TopK}
	if _, err := rand.Read(j.Beacon[:]); err != nil {
		return nil, err
	}
	if err := j.check(c.gen.Model.Vocab, c.gen.Model.Context, 1); err != nil {
		return nil, err
	}
	req, err := encodeMsg(j)
	if err != nil {
		return nil, err
	}
	maxProof := 1024 + 8*(len(prompt)+n)
	b, err := c.net.Request(ctx, p, reqJob, req, maxProof, 10*time.Minute)
	if err != nil {
		return nil, err
	}
	proof, err := grail.Decode(b)
	if err != nil {
		return nil, reject("%v", err)
	}
	if len(proof.Tokens) != n {
		return nil, reject("%d tokens generated, %d asked", len(proof.Tokens), n)
	}
	challenge := make([]byte, 32)
	if _, err := rand.Read(challenge); err != nil {
		return nil, err
	}
	c.vmu.Lock()
	defer c.vmu.Unlock()
	v, err := grail.NewVerifier(c.model)
	if err != nil {
		return nil, err
	}
	rep, err := v.Check(ctx, proof, grail.Expect{Beacon: j.Beacon, Challenge: challenge, Peer: pub, Prompt: prompt, Sampling: &s})
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, reject("GRAIL: %v", err)
	}
	return &Generation{Proof: proof, Tokens: proof.Tokens, Report: rep}, nil
}

// Training is a verified training job's output.
type Training struct {
	Params  []float32 // after the job's steps
	Checked []int     // the steps replayed bit for bit
	Steps   int
}

// Train leases p for steps inner steps from the job model on the given
// pages and checks the result with bit-exact replay: p first commits to the
// digests of every state 0..steps along with the final parameters; then
// checks distinct steps, drawn here afterwards, are replayed from the state
// p sends (which must match its commitment) and must reach the committed
// next state. State 0 must be the job model with fresh moments and the
// final parameters the committed last state's. A provider that faked a
// fraction f of the steps escapes with probability at most (1-f)^checks
// (replay.Escape); checks >= steps replays every step.
func (c *ComputeClient) Train(ctx context.Context, p peer.ID, pages []int, steps, checks int) (*Training, error) {
	if checks < 1 {
		return nil, fmt.Errorf("node: train job needs at least one checked step")
	}
	j := &JobRequest{V: WireVersion, Kind: JobTrain, Model: c.modelH, Pages: pages, Steps: steps}
	if err := j.check(c.gen.Model.Vocab, c.gen.Model.Context, data.NumPages(len(c.ds.Train), c.gen.Params.PageSize)); err != nil {
		return nil, err
	}
	req, err := encodeMsg(j)
	if err != nil {
		return nil, err
	}
	n := len(c.model.Params)
	b, err := c.net.Request(ctx, p, reqJob, req, maxTrainResult(n, steps), 10*time.Minute)
	if err != nil {
		return nil, err
	}
	res, err := DecodeTrainJobResult(b, steps, n)
	if err != nil {
		return nil, reject("%v", err)
	}
	params, err := parseFloatsLE(res.Params)
	if err != nil {
		return nil, reject("%v", err)
	}
	c.vmu.Lock()
	defer c.vmu.Unlock()
	r, err := newTrainRun(c.eng, c.gen, c.ds, pages)
	if err != nil {
		return nil, err
	}
	r.reset(c.model.Params, nil, nil, 0)
	if toStateDigests(r.digests()) != res.States[0] {
		return nil, reject("state 0 is not the job model with fresh moments")
	}
	if replay.VectorDigest(params) != res.States[steps].Params {
		return nil, reject("final parameters are not the committed last state's")
	}
	picked, err := pickSteps(steps, checks)
	if err != nil {
		return nil, err
	}
	var st replay.State
	for _, s := range picked {
		q, err := encodeMsg(StateRequest{V: WireVersion, Job: res.Job, Step: s})
		if err != nil {
			return nil, err
		}
		sb, err := c.net.Request(ctx, p, reqState, q, replay.SnapshotSize(n, stateParts), 10*time.Minute)
		if err != nil {
			if ctx.Err() != nil {
				return nil, err
			}
			// Committed but would not open: as bad as a wrong state.
			return nil, reject("state %d not served: %v", s, err)
		}
		d, used, err := replay.DecodeSnapshot(sb, n, stateParts, &st)
		if err != nil || used != len(sb) {
			return nil, reject("state %d: malformed snapshot (%v)", s, err)
		}
		if toStateDigests(d) != res.States[s] {
			return nil, reject("state %d sent is not the committed one", s)
		}
		r.reset(st.Params, st.M, st.V, st.AdamStep)
		if err := r.step(s); err != nil {
			return nil, reject("replaying step %d: %v", s, err)
		}
		if toStateDigests(r.digests()) != res.States[s+1] {
			return nil, reject("step %d replayed does not reach the committed state %d", s, s+1)
		}
	}
	return &Training{Params: params, Checked: picked, Steps: steps}, nil
}

// pickSteps draws min(k, steps) distinct steps of [0, steps) uniformly.
func pickSteps(steps, k int) ([]int, error) {
	set := map[int]bool{}
	var b [8]byte
	for len(set) < min(k, steps) {
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		set[int(binary.BigEndian.Uint64(b[:])%uint64(steps))] = true
	}
	out := make([]int, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Ints(out)
	return out, nil
}
