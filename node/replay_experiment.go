package node

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// ReplayExperimentConfig is the testnet experiment of issue 13: honest
// trainers and one lazy trainer (AdversaryLazy: half the steps at double
// the learning rate) on a network with proof of training work.
type ReplayExperimentConfig struct {
	Dir        string   // data directories (required)
	Honest     int      // honest trainers (default 3)
	Validators int      // default 1
	Rounds     int      // default 16
	Genesis    *Genesis // template (Model, Data, Params, WeightSeed); nil: ReplayExperimentGenesis
	Logger     *slog.Logger
}

// ReplayExperimentGenesis is the experiment's network: the tiny testnet
// model, H = 8, rounds of 4 s, replay at the default policy.
func ReplayExperimentGenesis() Genesis {
	g := DefaultTestnetGenesis()
	g.Data.Bytes = 1 << 20
	h := &g.Params
	h.RoundMillis = 4000
	h.InnerSteps = 8
	h.AnnounceBy = 0.55
	h.EvalBatches = 4
	h.CheckpointEvery = 4
	h.KeepRounds = 20
	h.Replay = DefaultReplayParams()
	return g
}

// ReplayTrainerRound is one trainer's round as the lead validator saw it.
type ReplayTrainerRound struct {
	Announced  bool
	Gauntlet   bool    // the gauntlet passed it
	Score      float64 // the gauntlet's score
	Excluded   bool    // replay kept it out
	InManifest bool
	Challenged int    // steps challenged (all validators)
	Passed     int    // challenges passed
	Fails      int    // challenges failed
	Failed     string // reason of a failed challenge, "" if none
}

// ReplayExperimentResult is what the experiment measured.
type ReplayExperimentResult struct {
	Trainers []peer.ID // honest first, the lazy trainer last
	Names    []string
	Rounds   []map[peer.ID]*ReplayTrainerRound
	// CaughtRound is the first round of the lazy trainer whose challenge
	// failed (-1: never); FirstExcluded the first round it was kept out.
	CaughtRound, FirstExcluded       int
	HonestChallenges, HonestFailures int
	LazyChallenges, LazyFailures     int
	ExcludedRounds                   int // rounds the lazy trainer was kept out
	CheckTime                        time.Duration
	CheckBytes                       int
	Checks                           int
	// The honest trainers' mean time per round (inner steps with
	// recording, compression, commitment) and blob size, and their mean
	// time per answered challenge: the cost the checks compare against.
	TrainerRound time.Duration
	BlobBytes    int64
	RespondTime  time.Duration
	GauntletTime time.Duration // the validator's mean time per scored blob
	Wall         time.Duration
}

