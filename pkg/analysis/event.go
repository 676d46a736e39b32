// Package analysis turns assembled kernel OOM reports into events: what was
// killed, where it ran (pod, container, QoS), whether the node or a limit
// ran out of memory, who triggered it, who held the memory, and whether the
// victim was a collateral victim. The rules are stated in docs/verdicts.md
// and every event explains its verdict in a Reason sentence.
//
// Event is oomwatch's one event model; the API's OOMKill mirrors it field
// for field (package wire says why and converts). Analyze judges from the
// kernel's report alone; on the agent's path the node's facts are added in
// one step (agent.Pipeline.attribute, through enrich.Enricher), which ends
// with Refine, the one judgement those facts can change.
package analysis

import (
	"math"
	"time"

	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/workload"
)

// Kinds of OOM kill, from the kernel's own words.
const (
	KindNode      = "node"      // the node ran out of memory (CONSTRAINT_NONE, global_oom)
	KindLimit     = "limit"     // a cgroup's memory limit was hit (CONSTRAINT_MEMCG)
	KindCpuset    = "cpuset"    // CONSTRAINT_CPUSET
	KindMempolicy = "mempolicy" // CONSTRAINT_MEMORY_POLICY
	KindUnknown   = "unknown"   // the kernel did not say
)

// Scopes of a limit kill: whose cgroup limit was hit.
const (
	ScopeContainer = "container" // the victim's own container
	ScopePod       = "pod"       // the victim's pod
	ScopeOther     = "other"     // any other cgroup: a QoS slice, a system service, ...
	// ScopeAllocatable is the cgroup of all pods (kubepods): kubelet sets
	// its limit to the node's allocatable memory, so the pods together ran
	// out of what the node leaves them.
	ScopeAllocatable = "allocatable"
)

// Culprit sources: what the culprit was judged from.
const (
	SourceTaskDump = "task-dump" // the report's task dump
	SourceVictims  = "victims"   // only the killed processes' sizes were printed
	SourceTrigger  = "trigger"   // no sizes: the task that was allocating
	SourceIncident = "incident"  // a larger holder seen in the same incident
)

// Workload is where a process ran, from its cgroup path (and, in the agent,
// from the container runtime).
type Workload struct {
	Cgroup       string `json:"cgroup"`
	WorkloadKind string `json:"workload_kind,omitempty"`
	PodUID       string `json:"pod_uid"`
	ContainerID  string `json:"container_id"`
	Runtime      string `json:"runtime"`
	QoS          string `json:"qos"`
	Unit         string `json:"unit,omitempty"`
	// Names from the container runtime, when the agent could reach it.
	Namespace     string `json:"namespace,omitempty"`
	PodName       string `json:"pod_name,omitempty"`
	ContainerName string `json:"container_name,omitempty"`
	Image         string `json:"image,omitempty"`
	// Labels are pod labels of interest (app, owner).
	Labels map[string]string `json:"labels,omitempty"`
	// Requests, limits and cgroup figures at kill time, when the agent
	// could read them.
	ContainerResources *Resources `json:"container_resources,omitempty"`
	PodResources       *Resources `json:"pod_resources,omitempty"`
}

// Resources are a container's or pod's memory figures: what Kubernetes
// asked for and what the cgroup held at kill time. Sizes are bytes; 0 means
// not set, -1 a cgroup file that was absent.
type Resources struct {
	MemoryRequestBytes int64 `json:"memory_request_bytes,omitempty"`
	MemoryLimitBytes   int64 `json:"memory_limit_bytes,omitempty"`
	MemoryMaxBytes     int64 `json:"memory_max_bytes,omitempty"`
	MemoryCurrentBytes int64 `json:"memory_current_bytes,omitempty"`
	MemoryPeakBytes    int64 `json:"memory_peak_bytes,omitempty"`
	MemoryMinBytes     int64 `json:"memory_min_bytes,omitempty"`
	MemoryLowBytes     int64 `json:"memory_low_bytes,omitempty"`
	EventsOOM          int64 `json:"events_oom,omitempty"`
	EventsOOMKill      int64 `json:"events_oom_kill,omitempty"`
	EventsOOMGroupKill int64 `json:"events_oom_group_kill,omitempty"`
	OOMGroup           bool  `json:"oom_group,omitempty"`
	PodOverheadBytes   int64 `json:"pod_overhead_bytes,omitempty"`
	CgroupRead         bool  `json:"cgroup_read,omitempty"`
	// SpecRead tells that the request and limit come from the pod spec
	// (the Kubernetes API): a 0 request is then "none", not "unknown".
	SpecRead bool `json:"spec_read,omitempty"`
}

