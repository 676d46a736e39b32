// Package cgroupstat reads a cgroup's memory figures (limit, usage, peak,
// protections, OOM event counters) at the moment the agent learns of an OOM
// kill, so a report can say how close the group was to its limit.
//
// It reads through github.com/containerd/cgroups/v3 (cgroup2.Manager stats on
// cgroup v2, the cgroup1 memory controller on v1) and parses the files the
// library does not expose, or cannot tell apart from zero, itself. The cgroup
// mount is a parameter so tests point it at fixture trees.
package cgroupstat

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/containerd/cgroups/v3/cgroup1"
	"github.com/containerd/cgroups/v3/cgroup2"
)

// DefaultRoot is where cgroup file systems are mounted on a Linux host.
const DefaultRoot = "/sys/fs/cgroup"

var (
	// ErrNotFound means the cgroup directory does not exist (any more): the
	// group was removed after the kill, or the path is wrong for this root.
	ErrNotFound = errors.New("cgroup not found")
	// ErrNoMemoryController means the root has neither a cgroup v1 memory
	// hierarchy nor a cgroup v2 hierarchy with the memory controller.
	ErrNoMemoryController = errors.New("no memory cgroup controller under root")
	// ErrMalformed means a cgroup file did not have the expected form.
	ErrMalformed = errors.New("malformed cgroup file")
	// ErrInvalidPath means the cgroup path is empty or not absolute.
	ErrInvalidPath = errors.New("invalid cgroup path")
)

// Mode is the cgroup version that carries the memory controller.
type Mode int

// Modes returned by DetectMode.
const (
	// ModeUnknown: no memory controller found.
	ModeUnknown Mode = iota
	// ModeV1: the memory controller is on a cgroup v1 hierarchy (legacy or
	// hybrid hosts).
	ModeV1
	// ModeV2: the memory controller is on the unified cgroup v2 hierarchy.
	ModeV2
)

// String returns "v1", "v2" or "unknown".
func (m Mode) String() string {
	switch m {
	case ModeV1:
		return "v1"
	case ModeV2:
		return "v2"
	}
	return "unknown"
}

// Events are the memory event counters of a cgroup. On cgroup v2 they come
// from memory.events and are hierarchical (they include descendants). On
// cgroup v1 only OOMKill is known (memory.oom_control oom_kill, kernel
// >= 4.13); the others are 0.
type Events struct {
	Low          uint64 `json:"low"`
	High         uint64 `json:"high"`
	Max          uint64 `json:"max"`
	OOM          uint64 `json:"oom"`
	OOMKill      uint64 `json:"oom_kill"`
	OOMGroupKill uint64 `json:"oom_group_kill"`
}

// Stats are a cgroup's memory figures. Byte counts are int64 so they
// subtract without surprises; a cgroup never comes near 2^63 bytes.
type Stats struct {
	// V1 is true when the figures come from a cgroup v1 memory controller.
	V1 bool `json:"v1"`
	// MaxBytes is the hard limit (memory.max, memory.limit_in_bytes);
	// 0 means unlimited ("max", or v1's PAGE_COUNTER_MAX).
	MaxBytes int64 `json:"max_bytes"`
	// HighBytes is the v2 throttling limit memory.high; 0 means "max" or
	// absent (v1 has none).
	HighBytes int64 `json:"high_bytes"`
	// CurrentBytes is the usage now (memory.current, memory.usage_in_bytes).
	CurrentBytes int64 `json:"current_bytes"`
	// PeakBytes is the highest usage seen (memory.peak on v2 kernels >= 5.19,
	// memory.max_usage_in_bytes on v1); -1 when the kernel has no such file.
	PeakBytes int64 `json:"peak_bytes"`
	// MinBytes and LowBytes are the v2 memory protections memory.min and
	// memory.low; 0 on v1 or when absent.
	MinBytes int64 `json:"min_bytes"`
	LowBytes int64 `json:"low_bytes"`
	// Events are the OOM and limit event counters.
	Events Events `json:"events"`
	// OOMGroup is memory.oom.group: the OOM killer kills the whole group
	// together (v2 only).
	OOMGroup bool `json:"oom_group"`
	// UnderOOM is v1's under_oom: the group is stalled in an OOM right now.
	UnderOOM bool `json:"under_oom"`
}

