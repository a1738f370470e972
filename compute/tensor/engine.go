package tensor

import (
	"fmt"
	"runtime"
	"sync"

	"golang.org/x/sys/cpu"
)

// ISA names an instruction-set path for the kernels.
type ISA int

const (
	// Generic is portable Go; it is also the reference the other paths match.
	Generic ISA = iota
	// AVX2 uses 256-bit AVX2 and FMA3 instructions.
	AVX2
	// AVX512 uses 512-bit AVX-512F instructions.
	AVX512
)

func (i ISA) String() string {
	switch i {
	case Generic:
		return "generic"
	case AVX2:
		return "avx2"
	case AVX512:
		return "avx512"
	}
	return fmt.Sprintf("isa(%d)", int(i))
}

// ParseISA reads an ISA name as printed by String.
func ParseISA(s string) (ISA, error) {
	for _, i := range []ISA{Generic, AVX2, AVX512} {
		if i.String() == s {
			return i, nil
		}
	}
	return Generic, fmt.Errorf("tensor: unknown ISA %q (want generic, avx2 or avx512)", s)
}

// Supported reports whether this CPU can run the path.
func (i ISA) Supported() bool {
	switch i {
	case Generic:
		return true
	case AVX2:
		return cpu.X86.HasAVX2 && cpu.X86.HasFMA
	case AVX512:
		return cpu.X86.HasAVX512F && cpu.X86.HasAVX512VL && cpu.X86.HasAVX2 && cpu.X86.HasFMA
	}
	return false
}

// BestISA is the widest path this CPU supports.
func BestISA() ISA {
	for _, i := range []ISA{AVX512, AVX2} {
		if i.Supported() && i.implemented() {
			return i
		}
	}
	return Generic
}

// Kernels is the kernel set of one ISA, run on the calling goroutine.
// Its zero value is the Generic path.
type Kernels struct {
	isa ISA
	// gemm pools GEMM packing buffers (safe for concurrent use). Kernels
	// from NewKernels or an Engine have one; the zero value allocates
	// them per call.
	gemm *gemmShared
}

// NewKernels returns the kernel set for isa, or an error if this CPU or this
// build cannot run it.
func NewKernels(isa ISA) (Kernels, error) {
	if !isa.Supported() {
		return Kernels{}, fmt.Errorf("tensor: this CPU does not support %v", isa)
	}
	if !isa.implemented() {
		return Kernels{}, fmt.Errorf("tensor: %v kernels are not built for this architecture", isa)
	}
	return Kernels{isa: isa, gemm: newGemmShared(1)}, nil
}

// ISA is the path these kernels run.
func (k Kernels) ISA() ISA { return k.isa }

// Engine runs kernels over a persistent pool of worker goroutines.
// Results do not depend on the number of threads.
type Engine struct {
	k       Kernels
	threads int
	tasks   chan task
	wg      sync.WaitGroup // workers
	once    sync.Once
	waits   sync.Pool // *sync.WaitGroup for ParallelGrain
}

type task struct {
	fn func(k Kernels, lo, hi int)
	// job, when set, runs instead of fn: a pooled job dispatches without
	// allocating a closure per call, and signals completion itself (done
	// is then nil).
	job    rangeJob
	lo, hi int
	done   *sync.WaitGroup
}

// Option configures an Engine.
type Option func(*engineConfig) error

type engineConfig struct {
	threads int
	isa     ISA
	isaSet  bool
}

// WithThreads sets the number of threads (default: runtime.NumCPU()).
func WithThreads(n int) Option {
	return func(c *engineConfig) error {
		if n < 1 {
			return fmt.Errorf("tensor: threads must be >= 1, got %d", n)
		}
		c.threads = n
		return nil
	}
}

// WithISA forces an instruction-set path (default: BestISA()).
func WithISA(isa ISA) Option {
	return func(c *engineConfig) error {
		c.isa, c.isaSet = isa, true
		return nil
	}
}

// New starts an Engine. Close it to stop its workers.
func New(opts ...Option) (*Engine, error) {
	cfg := engineConfig{threads: runtime.NumCPU(), isa: BestISA()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, err
		}
	}
	k, err := NewKernels(cfg.isa)
	if err != nil {
		return nil, err
	}
	k.gemm = newGemmShared(cfg.threads) // shared by the workers' Kernels
	e := &Engine{k: k, threads: cfg.threads, tasks: make(chan task)}
	for i := 1; i < e.threads; i++ {
		e.wg.Add(1)
		go e.worker()
	}
	return e, nil
}

func (e *Engine) worker() {
	defer e.wg.Done()
	for t := range e.tasks {
		if t.job != nil {
			t.job.run(e.k, t.lo, t.hi)
		} else {
			t.fn(e.k, t.lo, t.hi)
		}
		if t.done != nil {
			t.done.Done()
		}
	}
}

// Close stops the workers. The Engine must not be used afterwards.
func (e *Engine) Close() {
	e.once.Do(func() {
		close(e.tasks)
		e.wg.Wait()
	})
}

// Kernels is the single-threaded kernel set the engine uses.
func (e *Engine) Kernels() Kernels { return e.k }

// ISA is the engine's instruction-set path.
func (e *Engine) ISA() ISA { return e.k.isa }

// Threads is the engine's number of threads.
func (e *Engine) Threads() int { return e.threads }

// Parallel splits [0, n) into at most Threads() contiguous ranges and calls fn
// on each, one per worker, returning when all are done. fn must only write
// outputs that belong to its own range. Calls must not be nested.
func (e *Engine) Parallel(n int, fn func(k Kernels, lo, hi int)) {
	e.ParallelGrain(n, 1, fn)
}

// ParallelGrain is Parallel with range boundaries on multiples of grain.
func (e *Engine) ParallelGrain(n, grain int, fn func(k Kernels, lo, hi int)) {
	if n <= 0 {
		return
	}
	if grain < 1 {
		grain = 1
	}
	blocks := (n + grain - 1) / grain
	parts := min(e.threads, blocks)
	if parts <= 1 {
		fn(e.k, 0, n)
		return
	}
	// The WaitGroup escapes through the task channel; reusing one keeps
	// parallel regions free of allocation.
	done, _ := e.waits.Get().(*sync.WaitGroup)
	if done == nil {
		done = new(sync.WaitGroup)
	}
	done.Add(parts - 1)
	bound := func(p int) int { return min(n, (blocks*p/parts)*grain) }
	for p := 1; p < parts; p++ {
		e.tasks <- task{fn: fn, lo: bound(p), hi: bound(p + 1), done: done}
	}
	fn(e.k, 0, bound(1))
	done.Wait()
	e.waits.Put(done)
}
