// Package analysis turns assembled kernel OOM reports into events: what was
// killed, where it ran (pod, container, QoS), whether the node or a limit
// ran out of memory, who triggered it, who held the memory, and whether the
// victim was a collateral victim. The rules are stated in the README and
// every event explains its verdict in a Reason sentence.
package analysis

import (
	"time"

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
}

// workloadOf fills a Workload from a cgroup path.
func workloadOf(cgroup string) Workload {
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
	Workload
}

// Event is one OOM kill as oomwatch reports it. Its JSON form is the
// output of `oomctl analyze -o json` and the model of the wire event.
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
	// Victims: the kernel's chosen victim first, then group kills.
	Victims      []Process `json:"victims"`
	Trigger      *Process  `json:"trigger"`
	TopConsumers []Process `json:"top_consumers"`
	Culprit      *Culprit  `json:"culprit"`
	Collateral   bool      `json:"collateral"`
	// ChosenForScoreAdj notes a victim picked for its oom_score_adj rather
	// than its size.
	ChosenForScoreAdj bool   `json:"chosen_for_score_adj"`
	Reason            string `json:"reason"`
	// MemcgUsageBytes and MemcgLimitBytes are the limit kill's cgroup usage
	// and limit as the kernel printed them.
	MemcgUsageBytes *int64 `json:"memcg_usage_bytes,omitempty"`
	MemcgLimitBytes *int64 `json:"memcg_limit_bytes,omitempty"`
	// GroupCgroup is the memory.oom.group cgroup whose tasks were all killed.
	GroupCgroup string `json:"group_cgroup,omitempty"`
	// EndSeq is the sequence number of the report's last record.
	EndSeq int64 `json:"end_seq"`
	// Lines are the report's raw kernel lines (bounded); LinesDropped
	// counts those left out.
	Lines        []string `json:"lines,omitempty"`
	LinesDropped int      `json:"lines_dropped,omitempty"`
}
