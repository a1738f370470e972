package node

import (
	"context"
	"encoding/binary"
	"fmt"
	"maps"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/optimizer"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/rl"
)

// Adversary names a misbehaviour a peer plays instead of following the
// protocol honestly: the tests, `trinity testnet --adversaries` and `trinity
// join --adversary` use them to show that the network's defences hold
// (docs/verification.md lists which defence catches which).
type Adversary string

// Adversaries. Every trainer mode still announces once per round on time
// (except as noted), so it is its content that must be caught.
const (
	AdversaryFreeRider    Adversary = "free-rider"    // no training; a blob of zeros (even rounds) or tiny noise (odd)
	AdversaryCopier       Adversary = "copier"        // no training; re-announces another trainer's blob CID
	AdversaryScaledCopier Adversary = "scaled-copier" // no training; another trainer's blob scaled by 1.25, re-encoded
	AdversaryPoisoner     Adversary = "poisoner"      // its honest update with the scales multiplied by 50
	AdversarySignFlip     Adversary = "sign-flip"     // its honest update negated
	AdversaryNoise        Adversary = "noise"         // random entries with its honest update's norm
	AdversaryStale        Adversary = "stale"         // re-announces its previous round's blob
	AdversaryWrongBase    Adversary = "wrong-base"    // claims a base state that is not the round's
	AdversaryNaN          Adversary = "nan"           // a NaN (even rounds) or +Inf (odd) scale in its blob
	AdversaryMalformed    Adversary = "malformed"     // a truncated blob with a bad magic
	AdversaryOversized    Adversary = "oversized"     // its blob padded far beyond the codec's bound
	AdversarySpam         Adversary = "spam"          // its honest blob plus a stream of announcements of junk CIDs
	AdversaryLazy         Adversary = "lazy"          // half its steps, at double the learning rate (replay catches it)
	AdversaryValidator    Adversary = "dishonest-validator"
	AdversaryComposer     Adversary = "dishonest-composer" // leads; lists what the consensus rejected, or chooses without a stake majority
)

// adversaryMode is one misbehaviour: the role that plays it and the hooks it
// overrides. A nil hook is the honest behaviour, so adding a mode is one
// entry in adversaryModes with the hooks it needs.
type adversaryMode struct {
	role  Role
	about string
	// produce replaces the round's training: it returns the blob to
	// announce (the trainer does no inner steps).
	produce func(ctx context.Context, a *adversary, r uint64) ([]byte, error)
	// step decides, for inner step i of h, whether to run it and the factor
	// on the learning rate.
	step func(i, h int) (run bool, lrScale float32)
	// compressed rewrites the compressed pseudo-gradient before encoding.
	compressed func(a *adversary, r uint64, c *optimizer.Compressed)
	// blob rewrites the encoded blob.
	blob func(a *adversary, r uint64, blob []byte) []byte
	// announce rewrites the announcement before it is published.
	announce func(a *adversary, ann *Announcement)
	// scores rewrites a validator's scores before they are published.
	scores func(a *adversary, s *Scores)
	// compose rewrites a composer's choice of contributions and of the
	// score vectors its manifest embeds.
	compose func(a *adversary, vr *valRound, chosen []peer.ID, vecs []SignedScores) ([]peer.ID, []SignedScores)
	// lead: testnets make this validator the lead (rank 0) rather than
	// the last, since the mode only acts when it composes.
	lead bool
	// background runs beside the node until it stops.
	background func(a *adversary, ctx context.Context)
	// rollouts replaces a rollout peer's honest batch (rl_adversary.go).
	rollouts func(a *adversary, ctx context.Context, in rolloutInput) (*rl.Batch, error)
}

