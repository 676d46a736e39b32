package cgroupstat

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// ErrTooManyGroups means a counter scan stopped at its bound; the counters
// it returns are those read before.
var ErrTooManyGroups = errors.New("too many cgroups to scan")

// DefaultMaxGroups bounds the directories one OOMKillCounters scan visits.
const DefaultMaxGroups = 20000

// Counters reads the OOM-kill counters of the cgroups under one cgroup
// mount: cgroup v2 memory.events oom_kill, cgroup v1 memory.oom_control
// oom_kill (kernels >= 4.13). The kernel counts a kill in the victim's
// cgroup and every ancestor on both versions, and keeps counting after its
// OOM report is rate-limited away, so a rise tells which group lost a
// process when the log no longer says.
type Counters struct {
	// Root is the cgroup mount (DefaultRoot when empty).
	Root string
	// Keep, when set, selects the cgroups to read by their path ("/kubepods/
	// burstable/pod<uid>/<id>"); Descend, when set, the directories to walk
	// into. Both see every directory; nil keeps or walks everything.
	Keep    func(cgroup string) bool
	Descend func(cgroup string) bool
	// MaxGroups bounds the directories visited (DefaultMaxGroups when 0).
	MaxGroups int
}

// OOMKills returns the oom_kill counter of every kept cgroup that has one,
// by cgroup path. A group removed while it is walked is left out. Past
// MaxGroups it returns what it read with an error wrapping
// ErrTooManyGroups.
func (c Counters) OOMKills() (map[string]uint64, error) {
	out := map[string]uint64{}
	err := c.walk(func(mode Mode, cg, abs string) {
		// A group whose file cannot be read or parsed is left out: one
		// odd group must not hide the others' counters.
		if n, ok, err := readOOMKill(abs, mode); err == nil && ok {
			out[cg] = n
		}
	})
	if err != nil && !errors.Is(err, ErrTooManyGroups) {
		return nil, err
	}
	return out, err
}

// maxTasks bounds the PIDs one Tasks scan returns.
const maxTasks = 1 << 16

// Tasks returns the processes of every kept cgroup (its cgroup.procs),
// PID to cgroup path, at most 65,536 of them: where each ran while it
// lived, for kills the kernel later names by PID alone. Groups removed
// while they are walked, and unreadable files, are left out.
func (c Counters) Tasks() (map[int]string, error) {
	out := map[int]string{}
	err := c.walk(func(_ Mode, cg, abs string) {
		b, err := os.ReadFile(filepath.Join(abs, "cgroup.procs"))
		if err != nil {
			return
		}
		for _, f := range strings.Fields(string(b)) {
			if len(out) >= maxTasks {
				return
			}
			if pid, err := strconv.Atoi(f); err == nil && pid > 0 {
				out[pid] = cg
			}
		}
	})
	if err != nil && !errors.Is(err, ErrTooManyGroups) {
		return nil, err
	}
	return out, err
}

// walk calls visit for every kept cgroup under the memory hierarchy, in
// path order, at most MaxGroups directories.
func (c Counters) walk(visit func(mode Mode, cg, abs string)) error {
	mode, dir, err := DetectMode(c.Root)
	if err != nil {
		return err
	}
	max := c.MaxGroups
	if max <= 0 {
		max = DefaultMaxGroups
	}
	visited := 0
	var walk func(cg string) error
	walk = func(cg string) error {
		visited++
		if visited > max {
			return fmt.Errorf("%w: more than %d under %s", ErrTooManyGroups, max, dir)
		}
		abs := filepath.Join(dir, filepath.FromSlash(cg))
		if cg != "/" && (c.Keep == nil || c.Keep(cg)) {
			visit(mode, cg, abs)
		}
		if c.Descend != nil && cg != "/" && !c.Descend(cg) {
			return nil
		}
		ents, err := os.ReadDir(abs)
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return fmt.Errorf("scan %s: %w", abs, err)
		}
		names := make([]string, 0, len(ents))
		for _, e := range ents {
			if e.IsDir() {
				names = append(names, e.Name())
			}
		}
		sort.Strings(names)
		for _, n := range names {
			if err := walk(path.Join(cg, n)); err != nil {
				return err
			}
		}
		return nil
	}
	return walk("/")
}

// readOOMKill reads one group's counter; ok is false when the group has no
// such file (the root group, a group just removed).
func readOOMKill(dir string, mode Mode) (uint64, bool, error) {
	name := "memory.events"
	if mode == ModeV1 {
		name = "memory.oom_control"
	}
	f, err := os.Open(filepath.Join(dir, name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, false, nil
		}
		return 0, false, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	if mode == ModeV1 {
		oc, err := ParseOOMControl(f)
		if err != nil {
			return 0, false, fmt.Errorf("%s/%s: %w", dir, name, err)
		}
		return oc.OOMKill, true, nil
	}
	ev, err := ParseEvents(f)
	if err != nil {
		return 0, false, fmt.Errorf("%s/%s: %w", dir, name, err)
	}
	return ev.OOMKill, true, nil
}
