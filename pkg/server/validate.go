package server

import (
	"errors"
	"fmt"
	"google.golang.org/protobuf/types/known/timestamppb"
	"math"
	"time"

	"google.golang.org/protobuf/proto"

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
	case len(h.GetAgentVersion()) > MaxStringBytes:
		return fmt.Errorf("%w: agent_version longer than %d bytes", ErrInvalidHello, MaxStringBytes)
	}
	return nil
}

// maxTime is the latest event time the store can hold (int64 ns).
var maxTime = time.Unix(0, math.MaxInt64)

// ValidateEvent checks an event of the stream opened by h (already
// valid): identity, time, sizes and counts. It never panics, whatever the
// event holds.
func ValidateEvent(e *pb.Event, h *pb.Hello) error {
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
	if wire.TypeOf(e) == "" {
		return fmt.Errorf("%w: no payload (oom, loss or exit)", ErrInvalidEvent)
	}
	if e.GetSeq() < 0 {
		return fmt.Errorf("%w: negative seq %d", ErrInvalidEvent, e.GetSeq())
	}
	if e.GetRevision() < 0 {
		return fmt.Errorf("%w: negative revision %d", ErrInvalidEvent, e.GetRevision())
	}
	if e.GetTime() == nil || e.GetTime().CheckValid() != nil {
		return fmt.Errorf("%w: no valid time", ErrInvalidEvent)
	}
	if t := e.GetTime().AsTime(); t.Before(time.Unix(0, 0)) || t.After(maxTime) {
		return fmt.Errorf("%w: time %v out of range", ErrInvalidEvent, t)
	}
	if m := e.GetMonotonic(); m != nil && (m.CheckValid() != nil || m.AsDuration() < 0) {
		return fmt.Errorf("%w: invalid monotonic time", ErrInvalidEvent)
	}
	if n := proto.Size(e); n > MaxEventBytes {
		return fmt.Errorf("%w: %d bytes, more than %d", ErrInvalidEvent, n, MaxEventBytes)
	}
	var err error
	switch p := e.GetPayload().(type) {
	case *pb.Event_Oom:
		err = checkOOM(p.Oom)
	case *pb.Event_Loss:
		err = checkStrings(p.Loss.GetCause(), p.Loss.GetDetail())
	case *pb.Event_Exit:
		err = checkExit(p.Exit)
	}
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidEvent, err)
	}
	return nil
}

func checkStrings(ss ...string) error {
	for _, s := range ss {
		if len(s) > MaxStringBytes {
			return fmt.Errorf("a field of %d bytes, more than %d", len(s), MaxStringBytes)
		}
	}
	return nil
}

func checkLines(what string, lines []string) error {
	if len(lines) > MaxLines {
		return fmt.Errorf("%d %s, more than %d", len(lines), what, MaxLines)
	}
	for i, l := range lines {
		if len(l) > MaxLineBytes {
			return fmt.Errorf("%s %d has %d bytes, more than %d", what, i, len(l), MaxLineBytes)
		}
	}
	return nil
}

func checkOOM(k *pb.OOMKill) error {
	if len(k.GetVictims()) > MaxVictims {
		return fmt.Errorf("%d victims, more than %d", len(k.GetVictims()), MaxVictims)
	}
	if len(k.GetTopConsumers()) > MaxTopConsumers {
		return fmt.Errorf("%d top consumers, more than %d", len(k.GetTopConsumers()), MaxTopConsumers)
	}
	if err := checkLines("lines", k.GetLines()); err != nil {
		return err
	}
	if err := checkStrings(k.GetKind(), k.GetLimitScope(), k.GetConstraint(), k.GetOomMemcg(), k.GetReason(), k.GetGroupCgroup()); err != nil {
		return err
	}
	for _, p := range k.GetVictims() {
		if err := checkProcess(p); err != nil {
			return fmt.Errorf("victim: %w", err)
		}
	}
	for _, p := range k.GetTopConsumers() {
		if err := checkProcess(p); err != nil {
			return fmt.Errorf("top consumer: %w", err)
		}
	}
	if err := checkProcess(k.GetTrigger()); err != nil {
		return fmt.Errorf("trigger: %w", err)
	}
	if err := checkCulprit(k.GetCulprit()); err != nil {
		return fmt.Errorf("culprit: %w", err)
	}
	return nil
}

func checkExit(x *pb.ContainerExit) error {
	if err := checkLines("evidence lines", x.GetEvidence()); err != nil {
		return err
	}
	if err := checkStrings(x.GetRuntimeReason(), x.GetVerdict(), x.GetExplanation(), x.GetOomEventId()); err != nil {
		return err
	}
	if err := checkWorkload(x.GetWorkload()); err != nil {
		return fmt.Errorf("workload: %w", err)
	}
	if err := checkCulprit(x.GetCulprit()); err != nil {
		return fmt.Errorf("culprit: %w", err)
	}
	return checkStory(x)
}

// checkStory checks an oom-child story's counts and victims.
func checkStory(x *pb.ContainerExit) error {
	if len(x.GetVictims()) > MaxVictims {
		return fmt.Errorf("%d victims, more than %d", len(x.GetVictims()), MaxVictims)
	}
	if x.GetChildKills() < 0 || x.GetVictimsDropped() < 0 {
		return fmt.Errorf("negative kill count")
	}
	if int64(len(x.GetVictims()))+int64(x.GetVictimsDropped()) > int64(x.GetChildKills()) && x.GetChildKills() > 0 {
		return fmt.Errorf("%d victims listed and %d left out of %d kills", len(x.GetVictims()), x.GetVictimsDropped(), x.GetChildKills())
	}
	for _, c := range append([]*pb.ChildKill{x.GetLargest()}, x.GetVictims()...) {
		if c == nil {
			continue
		}
		if err := checkStrings(c.GetComm(), c.GetOomEventId()); err != nil {
			return err
		}
		if c.GetAt() != nil && c.GetAt().CheckValid() != nil {
			return fmt.Errorf("invalid kill time")
		}
	}
	for _, ts := range []*timestamppb.Timestamp{x.GetFirstKillAt(), x.GetLastKillAt()} {
		if ts != nil && ts.CheckValid() != nil {
			return fmt.Errorf("invalid kill time")
		}
	}
	return nil
}

func checkProcess(p *pb.Process) error {
	if p == nil {
		return nil
	}
	if err := checkStrings(p.GetComm()); err != nil {
		return err
	}
	return checkWorkload(p.GetWorkload())
}

func checkCulprit(c *pb.Culprit) error {
	if c == nil {
		return nil
	}
	if err := checkStrings(c.GetComm(), c.GetSource()); err != nil {
		return err
	}
	return checkWorkload(c.GetWorkload())
}

func checkWorkload(w *pb.Workload) error {
	if w == nil {
		return nil
	}
	if len(w.GetLabels()) > MaxLabels {
		return fmt.Errorf("%d labels, more than %d", len(w.GetLabels()), MaxLabels)
	}
	for k, v := range w.GetLabels() {
		if err := checkStrings(k, v); err != nil {
			return fmt.Errorf("label: %w", err)
		}
	}
	return checkStrings(w.GetCgroup(), w.GetWorkloadKind(), w.GetPodUid(), w.GetContainerId(), w.GetRuntime(),
		w.GetQos(), w.GetUnit(), w.GetNamespace(), w.GetPodName(), w.GetContainerName(), w.GetImage())
}
