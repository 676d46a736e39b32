package oom

import (
	"fmt"
	"testing"
)

func TestIsElision(t *testing.T) {
	for _, s := range []string{"...", " ... ", "..", "…", ". . .", "[...]", "[…]", "(...)", "<...>", "<snip>", "[snip]",
		"--snip--", "-- snip --", "✂ snip ✂", "[ cut ]", "(omitted)", "... 9,998 more rows ...", "…lines removed…", "====...===="} {
		if !isElision([]byte(s)) {
			t.Errorf("%q: not an elision", s)
		}
	}
	for _, s := range []string{"", ".", "-", "[ 1234]", "Call Trace:", " </TASK>", "...and more", "cut", "snippet",
		"... dump_stack_lvl+0x44/0x5c", "Tasks state (memory values in pages):", "(null)", "[  pid  ]"} {
		if isElision([]byte(s)) {
			t.Errorf("%q: an elision", s)
		}
	}
}

// elidedReport renders a dmesg report of three task rows with extra
// lines at the places given: "trace" (in the call trace), "dump" (among
// the rows) and "tail" (after the kill line).
func elidedReport(at map[string]string) []string {
	l := []string{
		"[ 50.100000] stress invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0",
		"[ 50.100001] CPU: 1 PID: 700 Comm: stress Not tainted 6.1.0-41-amd64 #1 Debian 6.1.158-1",
		"[ 50.100002] Call Trace:",
	}
	if s, ok := at["trace"]; ok {
		l = append(l, s)
	}
	l = append(l, "[ 50.100003]  out_of_memory+0xed/0x2e0",
		"[ 50.100004] Tasks state (memory values in pages):",
		"[ 50.100005] [  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
		"[ 50.100006] [    500]     0   500     9000     8000    90000        0             0 postgres")
	if s, ok := at["dump"]; ok {
		l = append(l, s)
	}
	l = append(l,
		"[ 50.100007] [    700]     0   700    30000    20000    90000        0             0 stress",
		"[ 50.100008] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=stress,pid=700,uid=0",
		"[ 50.100009] Out of memory: Killed process 700 (stress) total-vm:120000kB, anon-rss:80000kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:88kB oom_score_adj:0")
	if s, ok := at["tail"]; ok {
		l = append(l, s)
	}
	return l
}

// TestDumpCutAtElision: an elision among the task dump's rows says rows
// were left out; one elsewhere in the report, or none, does not.
func TestDumpCutAtElision(t *testing.T) {
	for _, tc := range []struct {
		at   map[string]string
		want bool
	}{
		{nil, false},
		{map[string]string{"dump": "..."}, true},
		{map[string]string{"dump": "[ 50.100006] ..."}, true},
		{map[string]string{"dump": "    [...]"}, true},
		{map[string]string{"dump": "<snip>"}, true},
		{map[string]string{"dump": "[ 50.100006] [    501]     0   501     9000     7000    90000        0             0 postgres"}, false},
		{map[string]string{"trace": "..."}, false},
		{map[string]string{"tail": "..."}, false},
		// Userspace wrote it to /dev/kmsg: not the kernel's, and not a paste.
		{map[string]string{"dump": "14,9,50100006,-;..."}, false},
	} {
		t.Run(fmt.Sprint(tc.at), func(t *testing.T) {
			reps, _ := feed(t, Options{}, elidedReport(tc.at)...)
			if len(reps) != 1 {
				t.Fatalf("%d reports", len(reps))
			}
			if r := reps[0]; r.DumpCut != tc.want || len(r.Victims) != 1 || r.Victims[0].PID != 700 {
				t.Errorf("DumpCut %v, victims %+v", r.DumpCut, r.Victims)
			}
		})
	}
}

