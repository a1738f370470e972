package data

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"os"

	"github.com/trinity-net/trinity/internal/atomicfile"
)

// Token shards in llm.c's format: a header of 256 little-endian int32 words
// (magic 20240520, version 1, token count; the rest reserved and ignored),
// then the tokens as little-endian uint16. The file size must be exactly
// header + 2*count: a truncated or overlong shard is refused.
const (
	ShardMagic   = 20240520
	ShardVersion = 1
	shardHeader  = 256 * 4
	// maxShardTokens is the largest count the int32 header can hold.
	maxShardTokens = math.MaxInt32
)

// EncodeShard writes tokens as a shard to w. Tokens must lie in [0, 65536).
func EncodeShard(w io.Writer, tokens []int32) error {
	if len(tokens) == 0 {
		return fmt.Errorf("data: shard: no tokens")
	}
	if len(tokens) > maxShardTokens {
		return fmt.Errorf("data: shard: %d tokens exceed the format's limit of %d", len(tokens), maxShardTokens)
	}
	var hdr [shardHeader]byte
	binary.LittleEndian.PutUint32(hdr[0:], ShardMagic)
	binary.LittleEndian.PutUint32(hdr[4:], ShardVersion)
	binary.LittleEndian.PutUint32(hdr[8:], uint32(len(tokens)))
	if _, err := w.Write(hdr[:]); err != nil {
		return fmt.Errorf("data: shard: writing header: %w", err)
	}
	buf := make([]byte, 0, 64<<10)
	for i, t := range tokens {
		if t < 0 || t > math.MaxUint16 {
			return fmt.Errorf("data: shard: token %d at position %d does not fit in uint16", t, i)
		}
		buf = binary.LittleEndian.AppendUint16(buf, uint16(t))
		if len(buf) == cap(buf) {
			if _, err := w.Write(buf); err != nil {
				return fmt.Errorf("data: shard: writing tokens: %w", err)
			}
			buf = buf[:0]
		}
	}
	if _, err := w.Write(buf); err != nil {
		return fmt.Errorf("data: shard: writing tokens: %w", err)
	}
	return nil
}

// DecodeShard parses a complete shard, rejecting tokens >= vocab.
func DecodeShard(data []byte, vocab int) ([]int32, error) {
	if vocab < 1 || vocab > math.MaxUint16+1 {
		return nil, fmt.Errorf("data: shard: vocabulary %d out of range [1, 65536]", vocab)
	}
	if len(data) < shardHeader {
		return nil, fmt.Errorf("data: shard: truncated: %d bytes, header needs %d", len(data), shardHeader)
	}
	magic := binary.LittleEndian.Uint32(data[0:])
	version := binary.LittleEndian.Uint32(data[4:])
	count := int64(int32(binary.LittleEndian.Uint32(data[8:])))
	switch {
	case magic != ShardMagic:
		return nil, fmt.Errorf("data: shard: bad magic %d, want %d", magic, ShardMagic)
	case version != ShardVersion:
		return nil, fmt.Errorf("data: shard: unsupported version %d, want %d", version, ShardVersion)
	case count <= 0:
		return nil, fmt.Errorf("data: shard: token count %d, want a positive number", count)
	}
	if want := shardHeader + 2*count; int64(len(data)) != want {
		if int64(len(data)) < want {
			return nil, fmt.Errorf("data: shard: truncated: %d bytes, header promises %d tokens (%d bytes)", len(data), count, want)
		}
		return nil, fmt.Errorf("data: shard: %d bytes after the %d tokens the header promises", int64(len(data))-want, count)
	}
	body := data[shardHeader:]
	out := make([]int32, count)
	for i := range out {
		t := binary.LittleEndian.Uint16(body[2*i:])
		if int(t) >= vocab {
			return nil, fmt.Errorf("data: shard: token %d at position %d is outside the vocabulary of %d", t, i, vocab)
		}
		out[i] = int32(t)
	}
	return out, nil
}

// ReadShard reads and decodes a shard file.
func ReadShard(path string, vocab int) ([]int32, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("data: %w", err)
	}
	toks, err := DecodeShard(b, vocab)
	if err != nil {
		return nil, fmt.Errorf("%w (file %s)", err, path)
	}
	return toks, nil
}

// WriteShard stores tokens as a shard at path atomically.
func WriteShard(path string, tokens []int32) error {
	return atomicfile.Write(path, func(w io.Writer) error { return EncodeShard(w, tokens) })
}
