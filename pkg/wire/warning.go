package wire

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/warn"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Warnings (issue #17) cross the wire as MemoryWarning events. A warning's
// identity is its cgroup, kind and opening time: WarningSeq hashes them into
// the event's seq, so that its updates and its resolution (higher
// revisions) replace the one stored event, and a kill's PrecedingWarning
// names the same event ID the agent sent.

// WarningRefresh is how often the agent sends an open warning again, with
// a new revision and its latest figures, even when they did not move: an
// open warning not refreshed within 3*WarningRefresh is stale (its agent
// stopped, or restarted and forgot it) and the aggregator may treat it as
// over.
const WarningRefresh = 5 * time.Minute

// WarningStale is how long an open warning stays open now without a new
// revision: one not refreshed for three WarningRefresh lost its agent
// (stopped, or restarted and forgot it). Listings of what is open now
// leave it out; it stays stored as it is.
const WarningStale = 3 * WarningRefresh

// IsStale reports whether e is an open warning whose latest revision (its
// time) is older than WarningStale at now.
func IsStale(e *pb.Event, now time.Time) bool {
	m := e.GetWarning()
	return m != nil && m.GetState() == pb.WarningState_WARNING_STATE_OPEN && e.GetTime().AsTime().Before(now.Add(-WarningStale))
}

// warningKinds pairs the engine's kinds with the API's.
var warningKinds = [...]pb.WarningKind{
	warn.NearLimit:    pb.WarningKind_WARNING_KIND_NEAR_LIMIT,
	warn.LimitReclaim: pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM,
	warn.Pressure:     pb.WarningKind_WARNING_KIND_PRESSURE,
	warn.NodeLow:      pb.WarningKind_WARNING_KIND_NODE_LOW,
	warn.Forecast:     pb.WarningKind_WARNING_KIND_FORECAST,
}

// WarningKindToPB is the API's value of an engine kind.
func WarningKindToPB(k warn.Kind) pb.WarningKind {
	if int(k) < len(warningKinds) {
		return warningKinds[k]
	}
	return pb.WarningKind_WARNING_KIND_UNSPECIFIED
}

// WarningSeq is the seq of a warning's event: a hash of its cgroup ("" for
// the node), kind and opening time, in [1, 2^62).
func WarningSeq(w warn.Warning) int64 {
	h := fnv.New64a()
	h.Write([]byte(w.Cgroup))
	var b [9]byte
	b[0] = byte(w.Kind)
	binary.LittleEndian.PutUint64(b[1:], uint64(w.Since.UnixNano()))
	h.Write(b[:])
	return int64(h.Sum64()>>2) | 1
}

// FromWarning is the event of one change of a warning, revision rev (0
// when it opened). wl is the workload of its cgroup (nil for the node; its
// cgroup is set from the warning's).
func FromWarning(node, bootID string, w warn.Warning, rev int64, wl *pb.Workload) *pb.Event {
	if w.Cgroup != "" {
		if wl == nil {
			wl = &pb.Workload{}
		}
		wl.Cgroup = w.Cgroup
	} else {
		wl = nil
	}
	m := &pb.MemoryWarning{
		WarningKind: WarningKindToPB(w.Kind),
		State:       pb.WarningState_WARNING_STATE_OPEN,
		Workload:    wl,
		Since:       timestamppb.New(w.Since),
		Figures:     WarningFigures(w.Figures),
		Thresholds:  warningThresholds(w.Kind, w.Thresholds),
	}
	if w.State == warn.Resolved {
		m.State = pb.WarningState_WARNING_STATE_RESOLVED
		m.Resolution = w.Reason.String()
	}
	m.Summary = vocab.Warning(m)
	return &pb.Event{Node: node, BootId: bootID, Seq: WarningSeq(w), Time: timestamppb.New(w.At), Revision: rev,
		Payload: &pb.Event_Warning{Warning: m}}
}

// WarningFigures converts a warning's figures.
func WarningFigures(f warn.Figures) *pb.WarningFigures {
	out := &pb.WarningFigures{
		WorkingSetBytes: f.WorkingSet, UsageBytes: f.Usage, LimitBytes: f.Limit, Ratio: finite(f.Ratio),
		GrowthBytesPerSecond: finite(f.GrowthRate), FitPoints: int32(f.FitPoints), FitR2: finite(f.FitR2),
		MaxEventsDelta: int64(min(f.MaxEventsDelta, math.MaxInt64)), MaxEventsPerSecond: finite(f.MaxEventsRate),
		PsiFullAvg10: finite(f.PSIFullAvg10), MemAvailableBytes: f.MemAvailable, MemTotalBytes: f.MemTotal,
		EvictionThresholdBytes: f.EvictionThreshold,
	}
	if f.TimeLeft != 0 {
		out.TimeLeft = durationpb.New(f.TimeLeft)
	}
	if f.FitWindow != 0 {
		out.FitWindow = durationpb.New(f.FitWindow)
	}
	return out
}

// warningThresholds converts the bounds of a warning of kind k.
func warningThresholds(k warn.Kind, t warn.Thresholds) *pb.WarningThresholds {
	out := &pb.WarningThresholds{Open: finite(t.Open), Resolve: finite(t.Resolve)}
	switch {
	case k == warn.NearLimit && t.For > 0:
		out.Hold = durationpb.New(t.For)
	case k == warn.LimitReclaim && t.Quiet > 0:
		out.Hold = durationpb.New(t.Quiet)
	}
	return out
}

// Roles of a preceding warning: whose it was.
const (
	RoleVictim  = "victim"
	RoleCulprit = "culprit"
	RoleNode    = "node"
)

// Preceding converts the warnings that came before a kill, each with its
// role, into the kill's preceding_warnings.
func Preceding(node, bootID string, ps []warn.Precursor, role func(warn.Warning) string) []*pb.PrecedingWarning {
	out := make([]*pb.PrecedingWarning, 0, len(ps))
	for _, p := range ps {
		w := &pb.PrecedingWarning{
			EventId:     eventid.ID{Node: node, BootID: bootID, Type: eventid.TypeWarning, Seq: WarningSeq(p.Warning)}.String(),
			WarningKind: WarningKindToPB(p.Kind),
			Role:        role(p.Warning),
			Cgroup:      p.Cgroup,
			Since:       timestamppb.New(p.Since),
			Lead:        durationpb.New(p.Lead),
			// As of the lead: the figures it opened with, not the ones
			// just before the kill.
			Figures: WarningFigures(p.Opening),
		}
		if p.State == warn.Resolved {
			w.ResolvedAt = timestamppb.New(p.At)
		}
		out = append(out, w)
	}
	return out
}

// CheckWarning reports the first field of a warning outside the API.
func CheckWarning(m *pb.MemoryWarning) (field string, err error) {
	if _, ok := pb.WarningKind_name[int32(m.GetWarningKind())]; !ok || m.GetWarningKind() == pb.WarningKind_WARNING_KIND_UNSPECIFIED {
		return "warning_kind", fmt.Errorf("unknown value %d", m.GetWarningKind())
	}
	switch m.GetState() {
	case pb.WarningState_WARNING_STATE_OPEN, pb.WarningState_WARNING_STATE_RESOLVED:
	default:
		return "state", fmt.Errorf("unknown value %d", m.GetState())
	}
	if m.GetSince() == nil {
		return "since", fmt.Errorf("not set")
	}
	return "", nil
}

// finite replaces NaN and infinities, which JSON cannot carry, by 0.
func finite(v float64) float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return 0
	}
	return v
}
