package analysis

import (
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
	if best == none || reqs == nil {
		return us.unit(hs, best), best != none, false
	}
	var victimRSS int64
	vi := us.find(hs, victimKey)
	if vi != none {
		victimRSS = us.tally(hs, vi).rss
	}
	over := none
	var overBy int64
	// The largest unit that is not listed held more than the victim's
	// own only if it is another (the victim's may be it, or equal to it).
	larger := us.lone.tasks > 0 && us.lone.rss > victimRSS
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
		if by := t.rss - req; by > 0 && (over == none || by > overBy) {
			over, overBy = i, by
		}
	}
	switch {
	case !larger:
		if vi != none {
			return us.unit(hs, vi), true, false
		}
	case over != none && over != best:
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
// asked for. It holds no pointer.
type tally struct {
	pid int
	// rss is the unit's memory: private plus shared, where private sums
	// its tasks' RSS less their shared part (file and shmem pages, when
	// the report tells it), and shared is the largest such part of one
	// task. The tasks of one workload map the same files (a binary, its
	// libraries, a tmpfs, a shared memory segment): summing each one's
	// RSS counts those pages once per task, so that 2,000 workers of one
	// binary would hold 2,000 copies of it. Counting the largest once is
	// what the report allows (it has no per-page sharing); for one task,
	// rss is its RSS.
	rss     int64
	private int64
	shared  int64
	topRSS  int64
	tasks   int32
	top     int32 // the largest task's place in the holder list
	first   int32 // the unit's place in the order first seen
	// key is the unit's key in units.keys; -1 for a task whose cgroup is
	// not known, a unit of its own PID ("pid:<pid>").
	key int32
}

// units are a report's holders summed per unit, in the order first seen.
//
// A unit is named by an int: its index in list, none, lone, or, for a
// task of unknown cgroup that is a unit of its own while PIDs rise,
// single(its place in the holder list).
type units struct {
	// list holds the units of known cgroups in the order first seen, and
	// with full those of tasks of unknown cgroup too.
	list []tally
	keys []string
	// byKey finds the units of known cgroups; byCgroup remembers the unit
	// of each cgroup seen, so that a cgroup's key is made once.
	byKey    map[string]int
	byCgroup map[string]int
	// seen counts the units seen so far.
	seen int32
	// Without full, the PIDs of the tasks of unknown cgroup have risen,
	// as a dump's do: each is a unit of its own, and they are not listed
	// (a node's dump read from the backlog has 10,000). Only the largest,
	// the first seen among equals, is kept (lone). With full, they are
	// listed and byPID (open addressing, list index + 1) finds them.
	full   bool
	maxPID int
	lone   tally
	byPID  []int32
}

// Names of units that are not in units.list.
const (
	none = -1
	lone = -2
)

// single names the unit of the task at place i of the holder list, a
// unit of its own (see units).
func single(i int) int { return -3 - i }

// sum adds the holders up per unit, in the order first seen. It allocates
// per unit of a known cgroup, not per task: a node's dump may list 10,000
// tasks, most of them, before the agent looks them up, of unknown cgroup.
func sum(hs holderList, scope string) *units {
	us := &units{}
	if !us.add(hs, scope) {
		// A task of unknown cgroup whose PID is not above those before
		// (printed twice, or PIDs wrapped): they are all listed.
		us = &units{full: true}
		us.add(hs, scope)
	}
	return us
}

// add sums the holders into us; without full, it stops and returns false
// at the first task of unknown cgroup whose PID does not rise.
func (us *units) add(hs holderList, scope string) bool {
	n := hs.Len()
	lastCgroup, last := "", none
	for i := 0; i < n; i++ {
		h := hs.At(i)
		var u int
		switch {
		case h.Cgroup == "" && !us.full:
			if us.lone.tasks > 0 && h.PID <= us.maxPID {
				return false
			}
			us.maxPID = h.PID
			if us.lone.tasks == 0 || h.RSSBytes > us.lone.rss {
				us.lone = tally{pid: h.PID, rss: h.RSSBytes, topRSS: h.RSSBytes, tasks: 1, top: int32(i),
					first: us.seen, key: -1}
			}
			us.seen++
			continue
		case h.Cgroup == "":
			u = us.pidUnit(h.PID, n)
		case last != none && h.Cgroup == lastCgroup:
			u = last
		default:
			u = us.keyUnit(h, scope)
			lastCgroup, last = h.Cgroup, u
		}
		t := &us.list[u]
		t.add(h)
		t.tasks++
		if h.RSSBytes > t.topRSS || t.tasks == 1 {
			// A pod's unit is named by its largest task's container, not
			// by the first listed (the pause process, on a node).
			t.top, t.topRSS = int32(i), h.RSSBytes
		}
	}
	return true
}

// add counts a holder's memory into the unit (see tally.rss).
func (t *tally) add(h Holder) {
	if h.HasShared && h.SharedBytes >= 0 && h.SharedBytes <= h.RSSBytes {
		t.private += h.RSSBytes - h.SharedBytes
		t.shared = max(t.shared, h.SharedBytes)
	} else {
		t.private += h.RSSBytes
	}
	t.rss = t.private + t.shared
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
		us.list = append(us.list, tally{first: us.seen, key: int32(len(us.keys))})
		us.seen++
		us.keys = append(us.keys, k)
		us.byKey[k] = u
	}
	us.byCgroup[h.Cgroup] = u
	return u
}

