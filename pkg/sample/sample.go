// Package sample reads, at a fixed interval, the memory figures of every pod
// and container cgroup on a node, and the node's own: what pre-kill warnings
// are computed from (usage against limit, working set as kubelet computes
// it, memory.high and memory.max events, pressure stalls).
//
// One Sample walks the kubepods subtree once and fills a Snapshot: for each
// pod and container cgroup the usage, limit, memory.high, inactive file
// cache and working set (usage minus inactive file, floored at 0), the
// memory event counters and the pressure stall figures; for the node
// MemTotal, MemAvailable, /proc/pressure/memory and the kubepods cgroup's
// own limit (where kubelet enforces node allocatable) and working set. Pods
// and containers are named by workload.FromCgroup, as kills are: pod UID and
// container ID, which the agent resolves to names as it does for kills.
//
// Files read per group:
//
//   - cgroup v2: memory.current, memory.max, memory.high, memory.stat
//     (inactive_file), memory.events (high, max, oom, oom_kill) and
//     memory.pressure (absent on kernels without PSI);
//   - cgroup v1: memory.usage_in_bytes, memory.limit_in_bytes, memory.stat
//     (total_inactive_file, the hierarchical figure kubelet uses),
//     memory.failcnt (the analogue of v2's "max" event) and
//     memory.oom_control (oom_kill, under_oom). v1 has no pressure files.
//
// None of them goes through github.com/containerd/cgroups/v3, though the
// files are the ones it reads: measured on the same 400 groups (300
// containers in 100 pods; BenchmarkLibrary300 against BenchmarkSample300,
// figures in BENCHMARKS.md), the library costs about three times the CPU
// of this package (0.8% of a core at a 10 s interval on cgroup v2, 0.6-0.8%
// on v1, real cgroupfs included, against the 0.2% budget) and allocates
// 8-10 MB a round against 0.13 MB. cgroup2.Manager.StatFiltered
// (StatMemory|StatMemoryEvents) opens nine files a group (memory.peak and three swap
// files besides these, and not memory.high), parses memory.stat into a
// 40-entry map, and logs and returns 0 for a file it cannot parse, which
// reads as "no usage"; cgroup1's memory controller opens six files with a
// fresh map and scanner each and fails the whole group when one is missing.
// Here each file is opened relative to the group's directory, read with one
// read(2) into a buffer reused across rounds, and parsed by cgroupstat's
// allocation-free []byte parsers (the ones cgroupstat.Read's own parsing
// goes through); the walk lists directories with getdents(2) into a reused
// buffer and keeps what it learned of each directory (path, workload) from
// one round to the next. A round's cost is then its system calls: about 20
// a group on v2 and 17 on v1.
//
// A group removed while it is walked is left out silently (counted in
// Snapshot.Vanished): containers come and go. A file that is missing where
// the kernel may omit it (memory.pressure) leaves its figure unknown; a
// malformed or unreadable file leaves its figure unknown and is counted in
// Snapshot.Errors. Group.Have tells which figures are known, so an unknown
// figure never reads as zero. A round visits at most Config.MaxGroups
// cgroups and says when it stopped early.
package sample

import (
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
	"github.com/oomwatch/oomwatch/pkg/proc"
	"github.com/oomwatch/oomwatch/pkg/workload"
)

// DefaultMaxGroups bounds the cgroups one Sample visits: a node runs at
// most a few hundred pods (kubelet's default max-pods is 110).
const DefaultMaxGroups = 5000

// DefaultKubepods are the roots of the pod cgroups kubelet makes with the
// systemd and the cgroupfs cgroup driver.
var DefaultKubepods = []string{"/kubepods.slice", "/kubepods"}

// ErrNoMemoryController is returned by New when the cgroup root has no
// memory hierarchy (it wraps cgroupstat.ErrNoMemoryController).
var ErrNoMemoryController = cgroupstat.ErrNoMemoryController

// Config says where a Sampler reads.
type Config struct {
	// CgroupRoot is the cgroup mount (cgroupstat.DefaultRoot when empty).
	CgroupRoot string
	// ProcRoot is the host's /proc ("/proc" when empty).
	ProcRoot string
	// Kubepods are the cgroup paths of the kubepods roots to walk
	// (DefaultKubepods when empty); those that do not exist are skipped.
	Kubepods []string
	// MaxGroups bounds the cgroups one Sample visits, the kubepods roots
	// and QoS slices included (DefaultMaxGroups when 0).
	MaxGroups int
}

// Field is a set of figures of a Group, those it knows.
type Field uint16

