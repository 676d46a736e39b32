package scenario

import (
	"fmt"
	"time"
)

// WarnExpect is what a warnings scenario (issue 17) must show: the
// warnings that preceded its first kill, and the cgroups that must stay
// quiet.
type WarnExpect struct {
	// Preceding are warning kinds ("forecast", "near-limit", "node-low")
	// the first OOM kill must name in preceding_warnings with role Role,
	// each with a lead of at least MinLead and the ID of a warning the
	// aggregator stored, of that kind.
	Preceding []string
	Role      string
	MinLead   time.Duration
	// PressureIfPSI adds the node's "pressure" to Preceding when the guest
	// kernel has PSI (/proc/pressure/memory, exported as psi.txt).
	PressureIfPSI bool
	// KillKind is the first kill's kind (limit, node).
	KillKind string
	// Explain: the scenario exports explain.txt, `oomctl explain` of the
	// kill's pod, which must say the kill was warned of ("Warned ...").
	Explain bool
	// QuietPods are pod UIDs for which no warning of any kind may have
	// been stored (`oomctl warnings --all`), over the scenario's whole run.
	QuietPods []string
}

// Pods of the warnings scenarios.
const (
	uidW1 = "c5e6f708-192a-4b3c-8d4e-5f60718293a4"
	ctrW1 = "e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7e7"
	uidW2 = "d6f70819-2a3b-4c4d-9e5f-60718293a4b5"
	ctrW2 = "f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7"
	uidW3 = "e7081a2b-3c4d-4d5e-af60-718293a4b5c6"
	ctrW3 = "a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8a8"
	uidW4 = "f8192b3c-4d5e-4e6f-8071-8293a4b5c6d7"
	ctrW4 = "b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8b8"
	uidW5 = "0819a3c4-5e6f-4f70-9182-93a4b5c6d7e8"
	ctrW5 = "c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8c8"
	uidW6 = "192ab4d5-6f70-4081-a293-a4b5c6d7e8f9"
	ctrW6 = "d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8d8"
	uidW7 = "2a3bc5e6-7081-4192-b3a4-b5c6d7e8f90a"
	ctrW7 = "e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8e8"
)

// WarnSampleInterval is the agents' --sample-interval in the warnings
// scenarios: 2 s, five times the default rate, so that a leak of a 64 MiB
// container at 1 MiB/s is sampled about 30 times before its kill.
const WarnSampleInterval = "2s"

// warnAgentFlags are the agent's flags in the warnings scenarios.
const warnAgentFlags = "--sample-interval " + WarnSampleInterval + " "

// psiReadBack exports what the guest kernel says of PSI: the node's
// /proc/pressure/memory, or "absent".
const psiReadBack = `
{ cat /proc/pressure/memory || echo absent; } > /tmp/psi.txt 2>/dev/null
export_file psi.txt /tmp/psi.txt
`

// warnLeak is a container leaking about 1 MiB/s toward its 64 MiB limit:
// forecast and near-limit open well before the kernel kills it, and the
// kill names them.
func warnLeak() Scenario {
	pod := systemdPod("burstable", uidW1)
	ctr := pod + "/cri-containerd-" + ctrW1 + ".scope"
	return Scenario{
		Name: "warning-leak-limit",
		Description: "a container leaks about 1 MiB/s toward its 64 MiB limit: forecast and near-limit warnings open " +
			"at least 15 s before the kernel kills it, and the kill names them",
		Script: fmt.Sprintf(`mkcg %[1]s
echo 64M > $CG%[2]s/memory.max
echo 64M > $CG%[1]s/memory.max
pause %[3]s
hog -mb 0 -step 1 -rate 1 -oom-score-adj 937 -cgroup $CG%[1]s || true
`, ctr, pod, systemdPause(pod, uidW1)),
		// 768 MiB: a node far from low, so the kill's warnings are the
		// container's and its pod's alone.
		MemoryMB:   768,
		AgentFlags: warnAgentFlags,
		ReadBack: `
oomctl explain cart-leak-0 -n shop > /tmp/explain.txt 2>&1
export_file explain.txt /tmp/explain.txt
`,
		Events: 1,
		Pods: []Pod{{UID: uidW1, Namespace: "shop", Name: "cart-leak-0", Labels: map[string]string{"app": "cart"},
			Containers: []Container{{ID: ctrW1, Name: "api", Image: "registry.example/shop/cart:1.5", RequestMiB: 32, LimitMiB: 64}}}},
		Expect: Expect{Kind: "limit", Scope: "container", PodUID: uidW1, Container: ctrW1, QoS: "burstable",
			OOMMemcg: pod, Runtime: "containerd", VictimComm: "hog", TriggerPodUID: uidW1, CulpritPodUID: uidW1,
			CulpritContainer: ctrW1, MinVictims: 1,
			VictimPod: "shop/cart-leak-0", VictimContainerName: "api", VictimRequestMiB: 32, VictimLimitMiB: 64,
			CulpritPod: "shop/cart-leak-0",
			Warnings: &WarnExpect{Preceding: []string{"forecast", "near-limit"}, Role: "victim", MinLead: 15 * time.Second,
				KillKind: "limit", Explain: true}},
	}
}

