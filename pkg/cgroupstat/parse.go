package cgroupstat

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// MaxFileSize bounds what the parsers read from one cgroup file. The largest
// memory file, memory.stat, is a few KiB on any kernel; a reader that yields
// more is not a cgroup file. Callers that read files into their own buffers
// for the []byte parsers need no more room.
const MaxFileSize = 64 << 10

// maxValueSize bounds a single-value file: "max" or a 64-bit integer and a
// newline fit in far less.
const maxValueSize = 64

// unlimitedV1 is the smallest value treated as "no limit" in a cgroup v1
// memory.limit_in_bytes. The kernel prints PAGE_COUNTER_MAX pages there,
// which is LONG_MAX rounded down to the page size (9223372036854771712 with
// 4 KiB pages, ...0000 with 64 KiB pages); anything at or above 2^62 bytes
// cannot be a real limit on any machine.
const unlimitedV1 = 1 << 62

// V1Limit maps a cgroup v1 memory.limit_in_bytes value to a limit in bytes,
// 0 for "unlimited" (PAGE_COUNTER_MAX pages, or anything at or above 2^62
// bytes) and for a negative value.
func V1Limit(v int64) int64 {
	if v < 0 || v >= unlimitedV1 {
		return 0
	}
	return v
}

// ParseValue parses a single-value cgroup file (memory.max, memory.current,
// memory.limit_in_bytes, memory.oom.group, ...): one decimal integer or the
// word "max", followed by an optional newline. It returns isMax true for
// "max" (v is then 0). Negative numbers are accepted (v1 prints -1 in some
// files). It returns an error wrapping ErrMalformed for anything else.
func ParseValue(r io.Reader) (v int64, isMax bool, err error) {
	var buf [maxValueSize]byte
	n, err := io.ReadFull(r, buf[:])
	if err != nil && err != io.EOF && err != io.ErrUnexpectedEOF {
		return 0, false, fmt.Errorf("read value: %w", err)
	}
	return ParseValueBytes(buf[:n])
}

// ParseValueBytes is ParseValue over the file's content; it does not
// allocate unless it fails.
func ParseValueBytes(b []byte) (v int64, isMax bool, err error) {
	s := bytes.TrimSpace(b)
	if string(s) == "max" {
		return 0, true, nil
	}
	if len(s) == 0 || len(b) >= maxValueSize {
		return 0, false, fmt.Errorf("%w: value %q", ErrMalformed, s)
	}
	v, err = strconv.ParseInt(string(s), 10, 64)
	if err != nil {
		// Values above MaxInt64 do not occur in memory files; the library's
		// parser clamps them, we refuse them so a corrupt fixture shows.
		return 0, false, fmt.Errorf("%w: value %q: %w", ErrMalformed, s, err)
	}
	return v, false, nil
}

// readBounded reads all of r, at most MaxFileSize bytes; more is an error
// wrapping ErrMalformed.
func readBounded(r io.Reader) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, MaxFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("read keyed file: %w", err)
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("%w: file larger than %d bytes", ErrMalformed, MaxFileSize)
	}
	return b, nil
}

// parseReader reads all of r, bounded, and parses it with parse.
func parseReader[T any](r io.Reader, parse func([]byte) (T, error)) (T, error) {
	b, err := readBounded(r)
	if err != nil {
		var zero T
		return zero, err
	}
	return parse(b)
}

// ParseKeyed parses a flat-keyed cgroup file (memory.events, memory.stat,
// memory.oom_control): lines of "key value" with a non-negative decimal
// value. Blank lines are skipped; any other line, a repeated key or more
// than 64 KiB of input is an error wrapping ErrMalformed.
func ParseKeyed(r io.Reader) (map[string]uint64, error) {
	b, err := readBounded(r)
	if err != nil {
		return nil, err
	}
	out := make(map[string]uint64, 8)
	var dup []byte
	err = ScanKeyed(b, func(k []byte, v uint64) {
		if _, ok := out[string(k)]; ok && dup == nil {
			dup = k
		}
		out[string(k)] = v
	})
	if err != nil {
		return nil, err
	}
	if dup != nil {
		return nil, fmt.Errorf("%w: key %q repeated", ErrMalformed, dup)
	}
	return out, nil
}

// ScanKeyed calls fn for every "key value" line of a flat-keyed cgroup
// file's content, in order, with the same rules as ParseKeyed except that
// repeated keys are passed on. key is a slice of b. It returns an error
// wrapping ErrMalformed at the first bad line (fn has then seen the lines
// before it); it does not allocate unless it fails.
func ScanKeyed(b []byte, fn func(key []byte, v uint64)) error {
	if len(b) > MaxFileSize {
		return fmt.Errorf("%w: file larger than %d bytes", ErrMalformed, MaxFileSize)
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, newline)
		key, rest := nextField(line)
		if key == nil {
			continue
		}
		val, rest := nextField(rest)
		if extra, _ := nextField(rest); val == nil || extra != nil {
			return fmt.Errorf("%w: line %q", ErrMalformed, line)
		}
		v, err := strconv.ParseUint(string(val), 10, 64)
		if err != nil {
			return fmt.Errorf("%w: line %q: %w", ErrMalformed, line, err)
		}
		fn(key, v)
	}
	return nil
}

var newline = []byte{'\n'}

// nextField returns the first blank-separated field of b (nil when there is
// none) and what follows it.
func nextField(b []byte) (field, rest []byte) {
	i := 0
	for i < len(b) && isBlank(b[i]) {
		i++
	}
	j := i
	for j < len(b) && !isBlank(b[j]) {
		j++
	}
	if i == j {
		return nil, nil
	}
	return b[i:j], b[j:]
}

