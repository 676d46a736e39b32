package analysis

import (
	"fmt"
	"path"
	"strings"

	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/workload"
)

// Explain writes the sentence that explains an event's verdict from the
// event's fields alone: call it again after names and limits were added.
func Explain(ev *Event) string {
	if len(ev.Victims) == 0 {
		return "no process was killed"
	}
	return reason(ev)
}

// unknownWhy says why a collateral verdict is unknown.
func unknownWhy(ev *Event) string {
	c := ev.Culprit
	switch {
	case ev.Kind == KindLimit && ev.OOMMemcg == "":
		return "the log does not name the limited cgroup, so who was inside it is not known"
	case ev.DumpCut && c.RSSBytes != nil && c.Source == SourceTaskDump && victimsOwn(c, ev.Victims[0]):
		return "the log's task dump is cut (rows were left out at an elision), and of the rows it shows the victim's own workload held the most"
	case victimAlone(ev) && constrained(ev.Kind):
		return "the report has no task dump, and the victim was chosen among whole processes, not by what each held on the cpuset's or memory policy's allowed nodes"
	case victimAlone(ev):
		return whyAlone
	case c.RSSBytes == nil && ev.Victims[0].RSSBytes != nil:
		return fmt.Sprintf("the report has no task dump, and gives no size but the victim's (%s)", Bytes(*ev.Victims[0].RSSBytes))
	case c.RSSBytes == nil:
		return "the report gives no memory sizes to compare"
	case ev.Victims[0].Cgroup == "":
		return "the victim's workload is not known (the kernel did not print its cgroup, and nothing else told it)"
	default:
		return "the largest memory holder's workload is not known"
	}
}

// whyAlone is unknownWhy's answer when victimAlone.
const whyAlone = "the report has no task dump, and the victim's own workload is the only memory holder it names"

// victimAlone tells whether an event's only memory holder, without a task
// dump, is the victim's own workload.
func victimAlone(ev *Event) bool {
	c := ev.Culprit
	return c != nil && c.Source == SourceVictims && c.RSSBytes != nil && victimsOwn(c, ev.Victims[0])
}

// victimsOwn tells whether the culprit is the victim or its cgroup.
func victimsOwn(c *Culprit, v Process) bool {
	return c.PID == v.PID || c.Cgroup != "" && c.Cgroup == v.Cgroup
}

