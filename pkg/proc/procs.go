package proc

import (
	"io"
	"os"
	"slices"
	"strconv"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
)

// Bounds of one walk of a cgroup subtree (CgroupsUnder).
const (
	// DefaultMaxCgroupDirs bounds the cgroup directories one walk visits.
	DefaultMaxCgroupDirs = 4096
	// DefaultMaxCgroupBytes bounds the cgroup.procs bytes one walk reads.
	DefaultMaxCgroupBytes = 16 << 20
	// maxProcsFile bounds what is read of one cgroup.procs: at most 8 bytes
	// a PID, 131,072 PIDs.
	maxProcsFile = 1 << 20
	// maxCgroupDepth bounds how deep below the walked cgroup a walk goes;
	// a pod's container is 3 to 4 levels below the cgroup root.
	maxCgroupDepth = 32
	// minNodeWalk is the fewest PIDs for which a whole hierarchy is walked:
	// for a few, reading /proc/<pid>/cgroup costs less than a node's
	// cgroup.procs files.
	minNodeWalk = 64
	// A walk's answers are checked against /proc/<pid>/cgroup for
	// verifyWant PIDs, trying at most verifyTries (some may have exited).
	verifyWant  = 2
	verifyTries = 8
	// maxPIDDigits bounds a cgroup.procs line: a PID is at most 4194304
	// (PID_MAX_LIMIT); a longer number is not one.
	maxPIDDigits = 10
)

// CgroupsUnder is Cgroups for PIDs that all run in the cgroup under or
// below it: the limited cgroup of a memory cgroup OOM report, whose task
// dump lists that subtree's tasks; "" or "/" for anywhere (a node-wide
// report).
//
// When CgroupRoot is set it reads the cgroup.procs files of that subtree
// of the memory hierarchy mounted there (a few reads) before
// /proc/<pid>/cgroup (one read per PID): opening /proc/<pid>/cgroup makes
// the kernel build procfs dentries and inodes, ~1.8 KB of slab per PID
// charged to the reader's memory cgroup, 17.6 MiB for a 10,000-task report
// (BENCHMARKS.md). The paths a walk finds are those of the directories
// under the mount, which are the paths /proc/<pid>/cgroup names (the
// memory controller's hierarchy, as workload.ProcCgroupPath chooses).
//
// The PIDs the walk does not find are read from /proc as Cgroups does:
// threads (cgroup.procs lists thread group leaders), processes in the root
// cgroup (an exiting task reads as "/"), processes that moved or exited,
// those past the walk's bounds (MaxCgroupDirs, MaxCgroupBytes, 32 levels),
// and those listed by two cgroups. Every PID is read from /proc when there
// is no walk: fewer than 64 PIDs anywhere; the agent in a PID namespace
// other than the /proc tree's (a pod without hostPID: the kernel writes
// cgroup.procs in the reader's namespace, 0 for the processes it cannot
// see); or the walk's answers for the first PIDs it found disagree with
// /proc (the mount is not the hierarchy /proc's paths are relative to:
// another mount, a cgroup namespace).
func (fs FS) CgroupsUnder(under string, pids []int) map[int]string {
	out := make(map[int]string, len(pids))
	buf := make([]byte, 4096)
	if fs.CgroupRoot != "" && len(pids) > 0 {
		if under == "" {
			under = "/"
		}
		if (under != "/" || len(pids) >= minNodeWalk) && fs.ownPIDNamespace() {
			fs.walkProcs(under, pids, out)
			if !fs.agrees(out, pids, buf) {
				clear(out)
			}
		}
	}
	fs.cgroupsInto(out, pids, buf)
	return out
}

// ownPIDNamespace tells whether the /proc tree is of the reader's own PID
// namespace: its "self" names the reader's PID. A container's PID in the
// host's /proc (mounted at /host/proc) is another number.
func (fs FS) ownPIDNamespace() bool {
	self, err := os.Readlink(fs.Root + "/self")
	return err == nil && self == strconv.Itoa(os.Getpid())
}

// procsWalk is one walk of a cgroup subtree's cgroup.procs files.
type procsWalk struct {
	want  []int // the PIDs asked for, sorted, without duplicates
	out   map[int]string
	twice map[int]bool // PIDs listed by two cgroups
	found int
	dirs  int
	bytes int64
	max   struct {
		dirs  int
		bytes int64
	}
	buf  []byte
	stop bool
}

