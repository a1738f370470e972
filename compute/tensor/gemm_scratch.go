package tensor

// Register tile and cache blocking of the GEMM micro-kernel: a 6 x 16 tile
// of C lives in 12 YMM registers; K is cut into blocks of gemmKC so that a
// packed 16-column panel of B (16 KiB) stays in L1 while the rows of A
// stream from L2; gemmNC bounds the packed block of B.
const (
	gemmMR = 6
	gemmNR = 16
	gemmKC = 256
	gemmMC = 144
	gemmNC = 2048
)

// gemmScratch is the packing memory of one running GEMM. Its buffers grow
// to the largest block seen (at most gemmKC x gemmNC floats for B).
type gemmScratch struct {
	b    []float32                // packed block of op(B): panels of kc x 16
	a    []float32                // packed block of op(A): panels of kc x 6
	tile [gemmMR * gemmNR]float32 // partial tiles of C
}

// bufB returns the packed-B buffer with room for n floats.
func (s *gemmScratch) bufB(n int) []float32 {
	if cap(s.b) < n {
		s.b = make([]float32, n)
	}
	return s.b[:n]
}

// bufA returns the packed-A buffer with room for n floats, plus slack for
// the spilling 8-wide stores of gemmPackT8.
func (s *gemmScratch) bufA(n int) []float32 {
	if cap(s.a) < n+8 {
		s.a = make([]float32, n+8)
	}
	return s.a[:n+8]
}

// gemmShared pools packing buffers and parallel job records, so that a
// GEMM allocates nothing once the pools are warm. Free lists are buffered
// channels: safe for concurrent use, with no global state.
type gemmShared struct {
	scratch chan *gemmScratch
	jobs    chan *gemmJob
}

func newGemmShared(threads int) *gemmShared {
	// Room for every worker plus callers that run kernels concurrently.
	n := 2*threads + 2
	return &gemmShared{scratch: make(chan *gemmScratch, n), jobs: make(chan *gemmJob, n)}
}

// getScratch takes a buffer from the pool, or a new one. s may be nil.
func (s *gemmShared) getScratch() *gemmScratch {
	if s != nil {
		select {
		case sc := <-s.scratch:
			return sc
		default:
		}
	}
	return new(gemmScratch)
}

func (s *gemmShared) putScratch(sc *gemmScratch) {
	if s == nil {
		return
	}
	select {
	case s.scratch <- sc:
	default:
	}
}

func (s *gemmShared) getJob() *gemmJob {
	select {
	case j := <-s.jobs:
		return j
	default:
	}
	return &gemmJob{done: make(chan struct{}, 1)}
}

func (s *gemmShared) putJob(j *gemmJob) {
	select {
	case s.jobs <- j:
	default:
	}
}

// addRowGeneric adds src to dst element by element (exact IEEE adds, so any
// vector width gives the same bits).
func addRowGeneric(dst, src []float32) {
	src = src[:len(dst)]
	for i := range dst {
		dst[i] += src[i]
	}
}