// RunReplayExperiment runs the experiment, printing a table per round to w.
func RunReplayExperiment(ctx context.Context, cfg ReplayExperimentConfig, w io.Writer) (*ReplayExperimentResult, error) {
	if cfg.Honest == 0 {
		cfg.Honest = 3
	}
	if cfg.Validators == 0 {
		cfg.Validators = 1
	}
	if cfg.Rounds == 0 {
		cfg.Rounds = 16
	}
	g := ReplayExperimentGenesis()
	if cfg.Genesis != nil {
		g = *cfg.Genesis
	}
	if g.Params.Replay == nil {
		return nil, fmt.Errorf("node: replay experiment: the genesis has no params.replay")
	}
	t0 := time.Now()
	tn, err := NewTestnet(ctx, TestnetConfig{Dir: cfg.Dir, Trainers: cfg.Honest, Validators: cfg.Validators, Model: g,
		Logger: cfg.Logger, StartDelay: 3 * time.Second, NetworkName: "replay-experiment", Adversaries: []Adversary{AdversaryLazy}})
	if err != nil {
		return nil, err
	}
	defer tn.Close()
	if err := tn.Run(ctx); err != nil {
		return nil, err
	}
	L := tn.Genesis.Params.RoundLength()
	// One round more than reported: the last round's challenges are
	// answered and checked during the next.
	var blobSum, blobN int64
	for r := uint64(0); r <= uint64(cfg.Rounds); r++ {
		rep, err := tn.WaitRound(ctx, r, 4*L+20*time.Second)
		if err != nil {
			return nil, err
		}
		if rep.BlobBytes > 0 {
			blobSum, blobN = blobSum+rep.BlobBytes, blobN+1
		}
	}
	res := &ReplayExperimentResult{CaughtRound: -1, FirstExcluded: -1}
	ms := tn.Members()
	for _, m := range ms[cfg.Validators:] {
		res.Trainers = append(res.Trainers, m.Peer)
		res.Names = append(res.Names, m.Name)
	}
	lazy := res.Trainers[len(res.Trainers)-1]
	res.Rounds = make([]map[peer.ID]*ReplayTrainerRound, cfg.Rounds)
	for i := range res.Rounds {
		res.Rounds[i] = map[peer.ID]*ReplayTrainerRound{}
		for _, p := range res.Trainers {
			res.Rounds[i][p] = &ReplayTrainerRound{}
		}
	}
	at := func(r uint64, p peer.ID) *ReplayTrainerRound {
		if r >= uint64(cfg.Rounds) || res.Rounds[r][p] == nil {
			return nil
		}
		return res.Rounds[r][p]
	}
	for vi, m := range ms[:cfg.Validators] {
		for _, rec := range m.Node.ReplayLog() {
			row := at(rec.Round, rec.Trainer)
			if row == nil {
				continue
			}
			switch rec.Kind {
			case "gauntlet":
				if vi == 0 {
					row.Announced, row.Gauntlet, row.Score = true, rec.OK, rec.Score
				}
			case "excluded":
				if vi == 0 {
					row.Excluded = true
				}
			case "challenge":
				row.Challenged++
			case "pass":
				row.Passed++
				res.Checks++
				res.CheckTime += rec.Took
				res.CheckBytes += rec.Bytes
			case "fail":
				row.Failed = rec.Reason
				row.Fails++
				if rec.Took > 0 {
					res.Checks++
					res.CheckTime += rec.Took
					res.CheckBytes += rec.Bytes
				}
			}
		}
	}
	for p, rounds := range contributions(tn) {
		for _, r := range rounds {
			if row := at(r, p); row != nil {
				row.InManifest = true
			}
		}
	}
	res.Wall = time.Since(t0)
	if blobN > 0 {
		res.BlobBytes = blobSum / blobN
	}
	mean := func(ps map[string]PhaseStat, names ...string) time.Duration {
		var sec float64
		var cnt int64
		for i, name := range names {
			sec += ps[name].Seconds
			if i == 0 {
				cnt = ps[name].Count
			}
		}
		if cnt == 0 {
			return 0
		}
		return time.Duration(sec / float64(cnt) * float64(time.Second))
	}
	var honestRound, honestResp time.Duration
	for _, m := range ms[cfg.Validators : len(ms)-1] {
		if m.Node == nil {
			continue
		}
		ps := m.Node.metrics.phases()
		honestRound += mean(ps, phaseTrain, phaseCompress) / time.Duration(cfg.Honest)
		honestResp += mean(ps, phaseReplayRespond) / time.Duration(cfg.Honest)
	}
	res.TrainerRound, res.RespondTime = honestRound, honestResp
	if v := ms[0].Node; v != nil {
		res.GauntletTime = mean(v.metrics.phases(), phaseValidate)
	}
	for r, rows := range res.Rounds {
		for p, row := range rows {
			if p == lazy {
				res.LazyChallenges += row.Challenged
				res.LazyFailures += row.Fails
				if row.Failed != "" {
					if res.CaughtRound < 0 {
						res.CaughtRound = r
					}
				}
				if row.Excluded {
					res.ExcludedRounds++
					if res.FirstExcluded < 0 {
						res.FirstExcluded = r
					}
				}
			} else {
				res.HonestChallenges += row.Challenged
				res.HonestFailures += row.Fails
			}
		}
	}
	res.print(w)
	return res, nil
}

