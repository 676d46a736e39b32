package metrics

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/vocab"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

var since = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func openWarning(i int, kind pb.WarningKind, f *pb.WarningFigures) *pb.Event {
	w := &pb.MemoryWarning{WarningKind: kind, State: pb.WarningState_WARNING_STATE_OPEN, Figures: f,
		Since: timestamppb.New(since.Add(time.Duration(i) * time.Second))}
	if kind != pb.WarningKind_WARNING_KIND_NODE_LOW {
		w.Workload = &pb.Workload{Namespace: "shop", PodName: fmt.Sprintf("pod-%03d", i), ContainerName: "api"}
	}
	return &pb.Event{Id: fmt.Sprint(i), Node: "node-a", Payload: &pb.Event_Warning{Warning: w}}
}

// fakeOpen serves warnings as the store would, counting its queries.
type fakeOpen struct {
	evs     []*pb.Event
	err     error
	queries int
}

func (f *fakeOpen) get(_ context.Context, _ time.Time, max int) (map[string]int64, []*pb.Event, error) {
	f.queries++
	if f.err != nil {
		return nil, nil, f.err
	}
	counts := map[string]int64{}
	for _, e := range f.evs {
		counts[vocab.WarningKind(e.GetWarning().GetWarningKind())]++
	}
	return counts, f.evs[:min(max, len(f.evs))], nil
}

func TestAtRisk(t *testing.T) {
	src := &fakeOpen{}
	// 140 near-limit warnings at ratios 0.60 to 0.99 (pod i at 0.6+i/400),
	// 10 forecasts, a node-low at 97% in use.
	for i := range 140 {
		src.evs = append(src.evs, openWarning(i, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, &pb.WarningFigures{Ratio: 0.6 + float64(i)/400}))
	}
	for i := 140; i < 150; i++ {
		src.evs = append(src.evs, openWarning(i, pb.WarningKind_WARNING_KIND_FORECAST,
			&pb.WarningFigures{Ratio: 0.5, TimeLeft: durationpb.New(time.Duration(200-i) * time.Second)}))
	}
	src.evs = append(src.evs, openWarning(150, pb.WarningKind_WARNING_KIND_NODE_LOW, &pb.WarningFigures{MemTotalBytes: 100, MemAvailableBytes: 3}))

	a := NewAtRisk(src.get)
	now := since
	a.now = func() time.Time { return now }
	reg := prometheus.NewRegistry()
	reg.MustRegister(a)

	if n := testutil.CollectAndCount(a, "oomwatch_at_risk"); n != MaxAtRiskSeries {
		t.Fatalf("%d at-risk series, want %d", n, MaxAtRiskSeries)
	}
	want := `
# HELP oomwatch_at_risk_overflow Open warnings past the 100 series of oomwatch_at_risk.
# TYPE oomwatch_at_risk_overflow gauge
oomwatch_at_risk_overflow 51
# HELP oomwatch_warnings_open Warnings open now (not resolved, refreshed by their agent within 15 minutes), by kind.
# TYPE oomwatch_warnings_open gauge
oomwatch_warnings_open{kind="forecast"} 10
oomwatch_warnings_open{kind="limit-reclaim"} 0
oomwatch_warnings_open{kind="near-limit"} 140
oomwatch_warnings_open{kind="node-low"} 1
oomwatch_warnings_open{kind="pressure"} 0
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "oomwatch_at_risk_overflow", "oomwatch_warnings_open"); err != nil {
		t.Fatal(err)
	}
	// The most urgent: every forecast, then the near-limits from the
	// highest ratio down to pod 50 (0.725); pod 49 and below, and the node
	// (97% in use, but of the last tier), are past the 100.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		if mf.GetName() != "oomwatch_at_risk" {
			continue
		}
		for _, m := range mf.GetMetric() {
			l := map[string]string{}
			for _, p := range m.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			got[l["kind"]+"/"+l["pod"]] = true
		}
	}
	for _, k := range []string{"forecast/pod-140", "forecast/pod-149", "near-limit/pod-139", "near-limit/pod-050"} {
		if !got[k] {
			t.Errorf("%s has no series", k)
		}
	}
	for _, k := range []string{"near-limit/pod-049", "near-limit/pod-000", "node-low/"} {
		if got[k] {
			t.Errorf("%s, less urgent, has a series", k)
		}
	}

	// Cached for AtRiskCache; a failed query serves the figures before.
	q := src.queries
	testutil.CollectAndCount(a)
	if src.queries != q {
		t.Errorf("queried again within the cache")
	}
	now = now.Add(AtRiskCache)
	src.err = errors.New("database is locked")
	if n := testutil.CollectAndCount(a, "oomwatch_at_risk"); n != MaxAtRiskSeries || testutil.ToFloat64(a.errors) != 1 {
		t.Errorf("after a failure: %d series, %v errors", n, testutil.ToFloat64(a.errors))
	}
}

// Rank's tiers: forecasts by time left, then near-limit and
// limit-reclaim by ratio, then the rest by theirs, whatever their figures.
func TestRankTiers(t *testing.T) {
	evs := Rank([]*pb.Event{
		openWarning(1, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, &pb.WarningFigures{Ratio: 0.91}),
		openWarning(2, pb.WarningKind_WARNING_KIND_FORECAST, &pb.WarningFigures{TimeLeft: durationpb.New(time.Hour)}),
		openWarning(3, pb.WarningKind_WARNING_KIND_PRESSURE, &pb.WarningFigures{PsiFullAvg10: 40}),
		openWarning(4, pb.WarningKind_WARNING_KIND_FORECAST, &pb.WarningFigures{TimeLeft: durationpb.New(time.Minute)}),
		openWarning(5, pb.WarningKind_WARNING_KIND_NODE_LOW, &pb.WarningFigures{MemTotalBytes: 100, MemAvailableBytes: 1}),
		openWarning(6, pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM, &pb.WarningFigures{Ratio: 0.97}),
		openWarning(7, pb.WarningKind_WARNING_KIND_PRESSURE, &pb.WarningFigures{PsiFullAvg10: 100}),
		// A forecast without a time left comes last of the forecasts.
		openWarning(8, pb.WarningKind_WARNING_KIND_FORECAST, &pb.WarningFigures{Ratio: 0.99}),
	})
	var order []string
	for _, e := range evs {
		order = append(order, e.GetId())
	}
	if want := "[4 2 8 6 1 7 5 3]"; fmt.Sprint(order) != want {
		t.Errorf("order %v, want %s", order, want)
	}
}

// Two open warnings of one label set (a pod's cgroup and its unnamed
// container's) are one series, and neither counts as overflow.
func TestAtRiskSameLabels(t *testing.T) {
	src := &fakeOpen{}
	for i := range 3 {
		e := openWarning(i, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, &pb.WarningFigures{Ratio: 0.9})
		e.GetWarning().Workload.PodName = "cart-1"
		src.evs = append(src.evs, e)
	}
	a := NewAtRisk(src.get)
	if n := testutil.CollectAndCount(a, "oomwatch_at_risk"); n != 1 {
		t.Fatalf("%d series, want 1", n)
	}
	want := `
# HELP oomwatch_at_risk_overflow Open warnings past the 100 series of oomwatch_at_risk.
# TYPE oomwatch_at_risk_overflow gauge
oomwatch_at_risk_overflow 0
`
	if err := testutil.CollectAndCompare(a, strings.NewReader(want), "oomwatch_at_risk_overflow"); err != nil {
		t.Fatal(err)
	}
}
