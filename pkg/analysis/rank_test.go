package analysis

import "testing"

// fakeRequests answers MemoryRequest from a map keyed by "uid/container".
type fakeRequests map[string]int64

// culpritUnit is culpritOf of holders already made, as the tests give them.
func culpritUnit(hs []Holder, scope, victimKey string, reqs Requests) (unit, bool, bool) {
	return culpritOf(holderSlice(hs), scope, victimKey, reqs)
}

func (f fakeRequests) MemoryRequest(uid, ctr string) (int64, bool) {
	n, ok := f[uid+"/"+ctr]
	return n, ok
}

func TestCulpritUnit(t *testing.T) {
	const mi = 1 << 20
	const (
		beUID = "0e1d2c3b-4a59-4867-9786-a5b4c3d2e1f0"
		buUID = "1f2e3d4c-5b6a-4978-8897-b6c5d4e3f2a1"
		gUID  = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6d"
		ctrA  = "aaaa00000000000000000000000000000000000000000000000000000000000a"
		ctrB  = "bbbb00000000000000000000000000000000000000000000000000000000000b"
	)
	be := "/kubepods/besteffort/pod" + beUID + "/cccc000000000000000000000000000000000000000000000000000000000001"
	bu := "/kubepods/burstable/pod" + buUID + "/" + ctrA
	buSide := "/kubepods/burstable/pod" + buUID + "/" + ctrB
	g := "/kubepods/pod" + gUID + "/dddd000000000000000000000000000000000000000000000000000000000001"
	daemon := "/system.slice/containerd.service"
	h := func(pid int, cg string, mib int64) Holder { return Holder{PID: pid, Cgroup: cg, RSSBytes: mib * mi} }
	victimBE := unitKey(Holder{PID: 1, Cgroup: be}, "")

	for _, tc := range []struct {
		name    string
		hs      []Holder
		scope   string
		victim  string
		reqs    Requests
		wantPID int
		byReq   bool
	}{
		// On a node the pod's pause process is listed first, in a cgroup of
		// its own: the pod's unit is named by its largest task.
		{"a pod's unit is named by its largest task", []Holder{h(1, be, 20), h(5, "/kubepods/burstable/pod"+buUID+"/ffff000000000000000000000000000000000000000000000000000000000001", 1), h(2, bu, 190)}, "", victimBE, nil, 2, false},
		{"no requests: the largest", []Holder{h(1, be, 20), h(2, bu, 190), h(3, daemon, 300)}, "", victimBE, nil, 3, false},
		{"the only larger holder, within its request", []Holder{h(1, be, 20), h(2, bu, 190)}, "", victimBE,
			fakeRequests{buUID + "/": 200 * mi, beUID + "/": 0}, 2, false},
		{"a pod over its request before a larger system service", []Holder{h(1, be, 20), h(2, bu, 250), h(3, daemon, 300)}, "", victimBE,
			fakeRequests{buUID + "/": 32 * mi}, 2, true},
		{"a larger system service before pods within their requests", []Holder{h(1, be, 20), h(2, bu, 250), h(3, daemon, 300)}, "", victimBE,
			fakeRequests{buUID + "/": 256 * mi}, 3, false},
		{"a pod far over its request before a larger one within it", []Holder{h(1, be, 20), h(2, bu, 250), h(4, g, 400)}, "", victimBE,
			fakeRequests{buUID + "/": 32 * mi, gUID + "/": 512 * mi}, 2, true},
		{"the largest, over its request, is the furthest over", []Holder{h(1, be, 20), h(2, bu, 250), h(4, g, 400)}, "", victimBE,
			fakeRequests{buUID + "/": 32 * mi, gUID + "/": 64 * mi}, 4, false},
		{"nobody larger: the victim's own", []Holder{h(1, be, 500), h(2, bu, 250)}, "", victimBE,
			fakeRequests{buUID + "/": 0}, 1, false},
		{"requests unknown for the larger holders: by size", []Holder{h(1, be, 20), h(2, bu, 250), h(4, g, 400)}, "", victimBE,
			fakeRequests{}, 4, false},
		{"pod scope weighs containers by their own requests", []Holder{h(1, buSide, 10), h(2, bu, 70), h(3, buSide, 50)}, ScopePod,
			unitKey(Holder{PID: 9, Cgroup: "/kubepods/burstable/pod" + buUID + "/" + "eeee00000000000000000000000000000000000000000000000000000000000e"}, ScopePod),
			fakeRequests{buUID + "/" + ctrA: 64 * mi, buUID + "/" + ctrB: 16 * mi}, 3, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u, ok, byReq := culpritUnit(tc.hs, tc.scope, tc.victim, tc.reqs)
			if !ok || u.top.PID != tc.wantPID || byReq != tc.byReq {
				t.Fatalf("culprit pid %d (ok %v, by request %v), want %d (by request %v)", u.top.PID, ok, byReq, tc.wantPID, tc.byReq)
			}
			if u.workload.Cgroup != u.top.Cgroup {
				t.Errorf("culprit unit named by %s, its largest task ran in %s", u.workload.Cgroup, u.top.Cgroup)
			}
		})
	}
}

func TestRequestNote(t *testing.T) {
	rss := int64(190 << 20)
	c := &Culprit{PID: 2, Comm: "grow", RSSBytes: &rss, Tasks: 1, Workload: Workload{PodUID: "u", ContainerID: "c",
		PodResources: &Resources{MemoryRequestBytes: 64 << 20, SpecRead: true}}}
	if got := requestNote(c, ""); got != ", 126.0 MiB over its 64.0 MiB request" {
		t.Errorf("over: %q", got)
	}
	c.Workload.PodResources.MemoryRequestBytes = 256 << 20
	if got := requestNote(c, ""); got != ", within its 256.0 MiB request" {
		t.Errorf("within: %q", got)
	}
	if got := requestNote(c, ScopePod); got != "" {
		t.Errorf("pod scope without a container request: %q", got)
	}
	c.Workload.PodResources.SpecRead = false
	if got := requestNote(c, ""); got != "" {
		t.Errorf("unknown: %q", got)
	}
}
