package hw

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func sampleProfile() Profile {
	return Profile{
		OS: "linux", Arch: "amd64", CPUVendor: "AuthenticAMD", CPUModel: "AMD EPYC",
		CPUFamily: 25, LogicalCPUs: 2, PhysicalCores: 2, Sockets: 1,
		Features: []string{"avx", "avx2", "fma"}, ISA: "avx2",
		MemTotal: 24 << 30, MemAvailable: 20 << 30,
		GPUs: []GPU{{Vendor: "NVIDIA", Model: "NVIDIA A100", PCISlot: "0000:01:00.0", Driver: "nvidia", MemBytes: 40 << 30}},
	}
}

func TestProfileRoundTrip(t *testing.T) {
	for _, p := range []Profile{sampleProfile(), {}} {
		b, err := p.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) > MaxProfileSize {
			t.Errorf("encoding of %d bytes exceeds MaxProfileSize %d", len(b), MaxProfileSize)
		}
		var q Profile
		if err := q.UnmarshalBinary(b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p, q) {
			t.Errorf("round trip:\n got %+v\nwant %+v", q, p)
		}
	}
}

func TestProfileRejects(t *testing.T) {
	good, err := func() ([]byte, error) { p := sampleProfile(); return p.MarshalBinary() }()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"wrong version", append([]byte{2}, good[1:]...)},
		{"truncated", good[:len(good)-1]},
		{"trailing", append(bytes.Clone(good), 0)},
		{"bad utf8", func() []byte { b := bytes.Clone(good); b[3] = 0xff; return b }()}, // inside "linux"
		{"long string", append([]byte{1, 200}, make([]byte, 200)...)},
		{"huge count", func() []byte {
			b := []byte{1, 0, 0, 0, 0}
			return append(b, 0xff, 0xff, 0xff, 0xff)
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var p Profile
			if err := p.UnmarshalBinary(tc.b); !errors.Is(err, ErrBadProfile) {
				t.Errorf("got %v, want ErrBadProfile", err)
			}
		})
	}
	bad := []Profile{
		{CPUModel: strings.Repeat("x", maxStr+1)},
		{LogicalCPUs: -1},
		{Features: make([]string, maxFeatures+1)},
		{GPUs: make([]GPU, maxGPUs+1)},
		{OS: "\xff"},
	}
	for i, p := range bad {
		if _, err := p.MarshalBinary(); !errors.Is(err, ErrBadProfile) {
			t.Errorf("bad profile %d encoded: %v", i, err)
		}
	}
}

func TestClamp(t *testing.T) {
	p := Profile{CPUModel: strings.Repeat("é", 100), LogicalCPUs: -5, GPUs: make([]GPU, 20)}
	p.clamp()
	if _, err := p.MarshalBinary(); err != nil {
		t.Fatalf("clamped profile does not encode: %v", err)
	}
	if len(p.CPUModel) > maxStr || len(p.GPUs) != maxGPUs || p.LogicalCPUs != 0 {
		t.Errorf("clamp left %d bytes, %d GPUs, %d CPUs", len(p.CPUModel), len(p.GPUs), p.LogicalCPUs)
	}
}

func FuzzProfile(f *testing.F) {
	p := sampleProfile()
	good, _ := p.MarshalBinary()
	f.Add(good)
	empty := Profile{}
	e, _ := empty.MarshalBinary()
	f.Add(e)
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var p Profile
		if err := p.UnmarshalBinary(b); err != nil {
			return
		}
		// What decodes re-encodes to the same bytes: the encoding is
		// canonical, which signatures over it rely on.
		again, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("decoded profile does not encode: %v", err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("re-encoding differs:\n%x\n%x", again, b)
		}
	})
}
