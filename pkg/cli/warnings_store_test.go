package cli

import (
	"strings"
	"testing"
	"time"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestWarningsStore runs oomctl warnings against the real aggregator and
// store: open now (not resolved, refreshed within three refresh periods),
// --all, --kind; newest opened first.
func TestWarningsStore(t *testing.T) {
	now := time.Now()
	evs := warnings(now)
	// Resolved half an hour ago, and open but last refreshed two hours ago
	// (its agent went away): neither is open now.
	evs = append(evs,
		warnEvent(14, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, pb.WarningState_WARNING_STATE_RESOLVED, 5, apiWorkload(),
			&pb.WarningFigures{WorkingSetBytes: 40 * mib, LimitBytes: 64 * mib, Ratio: 0.62}, now.Add(-time.Hour)),
		warnEvent(15, pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM, pb.WarningState_WARNING_STATE_OPEN, 0, apiWorkload(),
			&pb.WarningFigures{WorkingSetBytes: 63 * mib, LimitBytes: 64 * mib, Ratio: 0.98, MaxEventsDelta: 40}, now.Add(-2*time.Hour)),
	)
	// The forecast's earlier revision, stored first, is replaced by its
	// revision 3.
	older := warnings(now)[0]
	older.Revision = 1
	addr := startAggregator(t, append([]*pb.Event{older}, evs...))
	rows := func(args ...string) []string {
		t.Helper()
		out, errOut, code := run(t, "", append([]string{"warnings", "--server", addr, "--insecure"}, args...)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut)
		}
		t.Logf("%v:\n%s", args, out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		var kinds []string
		for _, l := range lines[1:] {
			kinds = append(kinds, strings.Fields(l)[0])
		}
		return kinds
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "near-limit pressure forecast"},
		{[]string{"--all"}, "near-limit pressure forecast near-limit limit-reclaim"},
		{[]string{"--kind", "forecast"}, "forecast"},
		{[]string{"--kind", "limit-reclaim,near-limit", "--all"}, "near-limit near-limit limit-reclaim"},
		{[]string{"-n", "shop"}, "near-limit forecast"},
	} {
		if got := strings.Join(rows(tc.args...), " "); got != tc.want {
			t.Errorf("oomctl warnings %v: %s, want %s", tc.args, got, tc.want)
		}
	}
	// --all says which are over: the one resolved, and the one its agent
	// stopped refreshing.
	out, _, _ := run(t, "", "warnings", "--server", addr, "--insecure", "--all", "--kind", "limit-reclaim,near-limit")
	for _, want := range []string{"stale", "resolved"} {
		if !strings.Contains(out, want) {
			t.Errorf("--all: no %q state:\n%s", want, out)
		}
	}
	out, _, _ = run(t, "", "warnings", "--server", addr, "--insecure", "--kind", "forecast", "-o", "json")
	if !strings.Contains(out, `"revision":"3"`) {
		t.Errorf("the forecast's latest revision not shown:\n%s", out)
	}
	_, errOut, code := run(t, "", "warnings", "--server", addr, "--insecure", "--kind", "node-low")
	if code != 0 || !strings.Contains(errOut, "no open warnings") {
		t.Errorf("--kind node-low: exit %d, %s", code, errOut)
	}
}
