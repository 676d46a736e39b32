package aggregator

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Limits on what an agent may send. An event past any of them is refused
// whole (codes.InvalidArgument); the agent's own bounds are well inside
// them (400 kernel lines, 5 top consumers).
const (
	// MaxMessageBytes bounds one gRPC message, the server's receive limit.
	MaxMessageBytes = 4 << 20
	// MaxEventBytes bounds one event, encoded.
	MaxEventBytes = 1 << 20
	// MaxLines bounds an OOM kill's kernel lines and an exit's evidence.
	MaxLines = 1000
	// MaxLineBytes bounds one kernel line or piece of evidence.
	MaxLineBytes = 4096
	// MaxVictims bounds the processes one kill names (memory.oom.group
	// kills a whole cgroup).
	MaxVictims = 1024
	// MaxTopConsumers bounds an OOM kill's top consumers.
	MaxTopConsumers = 64
	// MaxStringBytes bounds every other string (a cgroup path is at most
	// PATH_MAX).
	MaxStringBytes = 4096
	// MaxLabels bounds a workload's labels.
	MaxLabels = 64
	// MaxNodeBytes bounds a node name (a DNS subdomain).
	MaxNodeBytes = 253
	// MaxBootIDBytes bounds a boot ID (the kernel's is a 36-byte UUID).
	MaxBootIDBytes = 64
)

// Validation errors.
var (
	// ErrInvalidHello: the stream's Hello is missing or malformed.
	ErrInvalidHello = errors.New("invalid hello")
	// ErrInvalidEvent: an event breaks a limit or lacks what it needs.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrWrongNode: an event names another node or boot than its stream's
	// Hello.
	ErrWrongNode = errors.New("event does not belong to this stream's node and boot")
)

// validName reports whether s is 1 to max bytes of letters, digits and
// inner '-', '.', '_' (no '/': names are parts of event IDs).
func validName(s string, max int) bool {
	if len(s) == 0 || len(s) > max {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum {
			continue
		}
		if (c == '-' || c == '.' || c == '_') && i > 0 && i < len(s)-1 {
			continue
		}
		return false
	}
	return true
}

// ValidateHello checks a stream's first message.
func ValidateHello(h *pb.Hello) error {
	switch {
	case h == nil:
		return fmt.Errorf("%w: the first message must be a Hello", ErrInvalidHello)
	case !validName(h.GetNode(), MaxNodeBytes):
		return fmt.Errorf("%w: node %.64q is not a node name", ErrInvalidHello, h.GetNode())
	case !validName(h.GetBootId(), MaxBootIDBytes):
		return fmt.Errorf("%w: boot_id %.64q is not a boot ID", ErrInvalidHello, h.GetBootId())
	}
	c := &checker{}
	c.str("", "agent_version", h.GetAgentVersion(), MaxStringBytes)
	if c.err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidHello, c.err)
	}
	return nil
}

// Bounds of the numbers and times of an event. Nothing real comes near
// them; they keep what is stored and shown sane (no negative sizes, no
// times that never expire) and every figure exact as a float64 metric.
const (
	// MaxBytes bounds every size in bytes: 1 EiB.
	MaxBytes = 1 << 60
	// MaxCount bounds every counter (lost records, memory.events): 2^53.
	MaxCount = 1 << 53
	// MaxPID is the kernel's PID_MAX_LIMIT on 64-bit (4 Mi).
	MaxPID = 4 << 20
	// MaxCommBytes bounds a process name: the kernel's is 15 bytes, each
	// up to 4 as /dev/kmsg escapes it (\xNN), with room to spare.
	MaxCommBytes = 256
	// MaxMonotonic bounds the kernel's time since boot: 30 years.
	MaxMonotonic = 30 * 365 * 24 * time.Hour
	// DefaultMaxClockSkew is how far in the future an event's time may be
	// (Config.MaxClockSkew): the agent's clock may run ahead of ours.
	DefaultMaxClockSkew = 10 * time.Minute
)

// MinTime is the earliest event time accepted: no kernel oomwatch reads
// ran before it, and a time before it is a clock that was never set.
var MinTime = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

// ValidateEvent is ValidateEventAt with the current time and
// DefaultMaxClockSkew.
func ValidateEvent(e *pb.Event, h *pb.Hello) error {
	return ValidateEventAt(e, h, time.Now(), DefaultMaxClockSkew)
}