// NodeMemory is the node's memory when the kill was read.
type NodeMemory struct {
	MemTotalBytes     int64 `json:"mem_total_bytes"`
	MemAvailableBytes int64 `json:"mem_available_bytes"`
}

// Names are the workload's names for people (package vocab's words).
func (w Workload) Names() vocab.Names {
	return vocab.Names{Cgroup: w.Cgroup, Kind: w.WorkloadKind, PodUID: w.PodUID, ContainerID: w.ContainerID,
		Runtime: w.Runtime, QoS: w.QoS, Unit: w.Unit, Namespace: w.Namespace, PodName: w.PodName, ContainerName: w.ContainerName}
}

// WorkloadOf fills a Workload from a cgroup path: what the path proves
// (kind, pod UID, container ID, runtime, QoS class, unit), no names.
func WorkloadOf(cgroup string) Workload {
	if cgroup == "" {
		return Workload{}
	}
	w := workload.FromCgroup(cgroup)
	return Workload{
		Cgroup:       cgroup,
		WorkloadKind: string(w.Kind),
		PodUID:       w.PodUID,
		ContainerID:  w.ContainerID,
		Runtime:      w.Runtime,
		QoS:          w.QoS,
		Unit:         w.Unit,
	}
}

// Process is a process named by a report.
type Process struct {
	PID         int    `json:"pid"`
	Comm        string `json:"comm"`
	UID         *int   `json:"uid"`
	RSSBytes    *int64 `json:"rss_bytes"`
	OOMScoreAdj *int   `json:"oom_score_adj"`
	Workload
	// GroupMember marks a victim killed because memory.oom.group was set,
	// not chosen by the OOM killer.
	GroupMember bool `json:"group_member,omitempty"`
	// SharedMemory marks a victim killed with the first because it shared
	// its memory (oom.Victim.SharedMemory).
	SharedMemory bool `json:"shared_memory,omitempty"`
	// SelectionOnly marks a victim known only from an old kernel's
	// selection line ("Kill process N (x) score S or sacrifice child"):
	// its kill line was not in the log (oom.Victim.Selected).
	SelectionOnly bool `json:"selection_only,omitempty"`
}

// Culprit is the largest memory holder of a report, summed per workload.
type Culprit struct {
	// PID and Comm name the workload's largest task.
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
	// RSSBytes is the workload's summed resident size (nil when unknown).
	RSSBytes *int64 `json:"rss_bytes"`
	// Tasks counts the workload's tasks in the report.
	Tasks int `json:"tasks"`
	// Source says what the culprit was judged from.
	Source string `json:"source"`
	// RankedBy is RankedOverRequest when the culprit was chosen for being
	// furthest over its memory request, RankedMajority when a report
	// without a task dump shows the victim alone held over half the
	// limited cgroup's usage, empty when it held the most.
	RankedBy string `json:"ranked_by,omitempty"`
	Workload
}

// Ways a culprit was ranked other than by size among the holders seen.
const (
	// RankedOverRequest marks a culprit chosen by usage over request.
	RankedOverRequest = "over-request"
	// RankedMajority marks the victim's own workload, named without a task
	// dump because the victim's anonymous memory alone was over half the
	// limited cgroup's usage: no other workload under the limit could hold
	// as much.
	RankedMajority = "majority"
)

