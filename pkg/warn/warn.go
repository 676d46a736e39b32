// Package warn turns periodic memory samples of cgroups and of the node into
// pre-kill warnings (issue #17): a working set near its limit, a cgroup
// reclaiming at its limit, memory pressure, a node running out, and a
// forecast of when a growing working set reaches its limit.
//
// It is pure logic, without I/O: the caller reads the cgroup and /proc files
// and hands each round of samples to Engine.Observe, which returns only
// the warnings that changed. A warning is opened once per cgroup and kind,
// updated when its figures move, and resolved when its condition clears
// past a hysteresis band, so a workload hovering at a threshold does not
// flap. Engine.Preceding ties an OOM kill to the warnings that came before
// it.
package warn

import (
	"time"
)

// Kind is what a warning is about.
type Kind uint8

// Kinds of warning.
const (
	// NearLimit: the working set is at or above a share of the cgroup's
	// limit for a while, or well on its way and growing fast enough to reach
	// the limit within a minute.
	NearLimit Kind = iota
	// LimitReclaim: the cgroup's max event counter keeps rising while its
	// working set fills most of the limit: the kernel is reclaiming memory
	// in use to keep the group under its limit.
	LimitReclaim
	// Pressure: PSI memory "full" avg10 of the cgroup or the node is high:
	// tasks are stalled on memory.
	Pressure
	// NodeLow: the node's available memory is near kubelet's hard eviction
	// threshold, or near exhaustion when none is known.
	NodeLow
	// Forecast: at the recent growth rate the working set reaches the limit
	// within a horizon.
	Forecast
	numKinds
)

// kinds lists every kind, in their order.
var kinds = [numKinds]Kind{NearLimit, LimitReclaim, Pressure, NodeLow, Forecast}

// String returns the kind as issue #17 names it ("near-limit", ...).
func (k Kind) String() string {
	switch k {
	case NearLimit:
		return "near-limit"
	case LimitReclaim:
		return "limit-reclaim"
	case Pressure:
		return "pressure"
	case NodeLow:
		return "node-low"
	case Forecast:
		return "forecast"
	}
	return "unknown"
}

// State is where a warning is in its life.
type State uint8

// States of a warning.
const (
	// Opened: the condition started (once per cgroup and kind until resolved).
	Opened State = iota + 1
	// Updated: the condition holds and its figures moved.
	Updated
	// Resolved: the condition cleared, or its cgroup is gone.
	Resolved
)

// String returns "opened", "updated" or "resolved".
func (s State) String() string {
	switch s {
	case Opened:
		return "opened"
	case Updated:
		return "updated"
	case Resolved:
		return "resolved"
	}
	return "unknown"
}

// Reason says why a warning was resolved.
type Reason uint8

// Reasons for resolving.
const (
	// NotResolved is the Reason of an opened or updated warning.
	NotResolved Reason = iota
	// Cleared: the condition cleared past its hysteresis band.
	Cleared
	// Gone: the cgroup was missing from the samples for longer than
	// Config.GoneAfter (removed: a container killed, restarted or stopped).
	Gone
	// Reset: the cgroup's event counter went backwards: a new cgroup took
	// the path, and what was warned of the old one no longer applies.
	Reset
)

// String returns "", "cleared", "gone" or "reset".
func (r Reason) String() string {
	switch r {
	case Cleared:
		return "cleared"
	case Gone:
		return "gone"
	case Reset:
		return "reset"
	}
	return ""
}

// Workload is who a cgroup belongs to, as far as the caller knows. The
// engine carries it through to warnings untouched.
type Workload struct {
	PodUID      string
	ContainerID string
}

// CgroupSample is one reading of a cgroup's memory.
type CgroupSample struct {
	// At is when the cgroup was read.
	At time.Time
	// Cgroup is the cgroup's path; it keys the engine's state. It must not
	// be empty.
	Cgroup   string
	Workload Workload
	// WorkingSet is usage minus inactive file pages (as kubelet and
	// cAdvisor count it): what the kernel cannot reclaim cheaply.
	WorkingSet int64
	// Usage is memory.current (v2) or memory.usage_in_bytes (v1): with
	// page cache.
	Usage int64
	// Limit is memory.max (v2) or memory.limit_in_bytes (v1); 0 means
	// unlimited (as does cgroup v1's page-rounded "no limit" value).
	Limit int64
	// MaxEvents is memory.events "max" (v2) or memory.failcnt (v1): how
	// many times usage hit the limit. Only its rises are used.
	MaxEvents uint64
	// PSIKnown tells whether PSIFullAvg10 was read (memory.pressure exists
	// only on cgroup v2 with PSI enabled).
	PSIKnown bool
	// PSIFullAvg10 is memory.pressure "full" avg10, in percent.
	PSIFullAvg10 float64
}

