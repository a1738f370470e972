package node

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/trinity-net/trinity/p2p"
	"github.com/trinity-net/trinity/verify"
)

// A checkable manifest choice.
//
// The composer of a manifest embeds the signed score vectors it chose from
// (Manifest.Scores), and the choice must follow from them by one
// deterministic rule, consensusPassed, which the composer and every peer
// that receives the manifest run alike:
//
//   - every genesis validator votes on a contribution (trainer, CID): its
//     score when its embedded vector passed that trainer with that CID, else
//     0; a validator whose vector is not embedded votes 0 with its stake;
//   - a contribution passes when the stake-weighted median of these votes
//     (verify.Consensus) is positive, i.e. validators holding more than half
//     of the total genesis stake passed it;
//   - a CID that passes for two trainers passes for neither (a copy).
//
// A manifest may list only passing contributions, at most MaxContributions.
// It may leave some out: the composer also needs the blob and its own
// decoding of it, and honours replay exclusions, which a peer cannot check.
// So a composer can omit (censor) but cannot add: as long as validators
// holding half of the stake or more are honest, every listed contribution
// was passed by an honest validator, whatever the composer and the others
// signed. Leaving a vector out only takes its stake's votes away, so no
// choice of vectors helps a dishonest composer either.

// errBadChoice marks a manifest whose contributions do not follow from its
// embedded score vectors.
var errBadChoice = errors.New("node: manifest's choice does not follow from its score vectors")

// scoreVector is a verified score vector and its validator's rank.
type scoreVector struct {
	rank int
	s    *Scores
}

// passedContribution is a contribution the consensus passes, with its
// consensus score.
type passedContribution struct {
	Trainer, CID string
	Score        float64
}

// voteTable indexes score vectors by validator rank and trainer.
type voteTable struct {
	g       *Genesis
	entries map[int]map[string]ScoreEntry
	absent  uint64 // stake of the validators without a vector
}

func newVoteTable(g *Genesis, vecs []scoreVector) *voteTable {
	t := &voteTable{g: g, entries: make(map[int]map[string]ScoreEntry, len(vecs))}
	for _, v := range vecs {
		m := make(map[string]ScoreEntry, len(v.s.Entries))
		for _, e := range v.s.Entries {
			if _, dup := m[e.Trainer]; !dup {
				m[e.Trainer] = e
			}
		}
		t.entries[v.rank] = m
	}
	for i, val := range g.Validators {
		if _, ok := t.entries[i]; !ok {
			t.absent += val.Stake
		}
	}
	return t
}

// vote is the rank's vote on trainer's contribution with CID c.
func (t *voteTable) vote(rank int, trainer, c string) float64 {
	e, ok := t.entries[rank][trainer]
	if !ok || !e.OK || e.CID != c {
		return 0
	}
	return e.Score
}

// consensus is the stake-weighted median of every genesis validator's
// vote on trainer's contribution with CID c (absent vectors vote 0).
func (t *voteTable) consensus(trainer, c string) float64 {
	votes := make([]verify.Vote, 0, len(t.entries)+1)
	for rank := range t.entries {
		votes = append(votes, verify.Vote{Score: t.vote(rank, trainer, c), Stake: t.g.Validators[rank].Stake})
	}
	if t.absent > 0 {
		votes = append(votes, verify.Vote{Stake: t.absent})
	}
	return verify.Consensus(votes)
}

// passed lists the contributions the consensus passes, best first (by
// consensus score, then trainer).
func (t *voteTable) passed() []passedContribution {
	type key struct{ trainer, cid string }
	cands := map[key]bool{}
	for _, m := range t.entries {
		for _, e := range m {
			if e.OK {
				cands[key{e.Trainer, e.CID}] = true
			}
		}
	}
	var out []passedContribution
	byCID := map[string]int{}
	for k := range cands {
		if s := t.consensus(k.trainer, k.cid); s > 0 {
			out = append(out, passedContribution{Trainer: k.trainer, CID: k.cid, Score: s})
			byCID[k.cid]++
		}
	}
	// Two trainers with the same blob: the screens reject the later one;
	// should both still pass, neither does.
	out = slices.DeleteFunc(out, func(p passedContribution) bool { return byCID[p.CID] > 1 })
	slices.SortFunc(out, func(a, b passedContribution) int {
		if c := cmp.Compare(b.Score, a.Score); c != 0 {
			return c
		}
		return strings.Compare(a.Trainer, b.Trainer)
	})
	return out
}

