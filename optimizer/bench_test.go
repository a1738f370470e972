package optimizer

import (
	"fmt"
	"math/bits"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/trinity-net/trinity/compute/model"
)

// TestIndexCoding measures the index coding options on the reference model
// and keeps the format honest: the Rice stream must beat raw bit-packing,
// and zstd is reported (not used: it does not pay, see codec.go).
func TestIndexCoding(t *testing.T) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedBestCompression))
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Close()
	for _, k := range []int{64, 32} {
		ch, err := NewChunking(model.Reference, 4096, k)
		if err != nil {
			t.Fatal(err)
		}
		// A real pseudo-gradient after a few rounds of error feedback.
		s, _ := NewSparseLoCo(ch)
		r := rand.New(rand.NewPCG(1, uint64(k)))
		c := ch.NewCompressed()
		for round := range 3 {
			if err := s.Compress(uint64(round), randVec(r, ch.NumParams, 1e-3), c); err != nil {
				t.Fatal(err)
			}
		}
		blob, err := ch.Encode(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		var raw bitWriter
		raw.buf = make([]byte, ch.TotalK*2+8)
		for _, k := range ch.Chunks {
			w := bits.Len(uint(k.Len - 1))
			for j := k.Start; j < k.Start+k.K; j++ {
				raw.write(uint64(c.Idx[j]), w)
			}
		}
		raw.flush()
		rawIdx := raw.buf[:raw.pos]
		streamOff := headerSize + 8*len(ch.Chunks)
		rice := blob[streamOff : streamOff+ch.indexStreamBytes(c, nil)]
		zraw := enc.EncodeAll(rawIdx, nil)
		zrice := enc.EncodeAll(rice, nil)
		zblob := enc.EncodeAll(blob, nil)
		perIdx := func(n int) float64 { return float64(8*n) / float64(ch.TotalK) }
		t.Logf("k=%d/4096: indices raw %d B (%.2f bit/idx), zstd(raw) %d B (%.2f), Rice %d B (%.2f), zstd(Rice) %d B (%.2f); blob %d B, zstd(blob) %d B; dense %d B; blob/dense %.3f%%",
			k, len(rawIdx), perIdx(len(rawIdx)), len(zraw), perIdx(len(zraw)), len(rice), perIdx(len(rice)), len(zrice), perIdx(len(zrice)),
			len(blob), len(zblob), ch.DenseBytes(), 100*float64(len(blob))/float64(ch.DenseBytes()))
		if len(rice) >= len(rawIdx) {
			t.Errorf("Rice (%d B) does not beat raw bit-packing (%d B)", len(rice), len(rawIdx))
		}
		if 100*len(blob) > ch.DenseBytes() {
			t.Errorf("blob %d B is more than 1%% of dense %d B", len(blob), ch.DenseBytes())
		}
	}
}

// bench25M is a 25,165,824-parameter vector cut like a large model: 24
// tensors of 1M entries.
func bench25M(b *testing.B, k int) *Chunking {
	lens := make([]int, 24)
	for i := range lens {
		lens[i] = 1 << 20
	}
	ch, err := NewChunkingLens(lens, [32]byte{}, 4096, k)
	if err != nil {
		b.Fatal(err)
	}
	return ch
}

// BenchmarkCompress measures EF + top-k + quantise + encode, in GB/s of
// dense fp32 input, per worker count.
func BenchmarkCompress(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("25M/k64/workers%d", workers), func(b *testing.B) {
			ch := bench25M(b, 64)
			s, err := NewSparseLoCo(ch, WithWorkers(workers))
			if err != nil {
				b.Fatal(err)
			}
			d := randVec(rand.New(rand.NewPCG(1, 2)), ch.NumParams, 1e-3)
			c := ch.NewCompressed()
			var blob []byte
			b.SetBytes(int64(ch.DenseBytes()))
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if err := s.Compress(uint64(i), d, c); err != nil {
					b.Fatal(err)
				}
				if blob, err = ch.Encode(blob[:0], c); err != nil {
					b.Fatal(err)
				}
			}
			reportGBs(b, ch.DenseBytes(), cpu0)
			b.ReportMetric(float64(len(blob)), "blob-bytes")
		})
	}
}

// BenchmarkDecompressAggregate measures decoding and averaging R blobs, in
// GB/s of the dense fp32 vectors they stand for (R x 4 x params).
func BenchmarkDecompressAggregate(b *testing.B) {
	const R = 4
	for _, workers := range []int{1, 2} {
		b.Run(fmt.Sprintf("25M/k64/R%d/workers%d", R, workers), func(b *testing.B) {
			ch := bench25M(b, 64)
			blobs := make([][]byte, R)
			for i := range blobs {
				blobs[i], _ = compressedBlob(b, ch, uint64(i), 1)
			}
			out := make([]float32, ch.NumParams)
			b.SetBytes(int64(R * ch.DenseBytes()))
			b.ResetTimer()
			cpu0 := cpuTime()
			for i := 0; i < b.N; i++ {
				if _, err := ch.Aggregate(out, blobs, 1, WithAggregateWorkers(workers)); err != nil {
					b.Fatal(err)
				}
			}
			reportGBs(b, R*ch.DenseBytes(), cpu0)
		})
	}
}

func BenchmarkDecode(b *testing.B) {
	ch := bench25M(b, 64)
	blob, _ := compressedBlob(b, ch, 1, 1)
	c := ch.NewCompressed()
	b.SetBytes(int64(ch.DenseBytes()))
	b.ResetTimer()
	cpu0 := cpuTime()
	for i := 0; i < b.N; i++ {
		if err := ch.Decode(blob, c); err != nil {
			b.Fatal(err)
		}
	}
	reportGBs(b, ch.DenseBytes(), cpu0)
}

// cpuTime is this process's user+system CPU time. On a shared, loaded
// machine wall time says little; throughput per CPU-second does.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportGBs reports wall-clock GB/s and GB per CPU-second for n bytes per op.
func reportGBs(b *testing.B, n int, cpu0 time.Duration) {
	total := float64(n) * float64(b.N)
	b.ReportMetric(total/b.Elapsed().Seconds()/1e9, "GB/s")
	if c := (cpuTime() - cpu0).Seconds(); c > 0 {
		b.ReportMetric(total/c/1e9, "GB/cpu-s")
	}
}