// contributions reads the manifests the lead validator stored as blobs:
// the rounds in whose manifest each trainer is.
func contributions(tn *Testnet) map[peer.ID][]uint64 {
	var v *Node
	for _, m := range tn.Members() {
		if m.Role == RoleValidator && m.Adversary == "" && m.Node != nil {
			v = m.Node // the first honest validator (a dishonest composer leads some testnets)
			break
		}
	}
	out := map[peer.ID][]uint64{}
	if v == nil {
		return out
	}
	for _, info := range v.P2P().Store().List() {
		if info.Size > 1<<20 {
			continue
		}
		b, err := v.P2P().Store().Get(info.CID)
		if err != nil {
			continue
		}
		mm, err := parseManifestBlob(b, tn.Genesis)
		if err != nil {
			continue // a contribution or checkpoint blob
		}
		for _, c := range mm.m.Contributions {
			p, _ := peer.Decode(c.Peer)
			out[p] = append(out[p], mm.m.Round)
		}
	}
	for _, rs := range out {
		slices.Sort(rs)
	}
	return out
}

func (res *ReplayExperimentResult) print(w io.Writer) {
	lazy := len(res.Trainers) - 1
	fmt.Fprintf(w, "%5s", "round")
	for i, n := range res.Names {
		if i == lazy {
			n += " (lazy)"
		}
		fmt.Fprintf(w, "  %-30s", n)
	}
	fmt.Fprintln(w)
	for r, rows := range res.Rounds {
		fmt.Fprintf(w, "%5d", r)
		for _, p := range res.Trainers {
			fmt.Fprintf(w, "  %-30s", rows[p].cell())
		}
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "cell: gauntlet score (pass/FAIL), M = in the manifest, X = excluded by replay, challenges passed/issued, reason of a failure\n")
	fmt.Fprintf(w, "lazy trainer: caught in round %d (%d challenges, %d failed), first excluded round %d, excluded %d of %d rounds\n",
		res.CaughtRound, res.LazyChallenges, res.LazyFailures, res.FirstExcluded, res.ExcludedRounds, len(res.Rounds))
	fmt.Fprintf(w, "honest trainers: %d challenges, %d failed (false positives)\n", res.HonestChallenges, res.HonestFailures)
	if res.Checks > 0 {
		ct := res.CheckTime / time.Duration(res.Checks)
		fmt.Fprintf(w, "validator: %d checks, mean %v and %d bytes per check (gauntlet: %v per blob)\n", res.Checks, ct.Round(time.Millisecond), res.CheckBytes/res.Checks, res.GauntletTime.Round(time.Millisecond))
		fmt.Fprintf(w, "honest trainer: %v per round (H steps with recording, compression, commitment), %d-byte blob, %v per answered challenge\n",
			res.TrainerRound.Round(time.Millisecond), res.BlobBytes, res.RespondTime.Round(time.Millisecond))
		if res.TrainerRound > 0 {
			fmt.Fprintf(w, "check / trainer round: time %.2f, bytes %.0fx the blob\n", float64(ct)/float64(res.TrainerRound), float64(res.CheckBytes/res.Checks)/float64(max(res.BlobBytes, 1)))
		}
	}
	fmt.Fprintf(w, "wall time %v\n", res.Wall.Round(time.Second))
}

func (row *ReplayTrainerRound) cell() string {
	if !row.Announced {
		return "-"
	}
	s := fmt.Sprintf("%.3f", row.Score)
	if row.Gauntlet {
		s += " pass"
	} else {
		s += " FAIL"
	}
	if row.InManifest {
		s += " M"
	}
	if row.Excluded {
		s += " X"
	}
	if row.Challenged > 0 {
		s += fmt.Sprintf(" %d/%d", row.Passed, row.Challenged)
	}
	if row.Failed != "" {
		s += " " + row.Failed
	}
	return s
}
