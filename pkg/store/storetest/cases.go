package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

const boot = "0f3c6bd0-8a5e-4a36-9d6b-2b1c8e1f0a11"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func proc(pid int32, comm, ns, pod, ctr string, rss int64) *pb.Process {
	return &pb.Process{Pid: pid, Comm: comm, RssBytes: proto.Int64(rss), Workload: &pb.Workload{
		Namespace: ns, PodName: pod, PodUid: "uid-" + pod, ContainerName: ctr, WorkloadKind: "container"}}
}

// oom is an OOM kill on node at t0+at whose victim runs in ns/pod/ctr.
func oom(node string, seq int64, at time.Duration, kind, ns, pod, ctr string) *pb.Event {
	return &pb.Event{
		Node: node, BootId: boot, Seq: seq,
		Time:      timestamppb.New(t0.Add(at)),
		Monotonic: durationpb.New(at),
		Payload: &pb.Event_Oom{Oom: &pb.OOMKill{
			Kind:     kind,
			Complete: true,
			Victims:  []*pb.Process{proc(int32(1000+seq), "worker", ns, pod, ctr, 100<<20)},
			Trigger:  proc(int32(2000+seq), "trigger", ns, pod, ctr, 0),
			Culprit: &pb.Culprit{Pid: int32(3000 + seq), Comm: "hog", RssBytes: proto.Int64(seq << 20), Tasks: 1,
				Source: "task-dump", Workload: &pb.Workload{Namespace: ns, PodName: pod, PodUid: "uid-" + pod, ContainerName: ctr}},
			Lines: []string{"worker invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"},
		}},
	}
}

func loss(node string, seq int64, at time.Duration) *pb.Event {
	return &pb.Event{Node: node, BootId: boot, Seq: seq, Time: timestamppb.New(t0.Add(at)),
		Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 3, AfterSeq: seq - 4, NextSeq: seq}}}
}

func exit(node string, seq int64, at time.Duration, verdict, ns, pod, ctr string, collateral bool) *pb.Event {
	return &pb.Event{Node: node, BootId: boot, Seq: seq, Time: timestamppb.New(t0.Add(at)),
		Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{
			Workload: &pb.Workload{Namespace: ns, PodName: pod, PodUid: "uid-" + pod, ContainerName: ctr},
			ExitCode: 137, RuntimeReason: "OOMKilled", Verdict: verdict, Collateral: collateral}}}
}

