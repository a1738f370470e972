package hw

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"
)

// ProfileVersion is the wire version of a Profile this package writes and
// accepts.
const ProfileVersion = 1

// Wire limits. They bound every profile's encoding to a few kilobytes.
const (
	maxStr      = 128     // bytes per string
	maxFeatures = 64      // feature names
	maxCount    = 1 << 20 // CPUs, cores, sockets, family
	// MaxProfileSize bounds the encoding of any valid Profile.
	MaxProfileSize = 1 + 4*(1+maxStr) + 4*4 + 1 + maxFeatures*(1+maxStr) + (1 + maxStr) + 16 + 1 + maxGPUs*(4*(1+maxStr)+8)
)

// ErrBadProfile is wrapped by every encoding and decoding failure.
var ErrBadProfile = errors.New("hw: bad profile")

// clamp cuts what the OS reported to the wire limits, so that a detected
// profile always encodes.
func (p *Profile) clamp() {
	cut := func(s *string) {
		if len(*s) > maxStr {
			b := []byte((*s)[:maxStr])
			for len(b) > 0 && !utf8.Valid(b) {
				b = b[:len(b)-1]
			}
			*s = string(b)
		}
		if !utf8.ValidString(*s) {
			*s = ""
		}
	}
	for _, s := range []*string{&p.OS, &p.Arch, &p.CPUVendor, &p.CPUModel, &p.ISA} {
		cut(s)
	}
	if len(p.Features) > maxFeatures {
		p.Features = p.Features[:maxFeatures]
	}
	if len(p.GPUs) > maxGPUs {
		p.GPUs = p.GPUs[:maxGPUs]
	}
	for i := range p.GPUs {
		g := &p.GPUs[i]
		for _, s := range []*string{&g.Vendor, &g.Model, &g.PCISlot, &g.Driver} {
			cut(s)
		}
	}
	for _, n := range []*int{&p.CPUFamily, &p.LogicalCPUs, &p.PhysicalCores, &p.Sockets} {
		*n = min(max(*n, 0), maxCount)
	}
}

// MarshalBinary encodes the profile.
//
// Wire format (version 1, big-endian, no padding, nothing after the end;
// str is u8 length then UTF-8 bytes, at most 128):
//
//	u8 version | str os | str arch | str cpu vendor | str cpu model |
//	u32 family | u32 logical CPUs | u32 physical cores | u32 sockets |
//	u8 count, str feature... | str isa | u64 mem total | u64 mem available |
//	u8 count, (str vendor | str model | str pci slot | str driver | u64 mem)...
func (p *Profile) MarshalBinary() ([]byte, error) {
	return p.AppendBinary(make([]byte, 0, 256))
}

