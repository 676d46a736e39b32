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

// TestSharedPagesCountedOnce: the workers of one workload map the same
// file and shmem pages (the 6.12 guest's 2,000 BestEffort sleepers, each
// 1.3 MiB of one busybox in a ramfs, against a grower of 154 MiB of its
// own): a unit holds its tasks' private memory and its largest shared part
// once, not 2,000 copies of it. Tasks whose report gives no split count
// whole.
func TestSharedPagesCountedOnce(t *testing.T) {
	const mi = 1 << 20
	sleepers := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod81a2b3c4_d5e6_4f70_8192_a3b4c5d6e7f8.slice/cri-containerd-a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7.scope"
	grower := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod92b3c4d5_e6f7_4081_9203_b4c5d6e7f809.slice/cri-containerd-b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8.scope"
	var hs []Holder
	for pid := 600; pid < 2600; pid++ {
		hs = append(hs, Holder{PID: pid, Cgroup: sleepers, RSSBytes: 1324 << 10, SharedBytes: 1324 << 10, HasShared: true})
	}
	hs = append(hs, Holder{PID: 2700, Cgroup: grower, RSSBytes: 154 * mi, SharedBytes: 2 * mi, HasShared: true})
	victim := unitKey(Holder{PID: 1077, Cgroup: sleepers}, "")
	u, ok, _ := culpritUnit(hs, "", victim, nil)
	if !ok || u.top.PID != 2700 || u.rss != 154*mi {
		t.Fatalf("culprit pid %d, %d bytes", u.top.PID, u.rss)
	}
	us := sum(holderSlice(hs), "")
	if got := us.tally(holderSlice(hs), us.find(holderSlice(hs), victim)).rss; got != 1324<<10 {
		t.Errorf("sleepers hold %d bytes, want one copy of the binary", got)
	}
	// Private memory adds up; without a split, RSS adds up whole.
	for _, tc := range []struct {
		hs   []Holder
		want int64
	}{
		{[]Holder{{PID: 1, Cgroup: grower, RSSBytes: 100, SharedBytes: 40, HasShared: true}, {PID: 2, Cgroup: grower, RSSBytes: 70, SharedBytes: 60, HasShared: true}}, 60 + 10 + 60},
		{[]Holder{{PID: 1, Cgroup: grower, RSSBytes: 100}, {PID: 2, Cgroup: grower, RSSBytes: 70}}, 170},
		{[]Holder{{PID: 1, Cgroup: grower, RSSBytes: 100, SharedBytes: 40, HasShared: true}, {PID: 2, Cgroup: grower, RSSBytes: 70}}, 60 + 40 + 70},
		// A split that does not add up is not trusted.
		{[]Holder{{PID: 1, Cgroup: grower, RSSBytes: 100, SharedBytes: 400, HasShared: true}, {PID: 2, Cgroup: grower, RSSBytes: 70, SharedBytes: -1, HasShared: true}}, 170},
	} {
		us := sum(holderSlice(tc.hs), "")
		if got := us.list[0].rss; got != tc.want {
			t.Errorf("%+v: %d, want %d", tc.hs, got, tc.want)
		}
	}
}