// walkProcs adds to out the cgroup of every PID of pids that a cgroup.procs
// file of the subtree under lists (under is a cgroup path such as
// "/kubepods/burstable/pod<uid>", "/" for the whole hierarchy).
func (fs FS) walkProcs(under string, pids []int, out map[int]string) {
	under, ok := cleanCgroup(under)
	if !ok {
		return
	}
	_, dir, err := cgroupstat.DetectMode(fs.CgroupRoot)
	if err != nil {
		return
	}
	w := &procsWalk{want: slices.Clone(pids), out: out, twice: map[int]bool{}, buf: make([]byte, 8192)}
	slices.Sort(w.want)
	w.want = slices.Compact(w.want)
	w.max.dirs, w.max.bytes = fs.MaxCgroupDirs, fs.MaxCgroupBytes
	if w.max.dirs <= 0 {
		w.max.dirs = DefaultMaxCgroupDirs
	}
	if w.max.bytes <= 0 {
		w.max.bytes = DefaultMaxCgroupBytes
	}
	abs := dir
	if under != "/" {
		abs += under
	}
	w.dir(abs, under, 0)
	for pid := range w.twice {
		delete(out, pid)
	}
}

// cleanCgroup checks a cgroup path as the kernel prints it: absolute, with
// no empty, "." or ".." element (which could leave the mount).
func cleanCgroup(p string) (string, bool) {
	if p == "/" {
		return p, true
	}
	if len(p) < 2 || p[0] != '/' || p[len(p)-1] == '/' {
		return "", false
	}
	for i, start := 1, 1; i <= len(p); i++ {
		if i < len(p) && p[i] != '/' {
			continue
		}
		switch p[start:i] {
		case "", ".", "..":
			return "", false
		}
		start = i + 1
	}
	return p, true
}

// dir reads the cgroup.procs of the cgroup cg, at abs, then walks its
// children, until a bound is reached or every PID is found.
func (w *procsWalk) dir(abs, cg string, depth int) {
	if w.stop {
		return
	}
	if w.dirs >= w.max.dirs {
		w.stop = true
		return
	}
	w.dirs++
	// The root cgroup's processes are left to /proc/<pid>/cgroup, which
	// tells an exiting task (moved to the root) from one that runs there.
	if cg != "/" {
		w.read(abs, cg)
	}
	if w.stop || depth >= maxCgroupDepth {
		return
	}
	ents, err := os.ReadDir(abs)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		child := cg + "/" + e.Name()
		if cg == "/" {
			child = "/" + e.Name()
		}
		w.dir(abs+"/"+e.Name(), child, depth+1)
		if w.stop {
			return
		}
	}
}

// read takes the PIDs asked for from one cgroup.procs. An unreadable file
// (a cgroup removed meanwhile, a threaded cgroup's) adds nothing.
func (w *procsWalk) read(abs, cg string) {
	f, err := os.Open(abs + "/cgroup.procs")
	if err != nil {
		return
	}
	defer f.Close()
	limit := min(maxProcsFile, w.max.bytes-w.bytes)
	n, _ := scanPIDs(io.LimitReader(f, limit), w.buf, func(pid int) {
		if _, ok := slices.BinarySearch(w.want, pid); !ok {
			return
		}
		if prev, ok := w.out[pid]; ok {
			if prev != cg {
				w.twice[pid] = true
			}
			return
		}
		w.out[pid] = cg
		w.found++
	})
	w.bytes += n
	if w.bytes >= w.max.bytes || w.found == len(w.want) {
		w.stop = true
	}
}

// agrees checks a walk's answers against /proc/<pid>/cgroup for the first
// PIDs of pids it found: false when one differs, or when none could be
// read (nothing says the mount is the hierarchy /proc names).
func (fs FS) agrees(found map[int]string, pids []int, buf []byte) bool {
	if len(found) == 0 {
		return true
	}
	checked, tries := 0, 0
	for _, pid := range pids {
		cg, ok := found[pid]
		if !ok {
			continue
		}
		if tries == verifyTries {
			break
		}
		tries++
		p, err := fs.cgroup(pid, buf)
		if err != nil {
			continue
		}
		if string(p) != cg {
			return false
		}
		if checked++; checked == verifyWant {
			break
		}
	}
	return checked > 0
}

// scanPIDs reads cgroup.procs content (one decimal PID a line) from r
// through buf and calls fn for every line that is a positive number;
// other lines, and a last line without its newline (content cut short),
// are skipped. It returns the bytes read, and the read error other than
// io.EOF.
func scanPIDs(r io.Reader, buf []byte, fn func(pid int)) (int64, error) {
	if len(buf) == 0 {
		buf = make([]byte, 512)
	}
	var total int64
	n, digits, bad := 0, 0, false
	for {
		k, err := r.Read(buf)
		total += int64(k)
		for _, c := range buf[:k] {
			switch {
			case c == '\n':
				if !bad && digits > 0 && n > 0 {
					fn(n)
				}
				n, digits, bad = 0, 0, false
			case bad:
			case c >= '0' && c <= '9' && digits < maxPIDDigits:
				n = n*10 + int(c-'0')
				digits++
			default:
				bad = true
			}
		}
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, err
		}
	}
}