// isBlank is what strings.Fields splits on within one line of a cgroup file.
func isBlank(c byte) bool {
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f'
}

// ParseEvents parses a cgroup v2 memory.events (or memory.events.local)
// file into Events. Keys it does not know are ignored, as new kernels add
// them.
func ParseEvents(r io.Reader) (Events, error) {
	return parseReader(r, ParseEventsBytes)
}

// ParseEventsBytes is ParseEvents over the file's content; it does not
// allocate unless it fails. A repeated key is an error, as in ParseKeyed.
func ParseEventsBytes(b []byte) (Events, error) {
	var (
		e    Events
		seen uint8
		dup  []byte
	)
	err := ScanKeyed(b, func(k []byte, v uint64) {
		var dst *uint64
		var bit uint8
		switch string(k) {
		case "low":
			dst, bit = &e.Low, 1
		case "high":
			dst, bit = &e.High, 2
		case "max":
			dst, bit = &e.Max, 4
		case "oom":
			dst, bit = &e.OOM, 8
		case "oom_kill":
			dst, bit = &e.OOMKill, 16
		case "oom_group_kill":
			dst, bit = &e.OOMGroupKill, 32
		default:
			return
		}
		if seen&bit != 0 && dup == nil {
			dup = k
		}
		seen |= bit
		*dst = v
	})
	if err != nil {
		return Events{}, err
	}
	if dup != nil {
		return Events{}, fmt.Errorf("%w: key %q repeated", ErrMalformed, dup)
	}
	return e, nil
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
	return parseReader(r, ParseOOMControlBytes)
}

// ParseOOMControlBytes is ParseOOMControl over the file's content; it does
// not allocate unless it fails.
func ParseOOMControlBytes(b []byte) (OOMControl, error) {
	var (
		oc      OOMControl
		hasKill bool
	)
	err := ScanKeyed(b, func(k []byte, v uint64) {
		switch string(k) {
		case "oom_kill_disable":
			oc.KillDisable, hasKill = v != 0, true
		case "under_oom":
			oc.UnderOOM = v != 0
		case "oom_kill":
			oc.OOMKill = v
		}
	})
	if err != nil {
		return OOMControl{}, err
	}
	if !hasKill {
		return OOMControl{}, fmt.Errorf("%w: oom_control without oom_kill_disable", ErrMalformed)
	}
	return oc, nil
}

// PSILine is one line of a pressure stall file: the share of wall time in
// which some (or, for Full, all non-idle) tasks stalled waiting for memory,
// in percent averaged over 10, 60 and 300 seconds, and the total stall
// time in microseconds since boot (or since the cgroup was made).
type PSILine struct {
	Avg10  float64 `json:"avg10"`
	Avg60  float64 `json:"avg60"`
	Avg300 float64 `json:"avg300"`
	Total  uint64  `json:"total_us"`
}

// PSI is what a memory pressure stall file says: a cgroup v2
// memory.pressure, or the node's /proc/pressure/memory.
type PSI struct {
	Some PSILine `json:"some"`
	Full PSILine `json:"full"`
}

// ParsePSI parses the content of a memory pressure stall file: a "some" and
// a "full" line (memory files always have both, kernels >= 4.20), each with
// avg10=, avg60=, avg300= and total= fields. Anything else, a missing line
// or field, is an error wrapping ErrMalformed. It does not allocate unless
// it fails.
func ParsePSI(b []byte) (PSI, error) {
	var (
		p    PSI
		seen uint8
	)
	if len(b) > MaxFileSize {
		return PSI{}, fmt.Errorf("%w: pressure file larger than %d bytes", ErrMalformed, MaxFileSize)
	}
	for len(b) > 0 {
		var line []byte
		line, b, _ = bytes.Cut(b, newline)
		kind, rest := nextField(line)
		var dst *PSILine
		switch string(kind) {
		case "":
			continue
		case "some":
			dst = &p.Some
			seen |= 1
		case "full":
			dst = &p.Full
			seen |= 2
		default:
			return PSI{}, fmt.Errorf("%w: pressure line %q", ErrMalformed, line)
		}
		if err := parsePSILine(rest, dst); err != nil {
			return PSI{}, fmt.Errorf("%w: pressure line %q: %w", ErrMalformed, line, err)
		}
	}
	if seen != 3 {
		return PSI{}, fmt.Errorf("%w: pressure file without some and full lines", ErrMalformed)
	}
	return p, nil
}

// errPSIField is what parsePSILine wraps for a field it cannot read.
var errPSIField = errors.New("bad or missing field")

// parsePSILine reads "avg10=0.00 avg60=0.00 avg300=0.00 total=0".
func parsePSILine(b []byte, dst *PSILine) error {
	var seen uint8
	for {
		var f []byte
		f, b = nextField(b)
		if f == nil {
			break
		}
		i := bytes.IndexByte(f, '=')
		if i <= 0 {
			return errPSIField
		}
		k, v := f[:i], f[i+1:]
		var err error
		switch string(k) {
		case "avg10":
			dst.Avg10, err = strconv.ParseFloat(string(v), 64)
			seen |= 1
		case "avg60":
			dst.Avg60, err = strconv.ParseFloat(string(v), 64)
			seen |= 2
		case "avg300":
			dst.Avg300, err = strconv.ParseFloat(string(v), 64)
			seen |= 4
		case "total":
			dst.Total, err = strconv.ParseUint(string(v), 10, 64)
			seen |= 8
		}
		if err != nil {
			return errPSIField
		}
	}
	if seen != 15 {
		return errPSIField
	}
	return nil
}