// ValidateEventAt checks an event of the stream opened by h (already
// valid) at time now: identity, times (from MinTime to now+skew), every
// number's range, sizes, counts and every string's length and characters
// (no control characters but tab: every string is shown on one line). The
// error names the field. It never panics, whatever the event holds.
func ValidateEventAt(e *pb.Event, h *pb.Hello, now time.Time, skew time.Duration) error {
	return validateEvent(e, proto.Size(e), h, now, skew)
}

// validateEvent is ValidateEventAt of an event whose encoding is size
// bytes long.
func validateEvent(e *pb.Event, size int, h *pb.Hello, now time.Time, skew time.Duration) error {
	if e == nil {
		return fmt.Errorf("%w: empty event", ErrInvalidEvent)
	}
	// The boot may differ from the Hello's: after a reboot an agent's spool
	// still holds events of the boot before. The node may not.
	if e.GetNode() != h.GetNode() {
		return fmt.Errorf("%w: event of node %.64q on the stream of node %q",
			ErrWrongNode, e.GetNode(), h.GetNode())
	}
	if !validName(e.GetBootId(), MaxBootIDBytes) {
		return fmt.Errorf("%w: boot_id %.64q is not a boot ID", ErrInvalidEvent, e.GetBootId())
	}
	if eventid.TypeOf(e) == "" {
		return fmt.Errorf("%w: no payload (oom, loss, exit or warning)", ErrInvalidEvent)
	}
	if size > MaxEventBytes {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidEvent, size, MaxEventBytes)
	}
	c := &checker{latest: now.Add(skew), node: e.GetNode()}
	c.int("", "seq", e.GetSeq(), 0, math.MaxInt64)
	c.int("", "revision", e.GetRevision(), 0, math.MaxInt64)
	c.time("", "time", e.GetTime(), true)
	if m := e.GetMonotonic(); m != nil {
		if m.CheckValid() != nil || m.AsDuration() < 0 || m.AsDuration() > MaxMonotonic {
			c.fail("", "monotonic", "%v is not a time since boot (0 to %v)", m.AsDuration(), MaxMonotonic)
		}
	}
	// Set by the aggregator: what an agent sends there is overwritten.
	c.str("", "id", e.GetId(), MaxStringBytes)
	switch p := e.GetPayload().(type) {
	case *pb.Event_Oom:
		c.oom("oom", p.Oom)
	case *pb.Event_Loss:
		c.loss("loss", p.Loss)
	case *pb.Event_Exit:
		c.exit("exit", p.Exit)
	case *pb.Event_Warning:
		c.warning("warning", p.Warning, e)
	}
	if c.err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, c.err)
	}
	return nil
}

// checker keeps the first problem found, naming its field.
//
// A field is named by two parts, the path of the message that holds it (f,
// "" at the event's top) and its own name, joined only when a check fails:
// a kill has some two hundred fields, and joining every name beforehand
// was a fifth of a stream's work per event (BenchmarkReceiveKill).
type checker struct {
	latest time.Time
	// node is the event's node: what it refers to must be of it.
	node string
	err  error
}

func (c *checker) fail(f, name, format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%s: %s", join(f, name), fmt.Sprintf(format, args...))
	}
}

// join names the field name of the message at path f.
func join(f, name string) string {
	switch {
	case f == "":
		return name
	case name == "":
		return f
	}
	return f + "." + name
}

func (c *checker) int(f, name string, v, lo, hi int64) {
	if v < lo || v > hi {
		c.fail(f, name, "%d out of range [%d, %d]", v, lo, hi)
	}
}

// bytes checks a size: 0 to MaxBytes, or -1 too when absent says "not
// read".
func (c *checker) bytes(f, name string, v int64, absent bool) {
	lo := int64(0)
	if absent {
		lo = -1
	}
	c.int(f, name, v, lo, MaxBytes)
}

func (c *checker) optBytes(f, name string, v *int64) {
	if v != nil {
		c.bytes(f, name, *v, false)
	}
}

func (c *checker) time(f, name string, ts *timestamppb.Timestamp, required bool) {
	if ts == nil {
		if required {
			c.fail(f, name, "missing")
		}
		return
	}
	if ts.CheckValid() != nil {
		c.fail(f, name, "not a valid timestamp")
		return
	}
	if t := ts.AsTime(); t.Before(MinTime) || t.After(c.latest) {
		c.fail(f, name, "%s is out of range (%s to %s, the aggregator's clock plus the allowed skew)",
			t.UTC().Format(time.RFC3339), MinTime.Format(time.RFC3339), c.latest.UTC().Format(time.RFC3339))
	}
}