// warnNodeLow is pods growing until the node runs out: node-low (and the
// node's pressure, where the kernel has PSI) opens before the node-level
// kill, which names it. Memory pressure needs something to reclaim: with no
// swap, anonymous growth alone goes straight to the OOM killer without a
// stall, so a third pod keeps re-reading a 192 MiB file on the guest's disk,
// whose page cache the growth squeezes out and the reads fault back in.
func warnNodeLow() Scenario {
	be := systemdPod("besteffort", uidW2) + "/cri-containerd-" + ctrW2 + ".scope"
	g1 := systemdPod("burstable", uidW3) + "/cri-containerd-" + ctrW3 + ".scope"
	g2 := systemdPod("burstable", uidW4) + "/cri-containerd-" + ctrW4 + ".scope"
	rd := systemdPod("burstable", uidW7) + "/cri-containerd-" + ctrW7 + ".scope"
	return Scenario{
		Name: "warning-node-low",
		Description: "two pods without limits grow 8 MiB/s each beside a pod re-reading a file, until the node runs " +
			"out: node-low (and the node's memory pressure) opens before the node-level kill, which names it",
		// 768 MiB of guest: MemAvailable starts above node-low's threshold
		// (the 100Mi eviction default plus a 256 MiB margin), so the
		// warning opens during the growth, not at boot. Once the kernel has
		// killed its first victim (the BestEffort pod) the growers are
		// stopped: the later kills would add nothing but time.
		Script: fmt.Sprintf(`mke2fs -q /dev/nvme0n1 && mkdir -p /mnt && mount /dev/nvme0n1 /mnt
mkcg %[1]s
mkcg %[2]s
mkcg %[3]s
mkcg %[4]s
{ cat /proc/pressure/memory || echo absent; } > /tmp/psi.before 2>/dev/null
hog -mb 1 -cache-file /mnt/data -cache-mb 192 -oom-score-adj 500 -cgroup $CG%[4]s -ready /tmp/data.ready &
rdhog=$!
waitfile /tmp/data.ready
sh -c 'echo $$ > '$CG%[4]s'/cgroup.procs; echo 500 > /proc/self/oom_score_adj; while :; do cat /mnt/data > /dev/null; done' &
reader=$!
grep MemAvailable /proc/meminfo > /tmp/meminfo.before
hog -mb 10 -oom-score-adj 1000 -cgroup $CG%[1]s -ready /tmp/be.ready &
be=$!
waitfile /tmp/be.ready
hog -mb 0 -step 2 -rate 8 -oom-score-adj 100 -cgroup $CG%[2]s &
g1=$!
hog -mb 0 -step 2 -rate 8 -oom-score-adj 100 -cgroup $CG%[3]s &
g2=$!
wait $be
{ cat /proc/pressure/memory || echo absent; } > /tmp/psi.kill 2>/dev/null
kill -9 $g1 $g2 $reader $rdhog 2>/dev/null
wait
`, be, g1, g2, rd),
		MemoryMB:   768,
		DiskMB:     256,
		AgentFlags: warnAgentFlags,
		ReadBack: psiReadBack + `
export_file psi.before /tmp/psi.before
export_file psi.kill /tmp/psi.kill
export_file meminfo.before /tmp/meminfo.before
`,
		Events: 1,
		Pods: []Pod{
			{UID: uidW2, Namespace: "tools", Name: "debug-shell-2", Containers: []Container{
				{ID: ctrW2, Name: "shell", Image: "registry.example/tools/busybox:1.36"}}},
			{UID: uidW3, Namespace: "batch", Name: "ingest-0", Containers: []Container{
				{ID: ctrW3, Name: "ingest", Image: "registry.example/batch/ingest:2", RequestMiB: 128}}},
			{UID: uidW4, Namespace: "batch", Name: "ingest-1", Containers: []Container{
				{ID: ctrW4, Name: "ingest", Image: "registry.example/batch/ingest:2", RequestMiB: 128}}},
			{UID: uidW7, Namespace: "data", Name: "scanner-0", Containers: []Container{
				{ID: ctrW7, Name: "scan", Image: "registry.example/data/scanner:1", RequestMiB: 16}}},
		},
		Expect: Expect{Warnings: &WarnExpect{Preceding: []string{"node-low"}, Role: "node", PressureIfPSI: true,
			KillKind: "node"}},
	}
}