func put(t testing.TB, s store.Backend, evs ...*pb.Event) []store.PutResult {
	t.Helper()
	res, err := s.Put(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// listAll pages through a filter and returns the IDs in order.
func listAll(t *testing.T, s store.Backend, f *pb.EventFilter, size int) []string {
	t.Helper()
	var ids []string
	tok := ""
	for pages := 0; ; pages++ {
		if pages > 10000 {
			t.Fatal("too many pages")
		}
		evs, next, err := s.List(context.Background(), f, size, tok)
		if err != nil {
			t.Fatal(err)
		}
		if next != "" && len(evs) == 0 {
			t.Fatal("empty page with a next token")
		}
		for _, e := range evs {
			ids = append(ids, e.GetId())
		}
		if next == "" {
			return ids
		}
		tok = next
	}
}

// fixture is a small mixed store.
func fixture(t *testing.T, open Opener) (store.Backend, []*pb.Event) {
	s := open(t)
	evs := []*pb.Event{
		oom("node-a", 10, 1*time.Minute, "limit", "shop", "cart-1", "api"),
		oom("node-a", 20, 2*time.Minute, "node", "shop", "cart-2", "api"),
		oom("node-b", 10, 3*time.Minute, "limit", "bank", "ledger-0", "db"),
		loss("node-b", 30, 4*time.Minute),
		exit("node-a", 1, 5*time.Minute, "oom-limit", "shop", "cart-1", "api", false),
		exit("node-b", 2, 6*time.Minute, "oom-node", "bank", "ledger-0", "sidecar", true),
		exit("node-b", 3, 7*time.Minute, "not-oom", "web", "front-0", "nginx", false),
	}
	// Collateral node kill whose culprit sits in another namespace.
	c := oom("node-c", 5, 8*time.Minute, "node", "web", "front-0", "nginx")
	c.GetOom().Collateral, c.GetOom().CollateralVerdict = true, pb.CollateralVerdict_COLLATERAL_VERDICT_YES
	c.GetOom().Culprit.Workload = &pb.Workload{Namespace: "batch", PodName: "etl-9", PodUid: "uid-etl-9", ContainerName: "spark"}
	c.GetOom().TopConsumers = []*pb.Process{proc(9, "java", "batch", "etl-9", "spark", 1<<30)}
	evs = append(evs, c)
	put(t, s, evs...)
	return s, evs
}

// story is revision rev of an oom-child story with kills kills.
func story(rev int64, kills int32) *pb.Event {
	e := exit("n1", 77, 0, "oom-child", "ci", "runner-1", "runner", false)
	e.Revision = rev
	e.GetExit().ChildKills = kills
	return e
}

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
func warningFixture(t *testing.T, open Opener, now time.Time) (store.Backend, map[string]string) {
	t.Helper()
	s := open(t)
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
	want := []store.PutResult{{Updated: true}, {Updated: true}, {Updated: true}, {Duplicate: true}, {Stored: true}}
	if !slices.Equal(res, want) {
		t.Fatalf("updates: %+v, want %+v", res, want)
	}
	ids := map[string]string{}
	for _, e := range append(evs, res2ev(t, s, "node-a/"+boot+"/oom/500")) {
		ids[map[int64]string{11: "forecast", 12: "stale", 13: "resolved", 14: "pressure", 500: "oom"}[e.GetSeq()]] = e.GetId()
	}
	return s, ids
}

func res2ev(t *testing.T, s store.Backend, id string) *pb.Event {
	t.Helper()
	e, err := s.Get(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func testPutGet(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	e := oom("node-a", 7, time.Second, "limit", "shop", "cart-1", "api")
	want := proto.Clone(e).(*pb.Event)
	before := time.Now()
	res := put(t, s, e)
	if !res[0].Stored || res[0].Duplicate {
		t.Fatalf("result %+v", res[0])
	}
	got, err := s.Get(ctx, "node-a/"+boot+"/oom/7")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetId() != "node-a/"+boot+"/oom/7" || got.GetReceived().AsTime().Before(before.Truncate(time.Microsecond)) {
		t.Fatalf("id %q received %v", got.GetId(), got.GetReceived().AsTime())
	}
	want.Id, want.Received = got.Id, got.Received
	if !proto.Equal(got, want) {
		t.Fatalf("round trip:\n got %v\nwant %v", got, want)
	}
	if _, err := s.Get(ctx, "node-a/"+boot+"/oom/8"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := s.Put(ctx, []*pb.Event{{Node: "n", BootId: "b", Time: timestamppb.Now()}}); !errors.Is(err, store.ErrInvalidEvent) {
		t.Fatalf("no payload: %v", err)
	}
}

func testDedup(t *testing.T, open Opener) {
	s := open(t)
	a := oom("node-a", 1, 0, "limit", "shop", "cart-1", "api")
	res := put(t, s, a, oom("node-a", 2, 0, "limit", "shop", "cart-1", "api"), proto.Clone(a).(*pb.Event))
	want := []store.PutResult{{Stored: true}, {Stored: true}, {Duplicate: true}}
	if !slices.Equal(res, want) {
		t.Fatalf("first put %+v, want %+v", res, want)
	}
	// A replay with other contents keeps the first; the same seq of another
	// type, boot or node is another event.
	replay := oom("node-a", 1, time.Hour, "node", "other", "x", "y")
	other := []*pb.Event{loss("node-a", 1, 0), oom("node-b", 1, 0, "limit", "shop", "cart-1", "api")}
	ob := oom("node-a", 1, 0, "limit", "shop", "cart-1", "api")
	ob.BootId = "another-boot"
	res = put(t, s, append([]*pb.Event{replay, ob}, other...)...)
	want = []store.PutResult{{Duplicate: true}, {Stored: true}, {Stored: true}, {Stored: true}}
	if !slices.Equal(res, want) {
		t.Fatalf("second put %+v, want %+v", res, want)
	}
	got, err := s.Get(context.Background(), "node-a/"+boot+"/oom/1")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetOom().GetKind() != "limit" {
		t.Fatal("duplicate overwrote the stored event")
	}
	if ids := listAll(t, s, nil, 0); len(ids) != 5 {
		t.Fatalf("stored %d events: %v", len(ids), ids)
	}
}

func testFilters(t *testing.T, open Opener) {
	s, evs := fixture(t, open)
	ts := func(d time.Duration) *timestamppb.Timestamp { return timestamppb.New(t0.Add(d)) }
	id := func(e *pb.Event) string { return e.GetId() }
	tests := []struct {
		name string
		f    *pb.EventFilter
		want []int // indexes into evs, newest first
	}{
		{name: "all", f: nil, want: []int{7, 6, 5, 4, 3, 2, 1, 0}},
		{name: "empty filter", f: &pb.EventFilter{}, want: []int{7, 6, 5, 4, 3, 2, 1, 0}},
		{name: "since inclusive", f: &pb.EventFilter{Since: ts(6 * time.Minute)}, want: []int{7, 6, 5}},
		{name: "until exclusive", f: &pb.EventFilter{Until: ts(2 * time.Minute)}, want: []int{0}},
		{name: "window", f: &pb.EventFilter{Since: ts(2 * time.Minute), Until: ts(4 * time.Minute)}, want: []int{2, 1}},
		{name: "node", f: &pb.EventFilter{Node: "node-b"}, want: []int{6, 5, 3, 2}},
		{name: "namespace", f: &pb.EventFilter{Namespace: "shop"}, want: []int{4, 1, 0}},
		{name: "namespace of culprit", f: &pb.EventFilter{Namespace: "batch"}, want: []int{7}},
		{name: "namespace and window", f: &pb.EventFilter{Namespace: "shop", Since: ts(2 * time.Minute)}, want: []int{4, 1}},
		{name: "pod name", f: &pb.EventFilter{Pod: "cart-1"}, want: []int{4, 0}},
		{name: "pod uid", f: &pb.EventFilter{Pod: "uid-ledger-0"}, want: []int{5, 2}},
		{name: "pod of top consumer", f: &pb.EventFilter{Pod: "etl-9"}, want: []int{7}},
		{name: "container", f: &pb.EventFilter{Container: "api"}, want: []int{4, 1, 0}},
		{name: "container and namespace", f: &pb.EventFilter{Container: "nginx", Namespace: "web"}, want: []int{7, 6}},
		{name: "pod and container", f: &pb.EventFilter{Pod: "ledger-0", Container: "db"}, want: []int{2}},
		{name: "pod namespace container", f: &pb.EventFilter{Pod: "front-0", Container: "nginx", Namespace: "batch"}, want: []int{7}},
		{name: "kind node", f: &pb.EventFilter{Kind: "node"}, want: []int{7, 1}},
		{name: "kind limit in shop", f: &pb.EventFilter{Kind: "limit", Namespace: "shop"}, want: []int{0}},
		{name: "collateral", f: &pb.EventFilter{CollateralOnly: true}, want: []int{7, 5}},
		{name: "type loss", f: &pb.EventFilter{Types: []string{"loss"}}, want: []int{3}},
		{name: "types oom exit", f: &pb.EventFilter{Types: []string{"oom", "exit"}, Node: "node-b"}, want: []int{6, 5, 2}},
		{name: "all types", f: &pb.EventFilter{Types: []string{"oom", "exit", "loss", "oom"}}, want: []int{7, 6, 5, 4, 3, 2, 1, 0}},
		{name: "verdicts", f: &pb.EventFilter{Verdicts: []string{"oom-node", "not-oom"}}, want: []int{6, 5}},
		{name: "verdict and namespace", f: &pb.EventFilter{Verdicts: []string{"oom-limit"}, Namespace: "shop"}, want: []int{4}},
		{name: "kind excludes other types", f: &pb.EventFilter{Kind: "node", Types: []string{"exit"}}, want: nil},
		{name: "no such namespace", f: &pb.EventFilter{Namespace: "nope"}, want: nil},
		{name: "no such node", f: &pb.EventFilter{Node: "nope"}, want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []string
			for _, i := range tt.want {
				want = append(want, id(evs[i]))
			}
			for _, size := range []int{1, 3, 0} {
				if got := listAll(t, s, tt.f, size); !slices.Equal(got, want) {
					t.Fatalf("page size %d:\n got %v\nwant %v", size, got, want)
				}
			}
			// The watchers' matcher agrees with the database.
			var matched []string
			for i := len(evs) - 1; i >= 0; i-- {
				if store.Matches(tt.f, evs[i]) {
					matched = append(matched, id(evs[i]))
				}
			}
			if !slices.Equal(matched, want) {
				t.Fatalf("store.Matches:\n got %v\nwant %v", matched, want)
			}
		})
	}
}

func testValidateFilter(t *testing.T, open Opener) {
	tests := []struct {
		name string
		f    *pb.EventFilter
		ok   bool
	}{
		{name: "nil", f: nil, ok: true},
		{name: "types", f: &pb.EventFilter{Types: []string{"oom", "loss", "exit"}}, ok: true},
		{name: "unknown type", f: &pb.EventFilter{Types: []string{"ooms"}}},
		{name: "until before since", f: &pb.EventFilter{Since: timestamppb.New(t0), Until: timestamppb.New(t0.Add(-time.Second))}},
		{name: "invalid timestamp", f: &pb.EventFilter{Since: &timestamppb.Timestamp{Nanos: -1}}},
		{name: "empty verdict", f: &pb.EventFilter{Verdicts: []string{""}}},
	}
	s := open(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := store.ValidateFilter(tt.f)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, store.ErrInvalidFilter)) {
				t.Fatalf("store.ValidateFilter = %v, ok %v", err, tt.ok)
			}
			if _, _, err := s.List(context.Background(), tt.f, 0, ""); (err == nil) != tt.ok {
				t.Fatalf("List = %v", err)
			}
		})
	}
}

