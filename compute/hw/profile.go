package hw

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/cpu"

	"github.com/trinity-net/trinity/compute/tensor"
)

// Profile is a machine as its operating system reports it.
type Profile struct {
	OS   string // runtime.GOOS
	Arch string // runtime.GOARCH

	CPUVendor     string // e.g. "AuthenticAMD"; empty when unknown
	CPUModel      string // e.g. "AMD EPYC 7B13"; empty when unknown
	CPUFamily     int    // x86 family number; 0 when unknown
	LogicalCPUs   int    // CPUs this process may run on (runtime.NumCPU)
	PhysicalCores int    // cores over all sockets; 0 when unknown
	Sockets       int    // 0 when unknown

	// Features lists the SIMD and related extensions the CPU has and the OS
	// enables, in a fixed order (see simdFeatures).
	Features []string
	// ISA is the compute/tensor path the engine picks on this machine.
	ISA string

	MemTotal     uint64 // bytes; 0 when unknown
	MemAvailable uint64 // bytes at detection time; 0 when unknown

	GPUs []GPU
}

// GPU is a graphics or compute device as the OS lists it.
type GPU struct {
	Vendor   string // "NVIDIA", "AMD", "Intel", or the PCI vendor ID
	Model    string // marketing name when the driver reports one, else "pci VVVV:DDDD"
	PCISlot  string // e.g. "0000:01:00.0"; empty when unknown
	Driver   string // kernel driver, e.g. "nvidia", "amdgpu"
	MemBytes uint64 // device memory when reported; 0 when unknown
}

// Option configures Detect.
type Option func(*detectConfig) error

type detectConfig struct {
	fsys   fs.FS
	logger *slog.Logger
}

// WithFS reads the /proc and /sys files from fsys instead of the root file
// system: paths are looked up without the leading slash ("proc/cpuinfo").
// Tests use it to run the parsers on recorded files of other machines.
func WithFS(fsys fs.FS) Option {
	return func(c *detectConfig) error {
		if fsys == nil {
			return errors.New("hw: nil file system")
		}
		c.fsys = fsys
		return nil
	}
}

// WithLogger sets where warnings about unreadable sources go
// (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(c *detectConfig) error {
		if l == nil {
			return errors.New("hw: nil logger")
		}
		c.logger = l
		return nil
	}
}

// maxProcFile bounds what Detect reads from any one file: /proc/cpuinfo of
// a 256-CPU machine is about 400 KB.
const maxProcFile = 8 << 20

// Detect builds the Profile of this machine. It fails only on a bad option.
func Detect(opts ...Option) (Profile, error) {
	cfg := detectConfig{fsys: os.DirFS("/"), logger: slog.Default()}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return Profile{}, err
		}
	}
	p := Profile{
		OS:          runtime.GOOS,
		Arch:        runtime.GOARCH,
		LogicalCPUs: runtime.NumCPU(),
		Features:    simdFeatures(),
		ISA:         tensor.BestISA().String(),
	}
	warn := func(src string, err error) {
		if !errors.Is(err, fs.ErrNotExist) {
			cfg.logger.Warn("hw: cannot read hardware source", "source", src, "err", err)
		}
	}
	if b, err := readLimited(cfg.fsys, "proc/cpuinfo"); err != nil {
		warn("/proc/cpuinfo", err)
	} else {
		parseCPUInfo(string(b), &p)
	}
	if b, err := readLimited(cfg.fsys, "proc/meminfo"); err != nil {
		warn("/proc/meminfo", err)
	} else {
		parseMemInfo(string(b), &p)
	}
	gpus, errs := detectGPUs(cfg.fsys)
	for _, err := range errs {
		warn("gpu", err)
	}
	p.GPUs = gpus
	p.clamp()
	return p, nil
}

func readLimited(fsys fs.FS, name string) ([]byte, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxProcFile+1))
	if err != nil {
		return nil, fmt.Errorf("hw: reading %s: %w", name, err)
	}
	if len(b) > maxProcFile {
		return nil, fmt.Errorf("hw: %s is larger than %d bytes", name, maxProcFile)
	}
	return b, nil
}