// adversaryModes lists every mode.
func adversaryModes() map[Adversary]adversaryMode {
	modes := map[Adversary]adversaryMode{
		AdversaryFreeRider: {role: RoleTrainer, about: "announces zeros or tiny noise without training",
			produce: func(_ context.Context, a *adversary, r uint64) ([]byte, error) {
				scale := float32(0)
				if r%2 == 1 {
					scale = 1e-7
				}
				return a.randomBlob(r, scale)
			}},
		AdversaryCopier: {role: RoleTrainer, about: "re-announces another trainer's blob",
			produce: func(ctx context.Context, a *adversary, r uint64) ([]byte, error) { return a.copyBlob(ctx, r, 1) }},
		AdversaryScaledCopier: {role: RoleTrainer, about: "announces another trainer's blob scaled by 1.25",
			produce: func(ctx context.Context, a *adversary, r uint64) ([]byte, error) { return a.copyBlob(ctx, r, 1.25) }},
		AdversaryPoisoner: {role: RoleTrainer, about: "its update with a 50 times larger norm",
			compressed: func(_ *adversary, _ uint64, c *optimizer.Compressed) { scaleCompressed(c, 50) }},
		AdversarySignFlip: {role: RoleTrainer, about: "its update negated",
			compressed: func(_ *adversary, _ uint64, c *optimizer.Compressed) {
				for j := range c.Codes {
					c.Codes[j] ^= codeSignBit
				}
			}},
		AdversaryNoise: {role: RoleTrainer, about: "random entries of its update's norm", compressed: (*adversary).noise},
		AdversaryStale: {role: RoleTrainer, about: "re-announces last round's blob", blob: (*adversary).stale},
		AdversaryWrongBase: {role: RoleTrainer, about: "claims a base state other than the round's",
			announce: func(_ *adversary, ann *Announcement) { ann.Base[0] ^= 0xff }},
		AdversaryNaN: {role: RoleTrainer, about: "a non-finite scale in its blob",
			blob: func(_ *adversary, r uint64, b []byte) []byte {
				bits := math.Float32bits(float32(math.NaN()))
				if r%2 == 1 {
					bits = math.Float32bits(float32(math.Inf(1)))
				}
				// The high scale of chunk 0 (see the blob layout in optimizer/codec.go).
				if len(b) >= blobScalesOffset+8 {
					binary.LittleEndian.PutUint32(b[blobScalesOffset+4:], bits)
				}
				return b
			}},
		AdversaryMalformed: {role: RoleTrainer, about: "a truncated blob with a bad magic",
			blob: func(_ *adversary, _ uint64, b []byte) []byte {
				b = b[:len(b)*2/3]
				copy(b, "JUNK")
				return b
			}},
		AdversaryOversized: {role: RoleTrainer, about: "its blob padded beyond the codec's bound",
			blob: func(a *adversary, _ uint64, b []byte) []byte {
				return append(b, make([]byte, 2*a.n.maxBlob())...)
			}},
		AdversaryLazy: {role: RoleTrainer, about: "computes only its even inner steps, at double the learning rate",
			step: func(i, _ int) (bool, float32) { return i%2 == 0, 2 }},
		AdversarySpam: {role: RoleTrainer, about: "floods the gradient topic with announcements of junk CIDs",
			background: (*adversary).spam},
		AdversaryValidator: {role: RoleValidator, about: "publishes inverted scores: rejects the honest, passes the rest with a high score",
			scores: func(_ *adversary, s *Scores) {
				for i := range s.Entries {
					e := &s.Entries[i]
					e.OK = !e.OK
					e.Score, e.Smoothed, e.Reason = 0, 0, ""
					if e.OK {
						e.Score, e.Smoothed = 1, 1
					}
				}
			}},
	}
	modes[AdversaryComposer] = adversaryMode{role: RoleValidator, lead: true,
		about: "leads, and lists contributions the consensus rejected (or, when it holds none, embeds only its own score vector)",
		scores: func(_ *adversary, s *Scores) {
			// Its own vector backs its choice: it passes everything.
			for i := range s.Entries {
				e := &s.Entries[i]
				if !e.OK {
					e.OK, e.Score, e.Reason = true, 1, ""
				}
			}
		},
		compose: (*adversary).composeDishonestly}
	maps.Copy(modes, rlAdversaryModes())
	return modes
}

