package cgroupstat

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// maxFileSize bounds what the parsers read from one cgroup file. The largest
// memory file, memory.stat, is a few KiB on any kernel; a reader that yields
// more is not a cgroup file.
const maxFileSize = 64 << 10

// unlimitedV1 is the smallest value treated as "no limit" in a cgroup v1
// memory.limit_in_bytes. The kernel prints PAGE_COUNTER_MAX pages there,
// which is LONG_MAX rounded down to the page size (9223372036854771712 with
// 4 KiB pages, ...0000 with 64 KiB pages); anything at or above 2^62 bytes
// cannot be a real limit on any machine.
const unlimitedV1 = 1 << 62

// ParseValue parses a single-value cgroup file (memory.max, memory.current,
// memory.limit_in_bytes, memory.oom.group, ...): one decimal integer or the
// word "max", followed by an optional newline. It returns isMax true for
// "max" (v is then 0). Negative numbers are accepted (v1 prints -1 in some
// files). It returns an error wrapping ErrMalformed for anything else.
func ParseValue(r io.Reader) (v int64, isMax bool, err error) {
	b, err := io.ReadAll(io.LimitReader(r, 64))
	if err != nil {
		return 0, false, fmt.Errorf("read value: %w", err)
	}
	s := string(bytes.TrimSpace(b))
	if s == "max" {
		return 0, true, nil
	}
	if s == "" || len(b) == 64 {
		return 0, false, fmt.Errorf("%w: value %q", ErrMalformed, s)
	}
	v, err = strconv.ParseInt(s, 10, 64)
	if err != nil {
		// Values above MaxInt64 do not occur in memory files; the library's
		// parser clamps them, we refuse them so a corrupt fixture shows.
		return 0, false, fmt.Errorf("%w: value %q: %w", ErrMalformed, s, err)
	}
	return v, false, nil
}

// ParseKeyed parses a flat-keyed cgroup file (memory.events, memory.stat,
// memory.oom_control): lines of "key value" with a non-negative decimal
// value. Blank lines are skipped; any other line, a repeated key or more
// than 64 KiB of input is an error wrapping ErrMalformed.
func ParseKeyed(r io.Reader) (map[string]uint64, error) {
	out := make(map[string]uint64, 8)
	sc := bufio.NewScanner(io.LimitReader(r, maxFileSize+1))
	sc.Buffer(make([]byte, 0, 512), maxFileSize+1)
	n := 0
	for sc.Scan() {
		line := sc.Text()
		n += len(line) + 1
		if n > maxFileSize {
			return nil, fmt.Errorf("%w: file larger than %d bytes", ErrMalformed, maxFileSize)
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("%w: line %q", ErrMalformed, line)
		}
		v, err := strconv.ParseUint(f[1], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%w: line %q: %w", ErrMalformed, line, err)
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("%w: key %q repeated", ErrMalformed, f[0])
		}
		out[f[0]] = v
	}
	if err := sc.Err(); err != nil {
		if err == bufio.ErrTooLong {
			return nil, fmt.Errorf("%w: line longer than %d bytes", ErrMalformed, maxFileSize)
		}
		return nil, fmt.Errorf("read keyed file: %w", err)
	}
	return out, nil
}

// ParseEvents parses a cgroup v2 memory.events (or memory.events.local)
// file into Events. Keys it does not know are ignored, as new kernels add
// them.
func ParseEvents(r io.Reader) (Events, error) {
	kv, err := ParseKeyed(r)
	if err != nil {
		return Events{}, err
	}
	return Events{
		Low:          kv["low"],
		High:         kv["high"],
		Max:          kv["max"],
		OOM:          kv["oom"],
		OOMKill:      kv["oom_kill"],
		OOMGroupKill: kv["oom_group_kill"],
	}, nil
}

// OOMControl is what a cgroup v1 memory.oom_control file says.
type OOMControl struct {
	// KillDisable is oom_kill_disable: the OOM killer is off for the group.
	KillDisable bool
	// UnderOOM is under_oom: the group is stalled in an OOM right now
	// (only possible with KillDisable).
	UnderOOM bool
	// OOMKill is oom_kill, the number of processes the OOM killer killed in
	// the group (kernels >= 4.13; 0 before).
	OOMKill uint64
}

// ParseOOMControl parses a cgroup v1 memory.oom_control file.
func ParseOOMControl(r io.Reader) (OOMControl, error) {
	kv, err := ParseKeyed(r)
	if err != nil {
		return OOMControl{}, err
	}
	if _, ok := kv["oom_kill_disable"]; !ok {
		return OOMControl{}, fmt.Errorf("%w: oom_control without oom_kill_disable", ErrMalformed)
	}
	return OOMControl{
		KillDisable: kv["oom_kill_disable"] != 0,
		UnderOOM:    kv["under_oom"] != 0,
		OOMKill:     kv["oom_kill"],
	}, nil
}
