package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

const boot = "0f3c6bd0-8a5e-4a36-9d6b-2b1c8e1f0a11"

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func open(t testing.TB) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "oomwatch.db")
	s, err := Open(context.Background(), path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, path
}

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

func put(t testing.TB, s *Store, evs ...*pb.Event) []PutResult {
	t.Helper()
	res, err := s.Put(context.Background(), evs)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// listAll pages through a filter and returns the IDs in order.
func listAll(t *testing.T, s *Store, f *pb.EventFilter, size int) []string {
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

func TestPutGet(t *testing.T) {
	s, _ := open(t)
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
	if _, err := s.Get(ctx, "node-a/"+boot+"/oom/8"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
	if _, err := s.Put(ctx, []*pb.Event{{Node: "n", BootId: "b", Time: timestamppb.Now()}}); !errors.Is(err, ErrInvalidEvent) {
		t.Fatalf("no payload: %v", err)
	}
}

func TestDedup(t *testing.T) {
	s, _ := open(t)
	a := oom("node-a", 1, 0, "limit", "shop", "cart-1", "api")
	res := put(t, s, a, oom("node-a", 2, 0, "limit", "shop", "cart-1", "api"), proto.Clone(a).(*pb.Event))
	want := []PutResult{{Stored: true}, {Stored: true}, {Duplicate: true}}
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
	want = []PutResult{{Duplicate: true}, {Stored: true}, {Stored: true}, {Stored: true}}
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

// fixture is a small mixed store.
func fixture(t *testing.T) (*Store, []*pb.Event) {
	s, _ := open(t)
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

func TestFilters(t *testing.T) {
	s, evs := fixture(t)
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
				if Matches(tt.f, evs[i]) {
					matched = append(matched, id(evs[i]))
				}
			}
			if !slices.Equal(matched, want) {
				t.Fatalf("Matches:\n got %v\nwant %v", matched, want)
			}
		})
	}
}

func TestValidateFilter(t *testing.T) {
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
	s, _ := open(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateFilter(tt.f)
			if (err == nil) != tt.ok || (err != nil && !errors.Is(err, ErrInvalidFilter)) {
				t.Fatalf("ValidateFilter = %v, ok %v", err, tt.ok)
			}
			if _, _, err := s.List(context.Background(), tt.f, 0, ""); (err == nil) != tt.ok {
				t.Fatalf("List = %v", err)
			}
		})
	}
}

func TestPagination(t *testing.T) {
	s, _ := open(t)
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
		want := listAll(t, s, f, MaxPageSize)
		var n int
		for _, e := range evs {
			if Matches(f, e) {
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

func TestPageTokens(t *testing.T) {
	s, _ := fixture(t)
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
			if _, _, err := s.List(ctx, tt.f, 1, tt.tok); !errors.Is(err, ErrBadPageToken) {
				t.Fatalf("List = %v, want ErrBadPageToken", err)
			}
		})
	}
	if _, _, err := s.Incidents(ctx, nil, 2*time.Second, 1, itok); !errors.Is(err, ErrBadPageToken) {
		t.Fatalf("incident token with another gap: %v", err)
	}
	if _, _, err := s.Incidents(ctx, nil, time.Second, 1, tok); !errors.Is(err, ErrBadPageToken) {
		t.Fatalf("events token for incidents: %v", err)
	}
	if _, _, err := s.Incidents(ctx, nil, time.Second, 1, itok); err != nil {
		t.Fatalf("good incident token: %v", err)
	}
}

func TestIncidents(t *testing.T) {
	s, _ := open(t)
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
	if _, _, err = s.Incidents(ctx, nil, -time.Second, 0, ""); !errors.Is(err, ErrInvalidFilter) {
		t.Fatalf("negative gap: %v", err)
	}
}