// parseCPUInfo reads the x86 and arm64 layouts of /proc/cpuinfo: blocks of
// "key : value" lines, one block per logical CPU.
func parseCPUInfo(s string, p *Profile) {
	type core struct{ socket, id string }
	sockets := map[string]bool{}
	cores := map[core]bool{}
	coresPerSocket := 0
	var socket, coreID, implementer, part string
	flush := func() {
		if socket != "" {
			sockets[socket] = true
			if coreID != "" {
				cores[core{socket, coreID}] = true
			}
		}
		socket, coreID = "", ""
	}
	sc := bufio.NewScanner(strings.NewReader(s))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" {
			flush()
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "vendor_id":
			p.CPUVendor = v
		case "model name", "Hardware", "cpu model":
			if p.CPUModel == "" || k == "model name" {
				p.CPUModel = v
			}
		case "cpu family":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				p.CPUFamily = n
			}
		case "physical id":
			socket = v
		case "core id":
			coreID = v
		case "cpu cores":
			if n, err := strconv.Atoi(v); err == nil && n > 0 {
				coresPerSocket = n
			}
		case "CPU implementer":
			implementer = v
		case "CPU part":
			part = v
		}
	}
	flush()
	if p.CPUModel == "" && implementer != "" {
		// arm64 kernels print no model name; the implementer and part IDs
		// are what they give.
		p.CPUModel = "arm implementer " + implementer + " part " + part
		if p.CPUVendor == "" {
			p.CPUVendor = "arm implementer " + implementer
		}
	}
	if len(sockets) > 0 {
		p.Sockets = len(sockets)
	}
	switch {
	case len(cores) > 0:
		p.PhysicalCores = len(cores)
	case coresPerSocket > 0 && p.Sockets > 0:
		p.PhysicalCores = coresPerSocket * p.Sockets
	}
}

// parseMemInfo reads MemTotal and MemAvailable (in kB) from /proc/meminfo.
func parseMemInfo(s string, p *Profile) {
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 0 {
			continue
		}
		n, err := strconv.ParseUint(f[0], 10, 64)
		if err != nil || n > 1<<50 {
			continue
		}
		mul := uint64(1)
		if len(f) > 1 && f[1] == "kB" {
			mul = 1024
		}
		switch strings.TrimSpace(k) {
		case "MemTotal":
			p.MemTotal = n * mul
		case "MemAvailable":
			p.MemAvailable = n * mul
		}
	}
}

// simdFeatures lists the vector extensions that matter to trinity's kernels
// or to other engines' (VNNI, BF16, AMX, SVE), as the running CPU and OS
// support them.
func simdFeatures() []string {
	var f []string
	add := func(ok bool, name string) {
		if ok {
			f = append(f, name)
		}
	}
	x := &cpu.X86
	add(x.HasSSE2, "sse2")
	add(x.HasSSE3, "sse3")
	add(x.HasSSSE3, "ssse3")
	add(x.HasSSE41, "sse4.1")
	add(x.HasSSE42, "sse4.2")
	add(x.HasAVX, "avx")
	add(x.HasAVX2, "avx2")
	add(x.HasFMA, "fma")
	add(x.HasAVXVNNI, "avx-vnni")
	add(x.HasAVX512F, "avx512f")
	add(x.HasAVX512DQ, "avx512dq")
	add(x.HasAVX512BW, "avx512bw")
	add(x.HasAVX512VL, "avx512vl")
	add(x.HasAVX512VNNI, "avx512vnni")
	add(x.HasAVX512BF16, "avx512bf16")
	add(x.HasAMXTile, "amx-tile")
	add(x.HasAMXBF16, "amx-bf16")
	add(x.HasAMXInt8, "amx-int8")
	a := &cpu.ARM64
	add(a.HasASIMD, "asimd")
	add(a.HasASIMDHP, "asimdhp")
	add(a.HasASIMDDP, "asimddp")
	add(a.HasASIMDFHM, "asimdfhm")
	add(a.HasI8MM, "i8mm")
	add(a.HasSVE, "sve")
	add(a.HasSVE2, "sve2")
	return f
}

// Summary is a one-line description for listings such as
// `trinity compute list`.
func (p Profile) Summary() string {
	var b strings.Builder
	model := p.CPUModel
	if model == "" {
		model = "unknown CPU"
	}
	fmt.Fprintf(&b, "%s, %d threads", model, p.LogicalCPUs)
	if p.PhysicalCores > 0 {
		fmt.Fprintf(&b, "/%d cores", p.PhysicalCores)
	}
	if p.ISA != "" {
		fmt.Fprintf(&b, ", %s", p.ISA)
	}
	if p.MemTotal > 0 {
		fmt.Fprintf(&b, ", %.1f GiB", float64(p.MemTotal)/(1<<30))
	}
	if len(p.GPUs) == 0 {
		b.WriteString(", no GPU")
	}
	for _, g := range p.GPUs {
		fmt.Fprintf(&b, ", GPU %s", g.Model)
		if g.MemBytes > 0 {
			fmt.Fprintf(&b, " (%.0f GiB)", float64(g.MemBytes)/(1<<30))
		}
	}
	return b.String()
}
