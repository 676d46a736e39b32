package analysis

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// TestCulpritLabelUnknownPID: a culprit judged from a trigger whose CPU line
// was not in the log has no PID; the sentence says so rather than "pid 0",
// whether or not its workload is known.
func TestCulpritLabelUnknownPID(t *testing.T) {
	pod := WorkloadOf("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod94eb36cd_29e1_478b_b365_4cb5dfc7d6fb.slice")
	for _, c := range []*Culprit{{Comm: "Thread-2", Workload: pod}, {Comm: "Thread-2"}} {
		got := culpritLabel(c)
		if !strings.Contains(got, "Thread-2 pid unknown") && !strings.Contains(got, "Thread-2 (pid unknown") || strings.Contains(got, "pid 0") {
			t.Errorf("culpritLabel(%+v) = %q", c, got)
		}
	}
	c := &Culprit{Comm: "java", PID: 7, Workload: pod}
	if got := culpritLabel(c); !strings.Contains(got, "(java pid 7") {
		t.Errorf("culpritLabel(%+v) = %q", c, got)
	}
}

// TestLimitLoweredByAWrite: cgroup v2 kills when memory.max is written
// below the cgroup's usage. The writer (tee, from a shell anywhere) is the
// trigger: it is not placed in the limited cgroup, and the reason says
// what caused the kill; the limited cgroup is named below its unit.
func TestLimitLoweredByAWrite(t *testing.T) {
	const cg = "/user.slice/user-1000.slice/user@1000.service/app.slice/app-gnome-thunderbird-265606.scope"
	lines := []string{
		"[144381.714151] tee invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
		"[144381.714155] CPU: 3 PID: 492129 Comm: tee Not tainted 6.5.5 #1-NixOS",
		"[144381.714160] Call Trace:",
		"[144381.714161]  <TASK>",
		"[144381.714168]  out_of_memory+0x117/0x540",
		"[144381.714170]  mem_cgroup_out_of_memory+0x134/0x150",
		"[144381.714172]  memory_max_write+0x117/0x1e0",
		"[144381.714174]  kernfs_fop_write_iter+0x11f/0x200",
		"[144381.714180]  </TASK>",
		"[144381.714200] memory: usage 443264kB, limit 102400kB, failcnt 0",
		"[144381.714298] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
		"[144381.714299] [ 265606]  1000 265606  1199236    62118  4153344    98752           100 .thunderbird-wr",
		"[144381.714301] [ 265810]  1000 265810   669458    23762   659456     4352           100 WebExtensions",
		"[144381.714304] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + cg + ",task_memcg=" + cg + ",task=.thunderbird-wr,pid=265606,uid=1000",
		"[144381.714320] Memory cgroup out of memory: Killed process 265606 (.thunderbird-wr) total-vm:4796944kB, anon-rss:241272kB, file-rss:7200kB, shmem-rss:0kB, UID:1000 pgtables:4056kB oom_score_adj:100",
	}
	evs := readLines(t, lines)
	if len(evs) != 1 || !evs[0].LimitLowered || evs[0].Trigger == nil || evs[0].Trigger.Cgroup != "" {
		t.Fatalf("events %+v", evs)
	}
	for _, want := range []string{
		"Caused by lowering the limit: tee (pid 492129) wrote memory.max below the cgroup's usage.",
		"(cgroup app-gnome-thunderbird-265606.scope)",
	} {
		if !strings.Contains(evs[0].Reason, want) {
			t.Errorf("reason %q lacks %q", evs[0].Reason, want)
		}
	}
	// The same kill from an allocation: the trigger ran in the cgroup.
	var plain []string
	for _, l := range lines {
		if !strings.Contains(l, "memory_max_write") {
			plain = append(plain, strings.Replace(l, "tee", ".thunderbird-wr", 1))
		}
	}
	evs = nil
	if _, err := ReadLog(strings.NewReader(strings.Join(plain, "\n")), StreamOptions{}, func(e Event) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].LimitLowered || evs[0].Trigger == nil || evs[0].Trigger.Cgroup != cg ||
		strings.Contains(evs[0].Reason, "lowering") {
		t.Fatalf("from an allocation: %+v", evs)
	}
}