// reason writes the sentence that explains an event's verdict.
func reason(ev *Event) string {
	var b strings.Builder
	v := ev.Victims[0]
	switch ev.Kind {
	case KindNode:
		b.WriteString("The node ran out of memory")
	case KindLimit:
		switch ev.LimitScope {
		case ScopeContainer:
			if workload.FromCgroup(ev.OOMMemcg).Kind == workload.KindPod {
				// Refine: the pod's limit is its one container's.
				b.WriteString("The container's memory limit was hit (the kernel named its pod's cgroup, whose limit is this container's alone)")
			} else {
				fmt.Fprintf(&b, "The container's memory limit was hit (%s)", cgroupLabel(ev.OOMMemcg))
			}
		case ScopePod:
			fmt.Fprintf(&b, "The pod's memory limit was hit (%s)", cgroupLabel(ev.OOMMemcg))
		case ScopeAllocatable:
			fmt.Fprintf(&b, "The pods together hit the node-allocatable limit kubelet sets on %s", path.Base(ev.OOMMemcg))
		case ScopeOther:
			fmt.Fprintf(&b, "The memory limit of %s was hit", cgroupLabel(ev.OOMMemcg))
		default:
			b.WriteString("A cgroup memory limit was hit (the log does not name the cgroup)")
		}
		switch {
		case ev.MemswLimitBytes != nil:
			fmt.Fprintf(&b, ", its memory+swap limit %s", Bytes(*ev.MemswLimitBytes))
			if ev.MemcgLimitBytes != nil && ev.MemcgUsageBytes != nil {
				fmt.Fprintf(&b, " (memory %s of its %s limit)", Bytes(*ev.MemcgUsageBytes), Bytes(*ev.MemcgLimitBytes))
			}
		case ev.MemcgLimitBytes != nil:
			fmt.Fprintf(&b, ", limit %s", Bytes(*ev.MemcgLimitBytes))
		}
	case KindCpuset:
		b.WriteString("The allowed cpuset's memory nodes ran out of memory")
	case KindMempolicy:
		b.WriteString("The memory policy's nodes ran out of memory")
	default:
		b.WriteString("The kernel killed a process for lack of memory without saying which limit ran out")
	}
	if v.SelectionOnly {
		fmt.Fprintf(&b, "; the kernel chose %s to kill", processLabel(v))
	} else {
		fmt.Fprintf(&b, "; the kernel killed %s", processLabel(v))
	}
	shared := Sharing(ev.Victims)
	if shared > 0 {
		fmt.Fprintf(&b, " and %d more process(es) sharing its memory", shared)
	}
	if n := len(ev.Victims) - 1 - shared; n > 0 {
		fmt.Fprintf(&b, " and %d more task(s) of %s (memory.oom.group)", n, cgroupLabel(groupOf(ev)))
	}
	b.WriteString(". ")
	c := ev.Culprit
	switch {
	case ev.LimitScope == ScopeContainer:
		b.WriteString("Not collateral: it hit its own container's limit.")
		if c != nil && ev.LimitFrom == LimitFromIncident {
			fmt.Fprintf(&b, " The limit is the one the incident's full reports name; its largest task seen was %s%s.",
				culpritLabel(c), sourceNote(c))
		}
	case c == nil:
		b.WriteString("Collateral unknown: the report names no memory holder.")
	case ev.CollateralVerdict == CollateralUnknown:
		why := unknownWhy(ev)
		fmt.Fprintf(&b, "Collateral unknown: %s", why)
		switch {
		case c.Source == SourceTrigger:
			fmt.Fprintf(&b, "; the task allocating when memory ran out was %s", culpritLabel(c))
		case why == whyAlone:
			fmt.Fprintf(&b, " (%s)", Bytes(*c.RSSBytes))
		case c.RSSBytes != nil:
			fmt.Fprintf(&b, "; the largest memory holder seen was %s%s", culpritLabel(c), sourceNote(c))
		}
		b.WriteString(".")
	case ev.Collateral:
		if c.RankedBy == RankedOverRequest {
			fmt.Fprintf(&b, "Collateral: of the memory holders larger than the victim's own %s, the furthest over its request (kubelet's eviction order) was %s%s",
				unitNoun(ev.LimitScope), culpritLabel(c), requestNote(c, ev.LimitScope))
		} else {
			fmt.Fprintf(&b, "Collateral: the largest memory holder was %s%s, not the victim's own %s",
				culpritLabel(c), requestNote(c, ev.LimitScope), unitNoun(ev.LimitScope))
		}
		b.WriteString(sourceNote(c))
		b.WriteString(".")
	case c.RankedBy == RankedMajority && ev.MemcgUsageBytes != nil:
		fmt.Fprintf(&b, "Not collateral: the victim's own %s was the largest memory holder: the victim's anonymous memory alone was over half the %s in use under the limit (RSS %s), so no other workload under it held as much.",
			unitNoun(ev.LimitScope), Bytes(*ev.MemcgUsageBytes), Bytes(*c.RSSBytes))
	default:
		fmt.Fprintf(&b, "Not collateral: the victim's own %s was the largest memory holder", unitNoun(ev.LimitScope))
		if c.RSSBytes != nil {
			fmt.Fprintf(&b, " (%s%s)", Bytes(*c.RSSBytes), requestNote(c, ev.LimitScope))
		}
		b.WriteString(sourceNote(c))
		b.WriteString(".")
	}
	if ev.ChosenForScoreAdj && v.OOMScoreAdj != nil {
		fmt.Fprintf(&b, " The victim was chosen for its oom_score_adj %d%s rather than its size.",
			*v.OOMScoreAdj, adjNote(*v.OOMScoreAdj, v.Workload))
	}
	switch t := ev.Trigger; {
	case ev.LimitLowered && t != nil:
		fmt.Fprintf(&b, " Caused by lowering the limit: %s wrote memory.max below the cgroup's usage.", triggerLabel(t, v))
	case ev.LimitLowered:
		b.WriteString(" Caused by lowering the limit: memory.max was written below the cgroup's usage.")
	case t != nil:
		fmt.Fprintf(&b, " Triggered by %s.", triggerLabel(t, v))
	}
	if ev.DumpCut && ev.Collateral {
		b.WriteString(" The log's task dump is cut (rows were left out at an elision): a larger holder may be among them.")
	}
	if !ev.Complete {
		b.WriteString(" The report's start is missing (lost in a log overflow, rate-limited by the kernel, or cut from this copy of the log).")
	}
	if v.SelectionOnly {
		b.WriteString(" The kill line was not in the log (filtered or cut off): the kernel kills a child of the process it chose instead when one scores higher, and none when the chosen process was already exiting.")
	}
	return b.String()
}

