// Package scenario defines the end-to-end scenarios: kubelet-shaped cgroup
// trees in a real kernel, and the memory pressure that makes the kernel
// kill. The e2e test asserts what oomwatch reports for each; `make demo`
// runs them and shows oomctl's view.
package scenario

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"
)

// Expect is what the first OOM event of a scenario must say.
type Expect struct {
	Kind  string
	Scope string
	// OOMMemcg, when set, is the cgroup the kernel must name as oom_memcg.
	OOMMemcg   string
	PodUID     string
	Container  string
	QoS        string
	Runtime    string
	Unit       string // victim's systemd unit, for non-pod victims
	VictimComm string
	// TriggerFrom names the cgroup the trigger ran in ("" when the victim
	// itself allocated).
	TriggerPodUID string
	// CulpritPodUID / CulpritContainer name the expected culprit.
	CulpritPodUID    string
	CulpritContainer string
	Collateral       bool
	// Verdict is the first event's collateral verdict (yes, no or
	// unknown); empty means yes when Collateral, else no.
	Verdict    string
	MinVictims int
	// Storm scenarios check delivery counts instead of one event's fields.
	Storm bool
	// StormVerdict is what every storm kill whose victim is placed must be
	// judged: "no" (no kill may be collateral) or "yes" (each is
	// collateral of CulpritPodUID's pod).
	StormVerdict string
	// EachOwnPod: every OOM event's victim is in its own pod of the
	// scenario, named, with how it was attributed said (rate-limited
	// kills of separate containers).
	EachOwnPod bool
	// Names and figures the agent resolves from the runtime and the API
	// (fakenode): the victim's "namespace/pod" and container name, its
	// container's request and limit (MiB, 0 for none), and the culprit's
	// "namespace/pod"; empty for a victim outside any pod.
	VictimPod, VictimContainerName   string
	VictimRequestMiB, VictimLimitMiB int64
	CulpritPod                       string
	// ForgedRecords: the script wrote at least this many records imitating
	// an OOM report to /dev/kmsg from userspace; the scenario's OOM events
	// must be exactly Events, and the agent must have counted them.
	ForgedRecords int
	// Warnings, when set, is what the scenario's warnings must show.
	Warnings *WarnExpect
}

// Scenario is one guest run.
type Scenario struct {
	Name        string
	Description string
	// Script runs in the guest after the agent and aggregator are up; it
	// may use mkcg, $CG and the hog binary, and must leave the kill(s) done.
	Script string
	// Cmdline adds kernel parameters.
	Cmdline  []string
	MemoryMB int
	// DiskMB attaches an empty disk of that size (/dev/nvme0n1; see
	// vm.Config.DiskMB).
	DiskMB int
	// AgentFlags are more flags for the agent, each followed by a space.
	AgentFlags string
	// ReadBack runs after the epilogue has exported oomctl's view: more
	// commands whose output the script exports (export_file).
	ReadBack string
	// Events is how many OOM events to wait for before reading back.
	Events int
	// Pods are what the node's runtime and API server know of the
	// scenario's pods (served by fakenode).
	Pods   []Pod
	Expect Expect
}

// Pod UIDs and container IDs of the scenarios.
const (
	uidA  = "1b2c3d4e-5f60-4a1b-8c2d-3e4f5a6b7c8d"
	ctrA  = "a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1a1"
	uidB  = "2b3c4d5e-6f70-4b2c-9d3e-4f5a6b7c8d9e"
	ctrB1 = "b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1b1"
	ctrB2 = "b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2"
	uidC1 = "3c4d5e6f-7081-4c3d-8e4f-5a6b7c8d9e0f"
	ctrC1 = "c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1"
	uidC2 = "4d5e6f70-8192-4d4e-9f50-6b7c8d9e0f1a"
	ctrC2 = "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2"
	uidD  = "5e6f7081-92a3-4e5f-a061-7c8d9e0f1a2b"
	ctrD  = "d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1d1"
	uidE  = "6f708192-a3b4-4f60-b172-8d9e0f1a2b3c"
	ctrE  = "e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1e1"
	uidF  = "708192a3-b4c5-4071-8283-9e0f1a2b3c4d"
	ctrF  = "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1"
)

// systemdPod is the systemd-driver path of a pod slice.
func systemdPod(qos, uid string) string {
	u := strings.ReplaceAll(uid, "-", "_")
	if qos == "guaranteed" {
		return "/kubepods.slice/kubepods-pod" + u + ".slice"
	}
	return fmt.Sprintf("/kubepods.slice/kubepods-%s.slice/kubepods-%s-pod%s.slice", qos, qos, u)
}

// SandboxID is the ID of a scenario pod's sandbox: 64 hex digits, as
// containerd makes them, derived from the pod's UID.
func SandboxID(podUID string) string {
	sum := sha256.Sum256([]byte("sandbox/" + podUID))
	return hex.EncodeToString(sum[:])
}