func testPagination(t *testing.T, open Opener) {
	s := open(t)
	var evs []*pb.Event
	nss := []string{"shop", "bank", "web"}
	for i := range 500 {
		// Many events share a time, so the rowid tie-break matters.
		at := time.Duration(i/7) * time.Second
		evs = append(evs, oom(fmt.Sprintf("node-%d", i%4), int64(i), at, "limit", nss[i%3], fmt.Sprintf("pod-%d", i%11), "c"))
	}
	// Stored out of time order, in several batches.
	slices.Reverse(evs[100:300])
	for i := 0; i < len(evs); i += 64 {
		put(t, s, evs[i:min(i+64, len(evs))]...)
	}
	filters := []*pb.EventFilter{nil, {Namespace: "shop"}, {Node: "node-2"}, {Pod: "pod-3", Since: timestamppb.New(t0.Add(10 * time.Second))}}
	for _, f := range filters {
		want := listAll(t, s, f, store.MaxPageSize)
		var n int
		for _, e := range evs {
			if store.Matches(f, e) {
				n++
			}
		}
		if len(want) != n || n == 0 {
			t.Fatalf("filter %v: one page holds %d, want %d", f, len(want), n)
		}
		for _, size := range []int{1, 7, 100} {
			got := listAll(t, s, f, size)
			if !slices.Equal(got, want) {
				t.Fatalf("filter %v size %d: pages differ from one page", f, size)
			}
		}
		// Newest first, each once.
		seen := map[string]bool{}
		var prev time.Time
		for i, id := range want {
			if seen[id] {
				t.Fatalf("duplicate %s", id)
			}
			seen[id] = true
			e, err := s.Get(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if i > 0 && e.GetTime().AsTime().After(prev) {
				t.Fatalf("not newest first at %d", i)
			}
			prev = e.GetTime().AsTime()
		}
	}

	// New events stored between pages do not shift the pages.
	page1, tok, err := s.List(context.Background(), nil, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	put(t, s, oom("node-9", 1, time.Hour, "limit", "shop", "late", "c"), oom("node-9", 2, -time.Hour, "limit", "shop", "early", "c"))
	page2, _, err := s.List(context.Background(), nil, 10, tok)
	if err != nil {
		t.Fatal(err)
	}
	all := listAll(t, s, nil, 1000)
	// all = [late, page1..., page2..., ...]
	for i, e := range append(page1, page2...) {
		if all[i+1] != e.GetId() {
			t.Fatalf("page entry %d = %s, want %s", i, e.GetId(), all[i+1])
		}
	}
}

func testPageTokens(t *testing.T, open Opener) {
	s, _ := fixture(t, open)
	ctx := context.Background()
	_, tok, err := s.List(ctx, &pb.EventFilter{Namespace: "shop"}, 1, "")
	if err != nil || tok == "" {
		t.Fatalf("first page: %q %v", tok, err)
	}
	_, itok, err := s.Incidents(ctx, nil, time.Second, 1, "")
	if err != nil || itok == "" {
		t.Fatalf("first incident page: %q %v", itok, err)
	}
	flip := func(tok string, i int) string {
		b := []byte(tok)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	tests := []struct {
		name string
		f    *pb.EventFilter
		tok  string
	}{
		{name: "garbage", tok: "garbage!"},
		{name: "not base64", tok: "%%%%"},
		{name: "truncated", f: &pb.EventFilter{Namespace: "shop"}, tok: tok[:len(tok)-4]},
		{name: "tampered position", f: &pb.EventFilter{Namespace: "shop"}, tok: flip(tok, 20)},
		{name: "tampered signature", f: &pb.EventFilter{Namespace: "shop"}, tok: flip(tok, len(tok)-2)},
		{name: "other filter", f: &pb.EventFilter{Namespace: "bank"}, tok: tok},
		{name: "incident token", tok: itok},
		{name: "huge", tok: strings.Repeat("A", 10000)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := s.List(ctx, tt.f, 1, tt.tok); !errors.Is(err, store.ErrBadPageToken) {
				t.Fatalf("List = %v, want store.ErrBadPageToken", err)
			}
		})
	}
	if _, _, err := s.Incidents(ctx, nil, 2*time.Second, 1, itok); !errors.Is(err, store.ErrBadPageToken) {
		t.Fatalf("incident token with another gap: %v", err)
	}
	if _, _, err := s.Incidents(ctx, nil, time.Second, 1, tok); !errors.Is(err, store.ErrBadPageToken) {
		t.Fatalf("events token for incidents: %v", err)
	}
	if _, _, err := s.Incidents(ctx, nil, time.Second, 1, itok); err != nil {
		t.Fatalf("good incident token: %v", err)
	}
}

func testIncidents(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	big := func(e *pb.Event, rss int64) *pb.Event { e.GetOom().Culprit.RssBytes = proto.Int64(rss); return e }
	col := func(e *pb.Event) *pb.Event {
		e.GetOom().Collateral, e.GetOom().CollateralVerdict = true, pb.CollateralVerdict_COLLATERAL_VERDICT_YES
		return e
	}
	put(t, s,
		// node-a: 0s, 30s, 90s (gaps of 30 and 60: one incident), then
		// 200s (110 s later: a new one).
		big(oom("node-a", 1, 0, "limit", "shop", "cart-1", "api"), 10),
		big(oom("node-a", 2, 30*time.Second, "node", "shop", "cart-2", "api"), 50),
		col(big(oom("node-a", 3, 90*time.Second, "limit", "shop", "cart-3", "api"), 50)),
		big(oom("node-a", 4, 200*time.Second, "limit", "web", "front-0", "nginx"), 5),
		// node-b overlaps node-a's first incident.
		big(oom("node-b", 1, 20*time.Second, "limit", "bank", "ledger-0", "db"), 7),
		// Not kills.
		loss("node-a", 99, 40*time.Second),
		exit("node-a", 1, 45*time.Second, "oom-limit", "shop", "cart-1", "api", false),
	)
	// Another boot of node-a right after: never part of the same incident.
	nb := oom("node-a", 5, 201*time.Second, "limit", "web", "front-0", "nginx")
	nb.BootId = "boot-2"
	put(t, s, nb)

	got, next, err := s.Incidents(ctx, nil, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if next != "" {
		t.Fatalf("unexpected next page %q", next)
	}
	type summary struct {
		node, boot, kind    string
		start, end          time.Duration
		kills, collateral   int32
		culpritPid, trigPid int32
		victims             []int32
		events              []string
	}
	sum := func(in *pb.Incident) summary {
		out := summary{node: in.Node, boot: in.BootId, kind: in.Kind, start: in.Start.AsTime().Sub(t0), end: in.End.AsTime().Sub(t0),
			kills: in.Kills, collateral: in.Collateral, culpritPid: in.GetCulprit().GetPid(), trigPid: in.GetTrigger().GetPid(), events: in.EventIds}
		for _, v := range in.Victims {
			out.victims = append(out.victims, v.Pid)
		}
		return out
	}
	ida := func(seq int) string { return fmt.Sprintf("node-a/%s/oom/%d", boot, seq) }
	want := []summary{
		{node: "node-a", boot: "boot-2", kind: "limit", start: 201 * time.Second, end: 201 * time.Second, kills: 1, culpritPid: 3005, trigPid: 2005,
			victims: []int32{1005}, events: []string{"node-a/boot-2/oom/5"}},
		{node: "node-a", boot: boot, kind: "limit", start: 200 * time.Second, end: 200 * time.Second, kills: 1, culpritPid: 3004, trigPid: 2004,
			victims: []int32{1004}, events: []string{ida(4)}},
		// Culprits of 50 bytes tie: the first wins.
		{node: "node-a", boot: boot, kind: "node", start: 0, end: 90 * time.Second, kills: 3, collateral: 1, culpritPid: 3002, trigPid: 2001,
			victims: []int32{1001, 1002, 1003}, events: []string{ida(1), ida(2), ida(3)}},
		{node: "node-b", boot: boot, kind: "limit", start: 20 * time.Second, end: 20 * time.Second, kills: 1, culpritPid: 3001, trigPid: 2001,
			victims: []int32{1001}, events: []string{"node-b/" + boot + "/oom/1"}},
	}
	if len(got) != len(want) {
		t.Fatalf("%d incidents, want %d: %v", len(got), len(want), got)
	}
	for i := range want {
		if g := sum(got[i]); fmt.Sprint(g) != fmt.Sprint(want[i]) {
			t.Errorf("incident %d:\n got %+v\nwant %+v", i, g, want[i])
		}
	}

	// A shorter gap splits node-a's first incident.
	got, _, err = s.Incidents(ctx, &pb.EventFilter{Node: "node-a"}, 45*time.Second, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[2].Kills != 1 || got[3].Kills != 2 {
		t.Fatalf("gap 45s: %v", got)
	}
	// Filters apply to the kills.
	got, _, err = s.Incidents(ctx, &pb.EventFilter{Namespace: "web"}, 0, 0, "")
	if err != nil || len(got) != 2 {
		t.Fatalf("namespace web: %v %v", got, err)
	}
	if got, _, err = s.Incidents(ctx, &pb.EventFilter{Types: []string{"exit"}}, 0, 0, ""); err != nil || len(got) != 0 {
		t.Fatalf("exits only: %v %v", got, err)
	}
	if _, _, err = s.Incidents(ctx, nil, -time.Second, 0, ""); !errors.Is(err, store.ErrInvalidFilter) {
		t.Fatalf("negative gap: %v", err)
	}
}

// TestIncidentPages checks that paging through incidents, one at a time or
// a few, gives exactly the single-page answer on many interleaved chains.
func testIncidentPages(t *testing.T, open Opener) {
	s := open(t)
	var evs []*pb.Event
	// Irregular spacing per node: some chains long, some single kills.
	for n := range 5 {
		at := time.Duration(n) * 7 * time.Second
		for i := range 60 {
			step := time.Duration((i*7+n*3)%13) * 10 * time.Second
			at += step
			evs = append(evs, oom(fmt.Sprintf("node-%d", n), int64(i), at, "limit", "shop", fmt.Sprintf("p%d", i%5), "c"))
		}
	}
	put(t, s, evs...)
	ctx := context.Background()
	for _, gap := range []time.Duration{30 * time.Second, 60 * time.Second, 100 * time.Second} {
		all, next, err := s.Incidents(ctx, nil, gap, store.MaxPageSize, "")
		if err != nil || next != "" {
			t.Fatalf("one page: %v %q", err, next)
		}
		var kills int32
		for _, in := range all {
			kills += in.Kills
		}
		if kills != int32(len(evs)) || len(all) < 20 {
			t.Fatalf("gap %v: %d incidents hold %d kills of %d", gap, len(all), kills, len(evs))
		}
		for _, size := range []int{1, 3, 10} {
			var got []*pb.Incident
			tok := ""
			for {
				page, next, err := s.Incidents(ctx, nil, gap, size, tok)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, page...)
				if next == "" {
					break
				}
				tok = next
			}
			if len(got) != len(all) {
				t.Fatalf("gap %v size %d: %d incidents, want %d", gap, size, len(got), len(all))
			}
			for i := range all {
				if !proto.Equal(got[i], all[i]) {
					t.Fatalf("gap %v size %d: incident %d differs:\n got %v\nwant %v", gap, size, i, got[i], all[i])
				}
			}
		}
		// Newest last kill first.
		for i := 1; i < len(all); i++ {
			if all[i].End.AsTime().After(all[i-1].End.AsTime()) {
				t.Fatalf("gap %v: incident %d ends after %d", gap, i, i-1)
			}
		}
	}
}

func testPrune(t *testing.T, open Opener) {
	s, _ := fixture(t, open)
	ctx := context.Background()
	n, err := s.Prune(ctx, t0.Add(3*time.Minute))
	if err != nil || n != 2 {
		t.Fatalf("Prune = %d, %v; want 2", n, err)
	}
	if ids := listAll(t, s, nil, 0); len(ids) != 6 {
		t.Fatalf("%d left: %v", len(ids), ids)
	}
	// Pruned events leave no references behind.
	if ids := listAll(t, s, &pb.EventFilter{Pod: "cart-2"}, 0); len(ids) != 0 {
		t.Fatalf("cart-2 still listed: %v", ids)
	}
	// Large prunes go in several transactions.
	var many []*pb.Event
	for i := range 2500 {
		many = append(many, oom("node-z", int64(i), -time.Hour, "limit", "old", "p", "c"))
	}
	put(t, s, many...)
	if n, err := s.Prune(ctx, t0); err != nil || n != 2500 {
		t.Fatalf("Prune = %d, %v; want 2500", n, err)
	}
	if n, err := s.Prune(ctx, t0); err != nil || n != 0 {
		t.Fatalf("second Prune = %d, %v", n, err)
	}
}

// Limit kills of different limited cgroups a few seconds apart are
// separate incidents (20 containers each at its own limit are 20 stories,
// never each other's collateral); kills of one limited cgroup are one.
// Unknown verdicts are counted apart from collateral ones.
func testIncidentsByLimitedCgroup(t *testing.T, open Opener) {
	s := open(t)
	lim := func(e *pb.Event, memcg string, v pb.CollateralVerdict) *pb.Event {
		e.GetOom().OomMemcg, e.GetOom().CollateralVerdict = memcg, v
		e.GetOom().Collateral = v == pb.CollateralVerdict_COLLATERAL_VERDICT_YES
		return e
	}
	put(t, s,
		lim(oom("node-a", 1, 0, "limit", "batch", "job-1", "job"), "/kubepods/burstable/pod1/c1", pb.CollateralVerdict_COLLATERAL_VERDICT_NO),
		lim(oom("node-a", 2, time.Second, "limit", "batch", "job-2", "job"), "/kubepods/burstable/pod2/c2", pb.CollateralVerdict_COLLATERAL_VERDICT_NO),
		lim(oom("node-a", 3, 2*time.Second, "limit", "batch", "job-1", "job"), "/kubepods/burstable/pod1/c1", pb.CollateralVerdict_COLLATERAL_VERDICT_NO),
		lim(oom("node-a", 4, 3*time.Second, "limit", "shop", "cart", "api"), "/kubepods/burstable/pod3", pb.CollateralVerdict_COLLATERAL_VERDICT_YES),
		lim(oom("node-a", 5, 4*time.Second, "limit", "shop", "cart", "side"), "/kubepods/burstable/pod3", pb.CollateralVerdict_COLLATERAL_VERDICT_UNKNOWN),
	)
	got, _, err := s.Incidents(context.Background(), nil, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		memcg                string
		kills, coll, unknown int32
	}
	var rows []row
	for _, in := range got {
		rows = append(rows, row{in.GetLimitedCgroup(), in.GetKills(), in.GetCollateral(), in.GetCollateralUnknown()})
	}
	want := []row{
		{"/kubepods/burstable/pod3", 2, 1, 1},
		{"/kubepods/burstable/pod1/c1", 2, 0, 0},
		{"/kubepods/burstable/pod2/c2", 1, 0, 0},
	}
	if fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("incidents %v, want %v", rows, want)
	}
}

// A storm's bare kill lines from an agent that could not place them (no
// limited cgroup) stay in the story of the full reports around them.
func testIncidentsUnknownLimitJoinsItsStorm(t *testing.T, open Opener) {
	s := open(t)
	lim := func(e *pb.Event, memcg string) *pb.Event { e.GetOom().OomMemcg = memcg; return e }
	const ctr = "/kubepods/besteffort/pod1/c1"
	put(t, s,
		lim(oom("node-a", 1, 0, "limit", "ci", "bomb", "runner"), ctr),
		lim(oom("node-a", 2, time.Second, "limit", "ci", "bomb", "runner"), ""),
		lim(oom("node-a", 3, 2*time.Second, "limit", "ci", "bomb", "runner"), ""),
		lim(oom("node-a", 4, 3*time.Second, "limit", "ci", "bomb", "runner"), ctr),
		lim(oom("node-a", 5, 4*time.Second, "limit", "ci", "bomb", "runner"), ""),
		// Another limit is a story of its own. (A bare kill line between
		// two limits' kills is ambiguous: it joins the nearer later one.)
		lim(oom("node-a", 6, 65*time.Second, "limit", "web", "front", "nginx"), "/kubepods/burstable/pod2"),
	)
	got, _, err := s.Incidents(context.Background(), nil, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].GetKills() != 1 || got[1].GetKills() != 5 || got[1].GetLimitedCgroup() != ctr {
		for _, in := range got {
			t.Logf("%s kind %s kills %d memcg %q", in.GetId(), in.GetKind(), in.GetKills(), in.GetLimitedCgroup())
		}
		t.Fatalf("got %d incidents, want the other limit's kill and one storm of 5", len(got))
	}
}

// Rate-limited kills that no full report explains, each placed in its own
// container: separate stories, not one incident of "unknown" kills.
func testIncidentsPlacedVictimsOfUnknownLimits(t *testing.T, open Opener) {
	s := open(t)
	var evs []*pb.Event
	for i := range 3 {
		e := oom("node-a", int64(i+1), time.Duration(i)*time.Second, "limit", "batch", fmt.Sprintf("job-%d", i), "job")
		e.GetOom().GetVictims()[0].GetWorkload().Cgroup = fmt.Sprintf("/kubepods/burstable/pod%d/c%d", i, i)
		evs = append(evs, e)
	}
	put(t, s, evs...)
	got, _, err := s.Incidents(context.Background(), nil, 0, 0, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("%d incidents, want one per container", len(got))
	}
}

// received_since selects what was stored from a time on, whatever the
// events' own times: a watcher's catch-up after an outage gets the old kill
// an agent's spool delivered late, and not what it had seen before.
func testReceivedSince(t *testing.T, open Opener) {
	s := open(t)
	before := oom("node-a", 1, 5*time.Minute, "limit", "shop", "cart-1", "api")
	put(t, s, before)
	time.Sleep(2 * time.Millisecond)
	cursor := time.Now()
	time.Sleep(2 * time.Millisecond)
	late := oom("node-b", 2, time.Minute, "limit", "shop", "cart-2", "api") // older by its own time
	put(t, s, late)
	f := &pb.EventFilter{ReceivedSince: timestamppb.New(cursor)}
	got := listAll(t, s, f, 0)
	if !slices.Equal(got, []string{late.GetId()}) {
		t.Fatalf("received since the cursor: %v, want only %s", got, late.GetId())
	}
	if store.Matches(f, before) || !store.Matches(f, late) {
		t.Fatalf("store.Matches disagrees with the database: before %v, late %v", store.Matches(f, before), store.Matches(f, late))
	}
	if got := listAll(t, s, &pb.EventFilter{ReceivedSince: timestamppb.New(cursor), Namespace: "shop"}, 1); len(got) != 1 {
		t.Fatalf("with a namespace: %v", got)
	}
	if err := store.ValidateFilter(&pb.EventFilter{ReceivedSince: &timestamppb.Timestamp{Nanos: -1}}); !errors.Is(err, store.ErrInvalidFilter) {
		t.Fatalf("an invalid received_since: %v", err)
	}
}

// TestUpdateByRevision: an event put again with a higher revision replaces
// the stored one (Updated), in place; the same or a lower revision is a
// duplicate and changes nothing; an event without revision is never
// updated.
func testUpdateByRevision(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t)
	steps := []struct {
		name      string
		events    []*pb.Event
		want      []store.PutResult
		wantKills int32
	}{
		{"first", []*pb.Event{story(1, 3)}, []store.PutResult{{Stored: true}}, 3},
		{"update", []*pb.Event{story(2, 40)}, []store.PutResult{{Updated: true}}, 40},
		{"replay of the update", []*pb.Event{story(2, 40)}, []store.PutResult{{Duplicate: true}}, 40},
		{"late older revision", []*pb.Event{story(1, 3)}, []store.PutResult{{Duplicate: true}}, 40},
		{"two in one batch", []*pb.Event{story(3, 50), story(5, 90), story(4, 60)},
			[]store.PutResult{{Updated: true}, {Updated: true}, {Duplicate: true}}, 90},
	}
	for _, st := range steps {
		got, err := s.Put(ctx, st.events)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		for i := range st.want {
			if got[i] != st.want[i] {
				t.Errorf("%s: event %d: %+v, want %+v", st.name, i, got[i], st.want[i])
			}
		}
		e, err := s.Get(ctx, eventid.String(story(0, 0)))
		if err != nil {
			t.Fatal(err)
		}
		if e.GetExit().GetChildKills() != st.wantKills {
			t.Errorf("%s: stored %d kills, want %d", st.name, e.GetExit().GetChildKills(), st.wantKills)
		}
	}
	// Still one event, found by its pod.
	evs, _, err := s.List(ctx, &pb.EventFilter{Pod: "runner-1"}, 10, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].GetRevision() != 5 {
		t.Fatalf("listing %d events %v", len(evs), evs)
	}

	// Without a revision, a second put is a duplicate, whatever it says.
	plain := loss("n1", 9, 0)
	put(t, s, plain)
	changed := proto.Clone(plain).(*pb.Event)
	changed.GetLoss().Lost = 99
	if got, _ := s.Put(ctx, []*pb.Event{changed}); !got[0].Duplicate {
		t.Fatalf("an event without revision was not a duplicate: %+v", got[0])
	}
	// An OOM kill is never rewritten, whatever its revision.
	k := oom("n1", 11, 0, "limit", "ci", "runner-1", "runner")
	k.Revision = 1
	put(t, s, k)
	k2 := proto.Clone(k).(*pb.Event)
	k2.Revision = 2
	k2.GetOom().Reason = "rewritten"
	if got, _ := s.Put(ctx, []*pb.Event{k2}); !got[0].Duplicate {
		t.Fatalf("an OOM kill was updated: %+v", got[0])
	}
	if e, _ := s.Get(ctx, eventid.String(k)); e.GetOom().GetReason() == "rewritten" {
		t.Fatal("the stored OOM kill was rewritten")
	}
	// An update may not move the event in time: its place in every
	// listing is its first time.
	moved := story(9, 100)
	moved.Time = timestamppb.New(t0.Add(-3600e9))
	if got, _ := s.Put(ctx, []*pb.Event{moved}); !got[0].Duplicate {
		t.Fatalf("an update that moves the event's time was taken: %+v", got[0])
	}
}

func testWarnings(t *testing.T, open Opener) {
	now := time.Now()
	s, ids := warningFixture(t, open, now)
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
			// store.Matches agrees with List.
			all, _, err := s.List(context.Background(), nil, 100, "")
			if err != nil {
				t.Fatal(err)
			}
			var matched []string
			for _, e := range all {
				if store.MatchesAt(tc.f, e, now) {
					matched = append(matched, e.GetId())
				}
			}
			if !slices.Equal(matched, want) {
				t.Errorf("store.Matches: %v, want %v", matched, want)
			}
		})
	}
}