// Sharing counts the victims after the first killed for sharing its
// memory.
func Sharing(victims []Process) int {
	n := 0
	for _, v := range victims[min(1, len(victims)):] {
		if v.SharedMemory {
			n++
		}
	}
	return n
}

func groupOf(ev *Event) string {
	if ev.GroupCgroup != "" {
		return ev.GroupCgroup
	}
	return ev.Victims[0].Cgroup
}

func sourceNote(c *Culprit) string {
	switch c.Source {
	case SourceVictims:
		return " (the report has no task dump; judged from the killed processes' sizes)"
	case SourceTrigger:
		return " (the report has no task dump; judged from the task that was allocating when memory ran out)"
	case SourceIncident:
		return " (the report has no task dump; judged from the other reports of the same incident)"
	}
	return ""
}

func unitNoun(scope string) string {
	if scope == ScopePod {
		return "container"
	}
	return "workload"
}

func adjNote(adj int, w Workload) string {
	if w.PodUID == "" {
		// The QoS classes are Kubernetes': a desktop's browser sets 300
		// on its renderers too.
		return ""
	}
	switch {
	case adj == 1000:
		return " (BestEffort)"
	case adj >= 2 && adj <= 999:
		return " (Burstable)"
	}
	return ""
}

// processLabel names a process and where it ran.
func processLabel(p Process) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (pid %d", p.Comm, p.PID)
	if p.RSSBytes != nil {
		fmt.Fprintf(&b, ", RSS %s", Bytes(*p.RSSBytes))
	}
	if p.OOMScoreAdj != nil {
		fmt.Fprintf(&b, ", oom_score_adj %d", *p.OOMScoreAdj)
	}
	b.WriteString(")")
	if w := workloadLabel(p.Workload); w != "" {
		b.WriteString(" in ")
		b.WriteString(w)
		if in := insideLXC(p.Workload); in != "" {
			b.WriteString(" (" + in + ")")
		}
		b.WriteString(limitNote(p.Workload))
	}
	return b.String()
}

// insideLXC is where inside its LXC container a process ran
// ("system.slice/nginx.service"), "" at the container's root or outside
// LXC: the container is the workload, its own services are not.
func insideLXC(w Workload) string {
	if w.Runtime != workload.RuntimeLXC {
		return ""
	}
	cg := strings.TrimPrefix(w.Cgroup, "/")
	top, rest, _ := strings.Cut(cg, "/")
	if top == "lxc" {
		// Proxmox: lxc/<vmid>, its cgroup v2 payload under ns/.
		_, rest, _ = strings.Cut(rest, "/")
		if rest == "ns" {
			return ""
		}
		rest = strings.TrimPrefix(rest, "ns/")
	}
	return rest
}

