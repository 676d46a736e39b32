package store

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// warning is revision rev of a warning of kind on node-a, opened at since
// and made at at; ns/pod/ctr "" is the node's warning.
func warning(seq int64, kind pb.WarningKind, ns, pod, ctr string, since, at time.Time, rev int64, resolved bool) *pb.Event {
	m := &pb.MemoryWarning{WarningKind: kind, State: pb.WarningState_WARNING_STATE_OPEN, Since: timestamppb.New(since),
		Figures: &pb.WarningFigures{WorkingSetBytes: 400 << 20, LimitBytes: 512 << 20, Ratio: 0.78}, Summary: "api will reach its limit"}
	if pod != "" {
		m.Workload = &pb.Workload{Cgroup: "/kubepods/" + pod + "/" + ctr, Namespace: ns, PodName: pod, PodUid: "uid-" + pod, ContainerName: ctr}
	}
	if resolved {
		m.State, m.Resolution = pb.WarningState_WARNING_STATE_RESOLVED, "cleared"
	}
	return &pb.Event{Node: "node-a", BootId: boot, Seq: seq, Time: timestamppb.New(at), Revision: rev,
		Payload: &pb.Event_Warning{Warning: m}}
}

// warningFixture stores, relative to now: a forecast opened 10m ago and
// refreshed 1m ago (open), a near-limit opened 2h ago whose last revision
// is 20m old (stale), a node-low opened 1h ago and resolved, a pressure of
// another namespace opened 5m ago (open), and an OOM kill.
func warningFixture(t *testing.T, now time.Time) (*Store, map[string]string) {
	t.Helper()
	s, _ := open(t)
	fc, nl := pb.WarningKind_WARNING_KIND_FORECAST, pb.WarningKind_WARNING_KIND_NEAR_LIMIT
	low, pr := pb.WarningKind_WARNING_KIND_NODE_LOW, pb.WarningKind_WARNING_KIND_PRESSURE
	evs := []*pb.Event{
		warning(11, fc, "shop", "cart-1", "api", now.Add(-10*time.Minute), now.Add(-10*time.Minute), 0, false),
		warning(12, nl, "shop", "cart-2", "api", now.Add(-2*time.Hour), now.Add(-2*time.Hour), 0, false),
		warning(13, low, "", "", "", now.Add(-time.Hour), now.Add(-time.Hour), 0, false),
		warning(14, pr, "batch", "job-1", "run", now.Add(-5*time.Minute), now.Add(-5*time.Minute), 0, false),
	}
	if res := put(t, s, evs...); !res[0].Stored || !res[3].Stored {
		t.Fatalf("opens: %+v", res)
	}
	res := put(t, s,
		warning(11, fc, "shop", "cart-1", "api", now.Add(-10*time.Minute), now.Add(-time.Minute), 3, false),
		warning(12, nl, "shop", "cart-2", "api", now.Add(-2*time.Hour), now.Add(-20*time.Minute), 7, false),
		warning(13, low, "", "", "", now.Add(-time.Hour), now.Add(-30*time.Minute), 1, true),
		// A replay of an older revision changes nothing.
		warning(11, fc, "shop", "cart-1", "api", now.Add(-10*time.Minute), now.Add(-5*time.Minute), 1, false),
		oom("node-a", 500, now.Sub(t0)-3*time.Minute, "limit", "shop", "cart-1", "api"),
	)
	want := []PutResult{{Updated: true}, {Updated: true}, {Updated: true}, {Duplicate: true}, {Stored: true}}
	if !slices.Equal(res, want) {
		t.Fatalf("updates: %+v, want %+v", res, want)
	}
	ids := map[string]string{}
	for _, e := range append(evs, res2ev(t, s, "node-a/"+boot+"/oom/500")) {
		ids[map[int64]string{11: "forecast", 12: "stale", 13: "resolved", 14: "pressure", 500: "oom"}[e.GetSeq()]] = e.GetId()
	}
	return s, ids
}

func res2ev(t *testing.T, s *Store, id string) *pb.Event {
	t.Helper()
	e, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// Queries of warnings read an index: open now the partial index of open
// warnings (sorting those few), the others a workload's references or the
// type index newest first, with no sort.
func TestWarningQueryPlans(t *testing.T) {
	s, _ := warningFixture(t, time.Now())
	for _, tc := range []struct {
		f     *pb.EventFilter
		index string
		sorts bool
	}{
		{&pb.EventFilter{Types: []string{"warning"}, OpenWarningsOnly: true}, "events_open_warnings", true},
		{&pb.EventFilter{Types: []string{"warning"}, Node: "node-a", OpenWarningsOnly: true}, "events_open_warnings", true},
		{&pb.EventFilter{Types: []string{"warning"}, WarningKinds: []pb.WarningKind{pb.WarningKind_WARNING_KIND_FORECAST}}, "events_type_time", false},
		{&pb.EventFilter{Types: []string{"warning"}, WarningKinds: []pb.WarningKind{pb.WarningKind_WARNING_KIND_FORECAST}, Namespace: "shop"}, "", false},
		{&pb.EventFilter{Types: []string{"warning"}, Pod: "cart-1", OpenWarningsOnly: true}, "", false},
	} {
		stmt, args, _ := scan{f: tc.f, cols: "e.rowid, e.time, e.data", limit: 10, now: time.Now()}.sql()
		rows, err := s.r.Query("EXPLAIN QUERY PLAN "+stmt, args...)
		if err != nil {
			t.Fatalf("%v: %v", tc.f, err)
		}
		var plan []string
		for rows.Next() {
			var id, parent, unused int
			var detail string
			if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, detail)
		}
		rows.Close()
		joined := strings.Join(plan, "; ")
		if sorts := strings.Contains(joined, "TEMP B-TREE"); sorts != tc.sorts {
			t.Errorf("filter %v: sorts %v, want %v (%s)", tc.f, sorts, tc.sorts, joined)
		}
		if tc.index != "" && !strings.Contains(joined, "INDEX "+tc.index) {
			t.Errorf("filter %v: plan %s, want index %s", tc.f, joined, tc.index)
		}
	}
}