// DetectMode inspects root, a cgroup mount point such as /sys/fs/cgroup, and
// tells which cgroup version carries the memory controller, with the
// directory that holds the memory hierarchy's root cgroup:
//
//   - root/memory/memory.limit_in_bytes: v1 (legacy or hybrid layout);
//   - root/memory.limit_in_bytes: v1, root is the memory hierarchy itself;
//   - root/cgroup.controllers listing "memory": v2;
//   - root/unified/cgroup.controllers listing "memory": v2 on a hybrid host
//     whose memory controller was moved to the unified hierarchy.
//
// It looks at files rather than asking cgroups.Mode() because root need
// not be this host's mount.
func DetectMode(root string) (Mode, string, error) {
	if root == "" {
		root = DefaultRoot
	}
	if isFile(filepath.Join(root, "memory", "memory.limit_in_bytes")) {
		return ModeV1, filepath.Join(root, "memory"), nil
	}
	if isFile(filepath.Join(root, "memory.limit_in_bytes")) {
		return ModeV1, root, nil
	}
	for _, dir := range []string{root, filepath.Join(root, "unified")} {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.controllers"))
		if err != nil {
			continue
		}
		for _, c := range strings.Fields(string(b)) {
			if c == "memory" {
				return ModeV2, dir, nil
			}
		}
	}
	return ModeUnknown, "", fmt.Errorf("%w: %s", ErrNoMemoryController, root)
}

// Read returns the memory figures of the cgroup at path (as the kernel
// prints it, e.g. "/kubepods/burstable/pod<uid>/<id>") under root (the
// cgroup mount, DefaultRoot when empty). It returns an error wrapping
// ErrNotFound when the group does not exist, ErrNoMemoryController when root
// has no memory hierarchy, ErrMalformed when a file is not what the kernel
// writes.
func Read(root, cgroupPath string) (Stats, error) {
	p, err := cleanPath(cgroupPath)
	if err != nil {
		return Stats{}, err
	}
	mode, dir, err := DetectMode(root)
	if err != nil {
		return Stats{}, err
	}
	if mode == ModeV1 {
		return readV1(dir, p)
	}
	return readV2(dir, p)
}

// cleanPath makes the kernel's cgroup path absolute and clean, so that it
// cannot climb out of the root.
func cleanPath(p string) (string, error) {
	p = strings.TrimSpace(p)
	if p == "" || !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: %q", ErrInvalidPath, p)
	}
	return path.Clean(p), nil
}

// readV2 reads a cgroup v2 group through cgroup2.Manager, then the files
// the library leaves out.
func readV2(mount, p string) (Stats, error) {
	dir := filepath.Join(mount, filepath.FromSlash(p))
	if !isDir(dir) {
		return Stats{}, fmt.Errorf("%w: %s", ErrNotFound, dir)
	}
	st := Stats{PeakBytes: -1}
	mgr, err := cgroup2.Load(p, cgroup2.WithMountpoint(mount))
	if err != nil {
		return Stats{}, fmt.Errorf("load cgroup2 %s: %w", p, err)
	}
	m, err := mgr.StatFiltered(cgroup2.StatMemory | cgroup2.StatMemoryEvents)
	if err != nil {
		// The library fails on a memory.stat line it cannot parse.
		return Stats{}, fmt.Errorf("%w: cgroup2 stat %s: %w", ErrMalformed, p, err)
	}
	// The library returns an empty MemoryStat, without reading memory.current
	// or memory.max, when memory.stat is missing; and it reports an absent or
	// unparsable file as 0. So its figures are taken only when memory.stat
	// exists and they are nonzero; a zero is checked against the file.
	haveStat := m.Memory != nil && isFile(filepath.Join(dir, "memory.stat"))
	if haveStat && m.Memory.Usage != 0 {
		st.CurrentBytes = clampU64(m.Memory.Usage)
	} else if st.CurrentBytes, _, err = readValue(dir, "memory.current", true); err != nil {
		return Stats{}, err
	}
	switch {
	case haveStat && m.Memory.UsageLimit == ^uint64(0): // "max"
		st.MaxBytes = 0
	case haveStat && m.Memory.UsageLimit != 0:
		st.MaxBytes = clampU64(m.Memory.UsageLimit)
	default:
		v, isMax, err := readValue(dir, "memory.max", true)
		if err != nil {
			return Stats{}, err
		}
		if !isMax {
			st.MaxBytes = v
		}
	}
	if m.MemoryEvents != nil {
		e := m.MemoryEvents
		st.Events = Events{Low: e.Low, High: e.High, Max: e.Max, OOM: e.Oom, OOMKill: e.OomKill, OOMGroupKill: e.OomGroupKill}
	} else if f, err := os.Open(filepath.Join(dir, "memory.events")); err == nil {
		// Absent is fine (root cgroup); present but empty is what the library
		// returns nil for too.
		st.Events, err = ParseEvents(f)
		f.Close()
		if err != nil {
			return Stats{}, fmt.Errorf("%s/memory.events: %w", dir, err)
		}
	}
	// memory.peak (5.19+): the library returns 0 when absent, which would be
	// a lie, so it is parsed here to tell absent (-1) from zero.
	if v, _, err := readValue(dir, "memory.peak", false); err == nil {
		st.PeakBytes = v
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Stats{}, err
	}
	for _, f := range []struct {
		name string
		dst  *int64
	}{
		{"memory.min", &st.MinBytes},
		{"memory.low", &st.LowBytes},
		{"memory.high", &st.HighBytes},
	} {
		v, _, err := readValue(dir, f.name, true)
		if err != nil {
			return Stats{}, err
		}
		*f.dst = v
	}
	g, _, err := readValue(dir, "memory.oom.group", true)
	if err != nil {
		return Stats{}, err
	}
	st.OOMGroup = g == 1
	return st, nil
}

