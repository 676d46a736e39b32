package enrich

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/kubepods"
)

const (
	root   = "../cgroupstat/testdata/v2-6.1-systemd-container-oom"
	pod    = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0f1e2d3c_4b5a_4968_a7b6_c5d4e3f2a1b0.slice"
	ctr    = pod + "/cri-containerd-4a5f0c2b9d8e7f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182.scope"
	ctrID  = "4a5f0c2b9d8e7f6a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f607182"
	podUID = "0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0"
)

type fakeRuntime struct {
	containers map[string]cri.Container
	pods       map[string]cri.Pod
}

func (f fakeRuntime) Container(_ context.Context, id string) (cri.Container, bool) {
	c, ok := f.containers[id]
	return c, ok
}

func (f fakeRuntime) Pod(_ context.Context, uid string) (cri.Pod, bool) {
	p, ok := f.pods[uid]
	return p, ok
}

func event() *analysis.Event {
	v := analysis.Process{PID: 7, Comm: "api", Workload: analysis.Workload{Cgroup: ctr, WorkloadKind: "container",
		PodUID: podUID, ContainerID: ctrID, QoS: "burstable", Runtime: "containerd"}}
	return &analysis.Event{Kind: "limit", LimitScope: "container", Victims: []analysis.Process{v},
		Culprit: &analysis.Culprit{PID: 7, Comm: "api", Tasks: 1, Workload: v.Workload}}
}