// consensusPassed is the rule shared by the composer and the checker.
func consensusPassed(g *Genesis, vecs []scoreVector) []passedContribution {
	return newVoteTable(g, vecs).passed()
}

// openScores verifies an embedded score vector of manifest m of network
// net: its signer is a genesis validator, its signature holds for m's
// round on the score topic, and its payload is a score vector of m's round
// and base.
func openScores(g *Genesis, net p2p.NetworkID, m *Manifest, v SignedScores) (scoreVector, error) {
	sender, err := peer.Decode(v.Validator)
	if err != nil {
		return scoreVector{}, fmt.Errorf("bad validator ID: %w", err)
	}
	rank := g.ValidatorRank(sender)
	if rank < 0 {
		return scoreVector{}, fmt.Errorf("signed by %s, not a genesis validator", sender)
	}
	s, err := DecodeScores(v.Payload)
	if err != nil {
		return scoreVector{}, fmt.Errorf("validator %s: %w", sender, err)
	}
	if s.Round != m.Round {
		return scoreVector{}, fmt.Errorf("validator %s: scores of round %d in a manifest of round %d", sender, s.Round, m.Round)
	}
	if s.Base != m.Base {
		return scoreVector{}, fmt.Errorf("validator %s: scores on base %s in a manifest on base %s", sender, s.Base.Short(), m.Base.Short())
	}
	env := &p2p.Envelope{Version: p2p.EnvelopeVersion, Network: net, Topic: p2p.TopicScore, Round: m.Round,
		Timestamp: v.Time, Sender: sender, Payload: v.Payload, Signature: v.Sig}
	if err := env.Verify(); err != nil {
		return scoreVector{}, fmt.Errorf("validator %s: %w", sender, err)
	}
	return scoreVector{rank: rank, s: s}, nil
}

// checkChoice verifies manifest m's embedded score vectors and that every
// contribution it lists passes the consensus over them. Its error wraps
// errBadChoice.
func checkChoice(g *Genesis, net p2p.NetworkID, m *Manifest) error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: round %d: %s", errBadChoice, m.Round, fmt.Sprintf(format, args...))
	}
	if len(m.Contributions) > g.Params.MaxContributions {
		return bad("%d contributions exceed max_contributions %d", len(m.Contributions), g.Params.MaxContributions)
	}
	if len(m.Scores) > len(g.Validators) {
		return bad("%d score vectors from %d validators", len(m.Scores), len(g.Validators))
	}
	vecs := make([]scoreVector, 0, len(m.Scores))
	seen := make(map[int]bool, len(m.Scores))
	var stake, total uint64
	for i, v := range m.Scores {
		sv, err := openScores(g, net, m, v)
		if err != nil {
			return bad("score vector %d: %v", i, err)
		}
		if seen[sv.rank] {
			return bad("score vector %d: validator %s embedded twice", i, g.Validators[sv.rank].Peer)
		}
		seen[sv.rank] = true
		stake += g.Validators[sv.rank].Stake
		vecs = append(vecs, sv)
	}
	if len(m.Contributions) == 0 {
		return nil
	}
	for _, v := range g.Validators {
		total += v.Stake
	}
	// Implied by the rule below, but worth its own message.
	if 2*stake <= total {
		return bad("the score vectors hold %d of the validators' %d stake, not a majority", stake, total)
	}
	passed := map[string]string{}
	for _, p := range consensusPassed(g, vecs) {
		passed[p.Trainer] = p.CID
	}
	for i, c := range m.Contributions {
		if passed[c.Peer] != c.CID {
			return bad("contribution %d (%s, %s) does not pass the consensus of the score vectors", i, c.Peer, c.CID)
		}
	}
	return nil
}

// embeddable reports whether payload survives the manifest's JSON encoding
// byte for byte (json.Marshal compacts and escapes a RawMessage), so that
// its signature still verifies once embedded. Payloads this package
// encodes always do; another implementation's might not.
func embeddable(payload []byte) bool {
	b, err := json.Marshal(json.RawMessage(payload))
	return err == nil && string(b) == string(payload)
}