// TestNegativeAdjWithoutDump: a report without a task dump whose victim
// has a negative oom_score_adj is judged "chosen by size" only on a kernel
// of 5.9 or later: earlier ones floored scores at 1 and killed the first
// task scanned of a Guaranteed pod (its pause process, say).
func TestNegativeAdjWithoutDump(t *testing.T) {
	const pod = "/kubepods/poda41b2cd5-6f1e-4b7a-9d3c-2e8f0a1b2c3d"
	read := func(release string, adj int) Event {
		t.Helper()
		lines := []string{
			"[  100.000001] go-oom-test invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=" + strconv.Itoa(adj),
			"[  100.000002] CPU: 1 PID: 238343 Comm: go-oom-test Not tainted " + release + " #1",
			"[  100.000003] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + pod +
				",task_memcg=" + pod + "/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef,task=go-oom-test,pid=238343,uid=0",
			"[  100.000004] Memory cgroup out of memory: Killed process 238343 (go-oom-test) total-vm:1000kB, anon-rss:204516kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:500kB oom_score_adj:" + strconv.Itoa(adj),
		}
		evs := readLines(t, lines)
		if len(evs) != 1 {
			t.Fatalf("events %+v", evs)
		}
		return evs[0]
	}
	for _, tc := range []struct {
		release string
		adj     int
		want    string
	}{
		{"4.19.0-18-amd64", -997, CollateralUnknown},
		{"3.10.0-1160.el7.x86_64", -997, CollateralUnknown},
		{"5.9.0", -997, CollateralNo},
		{"6.1.0-41-amd64", -997, CollateralNo},
		{"4.19.0-18-amd64", 0, CollateralNo},
		{"", -997, CollateralUnknown},
	} {
		if ev := read(tc.release, tc.adj); ev.CollateralVerdict != tc.want {
			t.Errorf("kernel %q, adj %d: %s (%s)", tc.release, tc.adj, ev.CollateralVerdict, ev.Reason)
		}
	}
}

// TestPauseKilledUnderItsPodsLimit: a 4.x kernel killed a Guaranteed pod's
// pause process (the first task it scanned) while another container of the
// pod held 15 GiB. The pause container holds nothing else: collateral.
func TestPauseKilledUnderItsPodsLimit(t *testing.T) {
	const pod = "/kubepods/podf1c273d3-6a1b-4c2d-8e9f-0a1b2c3d4e5f"
	lines := []string{
		"[7516987.983200] data_sim invoked oom-killer: gfp_mask=0x6000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=-998",
		"[7516987.983223] memory: usage 16777216kB, limit 16777216kB, failcnt 52843037",
		"[7516987.983300] [ pid ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
		"[7516987.983510] [ 5740]     0  5740      257        1    32768        0          -998 pause",
		"[7516987.983935] [58406]  1000 58406 18285584  3967322 37101568        0          -998 data_sim",
		"[7516987.984000] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=1f246a3e,mems_allowed=0-1,oom_memcg=" + pod +
			",task_memcg=" + pod + "/1f246a3e0123456789abcdef0123456789abcdef0123456789abcdef01234567,task=pause,pid=5740,uid=0",
		"[7516987.984100] Memory cgroup out of memory: Killed process 5740 (pause) total-vm:1028kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB",
	}
	evs := readLines(t, lines)
	if len(evs) != 1 || evs[0].CollateralVerdict != CollateralYes || evs[0].Culprit == nil || evs[0].Culprit.PID != 58406 {
		t.Fatalf("events %+v", evs)
	}
}

