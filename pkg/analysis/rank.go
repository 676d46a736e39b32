package analysis

import (
	"slices"
	"strconv"
	"strings"
)

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

// culpritUnit picks the culprit among the memory holders hs, summed per
// unit, and tells whether requests chose it (see culpritOf).
func culpritUnit(hs []Holder, scope, victimKey string, reqs Requests) (unit, bool, bool) {
	return culpritOf(holderSlice(hs), scope, victimKey, reqs)
}

// culpritOf picks the culprit among a report's memory holders, summed per
// unit, and tells whether requests chose it. The culprit is the unit that
// held the most, with one exception that follows kubelet, which evicts
// pods over their requests first and the furthest over first: among the
// units that held more than the victim's own, a pod (or, under a pod's
// limit, a container) over its memory request is named before any unit
// within its request or without one, the furthest over first. When no
// other unit held more than the victim's own, that is the culprit.
// Without requests this is the largest holder.
func culpritOf(hs holderList, scope, victimKey string, reqs Requests) (unit, bool, bool) {
	us := sum(hs, scope)
	best := us.largest()
	if best < 0 || reqs == nil {
		return us.unit(hs, best), best >= 0, false
	}
	var victimRSS int64
	vi := us.find(victimKey)
	if vi >= 0 {
		victimRSS = us.list[vi].rss
	}
	over := -1
	var overBy int64
	larger := false
	for i := range us.list {
		t := &us.list[i]
		if i == vi || t.rss <= victimRSS {
			continue
		}
		larger = true
		if t.key < 0 {
			continue // a task of unknown cgroup: no request
		}
		u := us.unit(hs, i)
		req, known := request(&u, reqs)
		if !known {
			continue
		}
		if by := t.rss - req; by > 0 && (over < 0 || by > overBy) {
			over, overBy = i, by
		}
	}
	switch {
	case !larger:
		if vi >= 0 {
			return us.unit(hs, vi), true, false
		}
	case over >= 0 && over != best:
		return us.unit(hs, over), true, true
	}
	return us.unit(hs, best), true, false
}

// unit is one workload's share of a report's memory.
type unit struct {
	key      string
	rss      int64
	tasks    int
	top      Holder
	workload Workload
}

// tally is a unit as sum adds it up: its largest task is held by its
// place in the holder list, and its workload is made only for the units
// asked for. It holds no pointer: a node's dump may make 10,000 of them,
// which the garbage collector then need not scan.
type tally struct {
	pid    int
	rss    int64
	topRSS int64
	tasks  int32
	top    int32 // the largest task's place in the holder list
	// key is the unit's key in units.keys; -1 for a task whose cgroup is
	// not known, a unit of its own PID ("pid:<pid>").
	key int32
}

// units are a report's holders summed per unit, in the order first seen.
type units struct {
	list []tally
	keys []string
	// byKey finds the units of known cgroups; byCgroup remembers the unit
	// of each cgroup seen, so that a cgroup's key is made once.
	byKey    map[string]int
	byCgroup map[string]int
	// The units of tasks of unknown cgroups (one per PID): while their
	// PIDs rise, as a dump's do, a new PID is a new unit; byPID (open
	// addressing, unit index + 1) is built once one does not.
	maxPID int
	pids   int
	byPID  []int32
}

// sum adds the holders up per unit, in the order first seen. It allocates
// per unit of a known cgroup, not per task: a node's dump may list 10,000
// tasks, most of them, before the agent looks them up, of unknown cgroup.
func sum(hs holderList, scope string) *units {
	us := &units{}
	n := hs.Len()
	lastCgroup, last := "", -1
	for i := 0; i < n; i++ {
		h := hs.At(i)
		var u int
		switch {
		case h.Cgroup == "":
			u = us.pidUnit(h.PID, n)
		case last >= 0 && h.Cgroup == lastCgroup:
			u = last
		default:
			u = us.keyUnit(h, scope)
			lastCgroup, last = h.Cgroup, u
		}
		t := &us.list[u]
		t.rss += h.RSSBytes
		t.tasks++
		if h.RSSBytes > t.topRSS || t.tasks == 1 {
			// A pod's unit is named by its largest task's container, not
			// by the first listed (the pause process, on a node).
			t.top, t.topRSS = int32(i), h.RSSBytes
		}
	}
	return us
}

