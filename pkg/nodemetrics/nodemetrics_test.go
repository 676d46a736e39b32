package nodemetrics

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/promtext"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func kill(collateral bool) *pb.Event {
	return &pb.Event{Node: "n1", Time: timestamppb.New(time.Now().Add(-time.Second)), Payload: &pb.Event_Oom{Oom: &pb.OOMKill{
		Kind: "node", Collateral: collateral,
		Victims: []*pb.Process{{Workload: &pb.Workload{Namespace: "shop", Qos: "besteffort"}}}}}}
}

func zero() float64 { return 0 }

// parse reads the registry's exposition as Prometheus does, failing the
// test when it is not valid text format.
func parse(t *testing.T, reg *promtext.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	var b bytes.Buffer
	if _, err := reg.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	fams, err := p.TextToMetricFamilies(&b)
	if err != nil {
		t.Fatalf("the exposition does not parse: %v\n%s", err, b.String())
	}
	return fams
}

// value returns the value of the family's sample with these labels.
func value(t *testing.T, fams map[string]*dto.MetricFamily, name string, labels ...string) float64 {
	t.Helper()
	f, ok := fams[name]
	if !ok {
		t.Fatalf("no family %s", name)
	}
	for _, m := range f.GetMetric() {
		var got []string
		for _, l := range m.GetLabel() {
			got = append(got, l.GetName(), l.GetValue())
		}
		if !slices.Equal(got, labels) {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.GetCounter().GetValue()
		case m.Gauge != nil:
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("%s has no sample %v", name, labels)
	return 0
}

func TestAgentMetrics(t *testing.T) {
	m := NewAgent("/proc", func() float64 { return 3 }, func() float64 { return 2 }, func() float64 { return 1 })
	m.Observe(kill(true))
	m.Observe(kill(false))
	m.Observe(&pb.Event{Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 49}}})
	m.RecordsRead.Add(10)
	bare := kill(false)
	bare.GetOom().AttributedBy = "oom-kill-counter"
	bare.GetOom().Victims[0].Workload.Namespace = "batch"
	m.Observe(bare)
	fams := parse(t, m.Registry)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"oomwatch_oom_kills_total", []string{"kind", "node", "namespace", "shop", "qos", "besteffort", "scope", ""}, 2},
		{"oomwatch_oom_kills_total", []string{"kind", "node", "namespace", "batch", "qos", "besteffort", "scope", ""}, 1},
		{"oomwatch_collateral_kills_total", []string{"namespace", "shop"}, 1},
		{"oomwatch_kernel_records_lost_total", nil, 49},
		{"oomwatch_kill_attributions_total", []string{"by", "oom-kill-counter"}, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Served over HTTP with the spool depth and sender counters.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go ServeListener(ctx, ln, m.Registry, logrus.NewEntry(logrus.New()))
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != promtext.ContentType {
		t.Errorf("content type %q", ct)
	}
	for _, want := range []string{
		`oomwatch_oom_kills_total{kind="node",namespace="shop",qos="besteffort",scope=""} 2`,
		"oomwatch_spool_events 3", "oomwatch_send_errors_total 2", "oomwatch_stream_reconnects_total 1",
		"oomwatch_kernel_records_read_total 10", `promhttp_metric_handler_errors_total{cause="encoding"} 0`,
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err = http.Get("http://" + ln.Addr().String() + path)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("%s %v %v", path, resp, err)
		}
		resp.Body.Close()
	}
}

func TestVerdictsCounted(t *testing.T) {
	m := NewAgent("/proc", zero, zero, zero)
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
		if got := m.Verdicts.WithLabelValues(v).Value(); got != want {
			t.Errorf("verdict %s counted %v, want %v", v, got, want)
		}
	}
}

func TestDurabilityMetrics(t *testing.T) {
	m := NewAgent("/proc", zero, zero, zero)
	d := Durability{SpoolWritable: false, SpoolWriteErrors: 7, AckWriteErrors: 3, CheckpointWriteErrors: 2,
		MemoryQueueEvents: 5, MemoryQueued: 40, MemoryDropped: 1}
	m.RegisterDurability(func() Durability { return d })
	fams := parse(t, m.Registry)
	for _, c := range []struct {
		name   string
		labels []string
		want   float64
	}{
		{"oomwatch_spool_writable", nil, 0},
		{"oomwatch_spool_write_errors_total", []string{"op", "ack"}, 3},
		{"oomwatch_spool_write_errors_total", []string{"op", "event"}, 7},
		{"oomwatch_checkpoint_write_errors_total", nil, 2},
		{"oomwatch_memory_queue_events", nil, 5},
		{"oomwatch_memory_queue_events_total", nil, 40},
		{"oomwatch_memory_queue_dropped_events_total", nil, 1},
	} {
		if got := value(t, fams, c.name, c.labels...); got != c.want {
			t.Errorf("%s%v = %v, want %v", c.name, c.labels, got, c.want)
		}
	}
	// Read at each scrape.
	d.SpoolWritable = true
	if got := value(t, parse(t, m.Registry), "oomwatch_spool_writable"); got != 1 {
		t.Errorf("spool writable %v after it became writable", got)
	}
}