// TestAdjNoteOnlyForPods: the QoS class an oom_score_adj implies is said
// for a pod's victim only: a desktop's browser renderer has 300 too.
func TestAdjNoteOnlyForPods(t *testing.T) {
	pod := Workload{Cgroup: "/kubepods/burstable/pod3902af1e-8ce1-42e1-a2a5-dc04f4240c4f/x", WorkloadKind: "container", PodUID: "3902af1e-8ce1-42e1-a2a5-dc04f4240c4f"}
	if got := adjNote(300, pod); got != " (Burstable)" {
		t.Errorf("pod: %q", got)
	}
	if got := adjNote(1000, pod); got != " (BestEffort)" {
		t.Errorf("pod: %q", got)
	}
	if got := adjNote(300, Workload{Cgroup: "/user.slice/user-1000.slice/session-2.scope", WorkloadKind: "user-session"}); got != "" {
		t.Errorf("desktop: %q", got)
	}
}

// TestNodeAllocatableScope: kubelet sets the limit of the cgroup of all
// pods to the node's allocatable memory; a kill at that limit says so,
// whatever the cgroup driver or a nesting (kind's kubelet.slice). A QoS
// class's cgroup, or a cgroup that only looks like kubepods, is another
// cgroup. (Offline, the larger task's cgroup is not in the log: the
// verdict is unknown; test/kube sees the collateral verdict live.)
func TestNodeAllocatableScope(t *testing.T) {
	for memcg, want := range map[string]string{
		"/kubepods":                                 ScopeAllocatable,
		"/kubepods.slice":                           ScopeAllocatable,
		"/kubelet.slice/kubelet-kubepods.slice":     ScopeAllocatable,
		"/kubepods/burstable":                       ScopeOther,
		"/kubepods.slice/kubepods-besteffort.slice": ScopeOther,
		"/system.slice/kubepods-agent.service":      ScopeOther,
		"/kubepods-x":                               ScopeOther,
	} {
		if got := limitScope(KindLimit, memcg, ""); got != want {
			t.Errorf("limitScope(%s) = %q, want %q", memcg, got, want)
		}
	}
	const be = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod5e6f7a8b_9c0d_4e1f_a2b3_c4d5e6f7a8b9.slice/cri-containerd-1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f809.scope"
	lines := []string{
		"[  100.000001] etl invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=968",
		"[  100.000002] CPU: 1 PID: 2001 Comm: etl Not tainted 6.1.0-26-cloud-amd64 #1 Debian 6.1.112-1",
		"[  100.000003] memory: usage 1572864kB, limit 1572864kB, failcnt 120",
		"[  100.000004] Tasks state (memory values in pages):",
		"[  100.000005] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
		"[  100.000006] [   1001]     0  1001   110000   102400   900000        0          1000 shell",
		"[  100.000007] [   2001]     0  2001   300000   280000  2400000        0           968 etl",
		"[  100.000008] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods.slice,task_memcg=" + be + ",task=shell,pid=1001,uid=0",
		"[  100.000009] Memory cgroup out of memory: Killed process 1001 (shell) total-vm:440000kB, anon-rss:409600kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:880kB oom_score_adj:1000",
	}
	evs := readLines(t, lines)
	if len(evs) != 1 {
		t.Fatalf("%d events", len(evs))
	}
	ev := evs[0]
	if ev.Kind != KindLimit || ev.LimitScope != ScopeAllocatable {
		t.Errorf("kind %s scope %s, want a kill at the node-allocatable limit", ev.Kind, ev.LimitScope)
	}
	for _, want := range []string{
		"The pods together hit the node-allocatable limit kubelet sets on kubepods.slice, limit 1.5 GiB;",
		"the largest memory holder seen was etl (pid 2001, 1.1 GiB)",
	} {
		if !strings.Contains(ev.Reason, want) {
			t.Errorf("reason %q, want %q", ev.Reason, want)
		}
	}
}

