package analysis

import (
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
