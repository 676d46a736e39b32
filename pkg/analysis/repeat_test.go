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