// keyUnit returns the unit of a holder of known cgroup, added if new.
func (us *units) keyUnit(h Holder, scope string) int {
	if u, ok := us.byCgroup[h.Cgroup]; ok {
		return u
	}
	if us.byCgroup == nil {
		us.byCgroup, us.byKey = map[string]int{}, map[string]int{}
	}
	k := unitKey(h, scope)
	u, ok := us.byKey[k]
	if !ok {
		u = len(us.list)
		us.list = append(us.list, tally{key: int32(len(us.keys))})
		us.keys = append(us.keys, k)
		us.byKey[k] = u
	}
	us.byCgroup[h.Cgroup] = u
	return u
}

// pidUnit returns the unit of a task of unknown cgroup, added if new; n
// bounds how many there may be.
func (us *units) pidUnit(pid, n int) int {
	if us.pids == 0 {
		// Room for every holder, once: where one task's cgroup is not
		// known, most are not (a dump read from the backlog).
		us.list = slices.Grow(us.list, n)
	}
	if us.byPID == nil && (us.pids == 0 || pid > us.maxPID) {
		us.maxPID, us.pids = pid, us.pids+1
		us.list = append(us.list, tally{pid: pid, key: -1})
		return len(us.list) - 1
	}
	if us.byPID == nil {
		// A PID lower than one before (printed twice, or the PIDs
		// wrapped): from now on they are looked up.
		size := 16
		for size < 2*n {
			size <<= 1
		}
		us.byPID = make([]int32, size)
		for u := range us.list {
			if us.list[u].key < 0 {
				*us.slot(us.list[u].pid) = int32(u + 1)
			}
		}
	}
	s := us.slot(pid)
	if *s == 0 {
		*s = int32(len(us.list) + 1)
		us.pids++
		us.list = append(us.list, tally{pid: pid, key: -1})
	}
	return int(*s - 1)
}

// slot returns pid's place in byPID: its unit's, or the empty one where
// it goes.
func (us *units) slot(pid int) *int32 {
	mask := uint64(len(us.byPID) - 1)
	for i := (uint64(pid) * 0x9e3779b97f4a7c15 >> 32) & mask; ; i = (i + 1) & mask {
		if u := us.byPID[i]; u == 0 || us.list[u-1].pid == pid {
			return &us.byPID[i]
		}
	}
}

// largest returns the largest unit, the first seen among equals; -1 when
// there is none.
func (us *units) largest() int {
	best := -1
	for i := range us.list {
		if best < 0 || us.list[i].rss > us.list[best].rss {
			best = i
		}
	}
	return best
}

// find returns the unit of key (unitKey's), or -1.
func (us *units) find(key string) int {
	if p, ok := strings.CutPrefix(key, "pid:"); ok {
		pid, err := strconv.Atoi(p)
		if err != nil {
			return -1
		}
		if us.byPID != nil {
			if u := *us.slot(pid); u != 0 {
				return int(u - 1)
			}
			return -1
		}
		for u := range us.list {
			if us.list[u].key < 0 && us.list[u].pid == pid {
				return u
			}
		}
		return -1
	}
	if u, ok := us.byKey[key]; ok {
		return u
	}
	return -1
}

// unit returns unit u as a unit, with its largest task and workload.
func (us *units) unit(hs holderList, u int) unit {
	if u < 0 {
		return unit{}
	}
	t := &us.list[u]
	top := hs.At(int(t.top))
	k := ""
	if t.key >= 0 {
		k = us.keys[t.key]
	} else {
		k = unitKey(top, "")
	}
	return unit{key: k, rss: t.rss, tasks: int(t.tasks), top: top, workload: WorkloadOf(top.Cgroup)}
}
