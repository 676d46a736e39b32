package workload

import (
	"bytes"
	"errors"
	"fmt"
	"io"
)

// ErrNoCgroup is returned by ParseProcCgroup when the content names no usable
// cgroup.
var ErrNoCgroup = errors.New("no cgroup in /proc/<pid>/cgroup")

// ParseProcCgroup reads the content of /proc/<pid>/cgroup
// ("hierarchy-ID:controller-list:path" lines) and returns the path of the
// process's memory cgroup, the one the kernel names in OOM reports:
//
//   - the v1 "memory" controller line when there is one: on a hybrid host
//     memory is still accounted in v1, and the "0::" path of the unified
//     hierarchy can differ from it (often it is just "/");
//   - else the cgroup v2 "0::<path>" line;
//   - else the first line's path.
//
// It returns ErrNoCgroup when no line is usable.
func ParseProcCgroup(r io.Reader) (string, error) {
	b, err := io.ReadAll(io.LimitReader(r, maxProcCgroup+1))
	if err != nil {
		return "", fmt.Errorf("read proc cgroup: %w", err)
	}
	if len(b) > maxProcCgroup {
		return "", fmt.Errorf("read proc cgroup: more than %d bytes", maxProcCgroup)
	}
	return ParseProcCgroupBytes(b)
}

// maxProcCgroup bounds what is read of a /proc/<pid>/cgroup: a few hundred
// bytes on any real kernel.
const maxProcCgroup = 1 << 20

// ParseProcCgroupBytes is ParseProcCgroup over the file's content.
func ParseProcCgroupBytes(b []byte) (string, error) {
	p, err := ProcCgroupPath(b)
	return string(p), err
}

// ProcCgroupPath is ParseProcCgroupBytes returning the path as a slice of
// b: it allocates nothing, so that looking up the tasks of a 10,000-task
// OOM report costs little.
func ProcCgroupPath(b []byte) ([]byte, error) {
	var memory, unified, first []byte
	for len(b) > 0 {
		line := b
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			b = nil
		}
		id, rest, ok := bytes.Cut(line, colon)
		if !ok || len(id) == 0 {
			continue
		}
		controllers, p, ok := bytes.Cut(rest, colon)
		if !ok {
			continue
		}
		// On the unified hierarchy the kernel appends " (deleted)" when the
		// task's cgroup was removed, e.g. a zombie whose pod is gone
		// (proc_cgroup_show in kernel/cgroup/cgroup.c).
		p = bytes.TrimSuffix(bytes.TrimRight(p, "\r"), deleted)
		if len(p) == 0 {
			continue
		}
		if first == nil {
			first = p
		}
		if len(id) == 1 && id[0] == '0' && len(controllers) == 0 {
			if unified == nil {
				unified = p
			}
			continue
		}
		if memory == nil && hasController(controllers, "memory") {
			memory = p
		}
	}
	switch {
	case memory != nil:
		return memory, nil
	case unified != nil:
		return unified, nil
	case first != nil:
		return first, nil
	}
	return nil, ErrNoCgroup
}

var (
	colon   = []byte(":")
	deleted = []byte(" (deleted)")
)

func hasController(list []byte, name string) bool {
	for len(list) > 0 {
		var c []byte
		c, list, _ = bytes.Cut(list, comma)
		if string(c) == name {
			return true
		}
	}
	return false
}

var comma = []byte(",")
