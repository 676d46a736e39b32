package analysis

import (
	"fmt"
	"io"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// logGen produces an endless-looking kernel log: ordinary records with an
// OOM report every so often, up to size bytes.
type logGen struct {
	size, done int64
	seq        int64
	buf        []byte
}

func (g *logGen) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		if g.done >= g.size {
			return 0, io.EOF
		}
		g.seq++
		usec := g.seq * 1000
		if g.seq%5000 == 0 {
			pid := 100000 + g.seq
			g.buf = fmt.Appendf(g.buf, "4,%d,%d,-;w invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0\n", g.seq, usec)
			g.buf = fmt.Appendf(g.buf, "4,%d,%d,-;CPU: 0 PID: %d Comm: w Not tainted\n", g.seq, usec, pid)
			g.buf = fmt.Appendf(g.buf, "6,%d,%d,-;oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/kubepods/besteffort/pod0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0/e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff,task=w,pid=%d,uid=0\n", g.seq, usec, pid)
			g.buf = fmt.Appendf(g.buf, "3,%d,%d,-;Out of memory: Killed process %d (w) total-vm:1kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:1000\n", g.seq, usec, pid)
		} else {
			g.buf = fmt.Appendf(g.buf, "6,%d,%d,-;eth0: ordinary kernel record number %d with some text\n", g.seq, usec, g.seq)
		}
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	g.done += int64(n)
	return n, nil
}

