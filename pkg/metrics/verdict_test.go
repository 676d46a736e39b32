package metrics

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

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
