package optimizer

import (
	"fmt"

	"github.com/trinity-net/trinity/compute/model"
)

// Chunk sizes and top-k limits. Indices inside a chunk are stored as uint16,
// so a chunk holds at most 65536 entries.
const (
	MinChunkSize = 16
	MaxChunkSize = 1 << 16
)

// Chunk is one contiguous run of the flat vector inside a single tensor.
type Chunk struct {
	Offset int // first entry in the flat vector
	Len    int // entries, 1..ChunkSize
	K      int // entries kept by top-k, 1..Len
	Start  int // position of this chunk's first kept entry in Compressed.Idx
}

// Chunking cuts a flat parameter vector into per-tensor chunks and fixes how
// many entries each chunk keeps.
//
// Chunks are contiguous runs of Size entries inside each tensor (row-major),
// the last one of a tensor possibly shorter; they never straddle tensors, so
// a chunk's statistics are those of one weight matrix. We use contiguous runs
// rather than Templar's 2-D 64x64 blocks: top-k and quantisation do not care
// about the 2-D shape (there is no DCT in SparseLoCo), contiguous chunks are
// read sequentially (cache- and prefetch-friendly in the compressor), and
// they apply to any tensor length without special cases. For width-256
// models a 4096-entry chunk is 16 full rows, close to a 64x64 block anyway.
//
// A full chunk keeps K entries; a shorter one (the tail of a tensor, or a
// small bias/LayerNorm vector) keeps ceil(K*len/Size), at least 1, so the
// density is the same everywhere instead of small vectors being sent almost
// whole.
type Chunking struct {
	Size       int      // entries per full chunk
	K          int      // entries kept per full chunk
	NumParams  int      // length of the flat vector
	ConfigHash [32]byte // model config the layout came from
	Chunks     []Chunk
	TotalK     int // sum of Chunks[i].K
}

// NewChunking builds the chunking of cfg's parameter layout.
func NewChunking(cfg model.Config, size, k int) (*Chunking, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("optimizer: chunking: %w", err)
	}
	views := model.Layout(cfg)
	lens := make([]int, len(views))
	off := 0
	for i, v := range views {
		if v.Offset != off {
			return nil, fmt.Errorf("optimizer: chunking: tensor %s at offset %d, want %d", v.Name, v.Offset, off)
		}
		lens[i] = v.Len
		off += v.Len
	}
	return NewChunkingLens(lens, cfg.Hash(), size, k)
}

// NewChunkingLens builds a chunking over consecutive tensors of the given
// lengths. configHash identifies the model shape in blob headers.
func NewChunkingLens(tensorLens []int, configHash [32]byte, size, k int) (*Chunking, error) {
	if size < MinChunkSize || size > MaxChunkSize {
		return nil, fmt.Errorf("optimizer: chunk size %d out of range [%d, %d]", size, MinChunkSize, MaxChunkSize)
	}
	if k < 1 || k > size {
		return nil, fmt.Errorf("optimizer: top-k %d out of range [1, chunk size %d]", k, size)
	}
	c := &Chunking{Size: size, K: k, ConfigHash: configHash}
	off := 0
	for i, n := range tensorLens {
		if n < 1 {
			return nil, fmt.Errorf("optimizer: tensor %d has length %d", i, n)
		}
		if int64(n) > 1<<31-int64(off) {
			return nil, fmt.Errorf("optimizer: more than 2^31 parameters")
		}
		for lo := 0; lo < n; lo += size {
			l := min(size, n-lo)
			kk := (k*l + size - 1) / size
			kk = max(1, min(kk, l))
			c.Chunks = append(c.Chunks, Chunk{Offset: off + lo, Len: l, K: kk, Start: c.TotalK})
			c.TotalK += kk
		}
		off += n
	}
	if off == 0 {
		return nil, fmt.Errorf("optimizer: chunking over no parameters")
	}
	c.NumParams = off
	return c, nil
}

// Density is the fraction of entries kept.
func (c *Chunking) Density() float64 { return float64(c.TotalK) / float64(c.NumParams) }

// DenseBytes is the size of the vector as dense fp32.
func (c *Chunking) DenseBytes() int { return 4 * c.NumParams }