// TestIncidentPages checks that paging through incidents, one at a time or
// a few, gives exactly the single-page answer on many interleaved chains.
func TestIncidentPages(t *testing.T) {
	s, _ := open(t)
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
		all, next, err := s.Incidents(ctx, nil, gap, MaxPageSize, "")
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

func TestPrune(t *testing.T) {
	s, _ := fixture(t)
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
	var refs int
	if err := s.r.QueryRow(`SELECT count(*) FROM refs WHERE event NOT IN (SELECT rowid FROM events)`).Scan(&refs); err != nil || refs != 0 {
		t.Fatalf("orphan refs %d %v", refs, err)
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

func TestReopen(t *testing.T) {
	s, path := open(t)
	ctx := context.Background()
	put(t, s, oom("node-a", 1, 0, "limit", "shop", "cart-1", "api"))
	if _, _, err := s.List(ctx, nil, 1, ""); err != nil {
		t.Fatal(err)
	}
	put(t, s, oom("node-a", 2, time.Second, "limit", "shop", "cart-1", "api"))
	_, tok, err := s.List(ctx, nil, 1, "")
	if err != nil || tok == "" {
		t.Fatal(tok, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2, err := Open(ctx, path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if _, err := s2.Get(ctx, "node-a/"+boot+"/oom/1"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
	// Page tokens survive a restart.
	page, _, err := s2.List(ctx, nil, 1, tok)
	if err != nil || len(page) != 1 || page[0].GetSeq() != 1 {
		t.Fatalf("token after reopen: %v %v", page, err)
	}
	if res := put(t, s2, oom("node-a", 1, 0, "limit", "shop", "cart-1", "api")); !res[0].Duplicate {
		t.Fatal("dedup lost after reopen")
	}
}

func TestSchemaTooNew(t *testing.T) {
	s, path := open(t)
	if _, err := s.wc.ExecContext(context.Background(), `UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := Open(context.Background(), path, quietLog()); !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
}

// TestSurvivesKill stores events in a child process, kills it with SIGKILL
// the moment Put has returned, and finds them all in the database.
func TestSurvivesKill(t *testing.T) {
	if path := os.Getenv("OOMWATCH_STORE_CHILD"); path != "" {
		s, err := Open(context.Background(), path, quietLog())
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		for i := range 1 << 30 {
			var evs []*pb.Event
			for j := range 50 {
				evs = append(evs, oom("node-a", int64(i*50+j), time.Duration(i)*time.Millisecond, "limit", "shop", "cart-1", "api"))
			}
			if _, err := s.Put(context.Background(), evs); err != nil {
				fmt.Println("put:", err)
				os.Exit(1)
			}
			fmt.Printf("committed %d\n", (i+1)*50)
		}
	}
	path := filepath.Join(t.TempDir(), "kill.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestSurvivesKill$")
	cmd.Env = append(os.Environ(), "OOMWATCH_STORE_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var committed int
	buf := make([]byte, 0, 1<<16)
	chunk := make([]byte, 4096)
	for committed < 2000 {
		n, err := out.Read(chunk)
		buf = append(buf, chunk[:n]...)
		if err != nil {
			t.Fatalf("child ended: %v: %s", err, buf)
		}
		lines := strings.Split(string(buf), "\n")
		for _, l := range lines[:len(lines)-1] {
			fmt.Sscanf(l, "committed %d", &committed)
		}
	}
	// Killed while it keeps writing: everything it reported must be there.
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	s, err := Open(context.Background(), path, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var n int
	if err := s.r.QueryRow(`SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n < committed {
		t.Fatalf("%d events survived, %d were committed", n, committed)
	}
	for seq := range committed {
		if _, err := s.Get(context.Background(), fmt.Sprintf("node-a/%s/oom/%d", boot, seq)); err != nil {
			t.Fatalf("seq %d: %v", seq, err)
		}
	}
}

// TestQueryPlans checks that every filter shape reads an index in order:
// no full scan of events and no sort.
func TestQueryPlans(t *testing.T) {
	s, _ := fixture(t)
	since := timestamppb.New(t0)
	filters := []*pb.EventFilter{
		nil,
		{Since: since},
		{Namespace: "shop", Since: since},
		{Namespace: "shop", Pod: "cart-1", Container: "api"},
		{Container: "api", Kind: "node"},
		{Node: "node-a", Since: since},
		{Node: "node-a", Namespace: "shop"},
		{Types: []string{"exit"}, Verdicts: []string{"oom-limit"}},
		{Types: []string{"oom", "exit"}, CollateralOnly: true},
	}
	for _, f := range filters {
		for _, before := range []*cursor{nil, {t: 1, id: 1}} {
			stmt, args, _ := scan{f: f, cols: "e.rowid, e.time, e.data", limit: 10, before: before}.sql()
			rows, err := s.r.Query("EXPLAIN QUERY PLAN "+stmt, args...)
			if err != nil {
				t.Fatalf("%v: %v", f, err)
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
			p := strings.Join(plan, "; ")
			if strings.Contains(p, "TEMP B-TREE") || strings.Contains(p, "SCAN e") && !strings.Contains(p, "USING INDEX") {
				t.Errorf("filter %v: plan %s", f, p)
			}
		}
	}
}

// Limit kills of different limited cgroups a few seconds apart are
// separate incidents (20 containers each at its own limit are 20 stories,
// never each other's collateral); kills of one limited cgroup are one.
// Unknown verdicts are counted apart from collateral ones.
func TestIncidentsByLimitedCgroup(t *testing.T) {
	s, _ := open(t)
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
func TestIncidentsUnknownLimitJoinsItsStorm(t *testing.T) {
	s, _ := open(t)
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
func TestIncidentsPlacedVictimsOfUnknownLimits(t *testing.T) {
	s, _ := open(t)
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
func TestReceivedSince(t *testing.T) {
	s, _ := open(t)
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
	if Matches(f, before) || !Matches(f, late) {
		t.Fatalf("Matches disagrees with the database: before %v, late %v", Matches(f, before), Matches(f, late))
	}
	if got := listAll(t, s, &pb.EventFilter{ReceivedSince: timestamppb.New(cursor), Namespace: "shop"}, 1); len(got) != 1 {
		t.Fatalf("with a namespace: %v", got)
	}
	if err := ValidateFilter(&pb.EventFilter{ReceivedSince: &timestamppb.Timestamp{Nanos: -1}}); !errors.Is(err, ErrInvalidFilter) {
		t.Fatalf("an invalid received_since: %v", err)
	}
}