func TestEnrichNamesAndFigures(t *testing.T) {
	rt := fakeRuntime{
		containers: map[string]cri.Container{ctrID: {ID: ctrID, Name: "api", Image: "shop/cart:1.2", PodUID: podUID,
			PodNamespace: "shop", PodName: "cart-7d9", MemoryLimitBytes: 32 << 20}},
		pods: map[string]cri.Pod{podUID: {UID: podUID, Namespace: "shop", Name: "cart-7d9",
			Labels: map[string]string{"app": "cart"}, OwnerKind: "ReplicaSet?", OwnerName: "cart-7d9f8",
			OverheadBytes: 1 << 20}},
	}
	e := New(root, rt, nil)
	// The summary line comes first: the figures are read then.
	e.Observe([]byte("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + ctr + ",task_memcg=" + ctr + ",task=api,pid=7,uid=0"))
	if e.snaps.Len() != 2 {
		t.Fatalf("%d cgroups read at kill time, want container and pod", e.snaps.Len())
	}
	ev := event()
	e.Enrich(context.Background(), ev)
	w := ev.Victims[0].Workload
	if w.Namespace != "shop" || w.PodName != "cart-7d9" || w.ContainerName != "api" || w.Image != "shop/cart:1.2" ||
		w.Labels["app"] != "cart" || !strings.HasPrefix(w.Labels["oomwatch.io/owner"], "ReplicaSet?") {
		t.Fatalf("names: %+v", w)
	}
	cr := w.ContainerResources
	if cr == nil || cr.MemoryLimitBytes != 32<<20 || !cr.CgroupRead || cr.MemoryMaxBytes != 33554432 || cr.EventsOOMKill != 1 || cr.MemoryPeakBytes != 33554432 {
		t.Fatalf("container figures: %+v", cr)
	}
	if pr := w.PodResources; pr == nil || pr.PodOverheadBytes != 1<<20 || !pr.CgroupRead {
		t.Fatalf("pod figures: %+v", pr)
	}
	if ev.Culprit.Namespace != "shop" {
		t.Fatalf("culprit not enriched: %+v", ev.Culprit.Workload)
	}
	ev.Reason = analysis.Explain(ev)
	for _, want := range []string{"pod shop/cart-7d9 container api", "limit 32.0 MiB"} {
		if !strings.Contains(ev.Reason, want) {
			t.Errorf("reason lacks %q: %s", want, ev.Reason)
		}
	}
}

func TestEnrichWithoutRuntime(t *testing.T) {
	e := New(root, nil, nil)
	ev := event()
	e.Enrich(context.Background(), ev)
	w := ev.Victims[0].Workload
	if w.PodName != "" || w.ContainerResources == nil || w.ContainerResources.MemoryMaxBytes != 33554432 {
		t.Fatalf("without a runtime: %+v", w)
	}
}

func TestObserveIgnoresOtherRecords(t *testing.T) {
	e := New(root, nil, nil)
	allocs := testing.AllocsPerRun(100, func() { e.Observe([]byte("eth0: link up")) })
	if allocs != 0 || e.snaps.Len() != 0 {
		t.Fatalf("allocs %.1f snaps %d", allocs, e.snaps.Len())
	}
	e.Observe([]byte("oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/nonexistent,task_memcg=/nonexistent/x,task=a,pid=1,uid=0"))
	if e.snaps.Len() != 0 {
		t.Fatal("a missing cgroup was recorded")
	}
}

type fakeSpecs map[string]kubepods.Pod

func (f fakeSpecs) Pod(_ context.Context, uid string) (kubepods.Pod, bool) {
	p, ok := f[uid]
	return p, ok
}

// The pod spec gives requests, and names when the runtime has none.
func TestEnrichFromPodSpec(t *testing.T) {
	specs := fakeSpecs{podUID: {UID: podUID, Namespace: "shop", Name: "cart-7d9",
		Containers:   map[string]kubepods.Container{"api": {Name: "api", RequestBytes: 16 << 20, LimitBytes: 32 << 20}},
		ContainerIDs: map[string]string{ctrID: "api"}, RequestBytes: 20 << 20, OverheadBytes: 4 << 20}}
	e := New(root, nil, specs)
	ev := event()
	e.Enrich(context.Background(), ev)
	w := ev.Victims[0].Workload
	if w.Namespace != "shop" || w.PodName != "cart-7d9" || w.ContainerName != "api" {
		t.Fatalf("names from the spec: %+v", w)
	}
	cr, pr := w.ContainerResources, w.PodResources
	if cr == nil || !cr.SpecRead || cr.MemoryRequestBytes != 16<<20 || cr.MemoryLimitBytes != 32<<20 {
		t.Fatalf("container resources %+v", cr)
	}
	if pr == nil || !pr.SpecRead || pr.MemoryRequestBytes != 20<<20 || pr.PodOverheadBytes != 4<<20 {
		t.Fatalf("pod resources %+v", pr)
	}
	ev.Reason = analysis.Explain(ev)
	if !strings.Contains(ev.Reason, "(request 16.0 MiB, limit 32.0 MiB)") {
		t.Errorf("reason: %s", ev.Reason)
	}

	// Under a pod-level limit the runtime gives a container without a limit
	// of its own the pod's: the spec says it has none, and the spec wins
	// over the runtime and the cgroup.
	rtLimit := fakeRuntime{containers: map[string]cri.Container{ctrID: {ID: ctrID, Name: "api", PodUID: podUID,
		PodNamespace: "shop", PodName: "cart-7d9", MemoryLimitBytes: 64 << 20}}}
	specs[podUID] = kubepods.Pod{UID: podUID, Namespace: "shop", Name: "cart-7d9",
		Containers:   map[string]kubepods.Container{"api": {Name: "api", RequestBytes: 16 << 20}},
		ContainerIDs: map[string]string{ctrID: "api"}}
	ev = event()
	New(root, rtLimit, specs).Enrich(context.Background(), ev)
	if cr := ev.Victims[0].ContainerResources; cr == nil || !cr.SpecRead || cr.MemoryLimitBytes != 0 || cr.MemoryMaxBytes == 0 {
		t.Fatalf("container without a limit in its spec: %+v", cr)
	}

	// The runtime's names win; an unknown container keeps only the pod's.
	rt := fakeRuntime{pods: map[string]cri.Pod{podUID: {UID: podUID, Namespace: "shop", Name: "cart-7d9"}}}
	specs[podUID] = kubepods.Pod{UID: podUID, Namespace: "other", Name: "stale", RequestBytes: 1}
	e = New(root, rt, specs)
	ev = event()
	e.Enrich(context.Background(), ev)
	w = ev.Victims[0].Workload
	if w.PodName != "cart-7d9" || w.ContainerName != "" || w.PodResources.MemoryRequestBytes != 1 ||
		(w.ContainerResources != nil && w.ContainerResources.SpecRead) {
		t.Fatalf("runtime and spec: %+v %+v", w, w.ContainerResources)
	}
}

// A kill at a limit above the pod (kubelet's node-allocatable enforcement
// puts one on kubepods): the summary names oom_memcg != task_memcg, and
// the limited cgroup's figures, read when the summary is read, are in the
// event even after the cgroup files change.
func TestEnrichLimitedCgroupAbovePod(t *testing.T) {
	dir := t.TempDir()
	write := func(p, name, val string) {
		t.Helper()
		full := dir + p
		if err := os.MkdirAll(full, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full+"/"+name, []byte(val+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("", "cgroup.controllers", "cpu memory pids")
	for _, p := range []string{"/kubepods.slice", pod, ctr} {
		write(p, "memory.current", "1000")
		write(p, "memory.max", "max")
		write(p, "memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0")
	}
	write("/kubepods.slice", "memory.max", "268435456")
	write("/kubepods.slice", "memory.peak", "268435456")
	write("/kubepods.slice", "memory.events", "low 0\nhigh 0\nmax 12\noom 3\noom_kill 3")
	e := New(dir, nil, nil)
	e.Observe([]byte("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods.slice,task_memcg=" + ctr + ",task=be,pid=7,uid=0"))
	// The cgroup files change after the kill; the event keeps what the
	// kill saw.
	write("/kubepods.slice", "memory.events", "low 0\nhigh 0\nmax 12\noom 9\noom_kill 9")
	ev := event()
	ev.LimitScope, ev.OOMMemcg = "other", "/kubepods.slice"
	e.Enrich(context.Background(), ev)
	l := ev.Limited
	if l == nil || !l.CgroupRead || l.MemoryMaxBytes != 256<<20 || l.MemoryLimitBytes != 256<<20 || l.EventsOOMKill != 3 || l.MemoryPeakBytes != 256<<20 {
		t.Fatalf("limited cgroup figures: %+v", l)
	}
	// A container's own limit: no separate figures.
	ev = event()
	ev.OOMMemcg = ctr
	e.Enrich(context.Background(), ev)
	if ev.Limited != nil {
		t.Fatalf("figures of the victim's own container repeated as the limited cgroup's: %+v", ev.Limited)
	}
}

// TestName: a warning's cgroup is named from the runtime as a kill's
// victim is, without the Kubernetes API.
func TestName(t *testing.T) {
	rt := fakeRuntime{
		containers: map[string]cri.Container{ctrID: {ID: ctrID, Name: "api", Image: "shop/cart:1.2", PodUID: podUID,
			PodNamespace: "shop", PodName: "cart-7d9"}},
		pods: map[string]cri.Pod{podUID: {UID: podUID, Namespace: "shop", Name: "cart-7d9"}},
	}
	e := New(root, rt, nil)
	w := analysis.WorkloadOf(ctr)
	e.Name(context.Background(), &w)
	if w.Namespace != "shop" || w.PodName != "cart-7d9" || w.ContainerName != "api" || w.ContainerID != ctrID {
		t.Fatalf("container: %+v", w)
	}
	p := analysis.WorkloadOf(pod)
	e.Name(context.Background(), &p)
	if p.PodName != "cart-7d9" || p.ContainerName != "" {
		t.Fatalf("pod: %+v", p)
	}
	// Without a runtime, IDs only.
	bare := analysis.WorkloadOf(ctr)
	New(root, nil, nil).Name(context.Background(), &bare)
	if bare.PodName != "" || bare.PodUID != podUID {
		t.Fatalf("without a runtime: %+v", bare)
	}
}