// str checks a string's length and characters: valid UTF-8 and no
// control characters but tab, so that it prints on one line.
func (c *checker) str(f, name, s string, max int) {
	if c.err != nil {
		return
	}
	if why := badString(s, max); why != "" {
		c.fail(f, name, "%s", why)
	}
}

// badString says what is wrong with s for str, or "" when nothing is: in
// one pass, eight bytes at a time while they are plain printable ASCII
// (the kernel's lines nearly always are), byte by byte in any eight that
// hold something else, decoding only the bytes past ASCII.
func badString(s string, max int) string {
	if len(s) > max {
		return fmt.Sprintf("%d bytes, more than %d", len(s), max)
	}
	for i := 0; i < len(s); {
		if i+8 <= len(s) && printable8(s[i:i+8]) {
			i += 8
			continue
		}
		for end := min(i+8, len(s)); i < end; i++ {
			b := s[i]
			if b < utf8.RuneSelf {
				if (b < 0x20 && b != '\t') || b == 0x7f {
					return fmt.Sprintf("control character %#02x at byte %d", b, i)
				}
				continue
			}
			r, size := utf8.DecodeRuneInString(s[i:])
			if r == utf8.RuneError && size == 1 {
				return "not valid UTF-8"
			}
			i += size - 1 // may end past end: the next eight start there
		}
	}
	return ""
}

// printable8 tells whether all of the eight bytes of s are ASCII from
// 0x20 to 0x7e; false may also mean only a tab among them.
func printable8(s string) bool {
	w := uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	below := (w - 0x20*ones) &^ w // a byte under 0x20 (of those under 0x80) sets its high bit
	del := w ^ 0x7f*ones
	del = (del - ones) &^ del // a 0x7f byte sets its high bit
	return (w|below|del)&highs == 0
}

func (c *checker) lines(f, name string, lines []string) {
	if len(lines) > MaxLines {
		c.fail(f, name, "%d lines, more than %d", len(lines), MaxLines)
		return
	}
	for i, l := range lines {
		if why := badString(l, MaxLineBytes); why != "" && c.err == nil {
			c.fail(f, fmt.Sprintf("%s[%d]", name, i), "%s", why)
		}
	}
}

func (c *checker) oom(f string, k *pb.OOMKill) {
	if len(k.GetVictims()) > MaxVictims {
		c.fail(f, "victims", "%d, more than %d", len(k.GetVictims()), MaxVictims)
	}
	if len(k.GetTopConsumers()) > MaxTopConsumers {
		c.fail(f, "top_consumers", "%d, more than %d", len(k.GetTopConsumers()), MaxTopConsumers)
	}
	c.lines(f, "lines", k.GetLines())
	c.str(f, "kind", k.GetKind(), MaxStringBytes)
	c.str(f, "limit_scope", k.GetLimitScope(), MaxStringBytes)
	if field, err := wire.CheckKill(k); err != nil {
		c.fail(f, field, "%v", err)
	}
	c.str(f, "constraint", k.GetConstraint(), MaxStringBytes)
	c.str(f, "oom_memcg", k.GetOomMemcg(), MaxStringBytes)
	c.str(f, "reason", k.GetReason(), MaxStringBytes)
	c.str(f, "group_cgroup", k.GetGroupCgroup(), MaxStringBytes)
	c.optBytes(f, "memcg_usage_bytes", k.MemcgUsageBytes)
	c.optBytes(f, "memcg_limit_bytes", k.MemcgLimitBytes)
	c.optBytes(f, "memsw_usage_bytes", k.MemswUsageBytes)
	c.optBytes(f, "memsw_limit_bytes", k.MemswLimitBytes)
	c.int(f, "end_seq", k.GetEndSeq(), 0, math.MaxInt64)
	c.int(f, "lines_dropped", int64(k.GetLinesDropped()), 0, math.MaxInt32)
	if m := k.GetNodeMemory(); m != nil {
		c.bytes(f, "node_memory.mem_total_bytes", m.GetMemTotalBytes(), false)
		c.bytes(f, "node_memory.mem_available_bytes", m.GetMemAvailableBytes(), false)
	}
	for i, p := range k.GetVictims() {
		c.process(f+".victims["+strconv.Itoa(i)+"]", p)
	}
	for i, p := range k.GetTopConsumers() {
		c.process(f+".top_consumers["+strconv.Itoa(i)+"]", p)
	}
	if p := k.GetTrigger(); p != nil {
		c.process(f+".trigger", p)
	}
	if p := k.GetCulprit(); p != nil {
		c.culprit(f+".culprit", p)
	}
	c.str(f, "attributed_by", k.GetAttributedBy(), MaxStringBytes)
	c.int(f, "attribution_candidates", int64(k.GetAttributionCandidates()), 0, math.MaxInt32)
	c.str(f, "limit_from", k.GetLimitFrom(), MaxStringBytes)
	if v := k.GetCollateralVerdict(); v < 0 || v > pb.CollateralVerdict_COLLATERAL_VERDICT_UNKNOWN {
		c.fail(f, "collateral_verdict", "%d is not a verdict", v)
	} else if v != pb.CollateralVerdict_COLLATERAL_VERDICT_UNSPECIFIED && k.GetCollateral() != (v == pb.CollateralVerdict_COLLATERAL_VERDICT_YES) {
		c.fail(f, "collateral", "%v contradicts collateral_verdict %s", k.GetCollateral(), v)
	}
	c.resources(f+".limited_resources", k.GetLimitedResources())
	c.preceding(f+".preceding_warnings", k.GetPrecedingWarnings(), c.node)
}