// AppendBinary appends the encoding of MarshalBinary to b.
func (p *Profile) AppendBinary(b []byte) ([]byte, error) {
	if len(p.Features) > maxFeatures {
		return nil, fmt.Errorf("%w: %d features, at most %d", ErrBadProfile, len(p.Features), maxFeatures)
	}
	if len(p.GPUs) > maxGPUs {
		return nil, fmt.Errorf("%w: %d GPUs, at most %d", ErrBadProfile, len(p.GPUs), maxGPUs)
	}
	var err error
	str := func(name, s string) {
		if err != nil {
			return
		}
		if len(s) > maxStr || !utf8.ValidString(s) {
			err = fmt.Errorf("%w: %s is not UTF-8 of at most %d bytes", ErrBadProfile, name, maxStr)
			return
		}
		b = append(b, byte(len(s)))
		b = append(b, s...)
	}
	u32 := func(name string, n int) {
		if err != nil {
			return
		}
		if n < 0 || n > maxCount {
			err = fmt.Errorf("%w: %s = %d out of [0, %d]", ErrBadProfile, name, n, maxCount)
			return
		}
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	b = append(b, ProfileVersion)
	str("os", p.OS)
	str("arch", p.Arch)
	str("cpu vendor", p.CPUVendor)
	str("cpu model", p.CPUModel)
	u32("cpu family", p.CPUFamily)
	u32("logical CPUs", p.LogicalCPUs)
	u32("physical cores", p.PhysicalCores)
	u32("sockets", p.Sockets)
	b = append(b, byte(len(p.Features)))
	for _, f := range p.Features {
		str("feature", f)
	}
	str("isa", p.ISA)
	b = binary.BigEndian.AppendUint64(b, p.MemTotal)
	b = binary.BigEndian.AppendUint64(b, p.MemAvailable)
	b = append(b, byte(len(p.GPUs)))
	for _, g := range p.GPUs {
		str("gpu vendor", g.Vendor)
		str("gpu model", g.Model)
		str("gpu pci slot", g.PCISlot)
		str("gpu driver", g.Driver)
		b = binary.BigEndian.AppendUint64(b, g.MemBytes)
	}
	if err != nil {
		return nil, err
	}
	return b, nil
}

// UnmarshalBinary decodes exactly one profile occupying all of data.
func (p *Profile) UnmarshalBinary(data []byte) error {
	q, n, err := DecodeProfile(data)
	if err != nil {
		return err
	}
	if n != len(data) {
		return fmt.Errorf("%w: %d trailing bytes", ErrBadProfile, len(data)-n)
	}
	*p = q
	return nil
}

// DecodeProfile decodes a profile at the start of data and returns it with
// the number of bytes it occupies.
func DecodeProfile(data []byte) (Profile, int, error) {
	r := reader{b: data}
	var p Profile
	if v := r.u8(); r.err == nil && v != ProfileVersion {
		return Profile{}, 0, fmt.Errorf("%w: version %d, want %d", ErrBadProfile, v, ProfileVersion)
	}
	p.OS = r.str("os")
	p.Arch = r.str("arch")
	p.CPUVendor = r.str("cpu vendor")
	p.CPUModel = r.str("cpu model")
	p.CPUFamily = r.count("cpu family")
	p.LogicalCPUs = r.count("logical CPUs")
	p.PhysicalCores = r.count("physical cores")
	p.Sockets = r.count("sockets")
	if nf := int(r.u8()); r.err == nil {
		if nf > maxFeatures {
			return Profile{}, 0, fmt.Errorf("%w: %d features, at most %d", ErrBadProfile, nf, maxFeatures)
		}
		if nf > 0 {
			p.Features = make([]string, 0, nf)
		}
		for range nf {
			p.Features = append(p.Features, r.str("feature"))
		}
	}
	p.ISA = r.str("isa")
	p.MemTotal = r.u64()
	p.MemAvailable = r.u64()
	if ng := int(r.u8()); r.err == nil {
		if ng > maxGPUs {
			return Profile{}, 0, fmt.Errorf("%w: %d GPUs, at most %d", ErrBadProfile, ng, maxGPUs)
		}
		if ng > 0 {
			p.GPUs = make([]GPU, 0, ng)
		}
		for range ng {
			var g GPU
			g.Vendor = r.str("gpu vendor")
			g.Model = r.str("gpu model")
			g.PCISlot = r.str("gpu pci slot")
			g.Driver = r.str("gpu driver")
			g.MemBytes = r.u64()
			p.GPUs = append(p.GPUs, g)
		}
	}
	if r.err != nil {
		return Profile{}, 0, r.err
	}
	return p, r.off, nil
}

// reader is a bounds-checked cursor that keeps the first error.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n > len(r.b)-r.off {
		r.err = fmt.Errorf("%w: truncated at %s (offset %d)", ErrBadProfile, what, r.off)
		return nil
	}
	s := r.b[r.off : r.off+n]
	r.off += n
	return s
}

func (r *reader) u8() uint8 {
	if s := r.take(1, "a byte"); s != nil {
		return s[0]
	}
	return 0
}

func (r *reader) u64() uint64 {
	if s := r.take(8, "a u64"); s != nil {
		return binary.BigEndian.Uint64(s)
	}
	return 0
}

func (r *reader) count(name string) int {
	s := r.take(4, name)
	if s == nil {
		return 0
	}
	n := binary.BigEndian.Uint32(s)
	if n > maxCount {
		r.err = fmt.Errorf("%w: %s = %d out of [0, %d]", ErrBadProfile, name, n, maxCount)
		return 0
	}
	return int(n)
}

func (r *reader) str(name string) string {
	n := int(r.u8())
	if r.err != nil {
		return ""
	}
	if n > maxStr {
		r.err = fmt.Errorf("%w: %s of %d bytes, at most %d", ErrBadProfile, name, n, maxStr)
		return ""
	}
	s := r.take(n, name)
	if r.err != nil {
		return ""
	}
	if !utf8.Valid(s) {
		r.err = fmt.Errorf("%w: %s is not valid UTF-8", ErrBadProfile, name)
		return ""
	}
	return string(s)
}
