package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func kill(collateral bool) *pb.Event {
	return &pb.Event{Node: "n1", Time: timestamppb.New(time.Now().Add(-time.Second)), Payload: &pb.Event_Oom{Oom: &pb.OOMKill{
		Kind: "node", Collateral: collateral,
		Victims: []*pb.Process{{Workload: &pb.Workload{Namespace: "shop", Qos: "besteffort"}}}}}}
}

func TestAgentMetrics(t *testing.T) {
	m := NewAgent(func() float64 { return 3 }, func() float64 { return 2 }, func() float64 { return 1 })
	m.Observe(kill(true))
	m.Observe(kill(false))
	m.Observe(&pb.Event{Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 49}}})
	m.RecordsRead.Add(10)
	if v := testutil.ToFloat64(m.OOMKills.WithLabelValues("node", "", "shop", "besteffort")); v != 2 {
		t.Fatalf("kills %v", v)
	}
	if v := testutil.ToFloat64(m.CollateralKills.WithLabelValues("shop")); v != 1 {
		t.Fatalf("collateral %v", v)
	}
	if v := testutil.ToFloat64(m.RecordsLost); v != 49 {
		t.Fatalf("lost %v", v)
	}
	bare := kill(false)
	bare.GetOom().AttributedBy = "oom-kill-counter"
	bare.GetOom().Victims[0].Workload.Namespace = "batch"
	m.Observe(bare)
	if v := testutil.ToFloat64(m.Attributions.WithLabelValues("oom-kill-counter")); v != 1 {
		t.Fatalf("attributions by counter %v", v)
	}
	// Served over HTTP with the spool depth and sender counters.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeListener(ctx, ln, m.Registry, nil, logrus.NewEntry(logrus.New()))
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`oomwatch_oom_kills_total{kind="node",namespace="shop",qos="besteffort",scope=""} 2`,
		"oomwatch_spool_events 3", "oomwatch_send_errors_total 2", "oomwatch_stream_reconnects_total 1",
		"oomwatch_kernel_records_read_total 10",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	resp, err = http.Get("http://" + ln.Addr().String() + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz %v %v", resp, err)
	}
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