func (c *checker) loss(f string, l *pb.Loss) {
	c.str(f, "cause", l.GetCause(), MaxStringBytes)
	c.str(f, "detail", l.GetDetail(), MaxStringBytes)
	c.int(f, "lost", l.GetLost(), 0, MaxCount)
	// -1: no record was read before the gap.
	c.int(f, "after_seq", l.GetAfterSeq(), -1, math.MaxInt64)
	c.int(f, "next_seq", l.GetNextSeq(), 0, math.MaxInt64)
	c.time(f, "from", l.GetFrom(), false)
	c.time(f, "to", l.GetTo(), false)
}

func (c *checker) exit(f string, x *pb.ContainerExit) {
	c.lines(f, "evidence", x.GetEvidence())
	c.str(f, "runtime_reason", x.GetRuntimeReason(), MaxStringBytes)
	c.str(f, "verdict", x.GetVerdict(), MaxStringBytes)
	if field, err := wire.CheckExit(x); err != nil {
		c.fail(f, field, "%v", err)
	}
	c.str(f, "explanation", x.GetExplanation(), MaxStringBytes)
	c.str(f, "oom_event_id", x.GetOomEventId(), MaxStringBytes)
	// An exit status: 0 to 255 (128 + the signal for a signal).
	c.int(f, "exit_code", int64(x.GetExitCode()), 0, 255)
	c.time(f, "finished_at", x.GetFinishedAt(), false)
	c.time(f, "stop_requested_at", x.GetStopRequestedAt(), false)
	c.workload(f+".workload", x.GetWorkload())
	c.culprit(f+".culprit", x.GetCulprit())
	c.story(f, x)
}

func (c *checker) process(f string, p *pb.Process) {
	if p == nil {
		return
	}
	c.int(f, "pid", int64(p.GetPid()), 0, MaxPID)
	c.str(f, "comm", p.GetComm(), MaxCommBytes)
	if p.Uid != nil {
		c.int(f, "uid", int64(*p.Uid), 0, math.MaxInt32)
	}
	c.optBytes(f, "rss_bytes", p.RssBytes)
	if p.OomScoreAdj != nil {
		c.int(f, "oom_score_adj", int64(*p.OomScoreAdj), -1000, 1000)
	}
	if w := p.GetWorkload(); w != nil {
		c.workload(f+".workload", w)
	}
}

func (c *checker) culprit(f string, p *pb.Culprit) {
	if p == nil {
		return
	}
	c.int(f, "pid", int64(p.GetPid()), 0, MaxPID)
	c.str(f, "comm", p.GetComm(), MaxCommBytes)
	c.optBytes(f, "rss_bytes", p.RssBytes)
	c.int(f, "tasks", int64(p.GetTasks()), 0, MaxPID)
	c.str(f, "source", p.GetSource(), MaxStringBytes)
	c.str(f, "ranked_by", p.GetRankedBy(), MaxStringBytes)
	if w := p.GetWorkload(); w != nil {
		c.workload(f+".workload", w)
	}
}

