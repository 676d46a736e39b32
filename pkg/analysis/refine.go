package analysis

import "github.com/oomwatch/oomwatch/pkg/workload"

// limitSlack is how far a pod's limit may lie from its container's and
// still be the same limit: the kernel rounds a limit down to whole pages
// (64 KiB on some arm64 kernels), Kubernetes quantities need not be.
const limitSlack = 64 << 10

// Refine applies what only the agent knows after names and limits were
// added (the Enricher) to an event's verdict, then writes its Reason
// again. enrich.Enricher.Enrich calls it last, once per event.
//
// A single-container pod's limit is its container's: kubelet sets the pod
// cgroup's limit to the sum of its containers' limits (plus the pod
// overhead), and with one container the two are equal. The pod's cgroup
// also holds the pause container, so it reaches the limit first and the
// kernel names it as oom_memcg (seen on cgroup v1 with containerd 1.6 and
// kubelet 1.37): for the user, and for kubelet's OOMKilled, the container
// hit its own limit.
func Refine(ev *Event) {
	if ownPodLimit(ev) {
		ev.LimitScope = ScopeContainer
	}
	ev.Reason = Explain(ev)
}

// ownPodLimit tells whether a pod-limit kill's limit is the victim
// container's own: the pod's limit equals the container's plus the pod's
// overhead, within page rounding.
func ownPodLimit(ev *Event) bool {
	if ev.Kind != KindLimit || ev.LimitScope != ScopePod || len(ev.Victims) == 0 {
		return false
	}
	v := ev.Victims[0]
	if workload.FromCgroup(v.Cgroup).Kind != workload.KindContainer {
		return false // a process of the pod cgroup itself: no container limit
	}
	if sibling(ev) {
		return false
	}
	ctr, pod := heldLimit(v.ContainerResources), int64(0)
	if r := v.ContainerResources; r != nil && r.SpecRead {
		ctr = r.MemoryLimitBytes // none in the spec: no limit of its own
	}
	if ev.MemcgLimitBytes != nil {
		pod = *ev.MemcgLimitBytes
	} else {
		pod = heldLimit(v.PodResources)
	}
	if ctr <= 0 || pod <= 0 {
		return false
	}
	if v.PodResources != nil {
		ctr += v.PodResources.PodOverheadBytes
	}
	d := pod - ctr
	return d >= -limitSlack && d <= limitSlack
}

// heldLimit is the limit the cgroup held, else the one Kubernetes asked for.
func heldLimit(r *Resources) int64 {
	switch {
	case r == nil:
		return 0
	case r.MemoryMaxBytes > 0:
		return r.MemoryMaxBytes
	default:
		return r.MemoryLimitBytes
	}
}

// sibling tells whether a process of the event (the trigger, the largest
// holders, the culprit) ran in another container of the victim's pod: the
// pod's limit is then shared, whatever the limits say. The pod's sandbox
// (its pause process) is no sibling.
func sibling(ev *Event) bool {
	v := ev.Victims[0]
	other := func(w Workload, comm string) bool {
		if w.PodUID != v.PodUID || w.ContainerID == "" || w.ContainerID == v.ContainerID {
			return false
		}
		if w.ContainerName != "" {
			return w.ContainerName != workload.SandboxName
		}
		return comm != "pause" // not resolved: the sandbox image's process
	}
	if t := ev.Trigger; t != nil && other(t.Workload, t.Comm) {
		return true
	}
	if c := ev.Culprit; c != nil && other(c.Workload, c.Comm) {
		return true
	}
	for _, p := range ev.TopConsumers {
		if other(p.Workload, p.Comm) {
			return true
		}
	}
	return false
}
