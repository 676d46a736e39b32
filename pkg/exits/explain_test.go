package exits

import "testing"

// Evidence is printed one line per kernel line: a control byte an agent
// (or a corrupted log) put in a line is escaped, never a second line.
func TestEvidenceEscapesControlBytes(t *testing.T) {
	got := Evidence([]string{"Memory cgroup out of memory: Killed process 9 (a)\nforged: line", "unrelated"})
	if len(got) != 1 || got[0] != `Memory cgroup out of memory: Killed process 9 (a)\x0aforged: line` {
		t.Fatalf("Evidence = %q", got)
	}
	if got := Evidence([]string{"x\ry"}); len(got) != 1 || got[0] != `x\x0dy` {
		t.Fatalf("Evidence of irrelevant lines = %q", got)
	}
}