// readV1 reads a cgroup v1 memory group through the cgroup1 memory
// controller; memDir is the memory hierarchy's mount point.
func readV1(memDir, p string) (Stats, error) {
	dir := filepath.Join(memDir, filepath.FromSlash(p))
	if !isDir(dir) {
		return Stats{}, fmt.Errorf("%w: %s", ErrNotFound, dir)
	}
	st := Stats{V1: true}
	var (
		m    *v1Metrics
		lerr error
	)
	if filepath.Base(filepath.Clean(memDir)) == "memory" {
		m, lerr = statV1(newV1Memory(filepath.Dir(filepath.Clean(memDir))), p)
	} else {
		lerr = fmt.Errorf("memory hierarchy mounted at %s, not .../memory", memDir)
	}
	if lerr == nil {
		st.MaxBytes = V1Limit(clampU64(m.limit))
		st.CurrentBytes = clampU64(m.usage)
		st.PeakBytes = clampU64(m.maxUsage)
		st.Events.OOMKill = m.oomKill
		st.UnderOOM = m.underOOM
		return st, nil
	}
	if errors.Is(lerr, cgroup1.ErrCgroupDeleted) {
		return Stats{}, fmt.Errorf("%w: %s", ErrNotFound, dir)
	}
	// The library needs every one of memory.stat, oom_control, usage,
	// max_usage, failcnt and limit; fixture trees and some kernels lack some.
	// Fall back to the files that matter here, one by one.
	limit, _, err := readValue(dir, "memory.limit_in_bytes", false)
	if err != nil {
		return Stats{}, err
	}
	st.MaxBytes = V1Limit(limit)
	if st.CurrentBytes, _, err = readValue(dir, "memory.usage_in_bytes", false); err != nil {
		return Stats{}, err
	}
	st.PeakBytes = -1
	if v, _, err := readValue(dir, "memory.max_usage_in_bytes", false); err == nil {
		st.PeakBytes = v
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Stats{}, err
	}
	f, err := os.Open(filepath.Join(dir, "memory.oom_control"))
	if err == nil {
		oc, perr := ParseOOMControl(f)
		f.Close()
		if perr != nil {
			return Stats{}, fmt.Errorf("%s/memory.oom_control: %w", dir, perr)
		}
		st.Events.OOMKill = oc.OOMKill
		st.UnderOOM = oc.UnderOOM
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Stats{}, fmt.Errorf("open oom_control: %w", err)
	}
	return st, nil
}

// v1Metrics are the figures taken from the cgroup1 library's metrics.
type v1Metrics struct {
	limit, usage, maxUsage, oomKill uint64
	underOOM                        bool
}

// newV1Memory returns the cgroup1 memory controller of the v1 hierarchy
// mounted at root/memory, reading only the figures used here (the memsw and
// kmem files are absent on many kernels and not needed).
func newV1Memory(root string) cgroup1.Subsystem {
	return cgroup1.NewMemory(root, cgroup1.IgnoreModules("memsw", "kmem", "kmem.tcp"))
}

// statV1 loads the group with only the memory controller and reads it.
func statV1(ctrl cgroup1.Subsystem, p string) (*v1Metrics, error) {
	cg, err := cgroup1.Load(cgroup1.StaticPath(p), cgroup1.WithHierarchy(func() ([]cgroup1.Subsystem, error) {
		return []cgroup1.Subsystem{ctrl}, nil
	}))
	if err != nil {
		return nil, fmt.Errorf("load cgroup1 %s: %w", p, err)
	}
	m, err := cg.Stat()
	if err != nil {
		return nil, fmt.Errorf("cgroup1 stat %s: %w", p, err)
	}
	if m.Memory == nil || m.Memory.Usage == nil || m.MemoryOomControl == nil {
		return nil, fmt.Errorf("cgroup1 stat %s: no memory figures", p)
	}
	return &v1Metrics{
		limit:    m.Memory.Usage.Limit,
		usage:    m.Memory.Usage.Usage,
		maxUsage: m.Memory.Usage.Max,
		oomKill:  m.MemoryOomControl.OomKill,
		underOOM: m.MemoryOomControl.UnderOom != 0,
	}, nil
}

// readValue parses the single-value file name in dir. A missing file is 0
// when optional, else an error wrapping fs.ErrNotExist.
func readValue(dir, name string, optional bool) (int64, bool, error) {
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		if optional && errors.Is(err, fs.ErrNotExist) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	v, isMax, err := ParseValue(f)
	if err != nil {
		return 0, false, fmt.Errorf("%s/%s: %w", dir, name, err)
	}
	return v, isMax, nil
}

func clampU64(v uint64) int64 {
	if v > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(v)
}

func isFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}
