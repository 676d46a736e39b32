package bench

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func TestPodKills(t *testing.T) {
	tmpl, err := killTemplate("..")
	if err != nil {
		t.Fatal(err)
	}
	if n := proto.Size(killEvent("node-0001", 1, time.Now(), tmpl)); n < 4000 {
		t.Errorf("the real kill is %d bytes; want a whole report (> 4000)", n)
	}
	c := Cluster{Nodes: 10, Namespaces: 5, Pods: 50}
	pk := newPodKills(tmpl, c)
	a, nsA := pk.kill(7)
	b, nsB := pk.kill(8)
	if nsA != "ns-2" || nsB != "ns-3" {
		t.Errorf("namespaces %q, %q; want ns-2, ns-3", nsA, nsB)
	}
	oldUID := tmpl.GetVictims()[0].GetWorkload().GetPodUid()
	for _, k := range []*pb.OOMKill{a, b} {
		for _, w := range []*pb.Workload{k.GetVictims()[0].GetWorkload(), k.GetTrigger().GetWorkload(), k.GetCulprit().GetWorkload()} {
			if w.GetNamespace() == "" || w.GetPodName() == "" || w.GetContainerName() != "main" {
				t.Errorf("workload without names: %v", w)
			}
			if w.GetPodUid() == oldUID || !strings.Contains(w.GetCgroup(), strings.ReplaceAll(w.GetPodUid(), "-", "_")) {
				t.Errorf("pod UID %q not moved into the cgroup %q", w.GetPodUid(), w.GetCgroup())
			}
		}
		for _, l := range k.GetLines() {
			if strings.Contains(l, strings.ReplaceAll(oldUID, "-", "_")) {
				t.Errorf("kernel line still names the template's pod: %s", l)
			}
		}
	}
	if a.GetVictims()[0].GetWorkload().GetPodUid() == b.GetVictims()[0].GetWorkload().GetPodUid() {
		t.Error("two pods share a UID")
	}
	if tmpl.GetVictims()[0].GetWorkload().GetNamespace() != "" {
		t.Error("the template was changed")
	}
}

func TestGenQueue(t *testing.T) {
	var acked atomic.Int64
	tmpl, err := killTemplate("..")
	if err != nil {
		t.Fatal(err)
	}
	q := &genQueue{node: "node-0001", kills: []*pb.OOMKill{tmpl}, acked: &acked}
	first := q.Next(3)
	if len(first) != 3 || first[0].GetSeq() != 1 || first[2].GetSeq() != 3 {
		t.Fatalf("Next(3) = %d events from seq %d", len(first), first[0].GetSeq())
	}
	if err := q.Ack(benchBoot, "oom", 2); err != nil {
		t.Fatal(err)
	}
	if err := q.Ack(benchBoot, "oom", 2); err != nil { // a duplicate acknowledgement counts once
		t.Fatal(err)
	}
	q.Rewind()
	again := q.Next(4)
	var seqs []int64
	for _, e := range again {
		seqs = append(seqs, e.GetSeq())
	}
	if want := []int64{1, 3, 4, 5}; !slices.Equal(seqs, want) {
		t.Errorf("after Rewind, Next(4) = seqs %v, want %v (unacknowledged first)", seqs, want)
	}
	if acked.Load() != 1 {
		t.Errorf("acked %d, want 1", acked.Load())
	}
}