// TestInsideLXC: an LXC container is one workload; the sentence still says
// which of its cgroups a process ran in.
func TestInsideLXC(t *testing.T) {
	for cg, want := range map[string]string{
		"/lxc/107/ns/system.slice/paperless.service": "system.slice/paperless.service",
		"/lxc/107/ns":                  "",
		"/lxc/107":                     "",
		"/lxc/107/nsx":                 "nsx",
		"/lxc.payload.web1/init.scope": "init.scope",
		"/lxc.payload.web1":            "",
		"/system.slice/nginx.service":  "",
	} {
		if got := insideLXC(WorkloadOf(cg)); got != want {
			t.Errorf("insideLXC(%s) = %q, want %q", cg, got, want)
		}
	}
}

// TestVictimMajority: a pod-limit report without its task dump (grep kept
// the summary and kill lines) whose victim's anonymous memory alone is over
// half the pod's usage: no other container of the pod can have held as
// much, whatever the trigger (another thread, no pid). At under half, the
// verdict stays unknown.
func TestVictimMajority(t *testing.T) {
	const pod = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod94eb36cd_29e1_478b_b365_4cb5dfc7d6fb.slice"
	const ctr = pod + "/cri-containerd-46b3e0a4df44b752b841aecca454e6e78995d567912a84950390bae6f6777a63.scope"
	report := func(anonKB int) []string {
		return []string{
			"[ 2993.661240] Thread-2 invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=969",
			"[ 2993.664150] memory: usage 4194304kB, limit 4194304kB, failcnt 1273284",
			"[ 2993.708130] Memory cgroup stats for " + pod + ":",
			"[ 2993.782678] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + pod + ",task_memcg=" + ctr + ",task=node,pid=22609,uid=0",
			"[ 2993.794008] Memory cgroup out of memory: Killed process 22609 (node) total-vm:9923620kB, anon-rss:" + strconv.Itoa(anonKB) + "kB, file-rss:23132kB, shmem-rss:0kB, UID:0 pgtables:10964kB oom_score_adj:969",
		}
	}
	for _, tc := range []struct {
		anonKB  int
		verdict string
		ranked  string
	}{
		{4116684, CollateralNo, RankedMajority},
		{2097153, CollateralNo, RankedMajority},
		{2097152, CollateralUnknown, ""}, // exactly half: another could hold as much
		{1000000, CollateralUnknown, ""},
	} {
		var evs []Event
		if _, err := ReadLog(strings.NewReader(strings.Join(report(tc.anonKB), "\n")), StreamOptions{}, func(e Event) { evs = append(evs, e) }); err != nil {
			t.Fatal(err)
		}
		if len(evs) != 1 || evs[0].LimitScope != ScopePod {
			t.Fatalf("anon %d kB: events %+v", tc.anonKB, evs)
		}
		ev := evs[0]
		ranked := ""
		if ev.Culprit != nil {
			ranked = ev.Culprit.RankedBy
		}
		if ev.CollateralVerdict != tc.verdict || ranked != tc.ranked {
			t.Errorf("anon %d kB: verdict %s ranked %q, want %s %q; %s", tc.anonKB, ev.CollateralVerdict, ranked, tc.verdict, tc.ranked, ev.Reason)
		}
		if tc.ranked == RankedMajority && (ev.Culprit.PID != 22609 ||
			!strings.Contains(ev.Reason, "the victim's anonymous memory alone was over half the 4.0 GiB in use under the limit")) {
			t.Errorf("anon %d kB: culprit %+v, reason %s", tc.anonKB, ev.Culprit, ev.Reason)
		}
	}
}

