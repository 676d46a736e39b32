package analysis

import "strings"

// Requests tells the memory Kubernetes requested for a workload: in the
// agent, from the API server's pod specs (kubelet never gives requests to
// the container runtime). A container's request when containerID is set,
// the whole pod's (kubelet's eviction sum) when it is empty; ok is false
// when unknown.
type Requests interface {
	MemoryRequest(podUID, containerID string) (bytes int64, ok bool)
}

// request is the request of a unit: its container's under a pod's limit,
// its pod's otherwise. Non-pod workloads have none.
func request(u *unit, reqs Requests) (int64, bool) {
	w := u.workload
	switch {
	case reqs == nil || w.PodUID == "":
		return 0, false
	case strings.HasPrefix(u.key, "container:"):
		return reqs.MemoryRequest(w.PodUID, w.ContainerID)
	case strings.HasPrefix(u.key, "pod:"):
		return reqs.MemoryRequest(w.PodUID, "")
	}
	return 0, false
}

// culpritUnit picks the culprit among the report's memory holders, summed
// per unit, and tells whether requests chose it. The culprit is the unit
// that held the most, with one exception that follows kubelet, which
// evicts pods over their requests first and the furthest over first:
// among the units that held more than the victim's own, a pod (or, under a
// pod's limit, a container) over its memory request is named before any
// unit within its request or without one, the furthest over first. When
// no other unit held more than the victim's own, that is the culprit.
// Without requests this is the largest holder.
func culpritUnit(hs []Holder, scope, victimKey string, reqs Requests) (unit, bool, bool) {
	units, order := sum(hs, scope)
	best, ok := largestOf(units, order)
	if !ok || reqs == nil {
		return best, ok, false
	}
	var victimRSS int64
	if v := units[victimKey]; v != nil {
		victimRSS = v.rss
	}
	var over *unit
	var overBy int64
	larger := false
	for _, k := range order {
		u := units[k]
		if k == victimKey || u.rss <= victimRSS {
			continue
		}
		larger = true
		req, known := request(u, reqs)
		if !known {
			continue
		}
		if by := u.rss - req; by > 0 && (over == nil || by > overBy) {
			over, overBy = u, by
		}
	}
	switch {
	case !larger:
		if v := units[victimKey]; v != nil {
			return *v, true, false
		}
	case over != nil && over.key != best.key:
		return *over, true, true
	}
	return best, true, false
}

// sum adds the holders up per unit, in the order first seen.
func sum(hs []Holder, scope string) (map[string]*unit, []string) {
	units := map[string]*unit{}
	var order []string
	// Units are allocated 64 at a time: on a node's dump every task whose
	// cgroup is unknown is a unit of its own.
	var chunk []unit
	for _, h := range hs {
		k := unitKey(h, scope)
		u := units[k]
		if u == nil {
			if len(chunk) == cap(chunk) {
				chunk = make([]unit, 0, 64)
			}
			chunk = append(chunk, unit{key: k, workload: WorkloadOf(h.Cgroup)})
			u = &chunk[len(chunk)-1]
			units[k] = u
			order = append(order, k)
		}
		u.rss += h.RSSBytes
		u.tasks++
		if h.RSSBytes > u.top.RSSBytes || u.tasks == 1 {
			// A pod's unit is named by its largest task's container, not
			// by the first listed (the pause process, on a node).
			u.top, u.workload = h, WorkloadOf(h.Cgroup)
		}
	}
	return units, order
}