// codeSignBit is the sign bit of a 2-bit code (see optimizer's Compressed).
const codeSignBit = 1

// blobScalesOffset is where the per-chunk scales start in a blob (the
// header's size in the layout of optimizer/codec.go).
const blobScalesOffset = 72

// AdversaryKinds lists the modes for role ("" for all), sorted.
func AdversaryKinds(role Role) []Adversary {
	var out []Adversary
	for k, m := range adversaryModes() {
		if role == "" || m.role == role {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// Role is the role that plays a (empty for an unknown mode).
func (a Adversary) Role() Role { return adversaryModes()[a].role }

// About describes a.
func (a Adversary) About() string { return adversaryModes()[a].about }

// ParseAdversary checks that s names a mode.
func ParseAdversary(s string) (Adversary, error) {
	a := Adversary(s)
	if _, ok := adversaryModes()[a]; !ok {
		names := make([]string, 0)
		for _, k := range AdversaryKinds("") {
			names = append(names, string(k))
		}
		return "", fmt.Errorf("node: unknown adversary %q (known: %s)", s, strings.Join(names, ", "))
	}
	return a, nil
}

// adversary is the state of a node that plays a mode. A nil *adversary is
// an honest node: every hook method below then does nothing.
type adversary struct {
	n    *Node
	kind Adversary
	mode adversaryMode

	mu    sync.Mutex
	rng   *rand.Rand
	seen  map[uint64][]seenAnn // others' announcements by round (copiers)
	wake  chan struct{}        // a new announcement was seen
	last  []byte               // the previous round's blob (stale)
	lastR uint64
}

type seenAnn struct {
	from peer.ID
	a    *Announcement
}

func newAdversary(n *Node, kind Adversary) (*adversary, error) {
	m, ok := adversaryModes()[kind]
	if !ok {
		_, err := ParseAdversary(string(kind))
		return nil, err
	}
	if m.role != n.cfg.Role {
		return nil, fmt.Errorf("node: adversary %q is played by a %s, not a %s", kind, m.role, n.cfg.Role)
	}
	var seed [8]byte
	copy(seed[:], n.p2p.ID())
	return &adversary{n: n, kind: kind, mode: m, rng: rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:]), 7)),
		seen: map[uint64][]seenAnn{}, wake: make(chan struct{}, 1)}, nil
}

// start runs the mode's background behaviour on a tracked goroutine.
func (a *adversary) start(ctx context.Context) {
	if a == nil || a.mode.background == nil {
		return
	}
	a.n.log.Warn("playing adversary", "mode", a.kind)
	a.n.spawn(func() { a.mode.background(a, ctx) })
}

// produces reports whether the mode replaces training.
func (a *adversary) produces() bool { return a != nil && a.mode.produce != nil }

// produceBlob is the blob a producing mode announces for round r.
func (a *adversary) produceBlob(ctx context.Context, r uint64) ([]byte, error) {
	return a.mode.produce(ctx, a, r)
}

// innerStep says whether to run inner step i of h, and sets the learning
// rate factor on opt for it; undo restores it.
func (a *adversary) innerStep(opt *optimizer.AdamW, i, h int) (run bool, undo func()) {
	if a == nil || a.mode.step == nil {
		return true, func() {}
	}
	run, scale := a.mode.step(i, h)
	lr := opt.Config.LR
	opt.Config.LR = lr * scale
	return run, func() { opt.Config.LR = lr }
}

func (a *adversary) rewriteCompressed(r uint64, c *optimizer.Compressed) {
	if a != nil && a.mode.compressed != nil {
		a.mode.compressed(a, r, c)
	}
}

func (a *adversary) rewriteBlob(r uint64, b []byte) []byte {
	if a == nil || a.mode.blob == nil {
		return b
	}
	return a.mode.blob(a, r, b)
}

