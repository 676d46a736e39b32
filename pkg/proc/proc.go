// Package proc reads what the agent needs from a host's /proc: the boot ID,
// the uptime, the node's memory, and the cgroups of live processes. The
// root is an option so tests point it at fixture trees and a DaemonSet at
// the host's /proc mounted elsewhere.
package proc

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/workload"
)

// ErrMalformed reports a /proc file that does not have the expected form.
var ErrMalformed = errors.New("malformed proc file")

// ErrExited is returned for a process that has exited but is not reaped
// yet (a zombie): the kernel moved it to the root cgroup as it exited,
// which says nothing of where it ran.
var ErrExited = errors.New("process has exited")

// FS reads a /proc tree.
type FS struct {
	Root string
	// CgroupRoot, when set, is the host's cgroup mount (/sys/fs/cgroup):
	// CgroupsUnder reads its cgroup.procs files before /proc/<pid>/cgroup.
	CgroupRoot string
	// MaxCgroupDirs and MaxCgroupBytes bound one walk of CgroupsUnder
	// (DefaultMaxCgroupDirs and DefaultMaxCgroupBytes when 0).
	MaxCgroupDirs  int
	MaxCgroupBytes int64
}

// New returns an FS rooted at root ("/proc" when empty).
func New(root string) FS {
	if root == "" {
		root = "/proc"
	}
	return FS{Root: root}
}

// BootID returns the kernel's boot ID (sys/kernel/random/boot_id).
func (fs FS) BootID() (string, error) {
	b, err := os.ReadFile(filepath.Join(fs.Root, "sys/kernel/random/boot_id"))
	if err != nil {
		return "", fmt.Errorf("read boot id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if len(id) < 8 || strings.ContainsAny(id, " /\n") {
		return "", fmt.Errorf("boot id %q: %w", id, ErrMalformed)
	}
	return id, nil
}

// Uptime returns the time since boot from uptime (first field).
func (fs FS) Uptime() (time.Duration, error) {
	b, err := os.ReadFile(filepath.Join(fs.Root, "uptime"))
	if err != nil {
		return 0, fmt.Errorf("read uptime: %w", err)
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0, fmt.Errorf("uptime: %w", ErrMalformed)
	}
	s, err := strconv.ParseFloat(f[0], 64)
	if err != nil {
		return 0, fmt.Errorf("uptime: %w", ErrMalformed)
	}
	return time.Duration(s * float64(time.Second)), nil
}

// MemInfo is the node's memory from meminfo.
type MemInfo struct {
	TotalBytes     int64
	AvailableBytes int64
}

// MemInfo reads meminfo.
func (fs FS) MemInfo() (MemInfo, error) {
	f, err := os.Open(filepath.Join(fs.Root, "meminfo"))
	if err != nil {
		return MemInfo{}, fmt.Errorf("read meminfo: %w", err)
	}
	defer f.Close()
	return ParseMemInfo(f)
}

// ParseMemInfo reads MemTotal and MemAvailable from meminfo content.
func ParseMemInfo(r io.Reader) (MemInfo, error) {
	var m MemInfo
	var seen int
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Bytes()
		var dst *int64
		switch {
		case bytes.HasPrefix(line, []byte("MemTotal:")):
			dst = &m.TotalBytes
		case bytes.HasPrefix(line, []byte("MemAvailable:")):
			dst = &m.AvailableBytes
		default:
			continue
		}
		f := strings.Fields(string(line))
		if len(f) < 2 {
			return MemInfo{}, fmt.Errorf("meminfo line %q: %w", line, ErrMalformed)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			return MemInfo{}, fmt.Errorf("meminfo line %q: %w", line, ErrMalformed)
		}
		if len(f) > 2 && f[2] == "kB" {
			n *= 1024
		}
		*dst = n
		seen++
	}
	if err := sc.Err(); err != nil {
		return MemInfo{}, err
	}
	if m.TotalBytes == 0 {
		return MemInfo{}, fmt.Errorf("meminfo without MemTotal: %w", ErrMalformed)
	}
	return m, nil
}

// Cgroup returns the cgroup path of a live process.
func (fs FS) Cgroup(pid int) (string, error) {
	var buf [4096]byte
	p, err := fs.cgroup(pid, buf[:])
	return string(p), err
}

// cgroup reads /proc/<pid>/cgroup into buf and returns the path, a slice
// of buf (or of a larger buffer when the file does not fit).
func (fs FS) cgroup(pid int, buf []byte) ([]byte, error) {
	p, err := fs.readCgroup(pid, buf)
	if err == nil && string(p) == "/" && fs.exited(pid) {
		// An exiting task is moved to the root cgroup (seen on cgroup v1,
		// kernel 6.1): the trigger of an OOM kill read just after it was
		// killed itself reads as "/", which is not where it ran.
		return nil, fmt.Errorf("pid %d: %w", pid, ErrExited)
	}
	return p, err
}

func (fs FS) readCgroup(pid int, buf []byte) ([]byte, error) {
	f, err := os.Open(fs.Root + "/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, buf)
	switch {
	case err == io.ErrUnexpectedEOF || err == io.EOF:
		return workload.ProcCgroupPath(buf[:n])
	case err != nil:
		return nil, err
	}
	// Larger than buf: read the rest the slow way.
	p, err := workload.ParseProcCgroup(io.MultiReader(bytes.NewReader(buf[:n]), f))
	return []byte(p), err
}

// exited tells whether pid is a zombie (or dead), or gone: its state in
// /proc/<pid>/stat, the field after the comm's closing parenthesis.
func (fs FS) exited(pid int) bool {
	b, err := os.ReadFile(fs.Root + "/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 || i+2 >= len(b) {
		return false
	}
	switch b[i+2] {
	case 'Z', 'X', 'x':
		return true
	}
	return false
}

// Cgroups returns the cgroups of those pids that are alive and readable.
// Tasks of one workload share one string: a 10,000-task OOM report asks
// for thousands of PIDs in a handful of cgroups.
func (fs FS) Cgroups(pids []int) map[int]string {
	out := make(map[int]string, len(pids))
	fs.cgroupsInto(out, pids, make([]byte, 4096))
	return out
}

// cgroupsInto adds to out the cgroups of those pids that out lacks, from
// /proc/<pid>/cgroup; buf is the read buffer.
func (fs FS) cgroupsInto(out map[int]string, pids []int, buf []byte) {
	seen := map[string]string{}
	for _, pid := range pids {
		if _, ok := out[pid]; ok {
			continue
		}
		p, err := fs.cgroup(pid, buf)
		if err != nil || len(p) == 0 {
			continue
		}
		cg, ok := seen[string(p)]
		if !ok {
			cg = string(p)
			seen[cg] = cg
		}
		out[pid] = cg
	}
}