// TestSharedFromDumpAndKillLine: a 6.x dump's rss_file and rss_shmem,
// and a kill line's file-rss and shmem-rss, are the task's shared part,
// in bytes; a dump without the split leaves it unknown.
func TestSharedFromDumpAndKillLine(t *testing.T) {
	lines := []string{
		"[ 50.100000] hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
		"[ 50.100001] [  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name",
		"[ 50.100002] [    655]     0   655      565      331        0        0       331    36864        0          1000 sleep",
		"[ 50.100003] [   2309]     0  2309   345481    40144    39722        0       422   401408        0             2 hog",
		"[ 50.100004] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/k,task_memcg=/k/a,task=sleep,pid=655,uid=0",
		"[ 50.100005] Memory cgroup out of memory: Killed process 655 (sleep) total-vm:2260kB, anon-rss:0kB, file-rss:0kB, shmem-rss:1324kB, UID:0 pgtables:40kB oom_score_adj:1000",
	}
	reps, _ := feed(t, Options{}, lines...)
	if len(reps) != 1 {
		t.Fatalf("%d reports", len(reps))
	}
	r := reps[0]
	if r.PageSize != 4096 || len(r.Tasks) != 2 {
		t.Fatalf("page size %d, %d tasks", r.PageSize, len(r.Tasks))
	}
	if s := r.Tasks[0]; !s.HasShared || s.SharedBytes != 331*4096 || s.RSSBytes != 331*4096 {
		t.Errorf("sleep row %+v", s)
	}
	if h := r.Tasks[1]; !h.HasShared || h.SharedBytes != 422*4096 {
		t.Errorf("hog row %+v", h)
	}
	if v := r.Victims[0]; !v.HasShared || v.SharedBytes != 1324<<10 {
		t.Errorf("victim %+v", v.Task)
	}
	old, _ := feed(t, Options{}, nodeReport(1, 1000, 3, 1001)...)
	if len(old) != 1 || old[0].Tasks[0].HasShared {
		t.Errorf("a dump without rss_anon: %+v", old[0].Tasks)
	}
}

// TestBareKillLineWrappedAfterComma: a paste of bare messages (no
// timestamps) that wrapped a kill line after a comma keeps its sizes; a
// bare kill line followed by anything else is read alone.
func TestBareKillLineWrappedAfterComma(t *testing.T) {
	for _, tc := range []struct {
		rest    string
		wantRSS int64
	}{
		{"anon-rss:787536152kB, file-rss:64kB, shmem-rss:0kB, UID:0", (787536152 + 64) << 10},
		{"  anon-rss:116204928kB, file-rss:18432kB, shmem-rss:0kB, pgtables:17728kB", (116204928 + 18432) << 10},
		{"oom_reaper: reaped process 835214 (mytask), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", 0},
	} {
		reps, _ := feed(t, Options{},
			"mytask invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
			"Out of memory: Killed process 835214 (mytask) total-vm:787716604kB,",
			tc.rest)
		if len(reps) != 1 || len(reps[0].Victims) != 1 {
			t.Fatalf("%q: %d reports", tc.rest, len(reps))
		}
		v := reps[0].Victims[0]
		if v.PID != 835214 || v.RSSBytes != tc.wantRSS || v.HasRSS != (tc.wantRSS > 0) {
			t.Errorf("%q: victim %+v", tc.rest, v)
		}
	}
}

// TestProcRefWithoutSpace: "Killed process 25507(oom01)", as a patched
// kernel printed it, names the process as "25507 (oom01)" does.
func TestProcRefWithoutSpace(t *testing.T) {
	v, ok := parseKilled("Out of memory: Killed process 25507(oom01) total-vm:6324780kB, anon-rss:5647168kB, file-rss:0kB, shmem-rss:0kB,UID:0 pgtables:11395072kB oom_score_adj:0")
	if !ok || v.PID != 25507 || v.Comm != "oom01" || v.AnonKB != 5647168 {
		t.Fatalf("%+v, %v", v, ok)
	}
	for _, bad := range []string{"Out of memory: Killed process (x) total-vm:1kB", "Out of memory: Killed process 12x (x) total-vm:1kB", "Out of memory: Killed process 0(x) total-vm:1kB"} {
		if _, ok := parseKilled(bad); ok {
			t.Errorf("%q read", bad)
		}
	}
}
