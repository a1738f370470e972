package node

import (
	"context"
	"crypto/sha256"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/verify/grail"
	"github.com/trinity-net/trinity/verify/replay"
)

// A provider's leased jobs: one at a time (they share the job model and the
// engine), train jobs remembered for the state requests that check them.

// jobID names a leased job: the client and its request.
func jobID(from peer.ID, req []byte) Hash {
	h := sha256.New()
	h.Write([]byte("trinity/compute-job/v1\x00"))
	h.Write([]byte(from))
	h.Write([]byte{0})
	h.Write(req)
	return Hash(h.Sum(nil))
}

func (p *ComputeProvider) acquire(ctx context.Context) error {
	select {
	case p.jobs <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *ComputeProvider) serveJob(ctx context.Context, from peer.ID, req []byte) ([]byte, error) {
	j, err := DecodeJobRequest(req)
	if err != nil {
		return nil, err
	}
	if err := j.check(p.gen.Model.Vocab, p.gen.Model.Context, data.NumPages(len(p.ds.Train), p.gen.Params.PageSize)); err != nil {
		return nil, err
	}
	if j.Model != p.baseH {
		return nil, fmt.Errorf("node: this provider runs model %s, not %s", p.baseH.Short(), j.Model.Short())
	}
	if j.Kind == JobTrain {
		p.pruneJobs(time.Now())
		p.mu.Lock()
		full := len(p.leased) >= maxLeasedJobs
		p.mu.Unlock()
		if full {
			return nil, fmt.Errorf("node: %d train jobs awaiting checks, try later", maxLeasedJobs)
		}
	}
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer func() { <-p.jobs }()
	switch j.Kind {
	case JobGenerate:
		return p.generate(ctx, j)
	default:
		id := jobID(from, req)
		out, err := p.trainJob(ctx, j, id)
		if err == nil {
			p.mu.Lock()
			p.leased[id], p.expiry[id] = j, time.Now().Add(p.cfg.retention)
			p.mu.Unlock()
		}
		return out, err
	}
}

// maxLeasedJobs bounds the train jobs kept for state requests.
const maxLeasedJobs = 256

func (p *ComputeProvider) generate(ctx context.Context, j *JobRequest) ([]byte, error) {
	pr, err := grail.NewProver(p.base, p.priv)
	if err != nil {
		return nil, err
	}
	proof, err := pr.Prove(ctx, j.Beacon, j.Prompt, j.Tokens, j.sampling())
	if err != nil {
		return nil, err
	}
	if c := p.cheat.Load(); c != nil && c.proof != nil {
		c.proof(proof)
		if err := proof.Sign(p.priv); err != nil {
			return nil, err
		}
	}
	return proof.Encode()
}

// runSteps runs the first k steps of job j from the job model's state.
func (p *ComputeProvider) runSteps(ctx context.Context, j *JobRequest, k int, each func(int, *trainRun)) (*trainRun, error) {
	r, err := newTrainRun(p.eng, p.gen, p.ds, j.Pages)
	if err != nil {
		return nil, err
	}
	r.reset(p.base.Params, nil, nil, 0)
	if each != nil {
		each(0, r)
	}
	for s := range k {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if c := p.cheat.Load(); c == nil || c.step == nil || c.step(s) {
			if err := r.step(s); err != nil {
				return nil, err
			}
		}
		if each != nil {
			each(s+1, r)
		}
	}
	return r, nil
}

// maxKeptStates bounds the memory of the last train job's kept states;
// beyond it a state request recomputes.
const maxKeptStates = 256 << 20

func (p *ComputeProvider) trainJob(ctx context.Context, j *JobRequest, id Hash) ([]byte, error) {
	res := TrainJobResult{V: WireVersion, Job: id, States: make([]StateDigests, j.Steps+1)}
	n := len(p.base.Params)
	var kept [][]byte
	keep := (j.Steps+1)*replay.SnapshotSize(n, stateParts) <= maxKeptStates
	var kerr error
	r, err := p.runSteps(ctx, j, j.Steps, func(s int, r *trainRun) {
		d := r.digests()
		res.States[s] = toStateDigests(d)
		if keep && kerr == nil {
			var b []byte
			b, kerr = replay.AppendSnapshot(nil, r.state(), replay.Digests{EF: d.EF}, stateParts, n)
			kept = append(kept, b)
		}
	})
	if err == nil {
		err = kerr
	}
	if err != nil {
		return nil, err
	}
	res.Params = floatsLE(r.m.Params)
	if c := p.cheat.Load(); c != nil && c.params != nil {
		x := append([]float32(nil), r.m.Params...)
		c.params(x)
		res.Params = floatsLE(x)
	}
	p.mu.Lock()
	p.keptJob, p.kept = id, nil
	if keep {
		p.kept = kept
	}
	p.mu.Unlock()
	return encodeMsg(res)
}

// serveState answers a state request of a train job answered earlier: from
// the states kept of the last job, or else by recomputing its first Step
// steps (deterministic: the same bits as the job), so that the provider
// keeps only the requests of older jobs.
func (p *ComputeProvider) serveState(ctx context.Context, _ peer.ID, req []byte) ([]byte, error) {
	var q StateRequest
	if err := decodeStrict(req, &q); err != nil {
		return nil, fmt.Errorf("node: decoding state request: %w", err)
	}
	if err := checkVersion(q.V); err != nil {
		return nil, err
	}
	p.mu.Lock()
	j, ok := p.leased[q.Job]
	p.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("node: unknown or expired job %s", q.Job.Short())
	}
	if q.Step < 0 || q.Step > j.Steps {
		return nil, fmt.Errorf("node: state %d of a %d-step job", q.Step, j.Steps)
	}
	p.mu.Lock()
	var b []byte
	if p.keptJob == q.Job && p.kept != nil {
		b = p.kept[q.Step]
	}
	p.mu.Unlock()
	if b != nil {
		if c := p.cheat.Load(); c != nil && c.state != nil {
			b = append([]byte(nil), b...)
			c.state(q.Step, b)
		}
		return b, nil
	}
	if err := p.acquire(ctx); err != nil {
		return nil, err
	}
	defer func() { <-p.jobs }()
	r, err := p.runSteps(ctx, j, q.Step, nil)
	if err != nil {
		return nil, err
	}
	d := r.digests()
	return replay.AppendSnapshot(nil, r.state(), replay.Digests{EF: d.EF}, stateParts, len(r.m.Params))
}

func (p *ComputeProvider) pruneJobs(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, t := range p.expiry {
		if now.After(t) {
			delete(p.expiry, id)
			delete(p.leased, id)
		}
	}
}