func testWarningRevisions(t *testing.T, open Opener) {
	now := time.Now()
	s, ids := warningFixture(t, open, now)
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
func testWarningsNotIncidents(t *testing.T, open Opener) {
	s, ids := warningFixture(t, open, time.Now())
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

func testOpenWarnings(t *testing.T, open Opener) {
	now := time.Now()
	s, ids := warningFixture(t, open, now)
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
func testPruneWarnings(t *testing.T, open Opener) {
	now := time.Now()
	s, ids := warningFixture(t, open, now)
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

// TestIncidentOf checks that the incident of every kill is exactly the
// incident Incidents returns for it, on irregular chains of kills on
// several nodes and boots, with kills at the same instant, and losses and
// exits in between that are not kills.
func testIncidentOf(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	var evs []*pb.Event
	for n := range 4 {
		at := time.Duration(n) * 5 * time.Second
		for i := range 50 {
			// Steps of 0 (two kills at one instant) to 120 s.
			at += time.Duration((i*5+n*3)%13) * 10 * time.Second
			e := oom(fmt.Sprintf("node-%d", n%3), int64(n*1000+i), at, []string{"limit", "node"}[i%7/6], "shop", fmt.Sprintf("p%d", i%4), "c")
			e.GetOom().Collateral = i%3 == 0
			if n == 3 {
				e.BootId = "boot-2"
			}
			evs = append(evs, e)
		}
	}
	evs = append(evs, loss("node-0", 99999, 30*time.Second), exit("node-0", 99998, 31*time.Second, "oom-limit", "shop", "p1", "c", false))
	put(t, s, evs...)

	for _, gap := range []time.Duration{0, 30 * time.Second, 95 * time.Second} {
		all, next, err := s.Incidents(ctx, nil, gap, store.MaxPageSize, "")
		if err != nil || next != "" {
			t.Fatalf("incidents: %v %q", err, next)
		}
		if len(all) < 10 {
			t.Fatalf("gap %v: only %d incidents: the fixture does not exercise grouping", gap, len(all))
		}
		multi := 0
		for _, want := range all {
			if want.Kills > 1 {
				multi++
			}
			for _, id := range want.EventIds {
				got, err := s.IncidentOf(ctx, id, gap)
				if err != nil {
					t.Fatalf("gap %v: IncidentOf(%s): %v", gap, id, err)
				}
				if !proto.Equal(got.Incident, want) {
					t.Fatalf("gap %v: IncidentOf(%s):\n got %v\nwant %v", gap, id, got.Incident, want)
				}
				if got.Truncated || len(got.Kills) != len(want.EventIds) {
					t.Fatalf("gap %v: IncidentOf(%s): %d kills (truncated %v), want %d", gap, id, len(got.Kills), got.Truncated, len(want.EventIds))
				}
				for i, k := range got.Kills {
					if k.GetId() != want.EventIds[i] {
						t.Fatalf("gap %v: IncidentOf(%s): kill %d is %s, want %s", gap, id, i, k.GetId(), want.EventIds[i])
					}
				}
			}
		}
		if multi < 3 {
			t.Fatalf("gap %v: %d incidents of several kills: the fixture does not exercise chains", gap, multi)
		}
	}

	for _, tc := range []struct {
		id   string
		want error
		gap  time.Duration
	}{
		{id: "node-0/" + boot + "/oom/424242", want: store.ErrNotFound},
		{id: "node-0/" + boot + "/loss/99999", want: store.ErrNotFound},
		{id: "node-0/" + boot + "/exit/99998", want: store.ErrNotFound},
		{id: "", want: store.ErrNotFound},
		{id: evs[0].GetId(), gap: -time.Second, want: store.ErrInvalidFilter},
	} {
		if _, err := s.IncidentOf(ctx, tc.id, tc.gap); !errors.Is(err, tc.want) {
			t.Errorf("IncidentOf(%q, %v) = %v, want %v", tc.id, tc.gap, err, tc.want)
		}
	}
}

// TestIncidentOfTruncated checks the bound on an endless storm.
func testIncidentOfTruncated(t *testing.T, open Opener) {
	s := open(t)
	evs := make([]*pb.Event, store.MaxIncidentKills+2)
	for i := range evs {
		evs[i] = oom("node-a", int64(i), time.Duration(i)*time.Second, "limit", "shop", "cart", "api")
	}
	put(t, s, evs...)
	got, err := s.IncidentOf(context.Background(), evs[len(evs)-1].GetId(), 0)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Truncated || len(got.Kills) != store.MaxIncidentKills || got.Incident.Kills != store.MaxIncidentKills {
		t.Fatalf("truncated %v, %d kills, incident of %d", got.Truncated, len(got.Kills), got.Incident.Kills)
	}
	if got.Kills[0].GetId() != evs[0].GetId() || got.Incident.Id != "node-a/"+boot+"/incident/0" {
		t.Fatalf("first kill %s, incident %s", got.Kills[0].GetId(), got.Incident.Id)
	}
}

// testIncidentOfStories checks that the incident of every kill is the
// incident Incidents lists holding it when kills group by story, not only
// by node and boot: limit kills of two limited cgroups a second apart, a
// storm whose bare kill lines of unknown limit come before and after its
// report, a node-level kill between limit kills, kills of two boots.
func testIncidentOfStories(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	lim := func(e *pb.Event, memcg string) *pb.Event { e.GetOom().OomMemcg = memcg; return e }
	booted := func(e *pb.Event, b string) *pb.Event { e.BootId = b; return e }
	const c1, c2 = "/kubepods/burstable/pod1/c1", "/kubepods/burstable/pod2/c2"
	put(t, s,
		// Two limits a second apart.
		lim(oom("node-two", 1, 0, "limit", "batch", "job-1", "job"), c1),
		lim(oom("node-two", 2, time.Second, "limit", "batch", "job-2", "job"), c2),
		// A storm: bare kill lines before and after its reports, and
		// another limit's kill in the middle.
		lim(oom("node-storm", 1, 0, "limit", "ci", "bomb", "runner"), ""),
		lim(oom("node-storm", 2, time.Second, "limit", "ci", "bomb", "runner"), ""),
		lim(oom("node-storm", 3, 2*time.Second, "limit", "ci", "bomb", "runner"), c1),
		lim(oom("node-storm", 4, 3*time.Second, "limit", "web", "front", "nginx"), c2),
		lim(oom("node-storm", 5, 4*time.Second, "limit", "ci", "bomb", "runner"), ""),
		lim(oom("node-storm", 6, 5*time.Second, "limit", "ci", "bomb", "runner"), c1),
		lim(oom("node-storm", 7, 6*time.Second, "limit", "ci", "bomb", "runner"), ""),
		// A node-level kill between limit kills.
		lim(oom("node-mixed", 1, 0, "limit", "batch", "job-1", "job"), c1),
		oom("node-mixed", 2, time.Second, "node", "shop", "cart", "api"),
		lim(oom("node-mixed", 3, 2*time.Second, "limit", "batch", "job-2", "job"), c2),
		lim(oom("node-mixed", 4, 3*time.Second, "limit", "batch", "job-1", "job"), c1),
		oom("node-mixed", 5, 4*time.Second, "node", "shop", "cart", "api"),
		// Two boots, their kills a second apart.
		lim(oom("node-boots", 1, 0, "limit", "batch", "job-1", "job"), c1),
		lim(booted(oom("node-boots", 1, time.Second, "limit", "batch", "job-1", "job"), "boot-2"), c1),
		booted(oom("node-boots", 2, 2*time.Second, "node", "shop", "cart", "api"), "boot-2"),
	)
	all, next, err := s.Incidents(ctx, nil, 0, store.MaxPageSize, "")
	if err != nil || next != "" {
		t.Fatalf("incidents: %v %q", err, next)
	}
	seen := 0
	for _, want := range all {
		for _, id := range want.EventIds {
			seen++
			got, err := s.IncidentOf(ctx, id, 0)
			if err != nil {
				t.Fatalf("IncidentOf(%s): %v", id, err)
			}
			if !proto.Equal(got.Incident, want) {
				t.Errorf("IncidentOf(%s): incident %s of %d kills %v, want %s of %d kills %v",
					id, got.Incident.GetId(), got.Incident.GetKills(), got.Incident.GetEventIds(), want.GetId(), want.GetKills(), want.GetEventIds())
				continue
			}
			var ids []string
			for _, k := range got.Kills {
				ids = append(ids, k.GetId())
			}
			if got.Truncated || !slices.Equal(ids, want.EventIds) {
				t.Errorf("IncidentOf(%s): kills %v (truncated %v), want %v", id, ids, got.Truncated, want.EventIds)
			}
		}
	}
	// Two limits, the storm and the other limit's kill, the node's
	// kills and two limits, a kill of the first boot and two stories of
	// the second.
	if len(all) != 10 || seen != 17 {
		t.Fatalf("Incidents lists %d incidents of %d kills, want 10 of 17", len(all), seen)
	}
}

// testAcknowledgedOnlyCommitted: a Put that fails stores none of its
// events, so that the server acknowledges only what Put committed.
func testAcknowledgedOnlyCommitted(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	good := oom("node-a", 1, 0, "limit", "shop", "cart-1", "api")
	bad := &pb.Event{Node: "node-a", BootId: boot, Seq: 2, Time: timestamppb.New(t0)} // no payload
	if _, err := s.Put(ctx, []*pb.Event{good, bad}); !errors.Is(err, store.ErrInvalidEvent) {
		t.Fatalf("Put of an invalid event = %v, want ErrInvalidEvent", err)
	}
	if _, err := s.Get(ctx, eventid.String(good)); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the valid event of a failed Put was stored: %v", err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	rec, err := store.Encode(oom("node-a", 3, 0, "limit", "shop", "cart-1", "api"), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutRecords(cancelled, []*store.Record{rec}); err == nil {
		t.Fatal("PutRecords with a cancelled context returned nil")
	}
	if _, err := s.Get(ctx, rec.Event().GetId()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("an event of a cancelled PutRecords was stored: %v", err)
	}
	// What a Put acknowledged is there, at once.
	res := put(t, s, good)
	if !res[0].Stored {
		t.Fatalf("result %+v", res[0])
	}
	if _, err := s.Get(ctx, good.GetId()); err != nil {
		t.Fatalf("acknowledged event: %v", err)
	}
	if res, err := s.PutRecords(ctx, nil); err != nil || len(res) != 0 {
		t.Fatalf("empty PutRecords = %v, %v", res, err)
	}
}

// testConcurrent: writers racing with the same events (agents replaying
// their spools to replicas at once) store each exactly once: one of them
// is told Stored, the others Duplicate.
func testConcurrent(t *testing.T, open Opener) {
	s := open(t)
	ctx := context.Background()
	const writers, events = 4, 200
	results := make([][]store.PutResult, writers)
	errs := make(chan error, writers)
	for w := range writers {
		go func() {
			var evs []*pb.Event
			for i := range events {
				// Each writer in its own order.
				seq := int64((i*7 + w*31) % events)
				evs = append(evs, oom("node-a", seq, time.Duration(seq)*time.Millisecond, "limit", "shop", fmt.Sprintf("p%d", seq%5), "c"))
			}
			var res []store.PutResult
			for lo := 0; lo < len(evs); lo += 50 {
				r, err := s.Put(ctx, evs[lo:lo+50])
				if err != nil {
					errs <- err
					return
				}
				res = append(res, r...)
			}
			results[w] = res
			errs <- nil
		}()
	}
	for range writers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	stored := 0
	for _, res := range results {
		for _, r := range res {
			switch {
			case r.Stored:
				stored++
			case !r.Duplicate:
				t.Fatalf("result %+v: neither stored nor a duplicate", r)
			}
		}
	}
	if stored != events {
		t.Fatalf("%d told Stored, want %d", stored, events)
	}
	if ids := listAll(t, s, nil, store.MaxPageSize); len(ids) != events {
		t.Fatalf("%d stored, want %d", len(ids), events)
	}
	if ids := listAll(t, s, &pb.EventFilter{Pod: "p3"}, 0); len(ids) != events/5 {
		t.Fatalf("%d of pod p3, want %d", len(ids), events/5)
	}
}