// Figures of a Group.
const (
	// FieldUsage: UsageBytes (memory.current, memory.usage_in_bytes).
	FieldUsage Field = 1 << iota
	// FieldLimit: LimitBytes (memory.max, memory.limit_in_bytes).
	FieldLimit
	// FieldHigh: HighBytes (memory.high, v2 only).
	FieldHigh
	// FieldInactiveFile: InactiveFileBytes (memory.stat).
	FieldInactiveFile
	// FieldWorkingSet: WorkingSetBytes, known when usage and inactive file
	// are.
	FieldWorkingSet
	// FieldEvents: all of Events (v2 memory.events).
	FieldEvents
	// FieldFailcnt: Events.Max from v1 memory.failcnt, the times usage hit
	// the limit.
	FieldFailcnt
	// FieldOOMControl: Events.OOMKill and UnderOOM from v1
	// memory.oom_control (OOMKill stays 0 before kernel 4.13).
	FieldOOMControl
	// FieldPSI: PSI (v2 memory.pressure, kernels with PSI enabled).
	FieldPSI
)

// Group is one cgroup's memory figures.
type Group struct {
	// Workload is what the cgroup path tells: Cgroup (the path, as the
	// kernel prints it), Kind (workload.KindPod, workload.KindContainer or,
	// for Node.Kubepods, workload.KindQoS), PodUID, ContainerID, QoS...
	Workload workload.Workload
	// Have is the set of figures below that are known.
	Have Field
	// UsageBytes is the memory charged to the group now.
	UsageBytes int64
	// LimitBytes is the hard limit; 0 means unlimited ("max", or v1's
	// PAGE_COUNTER_MAX).
	LimitBytes int64
	// HighBytes is the v2 throttling limit memory.high; 0 means "max".
	HighBytes int64
	// InactiveFileBytes is the page cache the kernel reclaims first
	// (inactive_file; total_inactive_file on v1).
	InactiveFileBytes int64
	// WorkingSetBytes is UsageBytes minus InactiveFileBytes, floored at 0:
	// kubelet's (cAdvisor's) working set, what its evictions go by.
	WorkingSetBytes int64
	// Events are the memory event counters: on v2 memory.events (high,
	// max, oom, oom_kill...; hierarchical); on v1 Max is failcnt and OOMKill
	// oom_control's oom_kill, the others stay 0.
	Events cgroupstat.Events
	// UnderOOM is v1's under_oom: the group is stalled in an OOM now.
	UnderOOM bool
	// PSI is the group's memory pressure stall (v2 memory.pressure).
	PSI cgroupstat.PSI
}

// Has tells whether every figure of f is known.
func (g *Group) Has(f Field) bool { return g.Have&f == f }

// Node is the node's memory.
type Node struct {
	// HaveMemInfo: MemTotalBytes and MemAvailableBytes are known.
	HaveMemInfo bool
	// MemTotalBytes and MemAvailableBytes are /proc/meminfo's MemTotal and
	// MemAvailable.
	MemTotalBytes     int64
	MemAvailableBytes int64
	// HavePSI: PSI is known (/proc/pressure/memory exists and reads; it
	// does not on kernels before 4.20 or booted with psi=0).
	HavePSI bool
	// PSI is the node's memory pressure stall.
	PSI cgroupstat.PSI
	// Kubepods is the first kubepods root found, as a group: its limit is
	// where kubelet enforces node allocatable (0 when it does not), its
	// working set what kubelet compares with it. Kubepods.Workload.Cgroup is
	// "" when there is no kubepods root.
	Kubepods Group
}

// Snapshot is one round of samples.
type Snapshot struct {
	// Time is when the round started, as the caller gave it.
	Time time.Time
	// Mode is the cgroup version read.
	Mode cgroupstat.Mode
	// Node holds the node's figures.
	Node Node
	// Groups holds one entry per pod and container cgroup, parents before
	// children, siblings in name order.
	Groups []Group
	// Visited counts the cgroups visited, the kubepods roots and QoS
	// slices included.
	Visited int
	// Truncated is set when the round stopped at Config.MaxGroups.
	Truncated bool
	// Vanished counts the groups removed while they were walked, left out.
	Vanished int
	// Errors counts figures left unknown because their file was malformed
	// or could not be read; Err is the first such error.
	Errors int
	Err    error
}

// reset empties s for a new round, keeping its Groups' room.
func (s *Snapshot) reset(now time.Time, mode cgroupstat.Mode) {
	groups := s.Groups[:0]
	*s = Snapshot{Time: now, Mode: mode, Groups: groups}
}

// fail counts err against the round.
func (s *Snapshot) fail(err error) {
	s.Errors++
	if s.Err == nil {
		s.Err = err
	}
}

// Sampler samples one node's cgroups. It keeps buffers and what it learned
// of the cgroup tree between rounds; it is not safe for concurrent use.
type Sampler struct {
	mode      cgroupstat.Mode
	memDir    string // the memory hierarchy's root directory
	proc      proc.FS
	pressure  string // the node's memory pressure file
	maxGroups int
	roots     []*dirNode
	round     uint64

	buf     []byte       // file contents
	dirBuf  []byte       // directory entries
	scratch [][]*dirNode // children being walked, one slice per depth

	// visitHook, when set, is called with each cgroup path once its
	// directory is open (tests remove groups mid-walk with it).
	visitHook func(cgroup string)
}