// systemdPause and cgroupfsPause are the cgroups of a pod's sandbox (its
// pause process) under each driver.
func systemdPause(pod, uid string) string {
	return pod + "/cri-containerd-" + SandboxID(uid) + ".scope"
}

func cgroupfsPause(pod, uid string) string { return pod + "/" + SandboxID(uid) }

// cgroupfsPod is the cgroupfs-driver path of a pod.
func cgroupfsPod(qos, uid string) string {
	if qos == "guaranteed" {
		return "/kubepods/pod" + uid
	}
	return "/kubepods/" + qos + "/pod" + uid
}

// All returns the scenarios, in the order of the issue that asked for them.
func All() []Scenario {
	a := systemdPod("burstable", uidA) + "/cri-containerd-" + ctrA + ".scope"
	bPod := systemdPod("burstable", uidB)
	bMain := bPod + "/cri-containerd-" + ctrB1 + ".scope"
	bSide := bPod + "/cri-containerd-" + ctrB2 + ".scope"
	cBE := cgroupfsPod("besteffort", uidC1) + "/" + ctrC1
	cBU := cgroupfsPod("burstable", uidC2) + "/" + ctrC2
	dSvc := "/system.slice/fluent-bit.service"
	dG := cgroupfsPod("guaranteed", uidD) + "/" + ctrD
	e := systemdPod("burstable", uidE) + "/docker-" + ctrE + ".scope"
	f := systemdPod("besteffort", uidF) + "/cri-containerd-" + ctrF + ".scope"
	return []Scenario{
		containerLimit(a),
		forgedRecords(a),
		{
			Name:        "pod-limit-sidecar",
			Description: "a pod's limit is hit: the sidecar (higher oom_score_adj) is killed while the main container grows",
			Script: fmt.Sprintf(`mkcg %[2]s
mkcg %[3]s
echo 64M > $CG%[1]s/memory.max
pause %[4]s
hog -mb 8 -oom-score-adj 999 -cgroup $CG%[3]s -ready /tmp/side.ready &
waitfile /tmp/side.ready
hog -mb 56 -step 2 -oom-score-adj 2 -cgroup $CG%[2]s -hold 3s || true
`, bPod, bMain, bSide, systemdPause(bPod, uidB)),
			Events: 1,
			Pods: []Pod{{UID: uidB, Namespace: "search", Name: "indexer-0", Labels: map[string]string{"app": "indexer"},
				Containers: []Container{
					{ID: ctrB1, Name: "indexer", Image: "registry.example/search/indexer:2.0", RequestMiB: 40, LimitMiB: 56},
					{ID: ctrB2, Name: "log-shipper", Image: "registry.example/ops/shipper:0.9", RequestMiB: 4, LimitMiB: 8},
				}}},
			Expect: Expect{Kind: "limit", Scope: "pod", PodUID: uidB, Container: ctrB2, QoS: "burstable",
				Runtime: "containerd", VictimComm: "hog", TriggerPodUID: uidB, CulpritPodUID: uidB,
				CulpritContainer: ctrB1, Collateral: true, MinVictims: 1,
				VictimPod: "search/indexer-0", VictimContainerName: "log-shipper", VictimRequestMiB: 4, VictimLimitMiB: 8,
				CulpritPod: "search/indexer-0"},
		},
		{
			Name:        "node-besteffort-collateral",
			Description: "the node runs out of memory: a BestEffort pod is killed while a Burstable pod grows (cgroupfs driver)",
			Script: fmt.Sprintf(`mkcg %[1]s
mkcg %[2]s
pause %[3]s
pause %[4]s
hog -mb 10 -oom-score-adj 1000 -cgroup $CG%[1]s -ready /tmp/be.ready &
waitfile /tmp/be.ready
hog -mb 0 -step 4 -oom-score-adj 100 -cgroup $CG%[2]s || true
`, cBE, cBU, cgroupfsPause(path.Dir(cBE), uidC1), cgroupfsPause(path.Dir(cBU), uidC2)),
			Events: 2,
			Pods: []Pod{
				{UID: uidC1, Namespace: "tools", Name: "debug-shell", Containers: []Container{
					{ID: ctrC1, Name: "shell", Image: "registry.example/tools/busybox:1.36"}}},
				// oom_score_adj 100 is what kubelet gives a request of 90% of
				// the node's memory: the grower stays within its request.
				{UID: uidC2, Namespace: "batch", Name: "etl-2", Labels: map[string]string{"app": "etl"}, Containers: []Container{
					{ID: ctrC2, Name: "etl", Image: "registry.example/batch/etl:5.1", RequestMiB: 320}}},
			},
			Expect: Expect{Kind: "node", PodUID: uidC1, Container: ctrC1, QoS: "besteffort", VictimComm: "hog",
				TriggerPodUID: uidC2, CulpritPodUID: uidC2, Collateral: true, MinVictims: 1,
				VictimPod: "tools/debug-shell", VictimContainerName: "shell", CulpritPod: "batch/etl-2"},
		},
		{
			Name:        "node-system-service",
			Description: "the node runs out of memory: a system service outside kubepods is killed while a Guaranteed pod grows",
			Script: fmt.Sprintf(`mkcg %[1]s
mkcg %[2]s
echo 1G > $CG%[2]s/memory.max
hog -mb 16 -oom-score-adj 800 -cgroup $CG%[1]s -ready /tmp/svc.ready &
waitfile /tmp/svc.ready
hog -mb 0 -step 4 -oom-score-adj -997 -cgroup $CG%[2]s || true
`, dSvc, dG),
			Events: 2,
			// A Guaranteed pod whose limit (1 GiB) is more than the guest
			// has: the node runs out before the pod does.
			Pods: []Pod{{UID: uidD, Namespace: "db", Name: "postgres-0", Labels: map[string]string{"app": "postgres"},
				Containers: []Container{{ID: ctrD, Name: "postgres", Image: "registry.example/db/postgres:16", RequestMiB: 1024, LimitMiB: 1024}}}},
			Expect: Expect{Kind: "node", Unit: "fluent-bit.service", VictimComm: "hog", TriggerPodUID: uidD,
				CulpritPodUID: uidD, Collateral: true, MinVictims: 1, CulpritPod: "db/postgres-0"},
		},
		{
			Name:        "oom-group-docker",
			Description: "memory.oom.group kills a whole container (docker scope names)",
			Script: fmt.Sprintf(`mkcg %[1]s
echo 32M > $CG%[1]s/memory.max
echo 1 > $CG%[1]s/memory.oom.group
hog -mb 4 -oom-score-adj 900 -cgroup $CG%[1]s -ready /tmp/holder.ready &
waitfile /tmp/holder.ready
hog -mb 64 -oom-score-adj 900 -cgroup $CG%[1]s || true
`, e),
			Events: 1,
			Pods: []Pod{{UID: uidE, Namespace: "legacy", Name: "worker-5c6d", Containers: []Container{
				{ID: ctrE, Name: "worker", Image: "registry.example/legacy/worker:0.3", RequestMiB: 24, LimitMiB: 32}}}},
			Expect: Expect{Kind: "limit", Scope: "container", PodUID: uidE, Container: ctrE, QoS: "burstable",
				Runtime: "docker", VictimComm: "hog", TriggerPodUID: uidE, CulpritPodUID: uidE, CulpritContainer: ctrE,
				MinVictims: 2, VictimPod: "legacy/worker-5c6d", VictimContainerName: "worker", VictimRequestMiB: 24,
				VictimLimitMiB: 32, CulpritPod: "legacy/worker-5c6d"},
		},
		{
			Name: "oom-storm",
			Description: "an OOM storm in a pod with more tasks than the kernel log buffer holds: " +
				"reports are rate-limited and records overwritten",
			Script: fmt.Sprintf(`mkcg %[1]s
echo 192M > $CG%[1]s/memory.max
# 2000 sleeping tasks with oom_score_adj 1000: each kill frees little, so
# the grower's allocations make the kernel kill again and again, and every
# full report's task dump is larger than the kernel log buffer.
sh -c 'echo $$ > '$CG%[1]s'/cgroup.procs; echo 1000 > /proc/self/oom_score_adj; i=0; while [ $i -lt 2000 ]; do sleep 600 & i=$((i+1)); done'
hog -mb 128 -step 1 -oom-score-adj -500 -cgroup $CG%[1]s -hold 2s || true
cat $CG%[1]s/memory.events > /tmp/memory.events
`, f),
			MemoryMB: 512,
			Events:   1,
			Pods: []Pod{{UID: uidF, Namespace: "ci", Name: "fork-bomb-test", Containers: []Container{
				{ID: ctrF, Name: "runner", Image: "registry.example/ci/runner:7"}}}},
			Expect: Expect{Kind: "limit", Scope: "container", PodUID: uidF, Container: ctrF, QoS: "besteffort",
				VictimComm: "sleep", Storm: true, MinVictims: 1, StormVerdict: "no"},
		},
		rateLimitedJobs(),
		stormOtherPod(),
		kubepodsLimit(),
		warnLeak(),
		warnNodeLow(),
		warnQuiet(),
	}
}