// Event is one OOM kill as oomwatch reports it, the model of the wire
// event (the API's OOMKill mirrors it field by field, package wire). Its
// JSON form is the golden files' (testdata/*.golden.json); oomctl prints
// the API's message instead.
type Event struct {
	Kind       string `json:"kind"`
	LimitScope string `json:"limit_scope"`
	Constraint string `json:"constraint"`
	OOMMemcg   string `json:"oom_memcg"`
	// Seq is the kernel sequence number of the report's first record
	// (-1 when the rendering has none).
	Seq int64 `json:"seq"`
	// UptimeSeconds is the kill's kernel monotonic time.
	UptimeSeconds *float64   `json:"uptime_seconds"`
	Time          *time.Time `json:"time"`
	// Complete is false when the report's start was lost or rate-limited.
	Complete bool `json:"complete"`
	// DumpCut: rows of the report's task dump were left out of this copy
	// of the log at an elision ("...", "<snip>"); offline logs only.
	DumpCut bool `json:"dump_cut,omitempty"`
	// Victims: the kernel's chosen victim first, then group kills.
	Victims      []Process `json:"victims"`
	Trigger      *Process  `json:"trigger"`
	TopConsumers []Process `json:"top_consumers"`
	Culprit      *Culprit  `json:"culprit"`
	// Collateral is true exactly when CollateralVerdict is CollateralYes.
	Collateral bool `json:"collateral"`
	// CollateralVerdict is CollateralYes, CollateralNo or CollateralUnknown.
	CollateralVerdict string `json:"collateral_verdict"`
	// LimitFrom says how a limit kill's limited cgroup was learned (one of
	// the LimitFrom* constants); empty when not known.
	LimitFrom string `json:"limit_from,omitempty"`
	// Limited holds the limited cgroup's figures at kill time, when it is
	// neither the victim's container nor its pod (the agent reads them).
	Limited *Resources `json:"limited_resources,omitempty"`
	// ChosenForScoreAdj notes a victim picked for its oom_score_adj rather
	// than its size.
	ChosenForScoreAdj bool `json:"chosen_for_score_adj"`
	// LimitLowered: a write to the limited cgroup's memory.max, below its
	// usage, caused the kill (the trigger is the writer).
	LimitLowered bool   `json:"limit_lowered,omitempty"`
	Reason       string `json:"reason"`
	// MemcgUsageBytes and MemcgLimitBytes are the limit kill's cgroup usage
	// and limit as the kernel printed them.
	MemcgUsageBytes *int64 `json:"memcg_usage_bytes,omitempty"`
	MemcgLimitBytes *int64 `json:"memcg_limit_bytes,omitempty"`
	// MemswUsageBytes and MemswLimitBytes are set when a cgroup v1 limit
	// kill hit the memory+swap limit, not the memory limit.
	MemswUsageBytes *int64 `json:"memsw_usage_bytes,omitempty"`
	MemswLimitBytes *int64 `json:"memsw_limit_bytes,omitempty"`
	// GroupCgroup is the memory.oom.group cgroup whose tasks were all killed.
	GroupCgroup string `json:"group_cgroup,omitempty"`
	// EndSeq is the sequence number of the report's last record.
	EndSeq int64 `json:"end_seq"`
	// Lines are the report's raw kernel lines (bounded); LinesDropped
	// counts those left out.
	Lines        []string `json:"lines,omitempty"`
	LinesDropped int      `json:"lines_dropped,omitempty"`
	// Node is the node's memory, when the agent read it at kill time.
	Node *NodeMemory `json:"node_memory,omitempty"`
	// AttributedBy says how the first victim's workload was found (one of
	// the Attributed* constants); empty when the reader did not say.
	AttributedBy string `json:"attributed_by,omitempty"`
	// AttributionCandidates counts the containers whose OOM-kill counters
	// rose unexplained when an unnamed kill was read.
	AttributionCandidates int `json:"attribution_candidates,omitempty"`
}

// Collateral verdicts (Event.CollateralVerdict).
const (
	// CollateralYes: the culprit's workload is known and is not the
	// victim's.
	CollateralYes = "yes"
	// CollateralNo: the victim's own workload held the most, or the kill is
	// container scope (a container that hit its own limit).
	CollateralNo = "no"
	// CollateralUnknown: no sizes, or the culprit's or the victim's
	// workload is not known, or a limit kill's limited cgroup is not.
	CollateralUnknown = "unknown"
)

// How a limit kill's limited cgroup was learned (Event.LimitFrom).
const (
	// LimitFromReport: the kill's own report named it.
	LimitFromReport = "report"
	// LimitFromIncident: a bare kill line of a rate-limited storm, whose
	// victim lies under the limited cgroup of a full report of the same
	// incident.
	LimitFromIncident = "incident"
)

// How a kill's victim was attributed to its workload (Event.AttributedBy).
const (
	// AttributedReport: the kernel's report named the victim's cgroup.
	AttributedReport = "report"
	// AttributedProc: read from /proc while the victim lived.
	AttributedProc = "proc"
	// AttributedPIDCache: the reader had seen the PID earlier (a task dump,
	// an earlier lookup) and remembered its cgroup.
	AttributedPIDCache = "pid-cache"
	// AttributedCounter: the only container whose OOM-kill counter rose.
	AttributedCounter = "oom-kill-counter"
	// AttributedNone: nothing told (the kernel rate-limited its report).
	AttributedNone = "unattributed"
)

// SecondsDuration turns seconds, as UptimeSeconds holds them, back into a
// Duration to the microsecond, the kernel's unit: a float is often a hair
// under it (517.923918 is 517.92391799999...), and after two years of
// uptime it holds no nanoseconds anyway.
func SecondsDuration(s float64) time.Duration {
	return time.Duration(math.Round(s*1e6)) * time.Microsecond
}