func TestQueryEvents(t *testing.T) {
	qc := QueryConfig{Events: 2500, Cluster: Cluster{Nodes: 7, Namespaces: 5, Pods: 40}, Span: 24 * time.Hour}
	start := time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC)
	var n int
	var last time.Time
	seen := map[string]bool{}
	err := QueryEvents("..", qc, start, 1000, func(evs []*pb.Event) error {
		if len(evs) > 1000 {
			t.Errorf("batch of %d", len(evs))
		}
		for _, e := range evs {
			n++
			at := e.GetTime().AsTime()
			if at.Before(start.Add(-time.Second)) || at.After(start.Add(qc.Span)) {
				t.Fatalf("event at %v, outside the span", at)
			}
			if at.Before(last.Add(-2 * time.Second)) {
				t.Fatalf("event at %v after one at %v: not in time order", at, last)
			}
			last = at
			id := e.GetNode() + "/" + e.GetBootId() + "/" + strconv.FormatInt(e.GetSeq(), 10)
			if seen[id] {
				t.Fatalf("identity %s twice", id)
			}
			seen[id] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n != qc.Events {
		t.Errorf("%d events, want %d", n, qc.Events)
	}
}

func TestSumMetric(t *testing.T) {
	text := `# HELP oomwatch_events_ingested_total Events stored.
# TYPE oomwatch_events_ingested_total counter
oomwatch_events_ingested_total{node="a",type="oom"} 3
oomwatch_events_ingested_total{node="b",type="oom"} 4.5
oomwatch_events_ingested_totally 100
`
	got, err := sumMetric(strings.NewReader(text), "oomwatch_events_ingested_total")
	if err != nil || got != 7.5 {
		t.Errorf("sumMetric = %v, %v; want 7.5", got, err)
	}
	if _, err := sumMetric(strings.NewReader(text), "oomwatch_missing"); err == nil {
		t.Error("a metric not served is not an error")
	}
}

func TestQuantile(t *testing.T) {
	var l []time.Duration
	for i := 1; i <= 100; i++ {
		l = append(l, time.Duration(i))
	}
	for _, tc := range []struct {
		q    float64
		want time.Duration
	}{{0.5, 50}, {0.99, 99}, {1, 100}, {0, 1}} {
		if got := quantile(l, tc.q); got != tc.want {
			t.Errorf("quantile(1..100, %v) = %v, want %v", tc.q, got, tc.want)
		}
	}
	if got := quantile(l[:30], 0.99); got != 30 {
		t.Errorf("p99 of 30 samples = %v, want the largest", got)
	}
}

func TestParseE2E(t *testing.T) {
	raw := []byte(`{"kill":1,"id":"e2e-node/b/oom/343","end_seq":378,"end_wall_ns":1000000000,"listed_ns":1500000000,"latency_ns":500000000,"received_ns":1400000000,"polls":1,"offset_error_ns":900000,"agent_skew_ns":-45000000,"extra_events":0}
{"kill":2,"id":"e2e-node/b/oom/380","end_seq":415,"end_wall_ns":3000000000,"listed_ns":3300000000,"latency_ns":300000000,"received_ns":3250000000,"polls":2,"offset_error_ns":300000,"extra_events":0}
`)
	r, err := parseE2E(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Latency) != 2 || r.Latency[0] != 300*time.Millisecond || r.Latency[1] != 500*time.Millisecond {
		t.Errorf("latencies %v", r.Latency)
	}
	if r.MaxSkew != 45*time.Millisecond || r.MaxOffsetError != 900*time.Microsecond {
		t.Errorf("skew %v, offset error %v", r.MaxSkew, r.MaxOffsetError)
	}
	agentLog := []byte(`{"level":"info","msg":"starting"}
{"kind":"limit","seq":343,"last_record_read":"1970-01-01T00:00:01.1Z","level":"info"}
{"kind":"limit","seq":380,"last_record_read":"1970-01-01T00:00:03.05Z","level":"info"}
`)
	if err := r.agentTimes(agentLog); err != nil {
		t.Fatal(err)
	}
	if want := []time.Duration{50 * time.Millisecond, 100 * time.Millisecond}; r.Read[0] != want[0] || r.Read[1] != want[1] {
		t.Errorf("kernel -> agent read %v, want %v", r.Read, want)
	}
	if want := []time.Duration{200 * time.Millisecond, 300 * time.Millisecond}; r.Sent[0] != want[0] || r.Sent[1] != want[1] {
		t.Errorf("agent read -> received %v, want %v", r.Sent, want)
	}
	if err := r.agentTimes([]byte(`{"seq":1,"last_record_read":"1970-01-01T00:00:01Z"}`)); err == nil {
		t.Error("a kill missing from the agent's log is not an error")
	}
}

// TestCostRows: issue #19 item 4's rows judge CPU and bytes per event
// against half of the figures at filing, and only on the full run.
func TestCostRows(t *testing.T) {
	for _, tc := range []struct {
		streams      int
		cpu          time.Duration
		written      int64
		cpuV, bytesV string
	}{
		{1000, 150 * time.Millisecond, 25_000_000, VerdictNotMet, VerdictNotMet},
		{1000, 100 * time.Millisecond, 13_000_000, VerdictMet, VerdictMet},
		{1000, 104 * time.Millisecond, 13_800_000, VerdictNotMet, VerdictMet},
		{20, 10 * time.Millisecond, 1_000_000, VerdictNotMeasured, VerdictNotMeasured},
	} {
		rows := costRows(&IngestResult{Streams: tc.streams, Acked: 1000, AggregatorCPU: tc.cpu, Written: tc.written})
		if len(rows) != 2 || rows[0].Verdict != tc.cpuV || rows[1].Verdict != tc.bytesV {
			t.Errorf("%d streams, %v, %d B: %+v", tc.streams, tc.cpu, tc.written, rows)
		}
	}
}