// TestElidedDump: a pasted report whose task dump was cut at "..." cannot
// show that the victim's workload held the most; a larger holder among
// the rows shown is still the culprit, with the cut said.
func TestElidedDump(t *testing.T) {
	read := func(otherRSS int, elided bool) Event {
		t.Helper()
		lines := []string{
			"[ 50.100000] postgres invoked oom-killer: gfp_mask=0x140cca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0",
			"[ 50.100001] CPU: 1 PID: 700 Comm: postgres Not tainted 5.14.0-362.8.1.el9_3.x86_64 #1",
			"[ 50.100005] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
			fmt.Sprintf("[ 50.100006] [    500]     0   500     9000 %8d    90000        0             0 java", otherRSS),
		}
		if elided {
			lines = append(lines, "...")
		}
		lines = append(lines,
			"[ 50.100007] [    700]    26   700    30000    20000    90000        0             0 postgres",
			"[ 50.100009] Out of memory: Killed process 700 (postgres) total-vm:120000kB, anon-rss:80000kB, file-rss:0kB, shmem-rss:0kB, UID:26 pgtables:88kB oom_score_adj:0")
		evs := readLines(t, lines)
		if len(evs) != 1 {
			t.Fatalf("events %+v", evs)
		}
		return evs[0]
	}
	for _, tc := range []struct {
		other  int
		elided bool
		want   string
		says   string
	}{
		{100, false, CollateralNo, "Not collateral"},
		{100, true, CollateralUnknown, "task dump is cut"},
		// Without the rows' cgroups, a larger process's workload is not known.
		{90000, true, CollateralUnknown, "the victim's workload is not known"},
	} {
		ev := read(tc.other, tc.elided)
		if ev.CollateralVerdict != tc.want || ev.DumpCut != tc.elided || !strings.Contains(ev.Reason, tc.says) {
			t.Errorf("other %d, elided %v: %s, cut %v: %s", tc.other, tc.elided, ev.CollateralVerdict, ev.DumpCut, ev.Reason)
		}
	}
}

// TestElidedDumpCollateral: a pod's pause process killed under the pod's
// limit beside a larger holder is collateral even when rows were cut; the
// reason says the largest may be among them.
func TestElidedDumpCollateral(t *testing.T) {
	const pod = "/kubepods/podf1c273d3-6a1b-4c2d-8e9f-0a1b2c3d4e5f"
	lines := []string{
		"[7516987.983200] data_sim invoked oom-killer: gfp_mask=0x6000c0(GFP_KERNEL), nodemask=(null), order=0, oom_score_adj=-998",
		"[7516987.983223] memory: usage 16777216kB, limit 16777216kB, failcnt 52843037",
		"[7516987.983300] [ pid ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
		"[7516987.983510] [ 5740]     0  5740      257        1    32768        0          -998 pause",
		"[7516987.983511] [...]",
		"[7516987.983935] [58406]  1000 58406 18285584  3967322 37101568        0          -998 data_sim",
		"[7516987.984000] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=1f246a3e,mems_allowed=0-1,oom_memcg=" + pod +
			",task_memcg=" + pod + "/1f246a3e0123456789abcdef0123456789abcdef0123456789abcdef01234567,task=pause,pid=5740,uid=0",
		"[7516987.984100] Memory cgroup out of memory: Killed process 5740 (pause) total-vm:1028kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB",
	}
	evs := readLines(t, lines)
	if len(evs) != 1 || evs[0].CollateralVerdict != CollateralYes || !evs[0].DumpCut ||
		!strings.Contains(evs[0].Reason, "a larger holder may be among them") {
		t.Fatalf("events %+v", evs)
	}
}

// TestUnlimitedIsNoLimit: a cgroup whose limit is the kernel's "max"
// (PAGE_COUNTER_MAX, printed as 9007199254740988kB) has no limit to name.
func TestUnlimitedIsNoLimit(t *testing.T) {
	lines := []string{
		"[   42.100000] test_progs invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
		"[   42.100001] memory: usage 42240kB, limit 9007199254740988kB, failcnt 0",
		"[   42.100002] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/test/cg2,task_memcg=/test/cg2,task=test_progs,pid=675,uid=0",
		"[   42.100003] Memory cgroup out of memory: Killed process 675 (test_progs) total-vm:100000kB, anon-rss:43800kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0",
	}
	evs := readLines(t, lines)
	if len(evs) != 1 || evs[0].MemcgLimitBytes != nil || evs[0].MemcgUsageBytes == nil || strings.Contains(evs[0].Reason, "PiB") {
		t.Fatalf("events %+v", evs)
	}
}

