package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// memcg is a memory cgroup the footprint hook runs the agent in, so that
// it reads what a Kubernetes memory limit sees: the cgroup's usage, which
// counts the page cache the agent brought in (its own binary's pages among
// them) besides its anonymous memory.
type memcg struct {
	dir string
	v2  bool
}

// memcgLimit bounds the agent's cgroup: the machine is shared.
const memcgLimit = 256 << 20

// newMemcg creates the memory cgroup name under the cgroup2 mount at root
// when it has the memory controller, else under the cgroup v1 memory
// controller's mount, with a limit of memcgLimit.
func newMemcg(root, name string) (*memcg, error) {
	if b, err := os.ReadFile(filepath.Join(root, "cgroup.controllers")); err == nil {
		if !strings.Contains(" "+string(bytes.TrimSpace(b))+" ", " memory ") {
			return nil, errors.New("cgroup2 without the memory controller")
		}
		// The root's children get the controller only when the root hands
		// it down; failing here shows in the mkdir's files below.
		_ = os.WriteFile(filepath.Join(root, "cgroup.subtree_control"), []byte("+memory"), 0)
		c := &memcg{dir: filepath.Join(root, name), v2: true}
		if err := os.Mkdir(c.dir, 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(filepath.Join(c.dir, "memory.max"), []byte(strconv.Itoa(memcgLimit)), 0); err != nil {
			_ = c.remove()
			return nil, err
		}
		return c, nil
	}
	c := &memcg{dir: filepath.Join(root, "memory", name)}
	if err := os.Mkdir(c.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(c.dir, "memory.limit_in_bytes"), []byte(strconv.Itoa(memcgLimit)), 0); err != nil {
		_ = c.remove()
		return nil, err
	}
	return c, nil
}

// version names the cgroup interface and its usage file, for the rows.
func (c *memcg) version() string {
	if c.v2 {
		return "cgroup2 memory.current"
	}
	return "cgroup v1 memory.usage_in_bytes"
}

// wrap returns the command that runs bin with args inside the cgroup from
// its first instruction: a shell joins the cgroup and execs bin, so the
// PID is the same and every page the agent faults in is charged there.
func (c *memcg) wrap(bin string, args ...string) (string, []string) {
	return "sh", append([]string{"-c", `echo $$ > "$0" && exec "$@"`, filepath.Join(c.dir, "cgroup.procs"), bin}, args...)
}

// memcgUsage is a cgroup's memory, in bytes.
type memcgUsage struct {
	// Usage is memory.current (v2) or memory.usage_in_bytes (v1): what a
	// limit is compared with.
	Usage int64
	// Peak is memory.peak or memory.max_usage_in_bytes (0 when the kernel
	// has neither).
	Peak int64
	// File is the page cache charged to the cgroup, Anon its anonymous
	// memory, InactiveFile the part of File the kernel would reclaim first.
	File, Anon, InactiveFile int64
}

// WorkingSet is the usage less the inactive page cache: what kubelet and
// `kubectl top` call the container's working set, and what kubelet's
// evictions are decided on.
func (u memcgUsage) WorkingSet() int64 { return max(u.Usage-u.InactiveFile, 0) }

// read reads the cgroup's usage now.
func (c *memcg) read() (memcgUsage, error) {
	usageFile, peakFile, fileKey, anonKey := "memory.usage_in_bytes", "memory.max_usage_in_bytes", "cache", "rss"
	if c.v2 {
		usageFile, peakFile, fileKey, anonKey = "memory.current", "memory.peak", "file", "anon"
	}
	var u memcgUsage
	b, err := os.ReadFile(filepath.Join(c.dir, usageFile))
	if err != nil {
		return u, err
	}
	if u.Usage, err = strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64); err != nil {
		return u, fmt.Errorf("%s: %w", usageFile, err)
	}
	if b, err := os.ReadFile(filepath.Join(c.dir, peakFile)); err == nil {
		u.Peak, _ = strconv.ParseInt(string(bytes.TrimSpace(b)), 10, 64)
	}
	b, err = os.ReadFile(filepath.Join(c.dir, "memory.stat"))
	if err != nil {
		return u, err
	}
	st, err := parseMemoryStat(bytes.NewReader(b))
	if err != nil {
		return u, err
	}
	u.File, u.Anon, u.InactiveFile = st[fileKey], st[anonKey], st["inactive_file"]
	return u, nil
}

// remove removes the cgroup, once no process is left in it.
func (c *memcg) remove() error { return os.Remove(c.dir) }

// parseMemoryStat reads a memory.stat file (v1 or v2): one "key value"
// pair a line.
func parseMemoryStat(r *bytes.Reader) (map[string]int64, error) {
	out := map[string]int64{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			return nil, fmt.Errorf("memory.stat line %q", sc.Text())
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("memory.stat line %q: %w", sc.Text(), err)
		}
		out[k] = n
	}
	return out, sc.Err()
}

// evictPageCache drops a file's pages from the page cache (they must be
// clean), so that the next process to read them is charged for them, as a
// container started on a node that never ran the image is.
func evictPageCache(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return err
	}
	return unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
}

// procMemory reads a process's memory figures from /proc/PID/status, in
// kB: VmRSS, VmHWM, RssAnon, RssFile and RssShmem.
func procMemory(pid int) (map[string]int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil, err
	}
	return parseStatusMemory(b), nil
}

// parseStatusMemory picks the memory lines of a /proc/PID/status.
func parseStatusMemory(b []byte) map[string]int64 {
	out := map[string]int64{}
	for _, l := range strings.Split(string(b), "\n") {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		switch k {
		case "VmRSS", "VmHWM", "RssAnon", "RssFile", "RssShmem":
			if f := strings.Fields(v); len(f) > 0 {
				out[k], _ = strconv.ParseInt(f[0], 10, 64)
			}
		}
	}
	return out
}
