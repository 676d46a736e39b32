package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func TestVerdictsCounted(t *testing.T) {
	m := NewAgent(func() float64 { return 0 }, func() float64 { return 0 }, func() float64 { return 0 })
	w := &pb.Workload{Cgroup: "/kubepods/besteffort/pod1/c1"}
	culprit := &pb.Culprit{Workload: &pb.Workload{Cgroup: "/kubepods/burstable/pod2/c2"}}
	kill := func(v pb.CollateralVerdict, old bool) *pb.Event {
		return &pb.Event{Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "node", CollateralVerdict: v, Collateral: old,
			Victims: []*pb.Process{{Workload: w}}, Culprit: culprit}}}
	}
	m.Observe(kill(pb.CollateralVerdict_COLLATERAL_VERDICT_UNKNOWN, false))
	m.Observe(kill(pb.CollateralVerdict_COLLATERAL_VERDICT_UNKNOWN, false))
	m.Observe(kill(pb.CollateralVerdict_COLLATERAL_VERDICT_YES, true))
	// An agent before the verdict field: its bool.
	m.Observe(kill(pb.CollateralVerdict_COLLATERAL_VERDICT_UNSPECIFIED, true))
	m.Observe(kill(pb.CollateralVerdict_COLLATERAL_VERDICT_UNSPECIFIED, false))
	for v, want := range map[string]float64{"yes": 2, "no": 1, "unknown": 2} {
		if got := testutil.ToFloat64(m.Verdicts.WithLabelValues(v)); got != want {
			t.Errorf("verdict %s counted %v, want %v", v, got, want)
		}
	}
}