// warnQuiet is a container steady at 80% of its limit and one whose usage
// is mostly clean page cache of a file on ext4 (on the guest's NVMe disk:
// tmpfs pages would be shmem, not reclaimable): over 40 s sampled every
// 2 s, neither raises a warning.
func warnQuiet() Scenario {
	sPod := systemdPod("burstable", uidW5)
	steady := sPod + "/cri-containerd-" + ctrW5 + ".scope"
	cPod := systemdPod("burstable", uidW6)
	cache := cPod + "/cri-containerd-" + ctrW6 + ".scope"
	return Scenario{
		Name: "warning-none-steady-cache",
		Description: "a container steady at 80% of its 64 MiB limit and one whose usage is mostly reclaimable page cache " +
			"(56 MiB of a file on ext4) raise no warning over 40 s",
		Script: fmt.Sprintf(`mke2fs -q /dev/nvme0n1 && mkdir -p /mnt && mount /dev/nvme0n1 /mnt
grep ' /mnt ' /proc/mounts > /tmp/mounts.txt
mkcg %[1]s
mkcg %[3]s
echo 64M > $CG%[2]s/memory.max
echo 64M > $CG%[1]s/memory.max
echo 64M > $CG%[4]s/memory.max
echo 64M > $CG%[3]s/memory.max
pause %[5]s
pause %[6]s
# 51 MiB allocated, plus the Go runtime's own 2: about 80%% of 64 MiB.
hog -mb 51 -oom-score-adj 937 -cgroup $CG%[1]s -ready /tmp/steady.ready &
hog -mb 1 -cache-file /mnt/cache -cache-mb 56 -oom-score-adj 937 -cgroup $CG%[3]s -ready /tmp/cache.ready &
waitfile /tmp/steady.ready
waitfile /tmp/cache.ready
sleep 40
for c in steady:%[1]s cache:%[3]s; do
	f=$CG${c#*:}
	{ echo "memory.current $(cat $f/memory.current)"; echo "memory.max $(cat $f/memory.max)"; cat $f/memory.stat $f/memory.events; } > /tmp/${c%%%%:*}.memory
done
`, steady, sPod, cache, cPod, systemdPause(sPod, uidW5), systemdPause(cPod, uidW6)),
		MemoryMB:   768,
		DiskMB:     256,
		AgentFlags: warnAgentFlags,
		ReadBack: psiReadBack + `
export_file steady.memory /tmp/steady.memory
export_file cache.memory /tmp/cache.memory
export_file mounts.txt /tmp/mounts.txt
`,
		Events: 0,
		Pods: []Pod{
			{UID: uidW5, Namespace: "web", Name: "frontend-0", Containers: []Container{
				{ID: ctrW5, Name: "web", Image: "registry.example/web/frontend:3", RequestMiB: 48, LimitMiB: 64}}},
			{UID: uidW6, Namespace: "data", Name: "reader-0", Containers: []Container{
				{ID: ctrW6, Name: "reader", Image: "registry.example/data/reader:1", RequestMiB: 48, LimitMiB: 64}}},
		},
		Expect: Expect{Warnings: &WarnExpect{QuietPods: []string{uidW5, uidW6}}},
	}
}