// NodeSample is one reading of the node's memory. The zero NodeSample
// (At zero) means the node was not read this round.
type NodeSample struct {
	At time.Time
	// MemTotal and MemAvailable are from /proc/meminfo, in bytes.
	MemTotal, MemAvailable int64
	// EvictionThreshold is kubelet's hard eviction threshold for
	// memory.available in bytes (a percentage resolved against MemTotal by
	// the caller); 0 when unknown or unset.
	EvictionThreshold int64
	// PSIKnown tells whether PSIFullAvg10 was read from /proc/pressure/memory.
	PSIKnown     bool
	PSIFullAvg10 float64
}

// Warning is a change of one warning: opened, updated or resolved.
type Warning struct {
	Kind  Kind
	State State
	// Reason is set on resolved warnings.
	Reason Reason
	// Cgroup is the cgroup warned of; "" for the node (node-low, and
	// pressure of the node).
	Cgroup   string
	Workload Workload
	// Since is when the warning was opened; At is the sample time of this
	// change (for a Gone warning, the round that noticed).
	Since, At time.Time
	// Figures are what triggered or last held the warning.
	Figures Figures
	// Opening are the figures it opened with, kept through its revisions:
	// what a kill's preceding warnings show, as of their lead time.
	Opening Figures
	// Thresholds are the bounds in force for this kind.
	Thresholds Thresholds
}

// Node tells whether the warning is about the node rather than a cgroup.
func (w Warning) Node() bool { return w.Cgroup == "" }

// Figures are the measurements behind a warning. Fields that do not apply
// to its kind are zero.
type Figures struct {
	// WorkingSet, Usage and Limit in bytes, and Ratio = WorkingSet/Limit
	// (near-limit, limit-reclaim, forecast).
	WorkingSet, Usage, Limit int64
	Ratio                    float64
	// GrowthRate of the working set in bytes per second, from a least
	// squares fit over FitWindow (FitPoints samples, FitR2 its coefficient
	// of determination); TimeLeft is (Limit-WorkingSet)/GrowthRate. Set on
	// forecast, and on near-limit when the fit is good.
	GrowthRate float64
	TimeLeft   time.Duration
	FitWindow  time.Duration
	FitPoints  int
	FitR2      float64
	// MaxEventsDelta is how much the max event counter rose since the
	// rises began, and MaxEventsRate that rise per second (limit-reclaim).
	MaxEventsDelta uint64
	MaxEventsRate  float64
	// PSIFullAvg10 in percent (pressure).
	PSIFullAvg10 float64
	// MemAvailable, MemTotal and EvictionThreshold in bytes (node-low).
	MemAvailable, MemTotal, EvictionThreshold int64
}

// Thresholds are the bounds a warning was judged by. Fields that do not
// apply to its kind are zero.
type Thresholds struct {
	// Open and Resolve are where the condition opens and where it clears:
	// for near-limit, ratios of the limit; for pressure, percent of PSI full
	// avg10; for node-low, MemAvailable in bytes (open at or below,
	// resolve above); for forecast, the time left (open within, resolve
	// beyond) in seconds; for limit-reclaim, the working set's minimum ratio
	// of the limit (both).
	Open, Resolve float64
	// For is how long near-limit's level must hold before it opens.
	For time.Duration
	// Rises is how many consecutive rising intervals of the max counter
	// open limit-reclaim, Quiet how long without a rise resolves it.
	Rises int
	Quiet time.Duration
	// ApproachRatio and ApproachWithin are near-limit's second trigger: at
	// or above ApproachRatio and reaching the limit within ApproachWithin.
	ApproachRatio  float64
	ApproachWithin time.Duration
	// MinRatio is forecast's minimum working set ratio; MinR2 the fit
	// quality a forecast needs.
	MinRatio, MinR2 float64
}
