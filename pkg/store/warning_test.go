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

func TestWarnings(t *testing.T) {
	now := time.Now()
	s, ids := warningFixture(t, now)
	kinds := func(ks ...pb.WarningKind) []pb.WarningKind { return ks }
	for _, tc := range []struct {
		name string
		f    *pb.EventFilter
		want []string
	}{
		{"all warnings, by opening time", &pb.EventFilter{Types: []string{"warning"}},
			[]string{"pressure", "forecast", "resolved", "stale"}},
		{"open now", &pb.EventFilter{Types: []string{"warning"}, OpenWarningsOnly: true}, []string{"pressure", "forecast"}},
		{"open now, no type", &pb.EventFilter{OpenWarningsOnly: true}, []string{"pressure", "forecast"}},
		{"open in a namespace", &pb.EventFilter{OpenWarningsOnly: true, Namespace: "shop"}, []string{"forecast"}},
		{"open of a pod", &pb.EventFilter{OpenWarningsOnly: true, Pod: "cart-2"}, nil},
		{"a pod's, any state", &pb.EventFilter{Types: []string{"warning"}, Pod: "uid-cart-2"}, []string{"stale"}},
		{"kinds", &pb.EventFilter{WarningKinds: kinds(pb.WarningKind_WARNING_KIND_NODE_LOW, pb.WarningKind_WARNING_KIND_NEAR_LIMIT)},
			[]string{"resolved", "stale"}},
		{"kind open", &pb.EventFilter{WarningKinds: kinds(pb.WarningKind_WARNING_KIND_FORECAST), OpenWarningsOnly: true}, []string{"forecast"}},
		{"opened since", &pb.EventFilter{Types: []string{"warning"}, Since: timestamppb.New(now.Add(-15 * time.Minute))},
			[]string{"pressure", "forecast"}},
		{"warning kinds with other types", &pb.EventFilter{Types: []string{"oom"}, OpenWarningsOnly: true}, nil},
		// The verdict column holds a warning's state, the kind column its
		// kind: neither leaks into the filters of exits and kills.
		{"exit verdicts", &pb.EventFilter{Verdicts: []string{"open"}}, nil},
		{"kill kind", &pb.EventFilter{Kind: "forecast"}, nil},
		{"kills", &pb.EventFilter{Types: []string{"oom"}}, []string{"oom"}},
		{"collateral", &pb.EventFilter{CollateralOnly: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var want []string
			for _, w := range tc.want {
				want = append(want, ids[w])
			}
			for _, size := range []int{1, 100} {
				if got := listAll(t, s, tc.f, size); !slices.Equal(got, want) {
					t.Errorf("page size %d: %v, want %v", size, got, want)
				}
			}
			// Matches agrees with List.
			all, _, err := s.List(context.Background(), nil, 100, "")
			if err != nil {
				t.Fatal(err)
			}
			var matched []string
			for _, e := range all {
				if MatchesAt(tc.f, e, now) {
					matched = append(matched, e.GetId())
				}
			}
			if !slices.Equal(matched, want) {
				t.Errorf("Matches: %v, want %v", matched, want)
			}
		})
	}
}

func TestWarningRevisions(t *testing.T) {
	now := time.Now()
	s, ids := warningFixture(t, now)
	e := res2ev(t, s, ids["forecast"])
	if e.GetRevision() != 3 || !e.GetTime().AsTime().Equal(now.Add(-time.Minute)) {
		t.Errorf("stored revision %d at %v, want 3 at %v", e.GetRevision(), e.GetTime().AsTime(), now.Add(-time.Minute))
	}
	r := res2ev(t, s, ids["resolved"])
	if r.GetWarning().GetState() != pb.WarningState_WARNING_STATE_RESOLVED || r.GetWarning().GetResolution() != "cleared" {
		t.Errorf("resolved warning stored as %v", r.GetWarning())
	}
	// The same identity with another opening time is not the same
	// warning's revision: refused as a duplicate, nothing replaced.
	odd := warning(11, pb.WarningKind_WARNING_KIND_FORECAST, "shop", "cart-1", "api", now.Add(-time.Hour), now, 9, false)
	if res := put(t, s, odd); !res[0].Duplicate {
		t.Errorf("moved warning: %+v", res[0])
	}
	if e := res2ev(t, s, ids["forecast"]); e.GetRevision() != 3 {
		t.Errorf("revision %d after a moved copy, want 3", e.GetRevision())
	}
	// A resolution leaves open now.
	put(t, s, warning(11, pb.WarningKind_WARNING_KIND_FORECAST, "shop", "cart-1", "api", now.Add(-10*time.Minute), now, 4, true))
	if got := listAll(t, s, &pb.EventFilter{OpenWarningsOnly: true}, 10); !slices.Equal(got, []string{ids["pressure"]}) {
		t.Errorf("open after the resolution: %v", got)
	}
}

// Warnings are not kills: incidents count the one kill only.
func TestWarningsNotIncidents(t *testing.T) {
	s, ids := warningFixture(t, time.Now())
	ins, _, err := s.Incidents(context.Background(), nil, time.Minute, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) != 1 || len(ins[0].GetEventIds()) != 1 || ins[0].GetEventIds()[0] != ids["oom"] {
		t.Fatalf("incidents %v, want the kill's alone", ins)
	}
	if _, err := s.IncidentOf(context.Background(), ids["forecast"], time.Minute); err == nil {
		t.Error("IncidentOf a warning: no error")
	}
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

func TestOpenWarnings(t *testing.T) {
	now := time.Now()
	s, ids := warningFixture(t, now)
	counts, evs, err := s.OpenWarnings(context.Background(), now, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(counts) != 2 || counts["forecast"] != 1 || counts["pressure"] != 1 {
		t.Errorf("counts %v, want a forecast and a pressure", counts)
	}
	// Most recently refreshed first.
	if len(evs) != 2 || evs[0].GetId() != ids["forecast"] || evs[1].GetId() != ids["pressure"] {
		t.Errorf("open warnings %v", evs)
	}
	if _, evs, _ := s.OpenWarnings(context.Background(), now, 1); len(evs) != 1 {
		t.Errorf("bounded to 1: %d", len(evs))
	}
	// Bounded, the most urgent kinds are read first: a near-limit
	// refreshed just now comes after the forecast, before the pressure.
	put(t, s, warning(15, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, "shop", "cart-3", "api", now.Add(-3*time.Minute), now, 0, false))
	_, evs, err = s.OpenWarnings(context.Background(), now, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 2 || evs[0].GetId() != ids["forecast"] || evs[1].GetSeq() != 15 {
		t.Errorf("the 2 most urgent: %v", evs)
	}
}

// Retention deletes a warning once its latest revision is older than the
// cut, not while it is still refreshed.
func TestPruneWarnings(t *testing.T) {
	now := time.Now()
	s, ids := warningFixture(t, now)
	n, err := s.Prune(context.Background(), now.Add(-25*time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	// The stale near-limit (opened 2h ago, last revision 20m ago) stays;
	// the node-low (opened 1h ago, resolved 30m ago) is pruned.
	if n != 1 {
		t.Errorf("pruned %d, want 1", n)
	}
	if _, err := s.Get(context.Background(), ids["stale"]); err != nil {
		t.Errorf("a refreshed warning was pruned: %v", err)
	}
	if _, err := s.Get(context.Background(), ids["resolved"]); err == nil {
		t.Error("the old resolved warning was kept")
	}
	if got := listAll(t, s, &pb.EventFilter{Types: []string{"warning"}, Namespace: "shop"}, 10); len(got) != 2 {
		t.Errorf("shop's warnings after the prune: %v", got)
	}
}
