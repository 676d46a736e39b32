package scenario

import "fmt"

// Pods of the verdict scenarios (issue 14).
const (
	uidG1 = "81a2b3c4-d5e6-4f70-8192-a3b4c5d6e7f8"
	ctrG1 = "a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7a7"
	uidG2 = "92b3c4d5-e6f7-4081-92a3-b4c5d6e7f809"
	ctrG2 = "b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7b7"
	uidH1 = "a3c4d5e6-f708-4192-a3b4-c5d6e7f8091a"
	ctrH1 = "c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7c7"
	uidH2 = "b4d5e6f7-0819-42a3-b4c5-d6e7f8091a2b"
	ctrH2 = "d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7d7"
)

// stormOtherPod is an OOM storm under kubepods' limit (node-allocatable
// enforcement): 2,000 BestEffort sleepers of one pod are killed one by one
// (most as bare, rate-limited kill lines) while a Burstable container of
// ANOTHER pod grows. Every sleeper is collateral of the grower's pod.
func stormOtherPod() Scenario {
	sleepers := systemdPod("besteffort", uidG1) + "/cri-containerd-" + ctrG1 + ".scope"
	grower := systemdPod("burstable", uidG2) + "/cri-containerd-" + ctrG2 + ".scope"
	return Scenario{
		Name: "oom-storm-other-pod",
		Description: "an OOM storm under kubepods' limit: BestEffort sleepers of one pod are killed one after another " +
			"while a container of another pod grows; every kill is collateral of that pod",
		// The sleepers are admitted first (they fit), then kubepods' limit
		// is set 64 MiB above what the pods hold: only the grower's growth
		// makes the kernel kill.
		Script: fmt.Sprintf(`mkcg %[1]s
mkcg %[2]s
sh -c 'echo $$ > '$CG%[1]s'/cgroup.procs; echo 1000 > /proc/self/oom_score_adj; i=0; while [ $i -lt 2000 ]; do sleep 600 & i=$((i+1)); done'
sleep 1
echo $(( $(cat $CG/kubepods.slice/memory.current) + 64*1024*1024 )) > $CG/kubepods.slice/memory.max
hog -mb 160 -step 1 -oom-score-adj 2 -cgroup $CG%[2]s -hold 2s || true
cat $CG/kubepods.slice/memory.events > /tmp/memory.events
`, sleepers, grower),
		MemoryMB: 768,
		Events:   1,
		Pods: []Pod{
			{UID: uidG1, Namespace: "ci", Name: "sleepers", Containers: []Container{
				{ID: ctrG1, Name: "idle", Image: "registry.example/ci/idle:1"}}},
			{UID: uidG2, Namespace: "batch", Name: "grower", Containers: []Container{
				{ID: ctrG2, Name: "load", Image: "registry.example/batch/load:2", RequestMiB: 64}}},
		},
		Expect: Expect{Kind: "limit", Scope: "allocatable", PodUID: uidG1, Container: ctrG1, QoS: "besteffort",
			VictimComm: "sleep", Storm: true, MinVictims: 1, StormVerdict: "yes", CulpritPodUID: uidG2,
			CulpritPod: "batch/grower"},
	}
}

// kubepodsLimit is kubepods' own limit hit (node-allocatable enforcement:
// the pods together exceed kubepods.slice's memory.max) while the node has
// memory to spare: the victim is judged against the other pods, as on a
// node running out.
func kubepodsLimit() Scenario {
	be := systemdPod("besteffort", uidH1) + "/cri-containerd-" + ctrH1 + ".scope"
	bu := systemdPod("burstable", uidH2) + "/cri-containerd-" + ctrH2 + ".scope"
	return Scenario{
		Name: "kubepods-limit",
		Description: "kubepods' limit is hit (node allocatable enforced): a BestEffort pod is killed while " +
			"a Burstable pod grows, with the node far from full",
		Script: fmt.Sprintf(`mkcg %[1]s
mkcg %[2]s
echo 96M > $CG/kubepods.slice/memory.max
hog -mb 30 -oom-score-adj 1000 -cgroup $CG%[1]s -ready /tmp/be.ready &
waitfile /tmp/be.ready
hog -mb 72 -step 4 -interval 100ms -oom-score-adj 2 -cgroup $CG%[2]s -ready /tmp/grown.ready &
waitfile /tmp/grown.ready
`, be, bu),
		// 30 + 72 MiB exceed kubepods' 96 MiB; 72 alone fit with room to
		// spare. The grower pauses between steps, so the BestEffort pod's
		// memory is uncharged before it asks for more: it lives on, and
		// the agent reads its cgroup however slow the guest (a grower that
		// grew on was killed ~20 ms after its first victim, too fast for a
		// loaded guest's agent to place it or its trigger thread).
		Events: 1,
		Pods: []Pod{
			{UID: uidH1, Namespace: "tools", Name: "toolbox", Containers: []Container{
				{ID: ctrH1, Name: "shell", Image: "registry.example/tools/busybox:1.36"}}},
			{UID: uidH2, Namespace: "batch", Name: "report-gen", Containers: []Container{
				{ID: ctrH2, Name: "gen", Image: "registry.example/batch/gen:3", RequestMiB: 32}}},
		},
		Expect: Expect{Kind: "limit", Scope: "allocatable", PodUID: uidH1, Container: ctrH1, QoS: "besteffort",
			Runtime: "containerd", VictimComm: "hog", TriggerPodUID: uidH2, CulpritPodUID: uidH2,
			Collateral: true, MinVictims: 1,
			VictimPod: "tools/toolbox", VictimContainerName: "shell", CulpritPod: "batch/report-gen"},
	}
}
