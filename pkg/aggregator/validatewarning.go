package aggregator

import (
	"fmt"
	"math"

	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Limits on warnings (issue #17), beside the limits every event has.
const (
	// MaxPrecedingWarnings bounds the warnings one kill names: the agent
	// names at most one per kind for the victim's container and pod, its
	// culprit's and the node (about 20).
	MaxPrecedingWarnings = 64
	// MaxRatio bounds a warning's ratio of its limit: a working set can
	// pass its limit (the kernel reclaims later), never by this much.
	MaxRatio = 1 << 20
	// MaxRate bounds a warning's rates (bytes or events per second).
	MaxRate = float64(MaxBytes)
	// MaxPSI bounds a PSI average, a percentage.
	MaxPSI = 100
)

// warning checks a MemoryWarning of the event made at evTime (its
// revision's time): the API's enums (wire.CheckWarning), since neither
// before MinTime nor after the revision, every figure finite and in range,
// strings bounded, the workload as any workload.
func (c *checker) warning(f string, m *pb.MemoryWarning, e *pb.Event) {
	if field, err := wire.CheckWarning(m); err != nil {
		c.fail(f, field, "%v", err)
		return
	}
	c.time(f, "since", m.GetSince(), true)
	if c.err == nil && e.GetTime().AsTime().Before(m.GetSince().AsTime()) {
		c.fail(f, "since", "after the event's time (a warning's revision is made after it opened)")
	}
	c.str(f, "resolution", m.GetResolution(), MaxStringBytes)
	c.str(f, "summary", m.GetSummary(), MaxStringBytes)
	c.workload(f+".workload", m.GetWorkload())
	c.figures(f+".figures", m.GetFigures())
	if t := m.GetThresholds(); t != nil {
		c.float(f, "thresholds.open", t.GetOpen(), math.MaxInt64)
		c.float(f, "thresholds.resolve", t.GetResolve(), math.MaxInt64)
		c.duration(f, "thresholds.hold", t.GetHold())
	}
}

// figures checks a warning's measurements: sizes as sizes, counts as
// counts, ratios, rates and PSI finite and non-negative.
func (c *checker) figures(f string, w *pb.WarningFigures) {
	if w == nil {
		return
	}
	c.bytes(f, "working_set_bytes", w.GetWorkingSetBytes(), false)
	c.bytes(f, "usage_bytes", w.GetUsageBytes(), false)
	c.bytes(f, "limit_bytes", w.GetLimitBytes(), false)
	c.bytes(f, "mem_available_bytes", w.GetMemAvailableBytes(), false)
	c.bytes(f, "mem_total_bytes", w.GetMemTotalBytes(), false)
	c.bytes(f, "eviction_threshold_bytes", w.GetEvictionThresholdBytes(), false)
	c.int(f, "max_events_delta", w.GetMaxEventsDelta(), 0, MaxCount)
	c.int(f, "fit_points", int64(w.GetFitPoints()), 0, math.MaxInt32)
	c.float(f, "ratio", w.GetRatio(), MaxRatio)
	c.float(f, "growth_bytes_per_second", w.GetGrowthBytesPerSecond(), MaxRate)
	c.float(f, "fit_r2", w.GetFitR2(), 1)
	c.float(f, "max_events_per_second", w.GetMaxEventsPerSecond(), MaxRate)
	c.float(f, "psi_full_avg10", w.GetPsiFullAvg10(), MaxPSI)
	c.duration(f, "time_left", w.GetTimeLeft())
	c.duration(f, "fit_window", w.GetFitWindow())
}

// float checks a figure: finite, 0 to hi.
func (c *checker) float(f, name string, v, hi float64) {
	if math.IsNaN(v) || v < 0 || v > hi {
		c.fail(f, name, "%v out of range [0, %v]", v, hi)
	}
}

// duration checks a duration: valid and 0 to MaxMonotonic.
func (c *checker) duration(f, name string, d *durationpb.Duration) {
	if d == nil {
		return
	}
	if d.CheckValid() != nil || d.AsDuration() < 0 || d.AsDuration() > MaxMonotonic {
		c.fail(f, name, "%v is not a duration from 0 to %v", d.AsDuration(), MaxMonotonic)
	}
}

// preceding checks a kill's preceding warnings: bounded in number, each
// naming a warning event of the kill's own node (an agent vouches for its
// node's warnings only), of a known kind, with bounded strings and sane
// figures.
func (c *checker) preceding(f string, ws []*pb.PrecedingWarning, node string) {
	if len(ws) > MaxPrecedingWarnings {
		c.fail(f, "", "%d, more than %d", len(ws), MaxPrecedingWarnings)
		return
	}
	for i, w := range ws {
		g := fmt.Sprintf("%s[%d]", f, i)
		id, err := eventid.Parse(w.GetEventId())
		switch {
		case len(w.GetEventId()) > MaxStringBytes:
			c.fail(g, "event_id", "%d bytes, more than %d", len(w.GetEventId()), MaxStringBytes)
		case err != nil:
			c.fail(g, "event_id", "%.80q is not an event ID", w.GetEventId())
		case id.Type != eventid.TypeWarning || id.Seq < 0 || !validName(id.BootID, MaxBootIDBytes):
			c.fail(g, "event_id", "%.80q is not a warning's event ID", w.GetEventId())
		case id.Node != node:
			c.fail(g, "event_id", "a warning of node %.64q, not of the kill's node %q", id.Node, node)
		}
		if _, ok := pb.WarningKind_name[int32(w.GetWarningKind())]; !ok || w.GetWarningKind() == pb.WarningKind_WARNING_KIND_UNSPECIFIED {
			c.fail(g, "warning_kind", "unknown value %d", w.GetWarningKind())
		}
		c.str(g, "role", w.GetRole(), MaxStringBytes)
		c.str(g, "cgroup", w.GetCgroup(), MaxStringBytes)
		c.time(g, "since", w.GetSince(), false)
		c.time(g, "resolved_at", w.GetResolvedAt(), false)
		c.duration(g, "lead", w.GetLead())
		c.figures(g+".figures", w.GetFigures())
	}
}
