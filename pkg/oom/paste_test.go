package oom

import (
	"strings"
	"testing"
)

// TestOldSelectLine: kernels before 2.6.36 printed the selection line in
// lower case, "Out of memory: kill process N (x) score S or a child" (and
// the memory cgroup's); it tells a node kill from a limit kill as the
// later "Kill process" does, and other lines with "kill process" in them
// start nothing.
func TestOldSelectLine(t *testing.T) {
	for _, tc := range []struct {
		sel              string
		wantPID          int
		wantMemcg, wantG bool
	}{
		{"Out of memory: kill process 5928 (apache2) score 40674 or a child", 5928, false, true},
		{"Memory cgroup out of memory: kill process 1234 (foo) score 500 or a child", 1234, true, false},
	} {
		reps, _ := feed(t, Options{},
			"[  100.000001] "+tc.sel,
			"[  100.000002] Killed process 1235 (bar)")
		if len(reps) != 1 || len(reps[0].Victims) != 1 {
			t.Fatalf("%q: %d reports", tc.sel, len(reps))
		}
		r := reps[0]
		if r.SelectedPID != tc.wantPID || r.Victims[0].PID != 1235 {
			t.Errorf("%q: selected %d, victim %+v", tc.sel, r.SelectedPID, r.Victims[0])
		}
		pid, _, score, memcg, global, ok := parseSelect(tc.sel)
		if !ok || pid != tc.wantPID || score == 0 || memcg != tc.wantMemcg || global != tc.wantG {
			t.Errorf("%q: parseSelect %d %d %v %v %v", tc.sel, pid, score, memcg, global, ok)
		}
	}
	for _, other := range []string{
		"audit: type=1400 apparmor=\"DENIED\" operation=\"signal\" signal=kill process",
		"sysrq: Manual OOM execution: kill process 1 (init)",
	} {
		if reps, _ := feed(t, Options{}, "[  100.000001] "+other); len(reps) != 0 {
			t.Errorf("%q started a report", other)
		}
	}
}

// TestIndentedPaste: a report pasted as bare lines indented as a block
// (a commit message's two spaces) is read as it would be unindented: the
// summary, the CPU line and the trigger's name; the report keeps its
// lines as they came. A line of an indented block that starts nothing
// starts nothing, and an indented bare rest of a wrapped kill line is
// still that.
func TestIndentedPaste(t *testing.T) {
	lines := []string{
		"runc:[2:INIT] invoked oom-killer: gfp_mask=0x500cc2(GFP_HIGHUSER|__GFP_ACCOUNT), order=0, oom_score_adj=0",
		"CPU: 8 PID: 8291 Comm: runc:[2:INIT] Tainted: G        W I E     5.8.2-0.g71b519a-default #1 openSUSE Tumbleweed (unreleased)",
		"Call Trace:",
		" dump_stack+0x6b/0x88",
		"oom-kill:constraint=CONSTRAINT_CPUSET,nodemask=(null),cpuset=docker-99.scope,mems_allowed=4,global_oom,task_memcg=/system.slice/containerd.service,task=containerd,pid=4100,uid=0",
		"Out of memory: Killed process 4100 (containerd) total-vm:4077036kB, anon-rss:51184kB, file-rss:26016kB, shmem-rss:0kB, UID:0 pgtables:676kB oom_score_adj:0",
	}
	plain, _ := feed(t, Options{}, lines...)
	var indented []string
	for _, l := range lines {
		indented = append(indented, "  "+l)
	}
	got, _ := feed(t, Options{}, indented...)
	if len(plain) != 1 || len(got) != 1 {
		t.Fatalf("%d and %d reports", len(plain), len(got))
	}
	p, r := plain[0], got[0]
	if r.Summary == nil || r.Summary.Constraint != "CONSTRAINT_CPUSET" || r.Trigger == nil || r.Trigger.Comm != "runc:[2:INIT]" ||
		r.Trigger.PID != 8291 || r.KernelRelease != p.KernelRelease || r.Victims[0].Cgroup != "/system.slice/containerd.service" {
		t.Errorf("indented report: summary %+v, trigger %+v, kernel %q, victim %+v", r.Summary, r.Trigger, r.KernelRelease, r.Victims[0])
	}
	if len(r.Lines) != len(indented) || r.Lines[3] != "   dump_stack+0x6b/0x88" {
		t.Errorf("lines not kept as they came: %q", r.Lines)
	}
	if reps, _ := feed(t, Options{}, "  something happened", "  Killed by signal"); len(reps) != 0 {
		t.Errorf("%d reports from indented ordinary lines", len(reps))
	}
	wrapped, _ := feed(t, Options{},
		"  mytask invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
		"  Out of memory: Killed process 835214 (mytask) total-vm:787716604kB,",
		"    anon-rss:787536152kB, file-rss:64kB, shmem-rss:0kB, UID:0")
	if len(wrapped) != 1 || wrapped[0].Victims[0].RSSBytes != (787536152+64)<<10 {
		t.Errorf("indented wrapped kill line: %+v", wrapped)
	}
}

