package analysis

import (
	"fmt"
	"strings"
	"testing"
)

// repeatReport renders a node report of one kill at uptime at.
func repeatReport(prefix string, at float64, pid int, comm string) []string {
	l := []string{
		"%s[%12.6f] %s invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=0",
		"%s[%12.6f] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/user.slice,task=%[3]s,pid=%[4]d,uid=1000",
		"%s[%12.6f] Out of memory: Killed process %[4]d (%[3]s) total-vm:9476316kB, anon-rss:6845824kB, file-rss:444kB, shmem-rss:0kB, UID:1000 pgtables:13460kB oom_score_adj:0",
	}
	for i := range l {
		l[i] = fmt.Sprintf(l[i], prefix, at+float64(i)/1e6, comm, pid)
	}
	return l
}

// TestRepeatedReportSkipped: a report quoted again later in the same log
// (a reply quoting it, a log pasted twice) is one kill; kills that differ
// in time, PID or name are not copies.
func TestRepeatedReportSkipped(t *testing.T) {
	var lines []string
	lines = append(lines, repeatReport("", 100, 4242, "grep")...)
	lines = append(lines, repeatReport("", 200, 4343, "java")...)
	lines = append(lines, "", "A reply quoting the first:", "")
	lines = append(lines, repeatReport("> ", 100, 4242, "grep")...)
	lines = append(lines, repeatReport("", 100.5, 4242, "grep")...) // same PID, another time
	lines = append(lines, repeatReport("", 300, 4242, "gr3p")...)   // another name
	var evs []Event
	st, err := ReadLog(strings.NewReader(strings.Join(lines, "\n")), StreamOptions{}, func(e Event) { evs = append(evs, e) })
	if err != nil {
		t.Fatal(err)
	}
	if st.Repeats != 1 || len(evs) != 4 {
		t.Fatalf("repeats %d, %d events: %+v", st.Repeats, len(evs), evs)
	}
	// A log of one kill repeated 1,000 times is one kill.
	lines = lines[:0]
	for range 1000 {
		lines = append(lines, repeatReport("", 100, 4242, "grep")...)
	}
	evs = evs[:0]
	if st, err = ReadLog(strings.NewReader(strings.Join(lines, "\n")), StreamOptions{}, func(e Event) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	if st.Repeats != 999 || len(evs) != 1 {
		t.Fatalf("repeats %d, %d events", st.Repeats, len(evs))
	}
}

// TestUnreapedVictimStillHolds: a victim the oom_reaper could not empty
// (its mlocked memory: "now anon-rss" as large as before) still held it
// when the next kill came, and is that kill's culprit; one the reaper
// emptied held nothing then.
func TestUnreapedVictimStillHolds(t *testing.T) {
	read := func(left string) Event {
		t.Helper()
		lines := []string{
			"[  100.000000] oom01 invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0",
			"[  100.000001] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0-1,global_oom,task_memcg=/user.slice,task=oom01,pid=25507,uid=0",
			"[  100.000002] Out of memory: Killed process 25507 (oom01) total-vm:6324780kB, anon-rss:5647168kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:11395072kB oom_score_adj:0",
			"[  100.000003] oom_reaper: reaped process 25507 (oom01), now anon-rss:" + left + "kB, file-rss:0kB, shmem-rss:0kB",
			"[  102.000000] irqbalance invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0",
			"[  102.000001] oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0-1,global_oom,task_memcg=/system.slice/tuned.service,task=tuned,pid=2629,uid=0",
			"[  102.000002] Out of memory: Killed process 2629 (tuned) total-vm:424936kB, anon-rss:328kB, file-rss:1268kB, shmem-rss:0kB, UID:0 pgtables:442368kB oom_score_adj:0",
		}
		evs := readLines(t, lines)
		if len(evs) != 2 {
			t.Fatalf("%d events", len(evs))
		}
		return evs[1]
	}
	if ev := read("5647452"); ev.CollateralVerdict != CollateralYes || ev.Culprit == nil || ev.Culprit.PID != 25507 {
		t.Errorf("unreaped: %s, culprit %+v: %s", ev.CollateralVerdict, ev.Culprit, ev.Reason)
	}
	if ev := read("0"); ev.CollateralVerdict == CollateralYes || ev.Culprit != nil && ev.Culprit.PID == 25507 {
		t.Errorf("reaped: %s, culprit %+v: %s", ev.CollateralVerdict, ev.Culprit, ev.Reason)
	}
}

// readLines reads a log of lines with ReadLog and returns its events.
func readLines(t testing.TB, lines []string) []Event {
	t.Helper()
	var evs []Event
	if _, err := ReadLog(strings.NewReader(strings.Join(lines, "\n")), StreamOptions{}, func(e Event) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	return evs
}