// New returns a Sampler for the node whose cgroup mount and /proc cfg
// names. It fails, wrapping ErrNoMemoryController, when the mount has no
// memory hierarchy.
func New(cfg Config) (*Sampler, error) {
	mode, dir, err := cgroupstat.DetectMode(cfg.CgroupRoot)
	if err != nil {
		return nil, fmt.Errorf("sample: %w", err)
	}
	pfs := proc.New(cfg.ProcRoot)
	s := &Sampler{
		mode:      mode,
		memDir:    dir,
		proc:      pfs,
		pressure:  filepath.Join(pfs.Root, "pressure", "memory"),
		maxGroups: cfg.MaxGroups,
		buf:       make([]byte, 8<<10),
		dirBuf:    make([]byte, 8<<10),
	}
	if s.maxGroups <= 0 {
		s.maxGroups = DefaultMaxGroups
	}
	kp := cfg.Kubepods
	if len(kp) == 0 {
		kp = DefaultKubepods
	}
	for _, p := range kp {
		cg := filepath.ToSlash(filepath.Clean("/" + p))
		s.roots = append(s.roots, newDirNode(filepath.Base(cg), cg, filepath.Join(dir, filepath.FromSlash(cg))))
	}
	return s, nil
}

// Mode is the cgroup version the Sampler reads.
func (s *Sampler) Mode() cgroupstat.Mode { return s.mode }

// Sample runs one round into dst, reusing its Groups' room: a caller that
// keeps the previous round (to compute rates) alternates two Snapshots.
// Per-group trouble is counted in dst, never returned; Sample returns an
// error only when it could read nothing at all (the memory hierarchy is
// gone).
func (s *Sampler) Sample(now time.Time, dst *Snapshot) error {
	s.round++
	dst.reset(now, s.mode)
	s.sampleNode(dst)
	found := false
	for _, r := range s.roots {
		if s.walk(r, 0, dst) {
			found = true
		}
	}
	if !found {
		if err := unix.Access(s.memDir, unix.F_OK); err != nil {
			return fmt.Errorf("sample: memory hierarchy %s: %w", s.memDir, err)
		}
	}
	return nil
}

// sampleNode reads the node's meminfo and memory pressure.
func (s *Sampler) sampleNode(dst *Snapshot) {
	if mi, err := s.proc.MemInfo(); err == nil {
		dst.Node.HaveMemInfo = true
		dst.Node.MemTotalBytes, dst.Node.MemAvailableBytes = mi.TotalBytes, mi.AvailableBytes
	} else {
		dst.fail(fmt.Errorf("node meminfo: %w", err))
	}
	b, err := s.readAt(unix.AT_FDCWD, s.pressure)
	switch {
	case err == nil:
		p, perr := cgroupstat.ParsePSI(b)
		if perr != nil {
			dst.fail(fmt.Errorf("%s: %w", s.pressure, perr))
			return
		}
		dst.Node.HavePSI, dst.Node.PSI = true, p
	case absent(err):
	default:
		dst.fail(fmt.Errorf("read %s: %w", s.pressure, err))
	}
}

// errTooLarge is returned by readAt for a file larger than any cgroup
// memory file.
var errTooLarge = fmt.Errorf("%w: file larger than %d bytes", cgroupstat.ErrMalformed, cgroupstat.MaxFileSize)

// readAt reads the file name, relative to the directory dirfd, into the
// Sampler's buffer; the result is valid until the next read.
//
// A read that does not fill the buffer is taken as the end of the file,
// which saves a read returning 0 for every file (a quarter of the system
// calls of a round): the kernel's cgroup files (kernfs seq_file) fill a
// read with all they have, as regular files do up to their end.
func (s *Sampler) readAt(dirfd int, name string) ([]byte, error) {
	fd, err := openat(dirfd, name, unix.O_RDONLY|unix.O_CLOEXEC)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	n := 0
	for {
		if n == len(s.buf) {
			if len(s.buf) >= cgroupstat.MaxFileSize {
				return nil, errTooLarge
			}
			s.buf = append(s.buf, make([]byte, len(s.buf))...)
		}
		m, err := unix.Read(fd, s.buf[n:])
		switch {
		case err == unix.EINTR:
			continue
		case err != nil:
			return nil, err
		}
		n += m
		if n < len(s.buf) {
			return s.buf[:n], nil
		}
	}
}

// absent tells whether err means a file the kernel may leave out: missing,
// or (memory.pressure on kernels before 6.1 booted with psi=0) refusing to
// be read.
func absent(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EOPNOTSUPP)
}

// gone tells whether err means the group's directory was removed: its
// files vanish (ENOENT), or a file opened before reads ENODEV.
func gone(err error) bool {
	return errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ENODEV)
}