// containerLimit is a container's memory.max hit (systemd driver,
// containerd scope names); a is the container's cgroup.
func containerLimit(a string) Scenario {
	pod := systemdPod("burstable", uidA)
	return Scenario{
		Name: "container-limit",
		Description: "a single-container pod's container hits its 32 MiB limit (systemd driver, containerd scope names); " +
			"as on a node, the pod's cgroup has the same limit and also holds the pause process, so the kernel names the pod's cgroup",
		Script: fmt.Sprintf(`mkcg %[1]s
echo 32M > $CG%[2]s/memory.max
echo 32M > $CG%[1]s/memory.max
pause %[3]s
hog -mb 64 -oom-score-adj 937 -cgroup $CG%[1]s || true
`, a, pod, systemdPause(pod, uidA)),
		Events: 1,
		Pods: []Pod{{UID: uidA, Namespace: "shop", Name: "cart-7d9f8-x2x4q", Labels: map[string]string{"app": "cart"},
			Containers: []Container{{ID: ctrA, Name: "api", Image: "registry.example/shop/cart:1.4", RequestMiB: 16, LimitMiB: 32}}}},
		Expect: Expect{Kind: "limit", Scope: "container", PodUID: uidA, Container: ctrA, QoS: "burstable",
			OOMMemcg: pod, Runtime: "containerd", VictimComm: "hog", TriggerPodUID: uidA, CulpritPodUID: uidA,
			CulpritContainer: ctrA, MinVictims: 1,
			VictimPod: "shop/cart-7d9f8-x2x4q", VictimContainerName: "api", VictimRequestMiB: 16, VictimLimitMiB: 32,
			CulpritPod: "shop/cart-7d9f8-x2x4q"},
	}
}