func (a *adversary) rewriteAnnouncement(ann *Announcement) {
	if a != nil && a.mode.announce != nil {
		a.mode.announce(a, ann)
	}
}

func (a *adversary) rewriteComposition(r uint64, vr *valRound, chosen []peer.ID, vecs []SignedScores) ([]peer.ID, []SignedScores) {
	if a == nil || a.mode.compose == nil {
		return chosen, vecs
	}
	chosen, vecs = a.mode.compose(a, vr, chosen, vecs)
	a.n.log.Warn("composing dishonestly", "round", r, "contributions", len(chosen), "score_vectors", len(vecs))
	return chosen, vecs
}

// composeDishonestly adds to the honest choice every contribution the
// composer holds and decoded that the consensus left out (e.g. a
// poisoner's, rejected by every honest validator). When there is none (the
// validators ban such trainers, so their blobs are no longer fetched) it
// keeps the honest choice but embeds only its own score vector, a vote
// without a stake majority. Peers must reject either manifest.
func (a *adversary) composeDishonestly(vr *valRound, chosen []peer.ID, vecs []SignedScores) ([]peer.ID, []SignedScores) {
	var extra []peer.ID
	for p := range vr.decoded {
		if vr.blobs[p] != nil && !slices.Contains(chosen, p) {
			extra = append(extra, p)
		}
	}
	if len(extra) > 0 {
		slices.Sort(extra)
		return append(slices.Clone(chosen), extra...), vecs
	}
	self := a.n.p2p.ID().String()
	return chosen, slices.DeleteFunc(slices.Clone(vecs), func(v SignedScores) bool { return v.Validator != self })
}

func (a *adversary) rewriteScores(s *Scores) {
	if a != nil && a.mode.scores != nil {
		s.Entries = slices.Clone(s.Entries) // the validator's own record keeps the truth
		a.mode.scores(a, s)
	}
}