func (c *checker) workload(f string, w *pb.Workload) {
	if w == nil {
		return
	}
	if len(w.GetLabels()) > MaxLabels {
		c.fail(f, "labels", "%d labels, more than %d", len(w.GetLabels()), MaxLabels)
	}
	for k, v := range w.GetLabels() {
		c.str(f, "labels key", k, MaxStringBytes)
		if why := badString(v, MaxStringBytes); why != "" {
			c.fail(f, "labels["+strconv.QuoteToASCII(truncate(k, 64))+"]", "%s", why)
		}
	}
	for _, s := range []struct{ name, v string }{
		{"cgroup", w.GetCgroup()}, {"workload_kind", w.GetWorkloadKind()}, {"pod_uid", w.GetPodUid()},
		{"container_id", w.GetContainerId()}, {"runtime", w.GetRuntime()}, {"qos", w.GetQos()},
		{"unit", w.GetUnit()}, {"namespace", w.GetNamespace()}, {"pod_name", w.GetPodName()},
		{"container_name", w.GetContainerName()}, {"image", w.GetImage()},
	} {
		c.str(f, s.name, s.v, MaxStringBytes)
	}
	if r := w.GetContainerResources(); r != nil {
		c.resources(f+".container_resources", r)
	}
	if r := w.GetPodResources(); r != nil {
		c.resources(f+".pod_resources", r)
	}
}

func (c *checker) resources(f string, r *pb.Resources) {
	if r == nil {
		return
	}
	c.bytes(f, "memory_request_bytes", r.GetMemoryRequestBytes(), false)
	c.bytes(f, "memory_limit_bytes", r.GetMemoryLimitBytes(), false)
	c.bytes(f, "pod_overhead_bytes", r.GetPodOverheadBytes(), false)
	// The cgroup's files: -1 when the file was absent.
	c.bytes(f, "memory_max_bytes", r.GetMemoryMaxBytes(), true)
	c.bytes(f, "memory_current_bytes", r.GetMemoryCurrentBytes(), true)
	c.bytes(f, "memory_peak_bytes", r.GetMemoryPeakBytes(), true)
	c.bytes(f, "memory_min_bytes", r.GetMemoryMinBytes(), true)
	c.bytes(f, "memory_low_bytes", r.GetMemoryLowBytes(), true)
	c.int(f, "events_oom", r.GetEventsOom(), -1, MaxCount)
	c.int(f, "events_oom_kill", r.GetEventsOomKill(), -1, MaxCount)
	c.int(f, "events_oom_group_kill", r.GetEventsOomGroupKill(), -1, MaxCount)
}

// truncate cuts s to at most n bytes, for naming a field after it.
func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// story checks an oom-child story's counts and victims.
func (c *checker) story(f string, x *pb.ContainerExit) {
	if len(x.GetVictims()) > MaxVictims {
		c.fail(f, "victims", "%d, more than %d", len(x.GetVictims()), MaxVictims)
	}
	c.int(f, "child_kills", int64(x.GetChildKills()), 0, math.MaxInt32)
	c.int(f, "victims_dropped", int64(x.GetVictimsDropped()), 0, math.MaxInt32)
	if n := int64(len(x.GetVictims())) + int64(x.GetVictimsDropped()); x.GetChildKills() > 0 && n > int64(x.GetChildKills()) {
		c.fail(f, "victims", "%d listed and %d left out of %d kills", len(x.GetVictims()), x.GetVictimsDropped(), x.GetChildKills())
	}
	for i, k := range append([]*pb.ChildKill{x.GetLargest()}, x.GetVictims()...) {
		if k == nil {
			continue
		}
		g := fmt.Sprintf("%s.victims[%d]", f, i-1)
		if i == 0 {
			g = f + ".largest"
		}
		c.str(g, "comm", k.GetComm(), MaxCommBytes)
		c.str(g, "oom_event_id", k.GetOomEventId(), MaxStringBytes)
		c.int(g, "pid", int64(k.GetPid()), 0, MaxPID)
		if k.RssBytes != nil {
			c.bytes(g, "rss_bytes", k.GetRssBytes(), false)
		}
		c.time(g, "at", k.GetAt(), false)
	}
	c.time(f, "first_kill_at", x.GetFirstKillAt(), false)
	c.time(f, "last_kill_at", x.GetLastKillAt(), false)
}