// forgedRecords is a container's limit kill after userspace wrote to
// /dev/kmsg a forged kill line and a forged whole report naming the same
// container: the kernel stores those with facility LOG_USER, and only the
// real kill may reach the aggregator.
func forgedRecords(cg string) Scenario {
	forged := []string{
		"<4>Memory cgroup out of memory: Killed process 4242 (forged) total-vm:65536kB, anon-rss:32768kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:120kB oom_score_adj:937",
		"<4>evil invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
		"<4>memory: usage 32768kB, limit 32768kB, failcnt 9",
		"<6>Tasks state (memory values in pages):",
		"<6>[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
		"<6>[   4243]     0  4243    16000     8000    61440        0           937 victim",
		"<6>oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + cg +
			",task_memcg=" + cg + ",task=victim,pid=4243,uid=0",
		"<3>Memory cgroup out of memory: Killed process 4243 (victim) total-vm:64000kB, anon-rss:32000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:60kB oom_score_adj:937",
	}
	var w strings.Builder
	// Each write is one record; writers are rate-limited per open file
	// unless printk_devkmsg is on.
	w.WriteString("echo on > /proc/sys/kernel/printk_devkmsg\n")
	for _, l := range forged {
		fmt.Fprintf(&w, "echo '%s' > /dev/kmsg\n", l)
	}
	sc := containerLimit(cg)
	sc.Name = "forged-kernel-records"
	sc.Description = "userspace writes a forged kill line and a forged report naming a pod to /dev/kmsg, then the pod's container hits its limit for real"
	sc.Script = strings.Replace(sc.Script, "hog ", w.String()+"hog ", 1)
	sc.Expect.ForgedRecords = 7
	return sc
}

// rateLimitedJobs is 20 Job pods, each container at its own 24 MiB limit,
// killed one after another within a few seconds: the kernel prints the
// first reports whole and the later kills as bare lines.
func rateLimitedJobs() Scenario {
	sc := Scenario{
		Name: "rate-limited-limit-kills",
		Description: "20 containers, each in its own pod, hit their own limits within a few seconds: " +
			"the kernel rate-limits its reports (10 per 5 s) and prints bare kill lines for the others",
		Events: 20,
		Expect: Expect{Kind: "limit", Scope: "container", VictimComm: "hog", EachOwnPod: true, MinVictims: 1},
	}
	var mk, run strings.Builder
	for i := range 20 {
		uid := fmt.Sprintf("8192a3b4-c5d6-4e7f-8091-%012d", i)
		id := fmt.Sprintf("%062x%02d", 0x1b, i)
		cg := cgroupfsPod("burstable", uid) + "/" + id
		fmt.Fprintf(&mk, "mkcg %[1]s\necho 24M > $CG%[1]s/memory.max\n", cg)
		// A short pause: a storm's kills are milliseconds apart, but the
		// counters can tell bare kills apart only when each is read before
		// the next.
		fmt.Fprintf(&run, "hog -mb 64 -oom-score-adj 937 -cgroup $CG%s || true\nsleep 0.1\n", cg)
		sc.Pods = append(sc.Pods, Pod{UID: uid, Namespace: "batch", Name: fmt.Sprintf("migrate-%02d", i),
			Containers: []Container{{ID: id, Name: "job", Image: "registry.example/batch/migrate:1", RequestMiB: 24, LimitMiB: 24}}})
	}
	sc.Script = mk.String() + run.String()
	return sc
}
