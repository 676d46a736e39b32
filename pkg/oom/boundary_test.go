package oom

import (
	"testing"
)

// TestUserspaceSyslogLineStartsNoReport: a userspace syslog line (tag
// app[1]) that quotes an oom-kill: summary, behind a list bullet or without
// a host name, starts no report.
func TestUserspaceSyslogLineStartsNoReport(t *testing.T) {
	reps, _ := feed(t, Options{},
		"- Jan 14 18:01:55 host app[1]: kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/x,task=victim,pid=4242,uid=0",
		"Jan 14 18:01:56 app[1]: note kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/y,task=victim2,pid=4343,uid=0",
	)
	for _, r := range reps {
		t.Errorf("userspace line reported as a kill of %+v", r.Victim())
	}
}

// TestReaperOfPreviousReportNotAttached: report A (4.6-4.18 kernel, no
// summary) kills 100; report B starts before the oom_reaper reaps A's
// victim, so A's reaper line falls inside B, whose own kill line is missing
// (its chosen process had no memory left, or the log was cut). The kill of
// 100 is reported once, not again as B's.
func TestReaperOfPreviousReportNotAttached(t *testing.T) {
	reps, _ := feed(t, Options{},
		"[ 10.000000] a invoked oom-killer: gfp_mask=0x14200ca(GFP_HIGHUSER_MOVABLE), nodemask=(null), order=0, oom_score_adj=0",
		"[ 10.000001] CPU: 1 PID: 100 Comm: a Not tainted 4.14.0 #1",
		"[ 10.000002] [ pid ]   uid  tgid total_vm      rss nr_ptes nr_pmds swapents oom_score_adj name",
		"[ 10.000003] [  100]     0   100   100000    90000     200       3        0             0 a",
		"[ 10.000004] [  200]     0   200    90000    80000     200       3        0             0 b",
		"[ 10.000005] Out of memory: Kill process 100 (a) score 900 or sacrifice child",
		"[ 10.000006] Killed process 100 (a) total-vm:400000kB, anon-rss:360000kB, file-rss:0kB, shmem-rss:0kB",
		"[ 10.100000] b invoked oom-killer: gfp_mask=0x14200ca(GFP_HIGHUSER_MOVABLE), nodemask=(null), order=0, oom_score_adj=0",
		"[ 10.100001] CPU: 2 PID: 200 Comm: b Not tainted 4.14.0 #1",
		"[ 10.150000] oom_reaper: reaped process 100 (a), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB",
		"[ 10.200002] [ pid ]   uid  tgid total_vm      rss nr_ptes nr_pmds swapents oom_score_adj name",
		"[ 10.200004] [  200]     0   200    90000    80000     200       3        0             0 b",
		"[ 10.200005] Out of memory: Kill process 200 (b) score 800 or sacrifice child",
	)
	if len(reps) == 0 {
		t.Fatal("no reports")
	}
	n100 := 0
	for i, r := range reps {
		for _, v := range r.Victims {
			t.Logf("report %d: victim pid %d (%s) selected=%v", i, v.PID, v.Comm, v.Selected)
			if v.PID == 100 {
				n100++
			}
		}
	}
	if n100 != 1 {
		t.Errorf("the kill of 100 reported %d times, want once (report B's reaper line is report A's)", n100)
	}
}

// TestSecondSelectionWithKillLine: on 2.6.32-3.5 kernels oom_kill_process
// returned non-zero when the chosen task (or child) had no memory left, and
// out_of_memory retried at once: with the header rate-limited, two
// selection lines follow each other and only the second has a kill line.
// That is one kill, of 200, not also a selection-only kill of 100.
func TestSecondSelectionWithKillLine(t *testing.T) {
	reps, _ := feed(t, Options{},
		"[ 10.000005] Out of memory: Kill process 100 (a) score 900 or sacrifice child",
		"[ 10.000006] Out of memory: Kill process 200 (b) score 800 or sacrifice child",
		"[ 10.000007] Killed process 200 (b) total-vm:400000kB, anon-rss:360000kB, file-rss:0kB",
	)
	for i, r := range reps {
		for _, v := range r.Victims {
			t.Logf("report %d: victim pid %d selected=%v", i, v.PID, v.Selected)
		}
	}
	if len(reps) != 1 || reps[0].Victim().PID != 200 {
		t.Errorf("got %d reports, want the one kill of 200", len(reps))
	}
}

// TestIndentedKmsgPaste: a raw /dev/kmsg dump pasted indented is read
// record by record; its indented records are not taken for the dictionary
// lines that follow a record.
func TestIndentedKmsgPaste(t *testing.T) {
	var in []string
	for _, l := range nodeReport(100, 5000000, 5, 1003) {
		in = append(in, "    "+l)
	}
	reps, a := feed(t, Options{}, in...)
	if len(reps) != 1 || reps[0].Victim().PID != 1003 {
		t.Fatalf("got %d reports (stats %+v), want the kill of 1003", len(reps), a.Stats())
	}
}

// TestRedHatSummaryBeforeSelection: Red Hat's 3.10 kernels print the
// backported oom-kill: summary, then the selection line, then the kill of
// a sacrificed child: one report, one kill (the child's), not a kill of the
// chosen process too.
func TestRedHatSummaryBeforeSelection(t *testing.T) {
	reps, _ := feed(t, Options{},
		"[  100.000001] runc:[2:INIT] invoked oom-killer: gfp_mask=0xd0, order=0, oom_score_adj=997",
		"[  100.000002] CPU: 3 PID: 12788 Comm: runc:[2:INIT] Kdump: loaded Tainted: G  ------------ T 3.10.0-1160.el7.x86_64 #1",
		"[  100.000004] memory: usage 3145728kB, limit 3145728kB, failcnt 10",
		"[  100.000008] oom-kill:,cpuset=bbd5e4b5,oom_memcg=/kubepods/burstable/pod6c43,task_memcg=/kubepods/burstable/pod6c43/bbd5,task=runc:[2:INIT],pid=12800,uid=0",
		"[  100.000009] Memory cgroup out of memory: Kill process 12800 (runc:[2:INIT]) score 997 or sacrifice child",
		"[  100.000010] Killed process 12788 (runc:[2:INIT]) total-vm:40000kB, anon-rss:4600kB, file-rss:0kB, shmem-rss:0kB",
	)
	if len(reps) != 1 || len(reps[0].Victims) != 1 || reps[0].Victim().PID != 12788 || reps[0].Summary == nil ||
		reps[0].SelectedPID != 12800 || reps[0].Trigger == nil || reps[0].Trigger.PID != 12788 {
		t.Fatalf("got %d reports: %+v", len(reps), reps)
	}
}
