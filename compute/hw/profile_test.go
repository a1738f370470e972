package hw

import (
	"slices"
	"strings"
	"testing"
	"testing/fstest"
)

const cpuinfoTwoSockets = `processor	: 0
vendor_id	: GenuineIntel
cpu family	: 6
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 0
core id		: 0
cpu cores	: 2

processor	: 1
vendor_id	: GenuineIntel
cpu family	: 6
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 0
core id		: 0
cpu cores	: 2

processor	: 2
vendor_id	: GenuineIntel
cpu family	: 6
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 0
core id		: 1
cpu cores	: 2

processor	: 3
vendor_id	: GenuineIntel
cpu family	: 6
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 1
core id		: 0
cpu cores	: 2

processor	: 4
vendor_id	: GenuineIntel
cpu family	: 6
model name	: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz
physical id	: 1
core id		: 1
cpu cores	: 2
`

const cpuinfoARM = `processor	: 0
BogoMIPS	: 243.75
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp ssbs
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1

processor	: 1
CPU implementer	: 0x41
CPU part	: 0xd0c
`

const meminfo = `MemTotal:       24610812 kB
MemFree:         1234567 kB
MemAvailable:   20000000 kB
Buffers:          100000 kB
`

func TestParseCPUInfo(t *testing.T) {
	tests := []struct {
		name                   string
		in                     string
		vendor, model          string
		family, cores, sockets int
	}{
		{"x86 two sockets", cpuinfoTwoSockets, "GenuineIntel", "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz", 6, 4, 2},
		{"arm64", cpuinfoARM, "arm implementer 0x41", "arm implementer 0x41 part 0xd0c", 0, 0, 0},
		{"empty", "", "", "", 0, 0, 0},
		{"garbage", "no colon here\n\n::::\ncpu family : -3\ncpu cores: x\n", "", "", 0, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Profile
			parseCPUInfo(tc.in, &p)
			if p.CPUVendor != tc.vendor || p.CPUModel != tc.model || p.CPUFamily != tc.family ||
				p.PhysicalCores != tc.cores || p.Sockets != tc.sockets {
				t.Errorf("got vendor %q model %q family %d cores %d sockets %d; want %q %q %d %d %d",
					p.CPUVendor, p.CPUModel, p.CPUFamily, p.PhysicalCores, p.Sockets,
					tc.vendor, tc.model, tc.family, tc.cores, tc.sockets)
			}
		})
	}
}

func TestDetectFromFS(t *testing.T) {
	fsys := fstest.MapFS{
		"proc/cpuinfo": {Data: []byte(cpuinfoTwoSockets)},
		"proc/meminfo": {Data: []byte(meminfo)},
		"proc/driver/nvidia/gpus/0000:01:00.0/information": {Data: []byte(
			"Model: \t\t NVIDIA GeForce RTX 3090\nIRQ:  \t\t 130\nBus Location: \t 0000:01:00.0\n")},
		// The same NVIDIA card seen through DRM, an AMD card with VRAM, a
		// connector and a virtual display without a PCI ID.
		"sys/class/drm/card0/device/uevent":              {Data: []byte("DRIVER=nvidia\nPCI_ID=10DE:2204\nPCI_SLOT_NAME=0000:01:00.0\n")},
		"sys/class/drm/card0-DP-1/status":                {Data: []byte("connected\n")},
		"sys/class/drm/card1/device/uevent":              {Data: []byte("DRIVER=amdgpu\nPCI_ID=1002:73BF\nPCI_SLOT_NAME=0000:03:00.0\n")},
		"sys/class/drm/card1/device/mem_info_vram_total": {Data: []byte("17163091968\n")},
		"sys/class/drm/card2/device/uevent":              {Data: []byte("DRIVER=vkms\n")},
	}
	p, err := Detect(WithFS(fsys))
	if err != nil {
		t.Fatal(err)
	}
	if p.MemTotal != 24610812*1024 || p.MemAvailable != 20000000*1024 {
		t.Errorf("memory %d / %d", p.MemTotal, p.MemAvailable)
	}
	if p.PhysicalCores != 4 || p.Sockets != 2 || p.CPUFamily != 6 {
		t.Errorf("cores %d sockets %d family %d", p.PhysicalCores, p.Sockets, p.CPUFamily)
	}
	want := []GPU{
		{Vendor: "NVIDIA", Model: "NVIDIA GeForce RTX 3090", PCISlot: "0000:01:00.0", Driver: "nvidia"},
		{Vendor: "AMD", Model: "pci 1002:73bf", PCISlot: "0000:03:00.0", Driver: "amdgpu", MemBytes: 17163091968},
	}
	if !slices.Equal(p.GPUs, want) {
		t.Errorf("GPUs\n got %+v\nwant %+v", p.GPUs, want)
	}
	if _, err := p.MarshalBinary(); err != nil {
		t.Errorf("detected profile does not encode: %v", err)
	}
	if s := p.Summary(); !strings.Contains(s, "Xeon") || !strings.Contains(s, "4 cores") || !strings.Contains(s, "GPU NVIDIA GeForce RTX 3090") {
		t.Errorf("summary %q", s)
	}
}

func TestDetectMissingSources(t *testing.T) {
	p, err := Detect(WithFS(fstest.MapFS{}))
	if err != nil {
		t.Fatal(err)
	}
	if p.CPUModel != "" || p.MemTotal != 0 || p.GPUs != nil {
		t.Errorf("expected empty fields without sources, got %+v", p)
	}
	if p.LogicalCPUs < 1 || p.ISA == "" {
		t.Errorf("runtime fields missing: %+v", p)
	}
	if _, err := Detect(WithFS(nil)); err == nil {
		t.Error("nil FS accepted")
	}
}

// TestDetectThisMachine runs Detect on the real /proc and /sys: it must
// succeed and encode whatever it finds.
func TestDetectThisMachine(t *testing.T) {
	p, err := Detect()
	if err != nil {
		t.Fatal(err)
	}
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%+v (%d bytes encoded)", p, len(b))
}
