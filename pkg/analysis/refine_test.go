package analysis

import (
	"strings"
	"testing"
)

func TestRefinePodLimitOfOneContainer(t *testing.T) {
	const (
		mi    = int64(1 << 20)
		uid   = "0d5f3c1e-6f7a-4b1c-9c2e-8a1b2c3d4e5f"
		ctrID = "4f1c9a3b2d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a"
	)
	const sibID = "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d"
	v1Pod := "/kubepods/burstable/pod" + uid
	named := func(cgroup, name string) Workload {
		w := WorkloadOf(cgroup)
		w.ContainerName = name
		return w
	}
	v2Pod := "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") + ".slice"
	for _, tc := range []struct {
		name       string
		memcg      string
		victim     string
		memcgLimit int64 // as the kernel printed it; 0: not printed
		ctr, pod   *Resources
		want       string
		// others are further processes of the event: the trigger first.
		others []Process
	}{
		{"v1: one container, equal limits", v1Pod, v1Pod + "/" + ctrID, 32 * mi,
			&Resources{MemoryLimitBytes: 32 * mi}, nil, ScopeContainer, nil},
		{"v2: one container, equal limits", v2Pod, v2Pod + "/cri-containerd-" + ctrID + ".scope", 32 * mi,
			&Resources{MemoryLimitBytes: 32 * mi}, nil, ScopeContainer, nil},
		{"limit from the cgroup, none printed", v1Pod, v1Pod + "/" + ctrID, 0,
			&Resources{MemoryMaxBytes: 32 * mi}, &Resources{MemoryMaxBytes: 32 * mi}, ScopeContainer, nil},
		{"pod overhead on top", v1Pod, v1Pod + "/" + ctrID, 32*mi + 10*mi,
			&Resources{MemoryLimitBytes: 32 * mi}, &Resources{PodOverheadBytes: 10 * mi}, ScopeContainer, nil},
		{"a limit the kernel rounded to pages (100M)", v1Pod, v1Pod + "/" + ctrID, 100000000 / 4096 * 4096,
			&Resources{MemoryLimitBytes: 100000000}, nil, ScopeContainer, nil},
		{"two containers: the pod's limit is their sum", v1Pod, v1Pod + "/" + ctrID, 64 * mi,
			&Resources{MemoryLimitBytes: 32 * mi}, nil, ScopePod, nil},
		{"a pod-level limit below the container's", v1Pod, v1Pod + "/" + ctrID, 16 * mi,
			&Resources{MemoryLimitBytes: 32 * mi}, nil, ScopePod, nil},
		{"container limit not known", v1Pod, v1Pod + "/" + ctrID, 32 * mi, nil, nil, ScopePod, nil},
		{"victim in the pod cgroup itself", v1Pod, v1Pod, 32 * mi,
			&Resources{MemoryLimitBytes: 32 * mi}, nil, ScopePod, nil},
		// Pod-level resources: no container limit in the spec; the runtime
		// gives the container the pod's.
		{"a pod-level limit, none in the container's spec", v1Pod, v1Pod + "/" + ctrID, 64 * mi,
			&Resources{MemoryMaxBytes: 64 * mi, SpecRead: true}, nil, ScopePod, nil},
		{"a sibling container triggered it", v1Pod, v1Pod + "/" + ctrID, 64 * mi,
			&Resources{MemoryLimitBytes: 64 * mi}, nil, ScopePod,
			[]Process{{PID: 7, Comm: "indexer", Workload: named(v1Pod+"/"+sibID, "indexer")}}},
		{"a sibling container, not resolved, among the holders", v1Pod, v1Pod + "/" + ctrID, 64 * mi,
			&Resources{MemoryLimitBytes: 64 * mi}, nil, ScopePod,
			[]Process{{PID: 42, Comm: "hog", Workload: WorkloadOf(v1Pod + "/" + ctrID)}, {PID: 7, Comm: "indexer", Workload: WorkloadOf(v1Pod + "/" + sibID)}}},
		{"the pause process among the holders", v1Pod, v1Pod + "/" + ctrID, 32 * mi,
			&Resources{MemoryLimitBytes: 32 * mi}, nil, ScopeContainer,
			[]Process{{PID: 42, Comm: "hog", Workload: WorkloadOf(v1Pod + "/" + ctrID)}, {PID: 3, Comm: "pause", Workload: named(v1Pod+"/"+sibID, "POD")}}},
		{"the pause process, not resolved", v1Pod, v1Pod + "/" + ctrID, 32 * mi,
			&Resources{MemoryLimitBytes: 32 * mi}, nil, ScopeContainer,
			[]Process{{PID: 42, Comm: "hog", Workload: WorkloadOf(v1Pod + "/" + ctrID)}, {PID: 3, Comm: "pause", Workload: WorkloadOf(v1Pod + "/" + sibID)}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rss := 30 * mi
			victim := Process{PID: 42, Comm: "hog", RSSBytes: &rss, Workload: WorkloadOf(tc.victim)}
			victim.ContainerResources, victim.PodResources = tc.ctr, tc.pod
			ev := Event{Kind: KindLimit, LimitScope: ScopePod, OOMMemcg: tc.memcg, Complete: true,
				Victims: []Process{victim}, CollateralVerdict: CollateralNo,
				Culprit: &Culprit{PID: 42, Comm: "hog", RSSBytes: &rss, Tasks: 1, Source: SourceTaskDump, Workload: victim.Workload}}
			if len(tc.others) > 0 {
				t0 := tc.others[0]
				ev.Trigger = &t0
				ev.TopConsumers = tc.others[1:]
			}
			if tc.memcgLimit > 0 {
				l := tc.memcgLimit
				ev.MemcgLimitBytes = &l
			}
			Refine(&ev)
			if ev.LimitScope != tc.want {
				t.Fatalf("scope %q, want %q (%s)", ev.LimitScope, tc.want, ev.Reason)
			}
			own := strings.Contains(ev.Reason, "whose limit is this container's alone")
			if own != (tc.want == ScopeContainer) || !strings.HasPrefix(ev.Reason, map[string]string{
				ScopeContainer: "The container's memory limit was hit", ScopePod: "The pod's memory limit was hit"}[tc.want]) {
				t.Errorf("reason %q", ev.Reason)
			}
			if tc.want == ScopeContainer && !strings.Contains(ev.Reason, "Not collateral: it hit its own container's limit.") {
				t.Errorf("reason %q", ev.Reason)
			}
		})
	}
}
