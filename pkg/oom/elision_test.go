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