// limitNote tells a workload's memory request and limit, when known.
func limitNote(w Workload) string {
	var parts []string
	r := w.ContainerResources
	if r != nil && r.SpecRead {
		if r.MemoryRequestBytes > 0 {
			parts = append(parts, "request "+Bytes(r.MemoryRequestBytes))
		} else {
			parts = append(parts, "no request")
		}
	}
	switch {
	case r != nil && r.MemoryLimitBytes > 0:
		parts = append(parts, "limit "+Bytes(r.MemoryLimitBytes))
	case r != nil && (r.SpecRead || r.CgroupRead && r.MemoryMaxBytes == 0) && w.ContainerID != "":
		parts = append(parts, "no limit")
	}
	if len(parts) == 0 {
		return ""
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// requestOf is the request a culprit is weighed by: its container's under
// a pod's limit, its pod's otherwise.
func requestOf(w Workload, scope string) (int64, bool) {
	r := w.PodResources
	if scope == ScopePod {
		r = w.ContainerResources
	}
	if r == nil || !r.SpecRead {
		return 0, false
	}
	return r.MemoryRequestBytes, true
}

// requestNote says how a culprit's usage compares with its request.
func requestNote(c *Culprit, scope string) string {
	req, ok := requestOf(c.Workload, scope)
	if !ok || c.RSSBytes == nil {
		return ""
	}
	rss := *c.RSSBytes
	switch {
	case req == 0:
		return ", with no memory request"
	case rss > req:
		return fmt.Sprintf(", %s over its %s request", Bytes(rss-req), Bytes(req))
	}
	return fmt.Sprintf(", within its %s request", Bytes(req))
}

func culpritLabel(c *Culprit) string {
	var b strings.Builder
	pid := "pid unknown" // a trigger whose CPU line was not in the log
	if c.PID != 0 {
		pid = fmt.Sprintf("pid %d", c.PID)
	}
	if w := workloadLabel(c.Workload); w != "" {
		b.WriteString(w)
		fmt.Fprintf(&b, " (%s %s", c.Comm, pid)
		if c.Tasks > 1 {
			fmt.Fprintf(&b, " and %d more task(s)", c.Tasks-1)
		}
	} else {
		fmt.Fprintf(&b, "%s (%s", c.Comm, pid)
	}
	if c.RSSBytes != nil {
		fmt.Fprintf(&b, ", %s", Bytes(*c.RSSBytes))
	}
	b.WriteString(")")
	return b.String()
}

func triggerLabel(t *Process, victim Process) string {
	if t.PID != 0 && t.PID == victim.PID {
		return "the victim itself"
	}
	var b strings.Builder
	b.WriteString(t.Comm)
	if t.PID != 0 {
		fmt.Fprintf(&b, " (pid %d)", t.PID)
	}
	if w := workloadLabel(t.Workload); w != "" {
		b.WriteString(" in ")
		b.WriteString(w)
	}
	return b.String()
}

// workloadLabel names a workload for people: names when the runtime gave
// them, IDs otherwise.
func workloadLabel(w Workload) string { return vocab.Workload(w.Names()) }

func cgroupLabel(path string) string {
	if path == "" {
		return "an unnamed cgroup"
	}
	w := WorkloadOf(path)
	l := workloadLabel(w)
	if l == "" {
		return path
	}
	// A cgroup below its unit's own (an app's scope under user@1000.service,
	// a service's sub-cgroup) is named too: it, not the unit, has the limit.
	if last := path[strings.LastIndexByte(path, '/')+1:]; w.Unit != "" && last != w.Unit && last != "" {
		return l + " (cgroup " + last + ")"
	}
	return l
}

// Bytes formats a size with binary units (vocab.Bytes).
func Bytes(n int64) string { return vocab.Bytes(n) }
