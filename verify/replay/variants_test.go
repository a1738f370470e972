package replay_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/cpu"

	"github.com/trinity-net/trinity/compute/tensor"
	"github.com/trinity-net/trinity/verify/replay/internal/fixture"
)

// Every kernel path and thread count in this process gives the same state
// and blob bits.
func TestPathsAgree(t *testing.T) {
	want, err := fixture.Fingerprint(fixture.Small, 5, tensor.Generic, 1)
	if err != nil {
		t.Fatal(err)
	}
	for _, isa := range []tensor.ISA{tensor.Generic, tensor.AVX2, tensor.AVX512} {
		if _, err := tensor.NewKernels(isa); err != nil {
			// Unsupported by this CPU, or not implemented (AVX-512 kernels
			// do not exist yet: such CPUs run the AVX2 path).
			t.Logf("%s: not tested: %v", isa, err)
			continue
		}
		for _, threads := range []int{1, 2, 3} {
			got, err := fixture.Fingerprint(fixture.Small, 5, isa, threads)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s with %d threads: %s\nwant (generic, 1 thread) %s", isa, threads, got, want)
			}
		}
	}
}

// Builds with GOAMD64=v1, v3 (v4 on AVX-512 CPUs) and a pure-Go GOARCH=386
// build, each running every path it supports with 1, 2 and 3 threads, give
// the same bits as this process. Skipped with -short or without a go
// command; the first run compiles the standard library for each level.
func TestBuildVariantsAgree(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the module several times; skipped with -short")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH: build variants not tested")
	}
	want, err := fixture.Fingerprint(fixture.Small, 5, tensor.Generic, 1)
	if err != nil {
		t.Fatal(err)
	}
	type variant struct {
		name string
		env  []string
		opt  bool // may fail to build here without failing the test
	}
	var vs []variant
	if runtime.GOARCH == "amd64" {
		vs = append(vs, variant{"GOAMD64=v1", []string{"GOAMD64=v1"}, false})
		if cpu.X86.HasAVX2 && cpu.X86.HasFMA && cpu.X86.HasBMI2 {
			vs = append(vs, variant{"GOAMD64=v3", []string{"GOAMD64=v3"}, false})
		} else {
			t.Log("CPU lacks x86-64-v3: GOAMD64=v3 not tested")
		}
		if cpu.X86.HasAVX512F && cpu.X86.HasAVX512BW && cpu.X86.HasAVX512VL && cpu.X86.HasAVX512DQ && cpu.X86.HasAVX512CD {
			vs = append(vs, variant{"GOAMD64=v4", []string{"GOAMD64=v4"}, false})
		}
		// GOARCH=386 builds only the pure-Go kernels and runs here.
		vs = append(vs, variant{"GOARCH=386 (pure Go)", []string{"GOARCH=386", "GO386=sse2"}, true})
	} else {
		vs = append(vs, variant{"native", nil, false})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	dir := t.TempDir()
	for i, v := range vs {
		bin := filepath.Join(dir, "variants"+string(rune('a'+i)))
		build := exec.CommandContext(ctx, gobin, "build", "-o", bin, "./internal/variants")
		build.Env = append(append(os.Environ(), "CGO_ENABLED=0"), v.env...)
		if out, err := build.CombinedOutput(); err != nil {
			if v.opt {
				t.Logf("%s: does not build here, not tested: %v\n%s", v.name, err, out)
				continue
			}
			t.Fatalf("%s: build: %v\n%s", v.name, err, out)
		}
		out, err := exec.CommandContext(ctx, bin).Output()
		if err != nil {
			t.Fatalf("%s: run: %v", v.name, err)
		}
		lines := 0
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if strings.HasPrefix(line, "#") {
				t.Logf("%s: %s", v.name, line)
				continue
			}
			f := strings.SplitN(line, " ", 4)
			if len(f) != 4 {
				t.Fatalf("%s: unexpected output %q", v.name, line)
			}
			lines++
			if f[3] != want {
				t.Errorf("%s %s %s %s: %s\nwant %s", v.name, f[0], f[1], f[2], f[3], want)
			}
		}
		if lines == 0 {
			t.Fatalf("%s: no result", v.name)
		}
		t.Logf("%s: %d path/thread combinations agree", v.name, lines)
	}
}
