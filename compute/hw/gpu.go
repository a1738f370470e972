package hw

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// maxGPUs bounds how many devices a profile lists (and a decoder accepts).
const maxGPUs = 16

// pciVendors names the PCI vendor IDs of GPU makers.
var pciVendors = map[string]string{
	"10de": "NVIDIA",
	"1002": "AMD",
	"8086": "Intel",
}

// detectGPUs lists GPUs from the NVIDIA driver's procfs entries and from
// the DRM class in sysfs, merged by PCI slot. Missing directories are not
// errors: most machines here have neither.
func detectGPUs(fsys fs.FS) ([]GPU, []error) {
	var errs []error
	bySlot := map[string]*GPU{}
	var list []*GPU
	put := func(g GPU) {
		if g.PCISlot != "" {
			if old, ok := bySlot[g.PCISlot]; ok {
				// The NVIDIA procfs entry has the model name; DRM has the
				// driver and sometimes memory. Keep the richer fields.
				if old.Model == "" || strings.HasPrefix(old.Model, "pci ") {
					old.Model = g.Model
				}
				if old.Driver == "" {
					old.Driver = g.Driver
				}
				if old.MemBytes == 0 {
					old.MemBytes = g.MemBytes
				}
				return
			}
		}
		if len(list) >= maxGPUs {
			return
		}
		gp := &g
		list = append(list, gp)
		if g.PCISlot != "" {
			bySlot[g.PCISlot] = gp
		}
	}

	// NVIDIA: /proc/driver/nvidia/gpus/<slot>/information.
	if ents, err := fs.ReadDir(fsys, "proc/driver/nvidia/gpus"); err == nil {
		for _, e := range ents {
			b, err := readLimited(fsys, path.Join("proc/driver/nvidia/gpus", e.Name(), "information"))
			if err != nil {
				errs = append(errs, err)
				continue
			}
			put(parseNvidiaInfo(string(b), e.Name()))
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("hw: listing NVIDIA GPUs: %w", err))
	}

	// DRM: /sys/class/drm/cardN/device/uevent (connectors such as
	// card0-DP-1 are skipped).
	if ents, err := fs.ReadDir(fsys, "sys/class/drm"); err == nil {
		for _, e := range ents {
			name := e.Name()
			if !strings.HasPrefix(name, "card") || strings.Contains(name, "-") {
				continue
			}
			if _, err := strconv.Atoi(name[len("card"):]); err != nil {
				continue
			}
			dev := path.Join("sys/class/drm", name, "device")
			b, err := readLimited(fsys, path.Join(dev, "uevent"))
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, err)
				}
				continue
			}
			g, ok := parseDRMUevent(string(b))
			if !ok {
				continue
			}
			// amdgpu reports its VRAM size in bytes.
			if vb, err := readLimited(fsys, path.Join(dev, "mem_info_vram_total")); err == nil {
				if n, err := strconv.ParseUint(strings.TrimSpace(string(vb)), 10, 64); err == nil {
					g.MemBytes = n
				}
			}
			put(g)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		errs = append(errs, fmt.Errorf("hw: listing DRM devices: %w", err))
	}

	out := make([]GPU, 0, len(list))
	for _, g := range list {
		out = append(out, *g)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].PCISlot < out[j].PCISlot })
	if len(out) == 0 {
		return nil, errs
	}
	return out, errs
}

// parseNvidiaInfo reads the "Key: value" lines of the NVIDIA driver's
// information file.
func parseNvidiaInfo(s, dir string) GPU {
	g := GPU{Vendor: "NVIDIA", Driver: "nvidia", PCISlot: strings.ToLower(dir)}
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		v = strings.TrimSpace(v)
		switch strings.TrimSpace(k) {
		case "Model":
			g.Model = v
		case "Bus Location":
			g.PCISlot = strings.ToLower(v)
		}
	}
	return g
}

// parseDRMUevent reads DRIVER, PCI_ID and PCI_SLOT_NAME of a DRM device.
// Devices without a PCI ID (virtual displays) are not GPUs to offer.
func parseDRMUevent(s string) (GPU, bool) {
	var g GPU
	var id string
	for line := range strings.Lines(s) {
		k, v, ok := strings.Cut(strings.TrimSpace(line), "=")
		if !ok {
			continue
		}
		switch k {
		case "DRIVER":
			g.Driver = v
		case "PCI_ID":
			id = strings.ToLower(v)
		case "PCI_SLOT_NAME":
			g.PCISlot = strings.ToLower(v)
		}
	}
	vendor, device, ok := strings.Cut(id, ":")
	if !ok || vendor == "" {
		return GPU{}, false
	}
	g.Vendor = vendor
	if name, ok := pciVendors[vendor]; ok {
		g.Vendor = name
	}
	g.Model = "pci " + vendor + ":" + device
	return g, true
}
