package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func kill(collateral bool) *pb.Event {
	return &pb.Event{Node: "n1", Time: timestamppb.New(time.Now().Add(-time.Second)), Payload: &pb.Event_Oom{Oom: &pb.OOMKill{
		Kind: "node", Collateral: collateral,
		Victims: []*pb.Process{{Workload: &pb.Workload{Namespace: "shop", Qos: "besteffort"}}}}}}
}

func TestAggregatorMetrics(t *testing.T) {
	m := NewAggregator(func() float64 { return 0 }, func() float64 { return 0 })
	m.Stored(kill(true), "oom", time.Now())
	if v := testutil.ToFloat64(m.Ingested.WithLabelValues("n1", "oom")); v != 1 {
		t.Fatalf("ingested %v", v)
	}
	if n := testutil.CollectAndCount(m.IngestLatency); n != 1 {
		t.Fatalf("latency series %d", n)
	}
}
