package webui

import (
	"testing"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestChartPerKind: the pods compete under the node's memory and under
// kubepods' node-allocatable limit, a pod's containers under its limit; a
// container alone under its own limit, or another cgroup's, has no chart.
func TestChartPerKind(t *testing.T) {
	rss := int64(64 << 20)
	victim := &pb.Process{Pid: 7, Comm: "hog", RssBytes: &rss, Workload: &pb.Workload{PodUid: "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9", ContainerId: "c1"}}
	for _, tc := range []struct {
		kind, scope, per string
	}{
		{analysis.KindNode, "", "pod"},
		{analysis.KindLimit, analysis.ScopeAllocatable, "pod"},
		{analysis.KindLimit, analysis.ScopePod, "container"},
		{analysis.KindLimit, analysis.ScopeContainer, ""},
		{analysis.KindLimit, analysis.ScopeOther, ""},
	} {
		k := &pb.OOMKill{OomKind: wire.KindToPB(tc.kind), Scope: wire.ScopeToPB(tc.scope), Victims: []*pb.Process{victim}}
		c := chartOf(k)
		switch {
		case tc.per == "" && c != nil:
			t.Errorf("%s/%s: a chart per %s", tc.kind, tc.scope, c.Per)
		case tc.per != "" && (c == nil || c.Per != tc.per || len(c.Bars) != 1):
			t.Errorf("%s/%s: chart %+v, want one bar per %s", tc.kind, tc.scope, c, tc.per)
		}
	}
}