// saw records another trainer's announcement (called from the gossip
// reader); copiers pick their victims from these, among the ones that claim
// a training loss (the work worth stealing).
func (a *adversary) saw(from peer.ID, ann *Announcement) {
	if a == nil || a.mode.produce == nil || from == a.n.p2p.ID() {
		return
	}
	a.mu.Lock()
	for r := range a.seen {
		if r+2 < ann.Round {
			delete(a.seen, r)
		}
	}
	if ann.Loss > 0 { // a blob that claims training; free-riders and copiers announce 0
		a.seen[ann.Round] = append(a.seen[ann.Round], seenAnn{from, ann})
	}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// copyBlob waits for another trainer's announcement of round r, fetches its
// blob and returns it, its scales multiplied by scale unless scale is 1.
func (a *adversary) copyBlob(ctx context.Context, r uint64, scale float32) ([]byte, error) {
	for {
		a.mu.Lock()
		var victim *seenAnn
		if s := a.seen[r]; len(s) > 0 {
			victim = &s[a.rng.IntN(len(s))]
		}
		a.mu.Unlock()
		if victim != nil {
			b, err := a.n.fetchBlob(ctx, victim.a.CID, r, a.n.maxBlob(), victim.from)
			if err != nil || scale == 1 {
				return b, err
			}
			c := a.n.ch.NewCompressed()
			if err := a.n.ch.Decode(b, c); err != nil {
				return nil, err
			}
			scaleCompressed(c, scale)
			return a.n.ch.Encode(nil, c)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("node: adversary %s: nobody to copy in round %d: %w", a.kind, r, ctx.Err())
		case <-a.wake:
		}
	}
}

func scaleCompressed(c *optimizer.Compressed, s float32) {
	for i := range c.Lo {
		c.Lo[i] *= s
		c.Hi[i] *= s
	}
}

// randomBlob is a blob of random entries with both scales equal to scale.
func (a *adversary) randomBlob(r uint64, scale float32) ([]byte, error) {
	c := a.n.ch.NewCompressed()
	c.Round = r
	for i := range c.Lo {
		c.Lo[i], c.Hi[i] = scale, scale
	}
	a.randomEntries(c, false)
	return a.n.ch.Encode(nil, c)
}

// noise keeps c's scales and level bits (so its norm) and draws the kept
// positions and the signs at random.
func (a *adversary) noise(_ uint64, c *optimizer.Compressed) { a.randomEntries(c, true) }

func (a *adversary) randomEntries(c *optimizer.Compressed, keepLevels bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, k := range a.n.ch.Chunks {
		idx := a.rng.Perm(k.Len)[:k.K]
		slices.Sort(idx)
		for j := range k.K {
			c.Idx[k.Start+j] = uint16(idx[j])
			level := uint8(0)
			if keepLevels {
				level = c.Codes[k.Start+j] &^ codeSignBit
			}
			c.Codes[k.Start+j] = level | uint8(a.rng.IntN(2))
		}
	}
}

// stale announces the previous round's blob instead of this one's (in the
// first round it plays honest: it has nothing older).
func (a *adversary) stale(r uint64, b []byte) []byte {
	a.mu.Lock()
	defer a.mu.Unlock()
	prev, prevR := a.last, a.lastR
	a.last, a.lastR = b, r
	if prev != nil && prevR < r {
		return prev
	}
	return b
}

// spam publishes, through the round's announcement window, announcements of
// random CIDs (valid messages, so gossip forwards them) every 40 ms.
func (a *adversary) spam(ctx context.Context) {
	n := a.n
	t := time.NewTicker(40 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			r := n.clock.Round(now)
			if now.Before(n.clock.Start) || !now.Before(n.clock.AnnounceBy(r)) {
				continue
			}
			junk := make([]byte, 64)
			a.mu.Lock()
			for i := range junk {
				junk[i] = byte(a.rng.Uint32())
			}
			a.mu.Unlock()
			ann := &Announcement{V: WireVersion, Round: r, CID: p2p.CIDOf(junk).String(), Size: int64(len(junk))}
			n.publish(ctx, p2p.TopicGradient, r, ann)
		}
	}
}

// testnetAdversaries is the mode of each validator and trainer of a testnet
// ("" for honest ones), honest peers first.
func testnetAdversaries(cfg TestnetConfig) (map[Role][]Adversary, error) {
	out := map[Role][]Adversary{RoleValidator: make([]Adversary, cfg.Validators), RoleTrainer: make([]Adversary, cfg.Trainers)}
	var leads []Adversary
	for _, a := range cfg.Adversaries {
		if _, err := ParseAdversary(string(a)); err != nil {
			return nil, err
		}
		if adversaryModes()[a].lead {
			leads = append(leads, a)
			continue
		}
		out[a.Role()] = append(out[a.Role()], a)
	}
	out[RoleValidator] = append(leads, out[RoleValidator]...)
	if len(out[RoleValidator]) > 16 || len(out[RoleTrainer]) > 256 {
		return nil, fmt.Errorf("node: testnet of %d trainers and %d validators out of range", len(out[RoleTrainer]), len(out[RoleValidator]))
	}
	// The defences assume dishonest validators hold less than half of the
	// stake (testnet stakes are 100, 99, ... by rank); a leading adversary
	// holds the most, so it needs honest validators enough beside it.
	var bad, total int
	for i, a := range out[RoleValidator] {
		total += 100 - i
		if a != "" {
			bad += 100 - i
		}
	}
	if len(leads) > 0 && 2*bad >= total {
		return nil, fmt.Errorf("node: testnet: the adversarial validators would hold %d of %d stake, a majority no defence withstands (add honest validators)", bad, total)
	}
	return out, nil
}

// testnetName names a testnet member: "trainer-3", or "free-rider-3" for an
// adversary.
func testnetName(role string, a Adversary, i int) string {
	if a != "" {
		role = string(a)
	}
	return fmt.Sprintf("%s-%d", role, i)
}
