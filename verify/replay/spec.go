package replay

import (
	"fmt"

	"github.com/trinity-net/trinity/compute/data"
	"github.com/trinity-net/trinity/compute/model"
	"github.com/trinity-net/trinity/optimizer"
)

// DataSpec is how a round's batches are drawn: the network's training split,
// cut into pages of PageSize tokens, PagesPerRound of them assigned to each
// trainer per round by data.AssignPages(Seed, peer ID, round), served as
// batches of Batch x SeqLen by a data.Batcher, batch i at inner step i.
type DataSpec struct {
	Train         []int32 // the training split (shared, read only)
	Seed          uint64  // the network's seed (genesis WeightSeed)
	PageSize      int
	PagesPerRound int
	Batch, SeqLen int
}

// Validate reports the first unusable field.
func (d DataSpec) Validate() error {
	switch {
	case d.Batch < 1 || d.SeqLen < 1:
		return fmt.Errorf("replay: batch %d x seq-len %d must be positive", d.Batch, d.SeqLen)
	case d.PageSize < d.SeqLen:
		return fmt.Errorf("replay: page size %d below seq-len %d", d.PageSize, d.SeqLen)
	case d.PagesPerRound < 1:
		return fmt.Errorf("replay: pages per round %d must be positive", d.PagesPerRound)
	case data.NumPages(len(d.Train), d.PageSize) < 1:
		return fmt.Errorf("replay: training split of %d tokens holds no page of %d", len(d.Train), d.PageSize)
	}
	return nil
}

// RoundBatcher is the batcher of a trainer's pages in a round. Batch i of it
// (Fill(i, ...)) is the batch of inner step i.
func (d DataSpec) RoundBatcher(peerID string, round uint64) (*data.Batcher, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	pages := data.AssignPages(d.Seed, peerID, round, data.NumPages(len(d.Train), d.PageSize), d.PagesPerRound)
	b, err := data.NewBatcher(d.Train, d.PageSize, pages, d.Batch, d.SeqLen)
	if err != nil {
		return nil, fmt.Errorf("replay: batches of %s in round %d: %w", peerID, round, err)
	}
	return b, nil
}

// StepBatch writes the batch of inner step `step` of peerID's round into
// inputs and targets (Batch*SeqLen each). Trainers and validators both call
// it (or RoundBatcher), so they train and replay on the same tokens.
func StepBatch(d DataSpec, peerID string, round uint64, step int, inputs, targets []int32) error {
	if step < 0 {
		return fmt.Errorf("replay: negative step %d", step)
	}
	b, err := d.RoundBatcher(peerID, round)
	if err != nil {
		return err
	}
	if err := b.Fill(step, inputs, targets); err != nil {
		return fmt.Errorf("replay: batch of step %d: %w", step, err)
	}
	return nil
}

// Spec is everything about a round that the trainer and its validators must
// agree on to replay a step and recompute its contribution (all of it comes
// from the network's genesis).
type Spec struct {
	Model      model.Config
	AdamW      optimizer.AdamWConfig
	Data       DataSpec
	Steps      int                 // inner steps per round (H)
	Chunking   *optimizer.Chunking // SparseLoCo layout of the contribution
	ErrorDecay float32             // SparseLoCo error-feedback decay (beta)
}

// Validate reports the first unusable field.
func (s Spec) Validate() error {
	if err := s.Model.Validate(); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if err := s.AdamW.Validate(); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	if err := s.Data.Validate(); err != nil {
		return err
	}
	switch {
	case s.Data.SeqLen > s.Model.Context:
		return fmt.Errorf("replay: seq-len %d exceeds the context %d", s.Data.SeqLen, s.Model.Context)
	case s.Steps < 1 || s.Steps > MaxSteps:
		return fmt.Errorf("replay: steps %d out of range [1, %d]", s.Steps, MaxSteps)
	case s.Chunking == nil:
		return fmt.Errorf("replay: no chunking")
	case s.Chunking.NumParams != s.Model.NumParams():
		return fmt.Errorf("replay: chunking of %d parameters for a model of %d", s.Chunking.NumParams, s.Model.NumParams())
	case s.Chunking.ConfigHash != s.Model.Hash():
		return fmt.Errorf("replay: chunking made for another model config")
	case !(s.ErrorDecay >= 0 && s.ErrorDecay <= 1):
		return fmt.Errorf("replay: error decay %g out of range [0, 1]", s.ErrorDecay)
	}
	return nil
}
