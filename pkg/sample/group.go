package sample

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
)

// Memory files of a group, by cgroup version.
const (
	fileCurrentV2 = "memory.current"
	fileMaxV2     = "memory.max"
	fileHighV2    = "memory.high"
	fileEventsV2  = "memory.events"
	filePressure  = "memory.pressure"
	fileStat      = "memory.stat"
	fileUsageV1   = "memory.usage_in_bytes"
	fileLimitV1   = "memory.limit_in_bytes"
	fileFailcntV1 = "memory.failcnt"
	fileOOMCtlV1  = "memory.oom_control"
)

// errNoInactiveFile is counted for a memory.stat without the inactive file
// figure.
var errNoInactiveFile = fmt.Errorf("%w: memory.stat without inactive_file", cgroupstat.ErrMalformed)

// readGroup fills g with the figures of n's group, open as fd. It returns
// false when the group was removed meanwhile.
func (s *Sampler) readGroup(fd int, n *dirNode, g *Group, dst *Snapshot) bool {
	g.Workload = n.wl
	r := groupReader{s: s, fd: fd, n: n, g: g, dst: dst}
	v1 := s.mode == cgroupstat.ModeV1
	if v1 {
		r.value(fileUsageV1, FieldUsage, &g.UsageBytes)
	} else {
		r.value(fileCurrentV2, FieldUsage, &g.UsageBytes)
	}
	if r.gone {
		return false
	}
	if v1 {
		if r.value(fileLimitV1, FieldLimit, &g.LimitBytes) {
			g.LimitBytes = cgroupstat.V1Limit(g.LimitBytes)
		}
		var failcnt int64
		if r.value(fileFailcntV1, FieldFailcnt, &failcnt) {
			g.Events.Max = uint64(max(failcnt, 0))
		}
		if b := r.read(fileOOMCtlV1); b != nil {
			if oc, err := cgroupstat.ParseOOMControlBytes(b); err != nil {
				r.malformed(fileOOMCtlV1, err)
			} else {
				g.Events.OOMKill, g.UnderOOM = oc.OOMKill, oc.UnderOOM
				g.Have |= FieldOOMControl
			}
		}
	} else {
		r.value(fileMaxV2, FieldLimit, &g.LimitBytes)
		r.value(fileHighV2, FieldHigh, &g.HighBytes)
		if b := r.read(fileEventsV2); b != nil {
			if ev, err := cgroupstat.ParseEventsBytes(b); err != nil {
				r.malformed(fileEventsV2, err)
			} else {
				g.Events, g.Have = ev, g.Have|FieldEvents
			}
		}
		if b := r.read(filePressure); b != nil {
			if p, err := cgroupstat.ParsePSI(b); err != nil {
				r.malformed(filePressure, err)
			} else {
				g.PSI, g.Have = p, g.Have|FieldPSI
			}
		}
	}
	r.inactiveFile(v1)
	if r.gone {
		return false
	}
	if g.Has(FieldUsage | FieldInactiveFile) {
		g.WorkingSetBytes = max(g.UsageBytes-g.InactiveFileBytes, 0)
		g.Have |= FieldWorkingSet
	}
	return true
}

// groupReader reads the files of one group, noting when the group is gone.
type groupReader struct {
	s    *Sampler
	fd   int
	n    *dirNode
	g    *Group
	dst  *Snapshot
	gone bool
}

// read returns the content of the group's file name, valid until the next
// read; nil when the file is absent, unreadable (counted) or the group is
// gone.
func (r *groupReader) read(name string) []byte {
	if r.gone {
		return nil
	}
	b, err := r.s.readAt(r.fd, name)
	switch {
	case err == nil:
		return b
	case errors.Is(err, unix.ENODEV):
		r.gone = true
	case errors.Is(err, unix.ENOENT):
		// A missing file is a group removed since its directory was opened,
		// or a file this kernel does not have.
		if unix.Access(r.n.abs, unix.F_OK) != nil {
			r.gone = true
		}
	case absent(err):
	default:
		r.dst.fail(fmt.Errorf("read %s/%s: %w", r.n.abs, name, err))
	}
	return nil
}

// value reads a single-value file into *dst, 0 for "max", and adds f to
// the group's known figures; it reports whether it did.
func (r *groupReader) value(name string, f Field, dst *int64) bool {
	b := r.read(name)
	if b == nil {
		return false
	}
	v, _, err := cgroupstat.ParseValueBytes(b)
	if err != nil {
		r.malformed(name, err)
		return false
	}
	*dst = v
	r.g.Have |= f
	return true
}

// inactiveFile reads the inactive file figure from memory.stat: the
// hierarchical total_inactive_file on v1, as kubelet does.
func (r *groupReader) inactiveFile(v1 bool) {
	b := r.read(fileStat)
	if b == nil {
		return
	}
	key := "inactive_file"
	if v1 {
		key = "total_inactive_file"
	}
	var (
		v     uint64
		found bool
	)
	err := cgroupstat.ScanKeyed(b, func(k []byte, n uint64) {
		if string(k) == key {
			v, found = n, true
		}
	})
	switch {
	case err != nil:
		r.malformed(fileStat, err)
	case !found:
		r.malformed(fileStat, errNoInactiveFile)
	default:
		r.g.InactiveFileBytes = int64(min(v, 1<<63-1))
		r.g.Have |= FieldInactiveFile
	}
}

// malformed counts a file whose content the parser refused.
func (r *groupReader) malformed(name string, err error) {
	r.dst.fail(fmt.Errorf("%s/%s: %w", r.n.abs, name, err))
}

// openat opens name relative to the directory dirfd (or, absolute, as is).
func openat(dirfd int, name string, flags int) (int, error) {
	for {
		fd, err := unix.Openat(dirfd, name, flags, 0)
		if err != unix.EINTR {
			return fd, err
		}
	}
}