// TestReadLogStreams checks that memory stays flat however long the log:
// 200 MB of input must not raise the live heap above a few MiB.
func TestReadLogStreams(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 200 MB")
	}
	gen := &logGen{size: 200 << 20}
	var peak uint64
	var events int
	var ms runtime.MemStats
	st, err := ReadLog(gen, StreamOptions{Hold: time.Minute}, func(Event) {
		events++
		if events%50 == 0 {
			runtime.GC()
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Events == 0 || int64(events) != st.Events {
		t.Fatalf("events %d / %d", events, st.Events)
	}
	t.Logf("%d lines, %d events, peak live heap %.1f MiB", st.Lines, st.Events, float64(peak)/(1<<20))
	if peak > 32<<20 {
		t.Fatalf("live heap reached %d bytes reading a 200 MB log: not streaming", peak)
	}
}

// TestSelectionOnlyKill: a log filtered with grep 'Out of memory' on an old
// kernel keeps each kill's selection line and drops its bare kill line. The
// kill is still reported, of the chosen process, and the event says that
// its kill line was missing (the kernel may have killed a child instead).
func TestSelectionOnlyKill(t *testing.T) {
	log := "Mar  7 11:54:10 web-3 kernel: [259563.476003] Out of memory: Kill process 31490 (corerun) score 897 or sacrifice child\n" +
		"Mar  7 11:56:10 web-3 kernel: [259683.000001] Out of memory: Kill process 31800 (corerun) score 880 or sacrifice child\n"
	var events []Event
	if _, err := ReadLog(strings.NewReader(log), StreamOptions{}, func(e Event) { events = append(events, e) }); err != nil {
		t.Fatal(err)
	}
	if len(events) != 2 {
		t.Fatalf("%d events, want 2", len(events))
	}
	for i, pid := range []int{31490, 31800} {
		ev := events[i]
		v := ev.Victims[0]
		if ev.Kind != KindNode || v.PID != pid || v.Comm != "corerun" || !v.SelectionOnly {
			t.Errorf("event %d: kind %s, victim %+v", i, ev.Kind, v)
		}
		for _, want := range []string{"the kernel chose corerun (pid " + strconv.Itoa(pid) + ") to kill", "kill line was not in the log"} {
			if !strings.Contains(ev.Reason, want) {
				t.Errorf("event %d: reason %q lacks %q", i, ev.Reason, want)
			}
		}
	}
}

// TestMemcgSummaryWithConstraintNone: kernels 4.19 to 5.2 printed
// constraint=CONSTRAINT_NONE for every kill, memory cgroup OOMs included;
// the summary's oom_memcg= (printed only for those) says it was a limit.
func TestMemcgSummaryWithConstraintNone(t *testing.T) {
	log := strings.Join([]string{
		"[   37.120000] a.out invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
		"[   37.120001] CPU: 1 PID: 9185 Comm: a.out Not tainted 5.0.0-rc1 #1",
		"[   37.128100] memory: usage 51200kB, limit 51200kB, failcnt 70",
		"[   37.128150] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/test1,task_memcg=/test1,task=a.out,pid=9188,uid=0",
		"[   37.128158] Memory cgroup out of memory: Killed process 9188 (a.out) total-vm:4224kB, anon-rss:84kB, file-rss:0kB, shmem-rss:0kB",
	}, "\n")
	var events []Event
	if _, err := ReadLog(strings.NewReader(log), StreamOptions{}, func(e Event) { events = append(events, e) }); err != nil {
		t.Fatal(err)
	}
	if len(events) != 1 || events[0].Kind != KindLimit || events[0].OOMMemcg != "/test1" || events[0].Constraint != "CONSTRAINT_NONE" {
		t.Fatalf("events %+v", events)
	}
}

// TestMemswLimit: a cgroup v1 limit kill whose memory was under its limit
// while memory+swap was at its own hit the memory+swap limit, and says so;
// one at its memory limit (memory+swap unlimited) hit the memory limit.
func TestMemswLimit(t *testing.T) {
	report := func(mem, memsw string) string {
		return strings.Join([]string{
			"[20148497.700000] java invoked oom-killer: gfp_mask=0x6000c0(GFP_KERNEL), order=0, oom_score_adj=916",
			"[20148497.700001] CPU: 3 PID: 7127 Comm: java Not tainted 4.18.0-305.el8.x86_64 #1",
			"[20148497.700100] Task in /kubepods/burstable/pod1/c1 killed as a result of limit of /kubepods/burstable/pod1/c1",
			"[20148497.700101] " + mem,
			"[20148497.700102] " + memsw,
			"[20148497.800000] Memory cgroup out of memory: Killed process 7093 (java) total-vm:9923620kB, anon-rss:1916684kB, file-rss:23132kB, shmem-rss:0kB",
		}, "\n")
	}
	read := func(log string) Event {
		t.Helper()
		var events []Event
		if _, err := ReadLog(strings.NewReader(log), StreamOptions{}, func(e Event) { events = append(events, e) }); err != nil {
			t.Fatal(err)
		}
		if len(events) != 1 || events[0].Kind != KindLimit {
			t.Fatalf("events %+v", events)
		}
		return events[0]
	}
	ev := read(report("memory: usage 32461120kB, limit 33554432kB, failcnt 0",
		"memory+swap: usage 35651584kB, limit 35651584kB, failcnt 24892068"))
	if ev.MemswLimitBytes == nil || *ev.MemswLimitBytes != 35651584*1024 || *ev.MemswUsageBytes != 35651584*1024 ||
		*ev.MemcgLimitBytes != 33554432*1024 || !strings.Contains(ev.Reason, "its memory+swap limit 34.0 GiB (memory 31.0 GiB of its 32.0 GiB limit)") {
		t.Errorf("memory+swap limit hit: %+v, reason %q", ev, ev.Reason)
	}
	ev = read(report("memory: usage 33554432kB, limit 33554432kB, failcnt 91",
		"memory+swap: usage 33554432kB, limit 9007199254740988kB, failcnt 0"))
	if ev.MemswLimitBytes != nil || ev.MemswUsageBytes != nil || !strings.Contains(ev.Reason, ", limit 32.0 GiB") {
		t.Errorf("memory limit hit: %+v, reason %q", ev, ev.Reason)
	}
	// Both at their limits (memory within a charge batch of it): the
	// memory limit, which reclaim hit first.
	ev = read(report("memory: usage 307112kB, limit 307200kB, failcnt 35982",
		"memory+swap: usage 614400kB, limit 614400kB, failcnt 11"))
	if ev.MemswLimitBytes != nil || !strings.Contains(ev.Reason, ", limit 300.0 MiB") {
		t.Errorf("both at their limits: %+v, reason %q", ev, ev.Reason)
	}
	// Memory+swap full to the kB, memory with room for a charge batch
	// (684 kB, within 1% of its limit): memory+swap, charged first.
	ev = read(report("memory: usage 101716kB, limit 102400kB, failcnt 30881",
		"memory+swap: usage 204800kB, limit 204800kB, failcnt 6749"))
	if ev.MemswLimitBytes == nil || *ev.MemswLimitBytes != 204800*1024 {
		t.Errorf("memory+swap full: %+v, reason %q", ev, ev.Reason)
	}
}

// TestVictimAloneIsNotJudged: a node-level kill whose report has no task
// dump and names no memory holder but the victim cannot say the victim was
// not collateral: nothing was compared. With another holder in the
// incident, it can.
func TestVictimAloneIsNotJudged(t *testing.T) {
	const cg = "/kubepods/besteffort/podbe1e663f-f7a1-4b90-bdfd-bb30afdf7c37/53463dbb01e9d8a9f1b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f70"
	summary := func(pid int, cgroup string) string {
		return "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=" + cgroup + ",task=entry,pid=" + strconv.Itoa(pid) + ",uid=0"
	}
	read := func(lines ...string) []Event {
		t.Helper()
		var events []Event
		if _, err := ReadLog(strings.NewReader(strings.Join(lines, "\n")), StreamOptions{Hold: time.Minute}, func(e Event) { events = append(events, e) }); err != nil {
			t.Fatal(err)
		}
		return events
	}
	evs := read(
		"[606280.177800] "+summary(19227, cg),
		"[606280.177828] Out of memory: Killed process 19227 (entry) total-vm:1656kB, anon-rss:120kB, file-rss:4kB, shmem-rss:0kB",
	)
	if len(evs) != 1 || evs[0].CollateralVerdict != CollateralUnknown || evs[0].Collateral ||
		!strings.Contains(evs[0].Reason, "the victim's own workload is the only memory holder it names (124.0 KiB)") {
		t.Fatalf("alone: %+v", evs)
	}
	evs = read(
		"[606280.177800] "+summary(19227, cg),
		"[606280.177828] Out of memory: Killed process 19227 (entry) total-vm:1656kB, anon-rss:120kB, file-rss:4kB, shmem-rss:0kB",
		"[606280.277800] "+summary(19300, "/system.slice/big.service"),
		"[606280.277828] Out of memory: Killed process 19300 (big) total-vm:1656kB, anon-rss:900000kB, file-rss:4kB, shmem-rss:0kB",
	)
	if len(evs) != 2 || evs[0].CollateralVerdict != CollateralYes || evs[1].CollateralVerdict != CollateralNo {
		t.Fatalf("compared within the incident: %+v", evs)
	}
	// Its oom_score_adj 0 printed: the kernel chose it by size alone.
	evs = read(
		"[606280.177800] "+summary(19227, cg),
		"[606280.177828] Out of memory: Killed process 19227 (entry) total-vm:1656kB, anon-rss:120kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0",
	)
	if len(evs) != 1 || evs[0].CollateralVerdict != CollateralNo {
		t.Fatalf("chosen by size: %+v", evs)
	}
}

// TestIncidentOnWallClock: renderings without the kernel's monotonic time
// (dmesg -T, journal and syslog lines) place reports in incidents by
// their wall clock, so that a victim is judged against the larger holder
// killed seconds later, as in dmesg's rendering; not across a boot, nor
// beyond the incident window.
func TestIncidentOnWallClock(t *testing.T) {
	const cg = "/kubepods/besteffort/podbe1e663f-f7a1-4b90-bdfd-bb30afdf7c37/53463dbb01e9d8a9f1b0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f70"
	kill := func(stamp string, pid int, comm, cgroup string, rssKB int) []string {
		return []string{
			stamp + "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=" + cgroup +
				",task=" + comm + ",pid=" + strconv.Itoa(pid) + ",uid=0",
			stamp + "Out of memory: Killed process " + strconv.Itoa(pid) + " (" + comm + ") total-vm:1656kB, anon-rss:" +
				strconv.Itoa(rssKB) + "kB, file-rss:4kB, shmem-rss:0kB",
		}
	}
	read := func(lines ...[]string) []Event {
		t.Helper()
		var all []string
		for _, l := range lines {
			all = append(all, l...)
		}
		var events []Event
		if _, err := ReadLog(strings.NewReader(strings.Join(all, "\n")), StreamOptions{Hold: time.Minute}, func(e Event) { events = append(events, e) }); err != nil {
			t.Fatal(err)
		}
		return events
	}
	for _, tc := range []struct{ name, first, second, later, boot string }{
		{"dmesg -T", "[Sat Dec  6 06:44:17 2025] ", "[Sat Dec  6 06:44:20 2025] ", "[Sat Dec  6 06:45:21 2025] ", ""},
		{"journal short-full", "Sat 2025-12-06 06:44:17 UTC node1 kernel: ", "Sat 2025-12-06 06:44:20 UTC node1 kernel: ",
			"Sat 2025-12-06 06:45:21 UTC node1 kernel: ", "-- Boot 5b8e0c1e9d2a4c1f8e0a1b2c3d4e5f60 --"},
		{"syslog", "Dec  6 06:44:17 node1 kernel: ", "Dec  6 06:44:20 node1 kernel: ", "Dec  6 06:45:21 node1 kernel: ",
			"Dec  6 06:44:19 node1 kernel: Linux version 6.1.0-41-amd64 (debian-kernel@lists.debian.org)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			evs := read(kill(tc.first, 19227, "entry", cg, 120), kill(tc.second, 19300, "big", "/system.slice/big.service", 900000))
			if len(evs) != 2 || evs[0].CollateralVerdict != CollateralYes || evs[1].CollateralVerdict != CollateralNo {
				t.Fatalf("within the incident: %+v", evs)
			}
			evs = read(kill(tc.first, 19227, "entry", cg, 120), kill(tc.later, 19300, "big", "/system.slice/big.service", 900000))
			if len(evs) != 2 || evs[0].CollateralVerdict != CollateralUnknown {
				t.Fatalf("61 s later: %+v", evs)
			}
			if tc.boot == "" {
				return
			}
			evs = read(kill(tc.first, 19227, "entry", cg, 120), []string{tc.boot}, kill(tc.second, 19300, "big", "/system.slice/big.service", 900000))
			if len(evs) != 2 || evs[0].CollateralVerdict != CollateralUnknown {
				t.Fatalf("a boot between: %+v", evs)
			}
		})
	}
}

// TestDumpRowOfAnotherThread: a kernel may print a process's task dump
// row from one thread and its kill line from another (3.10: "[ 7747] 0
// 7748 ... python", "Killed process 7748 (python)"). The row is the
// victim's own: the victim is the largest holder, not collateral.
func TestDumpRowOfAnotherThread(t *testing.T) {
	lines := []string{
		"[  100.000001] python invoked oom-killer: gfp_mask=0x201da, order=0, oom_score_adj=0",
		"[  100.000002] CPU: 1 PID: 7749 Comm: python Not tainted 3.10.0-514.el7.x86_64 #1",
		"[  100.000003] [ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name",
		"[  100.000004] [  612]     0   612     9204      250      22        0             0 systemd-journal",
		"[  100.000005] [ 1001]     0  1001   100000    50000     200        0             0 java",
		"[  100.000006] [ 7747]     0  7748  3226957  2875051    5692        0             0 python",
		"[  100.000007] Out of memory: Kill process 7748 (python) score 900 or sacrifice child",
		"[  100.000008] Killed process 7748 (python) total-vm:12907828kB, anon-rss:11500204kB, file-rss:0kB",
	}
	evs := readLines(t, lines)
	if len(evs) != 1 || evs[0].CollateralVerdict != CollateralNo || evs[0].Culprit == nil || evs[0].Culprit.PID != 7748 ||
		len(evs[0].TopConsumers) == 0 || evs[0].TopConsumers[0].PID != 7748 {
		t.Fatalf("events %+v", evs)
	}
}

// TestKilledHolderHoldsNothingLater: a process an earlier kill of the
// incident took holds nothing at the next kill: it is not that kill's
// culprit, however large it was.
func TestKilledHolderHoldsNothingLater(t *testing.T) {
	kill := func(mono string, pid int, comm string, rssKB int) string {
		return "[" + mono + "] Out of memory: Killed process " + strconv.Itoa(pid) + " (" + comm + ") total-vm:1656kB, anon-rss:" +
			strconv.Itoa(rssKB) + "kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:40kB oom_score_adj:300"
	}
	var evs []Event
	in := kill("56395.336475", 19384, "firefox", 900000) + "\n" + kill("56396.798497", 49355, "stress", 100000)
	if _, err := ReadLog(strings.NewReader(in), StreamOptions{Hold: time.Minute}, func(e Event) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 {
		t.Fatalf("events %+v", evs)
	}
	if c := evs[1].Culprit; c != nil && c.PID == 19384 || evs[1].CollateralVerdict == CollateralYes {
		t.Fatalf("the second kill blames the first victim: %+v", evs[1])
	}
	// The first kill may still name the second's victim, alive then.
	if evs[0].CollateralVerdict != CollateralNo {
		t.Fatalf("first kill: %+v", evs[0])
	}
}