// pidUnit returns the listed unit of a task of unknown cgroup, added if
// new; n bounds how many there may be.
func (us *units) pidUnit(pid, n int) int {
	if us.byPID == nil {
		size := 16
		for size < 2*n {
			size <<= 1
		}
		us.byPID = make([]int32, size)
	}
	s := us.slot(pid)
	if *s == 0 {
		*s = int32(len(us.list) + 1)
		us.list = append(us.list, tally{pid: pid, first: us.seen, key: -1})
		us.seen++
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

// largest returns the largest unit, the first seen among equals, or none.
func (us *units) largest() int {
	best := none
	for i := range us.list {
		if best == none || us.list[i].rss > us.list[best].rss {
			best = i
		}
	}
	if l := &us.lone; l.tasks > 0 {
		if best == none || l.rss > us.list[best].rss || l.rss == us.list[best].rss && l.first < us.list[best].first {
			return lone
		}
	}
	return best
}

// find returns the unit of key (unitKey's), or none.
func (us *units) find(hs holderList, key string) int {
	p, ok := strings.CutPrefix(key, "pid:")
	if !ok {
		if u, ok := us.byKey[key]; ok {
			return u
		}
		return none
	}
	pid, err := strconv.Atoi(p)
	if err != nil {
		return none
	}
	if us.full {
		if us.byPID != nil {
			if u := *us.slot(pid); u != 0 {
				return int(u - 1)
			}
		}
		return none
	}
	// Not listed: each such PID is one task.
	for i, n := 0, hs.Len(); i < n; i++ {
		if hs.pid(i) == pid && hs.At(i).Cgroup == "" {
			return single(i)
		}
	}
	return none
}

// tally returns the tally of unit u (not none).
func (us *units) tally(hs holderList, u int) tally {
	switch {
	case u >= 0:
		return us.list[u]
	case u == lone:
		return us.lone
	}
	i := -3 - u
	h := hs.At(i)
	return tally{pid: h.PID, rss: h.RSSBytes, topRSS: h.RSSBytes, tasks: 1, top: int32(i), key: -1}
}

// unit returns unit u as a unit, with its largest task and workload.
func (us *units) unit(hs holderList, u int) unit {
	if u == none {
		return unit{}
	}
	t := us.tally(hs, u)
	top := hs.At(int(t.top))
	k := ""
	if t.key >= 0 {
		k = us.keys[t.key]
	} else {
		k = unitKey(top, "")
	}
	return unit{key: k, rss: t.rss, tasks: int(t.tasks), top: top, workload: WorkloadOf(top.Cgroup)}
}