// TestTriggerThreadOfVictim: without a task dump, a trigger of another
// name in the victim's own limited cgroup (Chrome's thread
// "Chrome_ChildIOT" of chrome-headless) is the victim's own workload, not
// a culprit; one in another workload under the limit still is named.
func TestTriggerThreadOfVictim(t *testing.T) {
	const scope = "/user.slice/user-1000.slice/user@1000.service/app.slice/run-p2684493-i11077323.scope"
	read := func(taskMemcg string) Event {
		t.Helper()
		lines := []string{
			"[  10.000001] Chrome_ChildIOT invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=300",
			"[  10.000002] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + scope + ",task_memcg=" + taskMemcg + ",task=chrome-headless,pid=2684673,uid=1000",
			"[  10.000003] Memory cgroup out of memory: Killed process 2684673 (chrome-headless) total-vm:1525638952kB, anon-rss:3068976kB, file-rss:81840kB, shmem-rss:0kB, UID:1000 pgtables:9000kB oom_score_adj:300",
		}
		evs := readLines(t, lines)
		if len(evs) != 1 {
			t.Fatalf("events %+v", evs)
		}
		return evs[0]
	}
	ev := read(scope)
	if c := ev.Culprit; c == nil || c.PID != 2684673 || c.Source != SourceVictims || ev.CollateralVerdict != CollateralUnknown {
		t.Errorf("trigger in the victim's cgroup: culprit %+v, %s: %s", c, ev.CollateralVerdict, ev.Reason)
	}
	ev = read(scope + "/child")
	if c := ev.Culprit; c == nil || c.Source != SourceTrigger || !strings.Contains(ev.Reason, "gives no size but the victim's (3.0 GiB)") {
		t.Errorf("trigger elsewhere under the limit: culprit %+v: %s", c, ev.Reason)
	}
}

// TestConstrainedWithoutDump: the victim of a cpuset's or a memory
// policy's OOM was chosen by its whole size among the processes allowed
// on those nodes, which does not say who held the nodes' memory: without a
// task dump the verdict is unknown, and says why; a node kill's victim
// with oom_score_adj 0 still held the most.
func TestConstrainedWithoutDump(t *testing.T) {
	for _, tc := range []struct {
		constraint, want string
	}{
		{"CONSTRAINT_CPUSET", CollateralUnknown},
		{"CONSTRAINT_MEMORY_POLICY", CollateralUnknown},
		{"CONSTRAINT_NONE", CollateralNo},
	} {
		evs := readLines(t, []string{
			"[  100.000001] runc:[2:INIT] invoked oom-killer: gfp_mask=0x500cc2(GFP_HIGHUSER|__GFP_ACCOUNT), order=0, oom_score_adj=0",
			"[  100.000002] CPU: 8 PID: 8291 Comm: runc:[2:INIT] Tainted: G        W I E     5.8.2-0.g71b519a-default #1",
			"[  100.000003] oom-kill:constraint=" + tc.constraint + ",nodemask=(null),cpuset=docker-99.scope,mems_allowed=4,global_oom,task_memcg=/system.slice/containerd.service,task=containerd,pid=4100,uid=0",
			"[  100.000004] Out of memory: Killed process 4100 (containerd) total-vm:4077036kB, anon-rss:51184kB, file-rss:26016kB, shmem-rss:0kB, UID:0 pgtables:676kB oom_score_adj:0",
		})
		if len(evs) != 1 || evs[0].CollateralVerdict != tc.want {
			t.Fatalf("%s: %+v", tc.constraint, evs)
		}
		if tc.want == CollateralUnknown && !strings.Contains(evs[0].Reason, "not by what each held on the cpuset's or memory policy's allowed nodes") {
			t.Errorf("%s: %s", tc.constraint, evs[0].Reason)
		}
	}
}
