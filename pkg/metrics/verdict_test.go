package metrics

import (
	"fmt"
	"testing"
	"time"

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

// Label values an agent chooses are bounded; past the bound they are
// "other", and words outside the kernel's are too.
func TestAggregatorLabelsBounded(t *testing.T) {
	m := NewAggregator(func() float64 { return 0 }, func() float64 { return 0 })
	for i := range MaxNamespaceValues + 50 {
		ev := &pb.Event{Node: "n", Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "bogus-kind", LimitScope: "pod",
			Victims: []*pb.Process{{Workload: &pb.Workload{Namespace: fmt.Sprintf("ns-%d", i), Qos: "burstable"}}}}}}
		m.Stored(ev, "oom", time.Now())
	}
	if got := testutil.ToFloat64(m.OOMKills.WithLabelValues("n", OtherLabel, "pod", OtherLabel, "burstable")); got != 50 {
		t.Fatalf("%v kills under the other namespace, want 50", got)
	}
	if n := testutil.CollectAndCount(m.OOMKills); n != MaxNamespaceValues+1 {
		t.Fatalf("%d series, want %d", n, MaxNamespaceValues+1)
	}
	// A negative loss never reaches a counter's Add (it would panic).
	m.Stored(&pb.Event{Node: "n", Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: -5}}}, "loss", time.Now())
}