// dumpLines returns a 6.x report of a node kill of pid 900 (python3) with
// the given task dump rows.
func dumpLines(rows ...string) []string {
	l := []string{
		"[   10.000001] python3 invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0",
		"[   10.000002] Tasks state (memory values in pages):",
		"[   10.000003] [  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name",
	}
	l = append(l, rows...)
	return append(l,
		"[   10.000009] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice,task=python3,pid=900,uid=1000",
		"[   10.000010] Out of memory: Killed process 900 (python3) total-vm:293428kB, anon-rss:50824kB, file-rss:7296kB, shmem-rss:0kB, UID:1000 pgtables:176kB oom_score_adj:200")
}

// TestCutDumpRow: a row a paste cut short with "..." keeps the columns it
// shows from the left (rss, rss_anon) but has no oom_score_adj and takes
// its name from the kill line; a whole row is unchanged.
func TestCutDumpRow(t *testing.T) {
	reps, _ := feed(t, Options{}, dumpLines(
		"[   10.000004] [    800]     0   800    40965    29598      256    29342        0   368640        0          -250 systemd-journal",
		"[   10.000005] [    900]  1000   900    73357    14530    12706     1824         0   180224        ...",
	)...)
	if len(reps) != 1 || len(reps[0].Tasks) != 2 {
		t.Fatalf("%+v", reps)
	}
	whole, cut := reps[0].Tasks[0], reps[0].Tasks[1]
	if whole.Comm != "systemd-journal" || !whole.HasAdj || whole.OOMScoreAdj != -250 || whole.RSSPages != 29598 {
		t.Errorf("whole row %+v", whole)
	}
	if cut.PID != 900 || cut.Comm != "python3" || cut.HasAdj || cut.OOMScoreAdj != 0 || cut.RSSPages != 14530 || cut.UID != 1000 {
		t.Errorf("cut row %+v", cut)
	}
	if !cutRow([]byte("…")) || cutRow([]byte("...x")) || cutRow([]byte("python3")) {
		t.Error("cutRow")
	}
}

// TestWrappedDumpRow: rows a paste wrapped (mail) keep their name from the
// next line, and the columns wrapped with it; a row whose next line is
// not its rest is kept without a name; the name stays a name however it
// reads. A name cut again ("stre" / "ss") is the kill line's.
func TestWrappedDumpRow(t *testing.T) {
	reps, _ := feed(t, Options{}, dumpLines(
		"[   10.000004] [    718]     0   718    40965    29598      256    29342        0   368640        0          -250 ",
		"systemd-journal",
		"[   10.000005] [    719]     0   719    40965     1000      256      744        0   368640        0",
		"  -999 Web Content",
		"[   10.000006] [    720]     0   720      617      384        0      384        0    45056        0             0",
		"[   10.000007] [    900]  1000   900    73357    14530    12706     1824         0   180224        0",
		" 200 pyth",
		"on3",
	)...)
	if len(reps) != 1 {
		t.Fatalf("%d reports", len(reps))
	}
	var got []string
	for _, tk := range reps[0].Tasks {
		got = append(got, tk.Comm)
		if tk.RSSPages == 0 {
			t.Errorf("row %d without its rss", tk.PID)
		}
	}
	if want := "systemd-journal|Web Content||python3"; strings.Join(got, "|") != want {
		t.Errorf("names %q, want %q", strings.Join(got, "|"), want)
	}
	if tk := reps[0].Tasks[1]; tk.OOMScoreAdj != -999 || !tk.HasAdj {
		t.Errorf("wrapped columns: %+v", tk)
	}
	if tk := reps[0].Tasks[3]; tk.OOMScoreAdj != 200 {
		t.Errorf("victim's row %+v", tk)
	}
	// The dump's last row, waiting for a name when the summary comes.
	last, _ := feed(t, Options{}, dumpLines(
		"[   10.000004] [    900]  1000   900    73357    14530    12706     1824         0   180224        0           200")...)
	if len(last) != 1 || len(last[0].Tasks) != 1 || last[0].Tasks[0].RSSPages != 14530 || last[0].Tasks[0].Comm != "python3" {
		t.Errorf("a last nameless row: %+v", last[0].Tasks)
	}
}
