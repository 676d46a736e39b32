package workload

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
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
	var memory, unified, first string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		id, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok || id == "" {
			continue
		}
		controllers, p, ok := strings.Cut(rest, ":")
		if !ok {
			continue
		}
		// On the unified hierarchy the kernel appends " (deleted)" when the
		// task's cgroup was removed, e.g. a zombie whose pod is gone
		// (proc_cgroup_show in kernel/cgroup/cgroup.c).
		p = strings.TrimSuffix(strings.TrimRight(p, "\r"), " (deleted)")
		if p == "" {
			continue
		}
		if first == "" {
			first = p
		}
		if id == "0" && controllers == "" {
			if unified == "" {
				unified = p
			}
			continue
		}
		if memory == "" && hasController(controllers, "memory") {
			memory = p
		}
	}
	if err := sc.Err(); err != nil {
		return "", fmt.Errorf("read proc cgroup: %w", err)
	}
	switch {
	case memory != "":
		return memory, nil
	case unified != "":
		return unified, nil
	case first != "":
		return first, nil
	}
	return "", ErrNoCgroup
}

func hasController(list, name string) bool {
	for list != "" {
		var c string
		c, list, _ = strings.Cut(list, ",")
		if c == name {
			return true
		}
	}
	return false
}
