package hugepage

import (
	"os"
	"strings"
	"testing"
)

// TestDisabled: importing the package turned huge pages off, and the
// kernel says so in /proc/self/status as well.
func TestDisabled(t *testing.T) {
	if Err != nil {
		t.Skipf("PR_SET_THP_DISABLE: %v", Err)
	}
	off, err := Disabled()
	if err != nil || !off {
		t.Fatalf("Disabled() = %v, %v; want true", off, err)
	}
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skip(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "THP_enabled:"); ok && strings.TrimSpace(v) != "0" {
			t.Errorf("/proc/self/status THP_enabled: %s, want 0", strings.TrimSpace(v))
		}
	}
}