func TestSamplingMetrics(t *testing.T) {
	m := NewAgent("/proc", zero, zero, zero)
	s := m.RegisterSampling()
	s.Round(3*time.Millisecond, 300, 2, map[string]int{"near-limit": 2, "forecast": 1, "bogus": 7})
	s.Round(time.Millisecond, 298, 0, map[string]int{"forecast": 1})
	fams := parse(t, m.Registry)
	if v := value(t, fams, "oomwatch_sample_rounds_total"); v != 2 {
		t.Errorf("rounds %v", v)
	}
	if v := value(t, fams, "oomwatch_sampled_cgroups"); v != 298 {
		t.Errorf("cgroups %v, want the last round's", v)
	}
	if v := value(t, fams, "oomwatch_sample_errors_total"); v != 2 {
		t.Errorf("errors %v", v)
	}
	if v := value(t, fams, "oomwatch_warnings_open", "kind", "near-limit"); v != 0 {
		t.Errorf("near-limit open %v after it closed", v)
	}
	if v := value(t, fams, "oomwatch_warnings_open", "kind", "forecast"); v != 1 {
		t.Errorf("forecast open %v", v)
	}
	// Only the engine's kinds are labels: the gauge stays bounded.
	if n := len(fams["oomwatch_warnings_open"].GetMetric()); n != len(WarningKinds) {
		t.Errorf("%d open-warning series, want %d", n, len(WarningKinds))
	}
	h := fams["oomwatch_sample_round_duration_seconds"].GetMetric()
	if len(h) != 1 || h[0].GetHistogram().GetSampleCount() != 2 || h[0].GetHistogram().GetSampleSum() != 0.004 {
		t.Errorf("round duration %v", h)
	}
	// 1 ms falls in le=0.001 (bounds are inclusive), 3 ms in le=0.005.
	for _, b := range h[0].GetHistogram().GetBucket() {
		want := map[float64]uint64{0.0005: 0, 0.001: 1, 0.0025: 1, 0.005: 2, 2.5: 2}
		if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
			t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
		}
	}
}

// TestSameAsClientGolang compares the agent's exposition with
// testdata/client_golang.txt, written by the agent's metrics when they used
// client_golang (v1.25) from the same events: the oomwatch_* families must
// read the same, line for line; the go_* and process_* families must have
// the same names, help, types and label names (their values are the
// running process's).
func TestSameAsClientGolang(t *testing.T) {
	m := NewAgent("/proc", func() float64 { return 3 }, func() float64 { return 2 }, func() float64 { return 1 })
	m.RegisterDurability(func() Durability {
		return Durability{SpoolWritable: true, SpoolWriteErrors: 7, AckWriteErrors: 3, CheckpointWriteErrors: 2,
			MemoryQueueEvents: 5, MemoryQueued: 40, MemoryDropped: 1}
	})
	s := m.RegisterSampling()
	s.Round(3*time.Millisecond, 300, 2, map[string]int{"near-limit": 2, "forecast": 1})
	m.Observe(kill(true))
	m.Observe(kill(false))
	bare := kill(false)
	bare.GetOom().AttributedBy = "oom-kill-counter"
	bare.GetOom().Victims[0].Workload.Namespace = "batch"
	m.Observe(bare)
	m.Observe(&pb.Event{Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 49}}})
	m.Observe(&pb.Event{Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "spool-full", Lost: 4}}})
	m.RecordsRead.Add(10)
	m.RecordsForged.Inc()

	var got bytes.Buffer
	if _, err := m.Registry.WriteTo(&got); err != nil {
		t.Fatal(err)
	}
	want, err := os.ReadFile("testdata/client_golang.txt")
	if err != nil {
		t.Fatal(err)
	}
	ours := func(b []byte) string {
		var out []string
		for _, l := range strings.Split(string(b), "\n") {
			if strings.Contains(l, "oomwatch_") {
				out = append(out, l)
			}
		}
		return strings.Join(out, "\n")
	}
	if g, w := ours(got.Bytes()), ours(want); g != w {
		t.Errorf("oomwatch_* families differ\ngot:\n%s\nwant:\n%s", g, w)
	}
	p := expfmt.NewTextParser(model.LegacyValidation)
	gotFams, err := p.TextToMetricFamilies(bytes.NewReader(got.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	p = expfmt.NewTextParser(model.LegacyValidation)
	wantFams, err := p.TextToMetricFamilies(bytes.NewReader(want))
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range wantFams {
		g, ok := gotFams[name]
		if !ok {
			t.Errorf("no %s", name)
			continue
		}
		if g.GetHelp() != w.GetHelp() || g.GetType() != w.GetType() {
			t.Errorf("%s: help %q type %v, want %q %v", name, g.GetHelp(), g.GetType(), w.GetHelp(), w.GetType())
		}
		if labelNames(g) != labelNames(w) {
			t.Errorf("%s: labels %s, want %s", name, labelNames(g), labelNames(w))
		}
	}
	for name := range gotFams {
		if _, ok := wantFams[name]; !ok {
			t.Errorf("%s is new", name)
		}
	}
}

// labelNames lists a family's label names, sample by sample.
func labelNames(f *dto.MetricFamily) string {
	var out []string
	for _, m := range f.GetMetric() {
		var ns []string
		for _, l := range m.GetLabel() {
			ns = append(ns, l.GetName())
		}
		out = append(out, strings.Join(ns, ","))
	}
	slices.Sort(out)
	return strings.Join(slices.Compact(out), " ")
}
