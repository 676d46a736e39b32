package oom

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// feed runs lines (in any rendering) through an Assembler.
func feed(t testing.TB, opts Options, lines ...string) ([]*Report, *Assembler) {
	t.Helper()
	var out []*Report
	a := NewAssembler(opts, func(r *Report) { out = append(out, r) })
	rd := kernlog.NewReader(strings.NewReader(strings.Join(lines, "\n")))
	for rd.Next() {
		a.Feed(rd.Record())
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	a.Flush()
	return out, a
}

// nodeReport renders a 6.1-style node-level report as /dev/kmsg records
// starting at seq, with n task rows; the victim is the last row.
func nodeReport(seq, usec int64, n int, victim int) []string {
	var l []string
	add := func(prio int, msg string) {
		l = append(l, fmt.Sprintf("%d,%d,%d,-;%s", prio, seq, usec, msg))
		seq++
		usec += 10
	}
	add(4, "stress invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0")
	add(4, "CPU: 1 PID: 4242 Comm: stress Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2")
	add(4, "Call Trace:")
	add(4, " <TASK>")
	add(4, " dump_stack_lvl+0x44/0x5c")
	add(4, " </TASK>")
	add(4, "Mem-Info:")
	add(4, "active_anon:467 inactive_anon:48470 isolated_anon:0\\x0a active_file:0 inactive_file:0 isolated_file:0")
	add(6, "Tasks state (memory values in pages):")
	add(6, "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name")
	for i := 0; i < n; i++ {
		pid := 1000 + i
		rss := 100 + i
		adj := 0
		if pid == victim {
			rss, adj = 2722, 1000
		}
		add(6, fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %13d %s", pid, 0, pid, rss+50, rss, 61440, 0, adj, "worker"))
	}
	add(6, fmt.Sprintf("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_4b5a_4968_a7b6_c5d4e3f2a1b0.slice/cri-containerd-e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff.scope,task=worker,pid=%d,uid=0", victim))
	add(3, fmt.Sprintf("Out of memory: Killed process %d (worker) total-vm:11268kB, anon-rss:10236kB, file-rss:4kB, shmem-rss:648kB, UID:0 pgtables:60kB oom_score_adj:1000", victim))
	return l
}

func TestNodeReport(t *testing.T) {
	reps, a := feed(t, Options{}, nodeReport(100, 5_000_000, 50, 1049)...)
	if len(reps) != 1 {
		t.Fatalf("got %d reports, want 1", len(reps))
	}
	r := reps[0]
	if !r.Complete || r.Seq != 100 || r.Trigger == nil || r.Trigger.PID != 4242 || r.Trigger.Comm != "stress" {
		t.Fatalf("header wrong: complete=%v seq=%d trigger=%+v", r.Complete, r.Seq, r.Trigger)
	}
	if len(r.Tasks) != 50 || !r.HasMemInfo || r.Summary == nil || !r.Summary.GlobalOOM {
		t.Fatalf("tasks=%d meminfo=%v summary=%+v", len(r.Tasks), r.HasMemInfo, r.Summary)
	}
	v := r.Victim()
	if v.PID != 1049 || v.RSSBytes != (10236+4+648)*1024 || !strings.Contains(v.Cgroup, "besteffort") || v.OOMScoreAdj != 1000 {
		t.Fatalf("victim = %+v", v)
	}
	if r.PageSize != 4096 || r.TaskByPID(1000).RSSBytes != 100*4096 {
		t.Fatalf("page size %d, rss %d", r.PageSize, r.TaskByPID(1000).RSSBytes)
	}
	if st := a.Stats(); st.Reports != 1 || st.Abandoned != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPageSizeFromVictim(t *testing.T) {
	// The victim's kill line says 10888 kB; its dump row says as many pages
	// of the kernel's size: 8 KiB on sparc64, 16 or 64 KiB on arm64.
	for _, tc := range []struct {
		pages string
		want  int64
	}{{"    2722 ", 4096}, {"    1361 ", 8192}, {"     680 ", 16384}, {"     340 ", 32768}, {"     170 ", 65536}} {
		lines := nodeReport(1, 1, 3, 1002)
		for i, l := range lines {
			if strings.Contains(l, "[   1002]") {
				lines[i] = strings.Replace(l, "    2722 ", tc.pages, 1)
			}
		}
		reps, _ := feed(t, Options{}, lines...)
		if got := reps[0].PageSize; got != tc.want {
			t.Errorf("%s pages: page size = %d, want %d", strings.TrimSpace(tc.pages), got, tc.want)
		}
		if got := reps[0].TaskByPID(1002).RSSBytes; got/1024 < 10800 || got/1024 > 10900 {
			t.Errorf("%s pages: victim's dump row = %d kB, want ~10888", strings.TrimSpace(tc.pages), got/1024)
		}
	}
}

// TestPageSizeFromBuddy: a node-wide report's Mem-Info lists each zone's
// free blocks by order, the first of one page: the page size even when no
// kill line gives the victim's size (a 64 KiB-page arm64 report whose kill
// line is missing).
func TestPageSizeFromBuddy(t *testing.T) {
	for _, tc := range []struct {
		line string
		want int64
	}{
		{"Node 0 DMA32: 12*64kB (UM) 10*128kB (UM) 5*256kB (UM) = 613120kB", 65536},
		{"Node 0 DMA: 1*4kB (M) 1*8kB (U) 1*16kB (M) = 15360kB", 4096},
		{"Node 1 Normal: 0*16kB 3*32kB = 96kB", 16384},
		{"Node 0 DMA32 free:613120kB min:91584kB low:114432kB", 0},
		{"Node 0 hugepages_total=0 hugepages_free=0 hugepages_surp=0 hugepages_size=2048kB", 0},
		{"Node 0 DMA: 1*3kB", 0},
		{"Node 0 DMA: *4kB", 0},
	} {
		if got := parseBuddyPageSize([]byte(tc.line)); got != tc.want {
			t.Errorf("parseBuddyPageSize(%q) = %d, want %d", tc.line, got, tc.want)
		}
	}
	reps, _ := feed(t, Options{},
		"[ 89.0] oncealloc2 invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0",
		"[ 89.0] CPU: 3 PID: 1440 Comm: oncealloc2 Not tainted 5.10.0 #1",
		"[ 89.1] Mem-Info:",
		"[ 89.1] Node 0 DMA32: 12*64kB (UM) 10*128kB (UM) 5*256kB (UM) = 613120kB",
		"[ 89.2] Tasks state (memory values in pages):",
		"[ 89.2] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
		"[ 89.2] [   1428]     0  1428     2100     2053     65536        0             0 oncealloc2",
		"[ 89.2] [   1440]     0  1440     1100      998     65536        0             0 oncealloc2",
		"[ 89.3] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=oncealloc2,pid=1440,uid=0",
	)
	if len(reps) != 1 || reps[0].PageSize != 65536 || reps[0].TaskByPID(1428).RSSBytes != 2053*65536 {
		t.Fatalf("reports %+v", reps)
	}
}

func TestInterleavedAndBackToBack(t *testing.T) {
	a := nodeReport(10, 1_000_000, 5, 1003)
	b := nodeReport(100, 2_000_000, 5, 1004)
	var lines []string
	for i, l := range a {
		lines = append(lines, l)
		if i%3 == 0 {
			lines = append(lines, fmt.Sprintf("6,%d,1000001,-;eth0: unrelated record %d", 5000+i, i))
		}
	}
	lines = append(lines, b...)
	reps, _ := feed(t, Options{}, lines...)
	if len(reps) != 2 {
		t.Fatalf("got %d reports, want 2", len(reps))
	}
	if reps[0].Victim().PID != 1003 || reps[1].Victim().PID != 1004 || len(reps[0].Tasks) != 5 {
		t.Fatalf("victims %d %d", reps[0].Victim().PID, reps[1].Victim().PID)
	}
}

func TestNextReportNeverSwallowed(t *testing.T) {
	// The first report stops before its kill line; the next begins.
	a := nodeReport(10, 1_000_000, 5, 1003)
	a = a[:len(a)-2]
	b := nodeReport(100, 2_000_000, 5, 1004)
	reps, asm := feed(t, Options{}, append(a, b...)...)
	if len(reps) != 1 || reps[0].Victim().PID != 1004 || reps[0].Seq != 100 {
		t.Fatalf("got %d reports; want only the second, whole", len(reps))
	}
	if asm.Stats().Abandoned != 1 {
		t.Fatalf("abandoned = %d, want 1", asm.Stats().Abandoned)
	}
}

func TestEndlessReportIsBounded(t *testing.T) {
	a := nodeReport(10, 1_000_000, 5, 1003)
	a = a[:len(a)-2]
	// Records long after the start close the report without taking them.
	late := "6,999,500000000,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x,pid=7,uid=0"
	reps, asm := feed(t, Options{MaxSpan: time.Minute}, append(a, late)...)
	if asm.Stats().Abandoned != 1 || len(reps) != 1 || reps[0].Complete || reps[0].Victim().PID != 7 {
		t.Fatalf("abandoned=%d reports=%d", asm.Stats().Abandoned, len(reps))
	}
	// Without timestamps the line bound holds.
	var lines []string
	lines = append(lines, "x invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0")
	for i := 0; i < 50; i++ {
		lines = append(lines, "filler")
	}
	lines = append(lines, "Out of memory: Killed process 9 (z) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB")
	reps, asm = feed(t, Options{MaxLines: 20}, lines...)
	if asm.Stats().Abandoned != 1 || len(reps) != 1 || reps[0].Complete {
		t.Fatalf("line bound: abandoned=%d reports=%d", asm.Stats().Abandoned, len(reps))
	}
}

func TestStartLostMidTaskDump(t *testing.T) {
	a := nodeReport(10, 1_000_000, 20, 1019)
	reps, _ := feed(t, Options{}, a[15:]...)
	if len(reps) != 1 {
		t.Fatalf("got %d reports", len(reps))
	}
	r := reps[0]
	if r.Complete || r.Trigger != nil || r.Victim().PID != 1019 || len(r.Tasks) == 0 {
		t.Fatalf("complete=%v trigger=%v tasks=%d", r.Complete, r.Trigger, len(r.Tasks))
	}
}

func TestOOMStormBareKillLines(t *testing.T) {
	var lines []string
	for i := 0; i < 100; i++ {
		lines = append(lines, fmt.Sprintf("3,%d,%d,-;Out of memory: Killed process %d (w%d) total-vm:1000kB, anon-rss:%dkB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:1000", 10+i, 1000000+i*100, 2000+i, i, 100+i))
	}
	reps, _ := feed(t, Options{}, lines...)
	if len(reps) != 100 {
		t.Fatalf("got %d reports, want one per kill (100)", len(reps))
	}
	for i, r := range reps {
		if r.Victim().PID != 2000+i || r.Seq != int64(10+i) || r.Complete || len(r.Victims) != 1 {
			t.Fatalf("report %d: pid=%d seq=%d", i, r.Victim().PID, r.Seq)
		}
	}
}

// A storm of bare kill lines after one full report (the e2e fork bomb: a
// report followed by 1,100 rate-limited kills) must not hand the first
// report every later kill's line: the aggregator refuses events of over
// 1,000 lines, and each later kill carries its own.
func TestStormLinesStayWithTheirKill(t *testing.T) {
	lines := nodeReport(1, 1000000, 20, 1005)
	for i := 0; i < 1100; i++ {
		lines = append(lines, fmt.Sprintf("3,%d,%d,-;Out of memory: Killed process %d (w) total-vm:1000kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:1000", 100+i, 2000000+i*10, 5000+i))
	}
	reps, _ := feed(t, Options{}, lines...)
	if len(reps) != 1101 {
		t.Fatalf("got %d reports, want 1101", len(reps))
	}
	for i, r := range reps {
		if len(r.Lines) > 800 {
			t.Fatalf("report %d holds %d lines, more than 2*MaxRawLines", i, len(r.Lines))
		}
		kills := 0
		for _, l := range r.Lines {
			if strings.Contains(l, "Killed process") {
				kills++
			}
		}
		if kills != 1 {
			t.Fatalf("report %d (pid %d) holds %d kill lines, want its own only", i, r.Victim().PID, kills)
		}
	}
	if reps[0].Victim().PID != 1005 || !reps[0].Complete {
		t.Fatalf("first report: pid %d complete %v", reps[0].Victim().PID, reps[0].Complete)
	}
}

// A memory.oom.group kill of thousands of tasks keeps at most
// 2*MaxRawLines lines; the rest are counted as dropped.
func TestGroupKillLinesBounded(t *testing.T) {
	lines := []string{
		"[ 1.0] a invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=997",
		"[ 1.1] Tasks in /kubepods/pod3902af1e-8ce1-42e1-a2a5-dc04f4240c4f/ed9d are going to be killed due to memory.oom.group set",
	}
	for i := 0; i < 3000; i++ {
		lines = append(lines, fmt.Sprintf("[ 1.2] Memory cgroup out of memory: Killed process %d (a) total-vm:1kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:997", 10+i))
	}
	reps, _ := feed(t, Options{}, lines...)
	if len(reps) != 1 {
		t.Fatalf("got %d reports, want 1", len(reps))
	}
	r := reps[0]
	if len(r.Victims) != 3000 || len(r.Lines) != 800 || r.LinesDropped != 3002-800 {
		t.Fatalf("victims %d, lines %d, dropped %d", len(r.Victims), len(r.Lines), r.LinesDropped)
	}
}

// Records that userspace writes to /dev/kmsg carry a facility other than
// LOG_KERN (echo '<4>...' > /dev/kmsg is stored as priority 12, LOG_USER):
// a forged kill line, a forged report, or forged lines inside a real
// report never become or change a kill.
func TestForgedRecordsIgnored(t *testing.T) {
	forge := func(l []string) []string {
		out := make([]string, len(l))
		for i, x := range l {
			prio, rest, _ := strings.Cut(x, ",")
			n, _ := strconv.Atoi(prio)
			out[i] = fmt.Sprintf("%d,%s", 8|n, rest)
		}
		return out
	}
	real := nodeReport(100, 5000000, 5, 1003)
	var in []string
	// A forged single-line kill and a forged full report first.
	in = append(in, "12,1,1000,-;Memory cgroup out of memory: Killed process 4242 (forged) total-vm:1000kB, anon-rss:900kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0")
	in = append(in, forge(nodeReport(2, 2000000, 3, 1001))...)
	// The real report, with a forged kill line and a forged summary
	// spliced into its dump.
	in = append(in, real[:12]...)
	in = append(in, "12,110,5000110,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/kubepods.slice/evil.slice,task=evil,pid=666,uid=0",
		"12,111,5000111,-;Out of memory: Killed process 666 (evil) total-vm:1kB, anon-rss:1kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0")
	in = append(in, real[12:]...)
	var forged []int64
	reps, a := feed(t, Options{Forged: func(r *kernlog.Record) { forged = append(forged, r.Seq) }}, in...)
	if len(reps) != 1 {
		t.Fatalf("got %d reports, want the real one only", len(reps))
	}
	r := reps[0]
	if r.Victim().PID != 1003 || len(r.Victims) != 1 || !r.Complete || r.Summary == nil || r.Summary.PID != 1003 {
		t.Fatalf("real report changed: victims %+v summary %+v complete %v", r.Victims, r.Summary, r.Complete)
	}
	for _, l := range r.Lines {
		if strings.Contains(l, "evil") {
			t.Fatalf("forged line kept in the report: %s", l)
		}
	}
	// The forged kill line; the forged report's invocation, dump header,
	// three rows, summary and kill line (its other lines read like
	// nothing in particular); the two spliced lines.
	if st := a.Stats(); st.Forged != 11 || len(forged) != 11 {
		t.Fatalf("forged %d, told %v", st.Forged, forged)
	}
}

func TestOOMGroupKill(t *testing.T) {
	reps, _ := feed(t, Options{},
		"[ 1.0] a invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=997",
		"[ 1.1] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod3902af1e-8ce1-42e1-a2a5-dc04f4240c4f,task_memcg=/kubepods/pod3902af1e-8ce1-42e1-a2a5-dc04f4240c4f/ed9d,task=a,pid=10,uid=0",
		"[ 1.2] Memory cgroup out of memory: Killed process 10 (a) total-vm:1kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:997",
		"[ 1.3] Tasks in /kubepods/pod3902af1e-8ce1-42e1-a2a5-dc04f4240c4f/ed9d are going to be killed due to memory.oom.group set",
		"[ 1.4] Memory cgroup out of memory: Killed process 10 (a) total-vm:1kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:997",
		"[ 1.5] Memory cgroup out of memory: Killed process 11 (b) total-vm:1kB, anon-rss:8kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:997",
		"[ 1.6] oom_reaper: reaped process 10 (a), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
		"[ 9.0] unrelated",
	)
	if len(reps) != 1 {
		t.Fatalf("got %d reports, want 1", len(reps))
	}
	r := reps[0]
	if len(r.Victims) != 2 || !r.Victims[1].GroupMember || r.Victims[0].GroupMember {
		t.Fatalf("victims %+v", r.Victims)
	}
	if r.Victims[1].Cgroup != r.GroupCgroup || len(r.Reaped) != 1 {
		t.Fatalf("group member cgroup %q, reaped %v", r.Victims[1].Cgroup, r.Reaped)
	}
}

func TestLegacyKernels(t *testing.T) {
	reps, _ := feed(t, Options{},
		"Task in /mem2 killed as a result of limit of /mem2",
		"memory: usage 980kB, limit 980kB, failcnt 4152239",
		"[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name",
		"[13536] 275858 13536  8389663      343   16267  8324326             0 memory monster",
		"Memory cgroup out of memory: Kill process 13536 (memory monster) score 996 or sacrifice child",
		"Killed process 13536 (memory monster) total-vm:33558652kB, anon-rss:920kB, file-rss:452kB",
	)
	if len(reps) != 1 {
		t.Fatalf("got %d reports", len(reps))
	}
	r := reps[0]
	if r.LegacyLimitOf != "/mem2" || r.Victim().Cgroup != "/mem2" || !r.SelectedMemcg || r.SelectedPID != 13536 {
		t.Fatalf("legacy memcg facts wrong: %+v", r)
	}
	if r.Tasks[0].Comm != "memory monster" || r.Victim().Comm != "memory monster" || r.MemcgLimitKB != 980 {
		t.Fatalf("comm with a space: %q / %q", r.Tasks[0].Comm, r.Victim().Comm)
	}
}

// TestSelectionWithoutKillLine: an old kernel's selection line whose kill
// line is missing (a log filtered with grep 'Out of memory', or cut off)
// still reports the kill, of the chosen process, marked as such; with its
// kill line, the process killed (here a child) is the victim.
func TestSelectionWithoutKillLine(t *testing.T) {
	reps, a := feed(t, Options{},
		"Mar  7 11:54:10 web-3 kernel: [259563.476003] Out of memory: Kill process 31490 (core run) score 897 or sacrifice child",
		"Mar  7 11:54:11 web-3 kernel: [259564.000001] eth0: link up",
		"Mar  7 11:55:10 web-3 kernel: [259623.476003] Memory cgroup out of memory: Kill process 4100 (java) score 1000 or sacrifice child",
	)
	if len(reps) != 2 || a.Stats().Abandoned != 0 {
		t.Fatalf("got %d reports, stats %+v", len(reps), a.Stats())
	}
	for i, want := range []struct {
		pid        int
		comm, kind string
	}{{31490, "core run", "Out of memory"}, {4100, "java", "Memory cgroup out of memory"}} {
		v := reps[i].Victim()
		if v == nil || v.PID != want.pid || v.Comm != want.comm || v.Message != want.kind || !v.Selected || !v.HasMono {
			t.Errorf("report %d: victim %+v", i, v)
		}
	}
	reps, _ = feed(t, Options{},
		"[ 5.0] Out of memory: Kill process 31490 (corerun) score 897 or sacrifice child",
		"[ 5.0] Killed process 31502 (worker) total-vm:1000kB, anon-rss:800kB, file-rss:4kB",
	)
	if len(reps) != 1 || len(reps[0].Victims) != 1 || reps[0].Victim().PID != 31502 || reps[0].Victim().Selected {
		t.Fatalf("with its kill line: %+v", reps)
	}
}

// TestReaperWithoutKillLine: a report whose kill line was filtered out but
// whose oom_reaper line names the process it reaped (only the OOM killer's
// victims are reaped) reports that kill.
func TestReaperWithoutKillLine(t *testing.T) {
	reps, _ := feed(t, Options{},
		"4,100,1000000,-;main invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=999",
		"4,101,1000001,-;CPU: 3 PID: 2292671 Comm: main Not tainted 4.19.0 #1",
		"6,102,1000002,-;Task in /kubepods/pod9e/663f killed as a result of limit of /kubepods/pod9e/663f",
		"6,103,1000003,-;Tasks state (memory values in pages):",
		"6,104,1000004,-;[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
		"6,105,1000005,-;[2292670]     0 2292670   400000   250000  2400000        0           999 main",
		"6,106,1000300,-;oom_reaper: reaped process 2292670 (main), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
	)
	if len(reps) != 1 {
		t.Fatalf("got %d reports", len(reps))
	}
	v := reps[0].Victim()
	if v.PID != 2292670 || v.Comm != "main" || v.Cgroup != "/kubepods/pod9e/663f" || !v.HasRSS || v.RSSBytes != 250000*4096 || v.Selected {
		t.Fatalf("victim %+v", v)
	}
}

func TestCPULineWithUID(t *testing.T) {
	// The CPU line's forms: with the UID (6.12), with "Kdump: loaded"
	// when a crash kernel is loaded (RHEL), tainted or not.
	for _, cpu := range []string{
		"CPU: 0 UID: 0 PID: 96 Comm: hog Not tainted 6.12.0 #1",
		"CPU: 18 PID: 96 Comm: hog Kdump: loaded Tainted: G        W  O K   --------- -  - 4.18.0-305.el8.x86_64 #1",
		"CPU: 1 UID: 0 PID: 96 Comm: hog Kdump: loaded Not tainted 6.12.0-55.el10.x86_64 #1",
		"CPU: 2 PID: 96 Comm: hog Tainted: G           OE     5.14.0 #1",
	} {
		reps, _ := feed(t, Options{},
			"[ 1.0] hog invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0",
			"[ 1.0] "+cpu,
			"[ 1.1] Out of memory: Killed process 96 (hog) total-vm:1kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB",
		)
		if reps[0].Trigger.PID != 96 {
			t.Errorf("%q: trigger pid = %d, want 96", cpu, reps[0].Trigger.PID)
		}
	}
}

func TestMalformedLinesDoNotBreakReports(t *testing.T) {
	reps, _ := feed(t, Options{},
		"[ 1.0] x invoked oom-killer: gfp_mask=, order=zz, oom_score_adj=",
		"[ 1.0] CPU: PID: Comm:",
		"[ 1.0] [ pid ] garbage",
		"[ 1.0] [  12] 1 2 3",
		"[ 1.0] oom-kill:",
		"[ 1.0] Killed process notapid (x)",
		"[ 1.0] Killed process 5 (x",
		"[ 1.0] Out of memory: Killed process 6 (y) total-vm:1kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB",
	)
	if len(reps) != 1 || reps[0].Victim().PID != 6 {
		t.Fatalf("got %d reports", len(reps))
	}
}

func TestFeedDoesNotAllocateOutsideReports(t *testing.T) {
	var rec kernlog.Record
	lines := [][]byte{
		[]byte("6,1,100,-;usb 1-1: new high-speed USB device number 2 using xhci_hcd"),
		[]byte("6,2,200,-;EXT4-fs (sda1): mounted filesystem with ordered data mode"),
		[]byte("6,3,300,-;[drm] Initialized"),
		[]byte("6,4,400,-;audit: type=1400 audit(1:2): apparmor=\"DENIED\""),
	}
	a := NewAssembler(Options{}, func(*Report) { t.Fatal("unexpected report") })
	allocs := testing.AllocsPerRun(200, func() {
		for _, l := range lines {
			kernlog.ParseLine(l, &rec, false, 2026, time.UTC)
			a.Feed(&rec)
		}
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per run of non-OOM records, want 0", allocs)
	}
}

// FuzzAssembler feeds arbitrary text: the assembler must not panic and must
// never emit a report without a victim PID.
func FuzzAssembler(f *testing.F) {
	f.Add(strings.Join(nodeReport(1, 1, 3, 1001), "\n"))
	f.Add("Out of memory: Killed process 1 (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB\nKilled process 2 (b)")
	f.Add("oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/a,task_memcg=/a/b,task=x,pid=3,uid=0")
	f.Add("Tasks in /x are going to be killed due to memory.oom.group set\n[ 12] 0 12 1 1 1 0 0 x")
	// A kill line wrapped by a paste, and a sizeless one at the end.
	f.Add("[ 1.5] Memory cgroup out of memory: Killed process 7\n(x) total-vm:1kB, anon-rss:1kB, file-rss:0kB\n[ 1.6] Killed process 8 (y)")
	f.Add("memory: usage 10kB, limit 10kB, failcnt 1\nMemory cgroup stats for /a: anon 1\n[ 12] 0 13 1 1 1 0 0 1 0 0 x\nKill process 13 (x) sharing same memory")
	f.Fuzz(func(t *testing.T, in string) {
		a := NewAssembler(Options{MaxLines: 1000}, func(r *Report) {
			if len(r.Victims) == 0 || r.Victims[0].PID <= 0 {
				t.Fatalf("report without a victim PID: %+v", r)
			}
		})
		rd := kernlog.NewReader(strings.NewReader(in))
		for rd.Next() {
			a.Feed(rd.Record())
		}
		a.Flush()
	})
}

// BenchmarkAssemblerNonOOM measures records/s and allocations per record on
// a stream of ordinary kernel records (target: 0 allocations per record).
func BenchmarkAssemblerNonOOM(b *testing.B) {
	lines := make([][]byte, 1024)
	for i := range lines {
		lines[i] = []byte(fmt.Sprintf("6,%d,%d,-;eth%d: link is up 1000 Mbps full duplex, flow control rx/tx, record %d", i, i*100, i%4, i))
	}
	a := NewAssembler(Options{}, func(*Report) {})
	var rec kernlog.Record
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		kernlog.ParseLine(lines[i%len(lines)], &rec, false, 2026, time.UTC)
		a.Feed(&rec)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAssemblerNodeReport10k measures a node-level report with 10,000
// tasks in its dump.
func BenchmarkAssemblerNodeReport10k(b *testing.B) {
	raw := nodeReport(1, 1, 10000, 5000)
	lines := make([][]byte, len(raw))
	for i, l := range raw {
		lines[i] = []byte(l)
	}
	n := 0
	a := NewAssembler(Options{}, func(*Report) { n++ })
	var rec kernlog.Record
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, l := range lines {
			kernlog.ParseLine(l, &rec, false, 2026, time.UTC)
			a.Feed(&rec)
		}
		a.Flush()
	}
	b.ReportMetric(float64(b.N*len(lines))/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(len(lines)), "records/op")
	if n != b.N {
		b.Fatalf("%d reports for %d runs", n, b.N)
	}
}
