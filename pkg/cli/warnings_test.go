package cli

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	durpb "google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// fakeQuery is an aggregator's query service that answers every list with
// its events and every watch with its live events, and keeps the requests:
// what the aggregator selects by the new warning filters is its own tests'
// business (package aggregator); these assert what oomctl asks and prints.
type fakeQuery struct {
	pb.UnimplementedQueryServiceServer
	events, live []*pb.Event

	mu      sync.Mutex
	lists   []*pb.EventFilter
	watches []*pb.EventFilter
}

func (f *fakeQuery) ListEvents(_ context.Context, req *pb.ListEventsRequest) (*pb.ListEventsResponse, error) {
	f.mu.Lock()
	f.lists = append(f.lists, req.GetFilter())
	f.mu.Unlock()
	return &pb.ListEventsResponse{Events: f.events}, nil
}

func (f *fakeQuery) Watch(req *pb.WatchRequest, s grpc.ServerStreamingServer[pb.WatchResponse]) error {
	f.mu.Lock()
	f.watches = append(f.watches, req.GetFilter())
	f.mu.Unlock()
	for _, e := range f.live {
		if err := s.Send(&pb.WatchResponse{Event: e}); err != nil {
			return err
		}
	}
	<-s.Context().Done()
	return nil
}

func (f *fakeQuery) requests() (lists, watches []*pb.EventFilter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pb.EventFilter(nil), f.lists...), append([]*pb.EventFilter(nil), f.watches...)
}

// startFake serves q on 127.0.0.1:0 and returns its address.
func startFake(t *testing.T, q *fakeQuery) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	pb.RegisterQueryServiceServer(s, q)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	return lis.Addr().String()
}

const mib = 1 << 20

// warnEvent is a warning as an agent sends it and the aggregator keeps it.
func warnEvent(seq int64, kind pb.WarningKind, state pb.WarningState, rev int64, w *pb.Workload, f *pb.WarningFigures, since time.Time) *pb.Event {
	m := &pb.MemoryWarning{WarningKind: kind, State: state, Workload: w, Since: timestamppb.New(since), Figures: f}
	if state == pb.WarningState_WARNING_STATE_RESOLVED {
		m.Resolution = "cleared"
	}
	m.Summary = vocab.Warning(m)
	e := &pb.Event{Node: xNode, BootId: xBoot, Seq: seq, Revision: rev, Time: timestamppb.New(since.Add(time.Duration(rev) * 10 * time.Second)),
		Payload: &pb.Event_Warning{Warning: m}}
	e.Id = eventid.String(e)
	return e
}

func apiWorkload() *pb.Workload {
	return &pb.Workload{Cgroup: "/kubepods/burstable/pod" + xPodUID + "/" + ctrID('a'), WorkloadKind: "container", PodUid: xPodUID,
		ContainerId: ctrID('a'), Namespace: "shop", PodName: "cart-7d9", ContainerName: "api", Qos: "burstable"}
}

// warnings are the open warnings of the tests: a forecast and a near-limit
// of shop/cart-7d9's api, and the node's pressure.
func warnings(now time.Time) []*pb.Event {
	return []*pb.Event{
		warnEvent(11, pb.WarningKind_WARNING_KIND_FORECAST, pb.WarningState_WARNING_STATE_OPEN, 3, apiWorkload(),
			&pb.WarningFigures{WorkingSetBytes: 26 * mib, LimitBytes: 64 * mib, Ratio: 0.41, GrowthBytesPerSecond: mib,
				TimeLeft: durpb.New(38 * time.Second)}, now.Add(-4*time.Minute)),
		warnEvent(12, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, pb.WarningState_WARNING_STATE_OPEN, 0, apiWorkload(),
			&pb.WarningFigures{WorkingSetBytes: 60 * mib, LimitBytes: 64 * mib, Ratio: 0.93}, now.Add(-time.Minute)),
		warnEvent(13, pb.WarningKind_WARNING_KIND_PRESSURE, pb.WarningState_WARNING_STATE_OPEN, 1, nil,
			&pb.WarningFigures{PsiFullAvg10: 23.4}, now.Add(-2*time.Minute)),
	}
}

func TestWarnings(t *testing.T) {
	now := time.Now()
	q := &fakeQuery{events: warnings(now)}
	addr := startFake(t, q)

	t.Run("table", func(t *testing.T) {
		out, errOut, code := run(t, "", "warnings", "--server", addr, "--insecure", "-n", "shop", "--pod", "cart-7d9", "--node", xNode,
			"--kind", "forecast,near-limit", "--since", "1h")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		t.Logf("\n%s", out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || strings.Join(strings.Fields(lines[0]), " ") != "KIND NODE WORKLOAD FIGURES SINCE" {
			t.Fatalf("want a header and 3 rows:\n%s", out)
		}
		for i, want := range []string{
			"forecast node-a shop/cart-7d9/api 38s left at 1.0 MiB/s 4m",
			"near-limit node-a shop/cart-7d9/api 93% of 64.0 MiB 1m",
			"pressure node-a (node) PSI 23% 2m",
		} {
			if got := strings.Join(strings.Fields(lines[i+1]), " "); !strings.HasPrefix(got, want) {
				t.Errorf("row %d: %q, want %q...", i+1, got, want)
			}
		}
		lists, _ := q.requests()
		f := lists[len(lists)-1]
		want := &pb.EventFilter{Types: []string{"warning"}, OpenWarningsOnly: true, Namespace: "shop", Pod: "cart-7d9", Node: xNode,
			WarningKinds: []pb.WarningKind{pb.WarningKind_WARNING_KIND_FORECAST, pb.WarningKind_WARNING_KIND_NEAR_LIMIT}, Since: f.GetSince()}
		if !proto.Equal(f, want) {
			t.Errorf("filter %v, want %v", f, want)
		}
		if s := f.GetSince().AsTime(); s.Before(now.Add(-time.Hour-time.Minute)) || s.After(time.Now().Add(-time.Hour)) {
			t.Errorf("since %v, want an hour ago", s)
		}
	})

	t.Run("wide", func(t *testing.T) {
		out, errOut, code := run(t, "", "warnings", "--server", addr, "--insecure", "-o", "wide")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		for _, want := range []string{"SUMMARY", "pod:" + xPodUID + "/" + ctrID('a') + " (burstable)",
			"container api (pod shop/cart-7d9) is near its 64.0 MiB limit: working set 60.0 MiB (93%)",
			now.Add(-4 * time.Minute).UTC().Format("2006-01-02T15:04:05Z")} {
			if !strings.Contains(out, want) {
				t.Errorf("wide lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("json", func(t *testing.T) {
		out, errOut, code := run(t, "", "warnings", "--server", addr, "--insecure", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		evs, err := clitest.ReadEvents(strings.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if len(evs) != len(q.events) {
			t.Fatalf("%d events, want %d", len(evs), len(q.events))
		}
		for i, e := range evs {
			if !proto.Equal(e, q.events[i]) {
				t.Errorf("event %d: %v, want %v", i, e, q.events[i])
			}
		}
		if !strings.Contains(out, `"warning":{"warning_kind":"WARNING_KIND_FORECAST","state":"WARNING_STATE_OPEN"`) {
			t.Errorf("not the API's JSON:\n%s", out)
		}
	})

	t.Run("all", func(t *testing.T) {
		resolved := warnEvent(14, pb.WarningKind_WARNING_KIND_NEAR_LIMIT, pb.WarningState_WARNING_STATE_RESOLVED, 5, apiWorkload(),
			&pb.WarningFigures{WorkingSetBytes: 40 * mib, LimitBytes: 64 * mib, Ratio: 0.62}, now.Add(-time.Hour))
		q := &fakeQuery{events: append(warnings(now), resolved)}
		out, errOut, code := run(t, "", "warnings", "--server", startFake(t, q), "--insecure", "--all")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		lists, _ := q.requests()
		if lists[0].GetOpenWarningsOnly() {
			t.Errorf("--all asked for open warnings only")
		}
		if !strings.Contains(out, "STATE") || strings.Count(out, " open") != 3 || !strings.Contains(out, "resolved (cleared)") ||
			!strings.Contains(out, now.Add(-time.Hour).UTC().Format("2006-01-02T15:04:05Z")) {
			t.Errorf("--all:\n%s", out)
		}
	})

	t.Run("none", func(t *testing.T) {
		out, errOut, code := run(t, "", "warnings", "--server", startFake(t, &fakeQuery{}), "--insecure")
		if code != 0 || out != "" || !strings.Contains(errOut, "no open warnings: nothing is at risk now") {
			t.Errorf("exit %d, out %q, err %q", code, out, errOut)
		}
	})
}

// lineWriter is a writer that cancels a context once what was written
// holds a string.
type lineWriter struct {
	mu     sync.Mutex
	b      bytes.Buffer
	until  string
	cancel context.CancelFunc
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b.Write(p)
	if strings.Contains(w.b.String(), w.until) {
		w.cancel()
	}
	return len(p), nil
}

func (w *lineWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

func TestWarningsWatch(t *testing.T) {
	now := time.Now()
	list := warnings(now)
	opened := warnEvent(20, pb.WarningKind_WARNING_KIND_NODE_LOW, pb.WarningState_WARNING_STATE_OPEN, 0, nil,
		&pb.WarningFigures{MemAvailableBytes: 180 * mib, MemTotalBytes: 2048 * mib}, now)
	updated := proto.Clone(list[1]).(*pb.Event)
	updated.Revision = 1
	resolved := warnEvent(11, pb.WarningKind_WARNING_KIND_FORECAST, pb.WarningState_WARNING_STATE_RESOLVED, 4, apiWorkload(),
		&pb.WarningFigures{WorkingSetBytes: 20 * mib, LimitBytes: 64 * mib}, now.Add(-4*time.Minute))
	q := &fakeQuery{events: list, live: []*pb.Event{opened, updated, resolved}}
	addr := startFake(t, q)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out := &lineWriter{until: "resolved (cleared)", cancel: cancel}
	var errb bytes.Buffer
	code := Run(ctx, IO{Stdin: strings.NewReader(""), Stdout: out, Stderr: &errb, Getenv: func(string) string { return "" }},
		[]string{"warnings", "--watch", "--server", addr, "--insecure", "-n", "shop", "--kind", "near-limit"})
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	t.Logf("\n%s", out)
	var states []string
	for _, l := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if f := strings.Fields(l); len(f) > 0 && f[0] != "KIND" {
			states = append(states, f[0]+":"+f[len(f)-1])
		}
	}
	want := "forecast:open near-limit:open pressure:open node-low:opened near-limit:updated forecast:(cleared)"
	if got := strings.Join(states, " "); got != want {
		t.Errorf("rows %q, want %q", got, want)
	}
	lists, watches := q.requests()
	if len(lists) != 1 || !lists[0].GetOpenWarningsOnly() || len(watches) != 1 {
		t.Fatalf("lists %v, watches %v", lists, watches)
	}
	// The watch must see resolutions: it does not ask for open ones only.
	w := watches[0]
	if w.GetOpenWarningsOnly() || w.GetNamespace() != "shop" || len(w.GetWarningKinds()) != 1 || w.GetTypes()[0] != "warning" {
		t.Errorf("watch filter %v", w)
	}
}

func TestWarningsUsage(t *testing.T) {
	srv := []string{"--server", "127.0.0.1:1", "--insecure"}
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"warnings", "--kind", "near-limit,bogus"}, `--kind "bogus": want near-limit, forecast, limit-reclaim, pressure, node-low`},
		{[]string{"warnings", "--since", "yesterday"}, "--since: want a duration"},
		{[]string{"warnings", "--limit", "-1"}, "--limit -1"},
		{[]string{"warnings", "-o", "yaml"}, "-o must be table, wide or json"},
		{[]string{"warnings", "stray"}, `unknown command "stray"`},
		{[]string{"warnings", "--collateral"}, "unknown flag: --collateral"},
	} {
		_, errOut, code := run(t, "", append(tc.args, srv...)...)
		if code != 2 || !strings.Contains(errOut, tc.says) {
			t.Errorf("%q: exit %d, stderr %q; want 2 saying %q", tc.args, code, errOut, tc.says)
		}
	}
	if _, errOut, code := run(t, "", "warnings"); code != 2 || !strings.Contains(errOut, "no aggregator") {
		t.Errorf("no server: exit %d, %s", code, errOut)
	}
	if _, errOut, code := run(t, "", append([]string{"warnings"}, srv...)...); code != 1 || !strings.Contains(errOut, "list warnings") {
		t.Errorf("a closed port: exit %d, %s", code, errOut)
	}
}

func TestWarningsCompletion(t *testing.T) {
	out, errOut, code := run(t, "", "__complete", "warnings", "--kind", "near-limit,f")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{"near-limit,forecast\n", "near-limit,node-low\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("completion lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = run(t, "", "__complete", "warn")
	if !strings.Contains(out, "warnings\t") {
		t.Errorf("the command does not complete:\n%s", out)
	}
}

// Warnings among the events: `oomctl events` lists them by kind with their
// sentence, from the real store, beside the kills.
func TestEventsWithWarnings(t *testing.T) {
	now := time.Now()
	evs := append(storyEvents(t), warnings(now)...)
	for _, e := range evs {
		e.Id = ""
	}
	addr := startAggregator(t, evs)
	out, errOut, code := run(t, "", "events", "--server", addr, "--insecure", "--since", "1h")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Logf("\n%s", out)
	for _, want := range []string{"warning:forecast", "shop/cart-7d9/api", "container api (pod shop/cart-7d9) will reach its 64.0 MiB limit in about 38s",
		"warning:pressure", "(node)", "the node is stalled on memory"} {
		if !strings.Contains(out, want) {
			t.Errorf("events lack %q", want)
		}
	}
	q := &fakeQuery{events: warnings(now)}
	out, errOut, code = run(t, "", "events", "--type", "warning,oom", "--server", startFake(t, q), "--insecure")
	if code != 0 || strings.Count(out, "warning:") != 3 {
		t.Errorf("events --type warning: exit %d %s\n%s", code, errOut, out)
	}
	if lists, _ := q.requests(); strings.Join(lists[0].GetTypes(), ",") != "warning,oom" {
		t.Errorf("types %q", lists[0].GetTypes())
	}
}

// The warnings before a kill in explain's story: under the exit the kill
// explains and under a kill with no exit record; a story's other entries
// read as before.
func TestExplainWarnings(t *testing.T) {
	evs := storyEvents(t)
	var apiExit *pb.Event
	for _, e := range evs {
		o := e.GetOom()
		switch {
		case o != nil && e.GetSeq() == 359:
			cg := o.GetVictims()[0].GetWorkload().GetCgroup()
			o.PrecedingWarnings = []*pb.PrecedingWarning{
				{EventId: xNode + "/" + xBoot + "/warning/77", WarningKind: pb.WarningKind_WARNING_KIND_NEAR_LIMIT, Role: "victim", Cgroup: cg,
					Since: timestamppb.New(t0.Add(-90 * time.Second)), Lead: durpb.New(90 * time.Second),
					Figures: &pb.WarningFigures{WorkingSetBytes: 22 * mib, LimitBytes: 24 * mib, Ratio: 0.93}},
				{EventId: xNode + "/" + xBoot + "/warning/76", WarningKind: pb.WarningKind_WARNING_KIND_FORECAST, Role: "victim", Cgroup: cg,
					Since: timestamppb.New(t0.Add(-252 * time.Second)), Lead: durpb.New(252 * time.Second),
					ResolvedAt: timestamppb.New(t0.Add(-20 * time.Second)),
					Figures: &pb.WarningFigures{WorkingSetBytes: 12 * mib, LimitBytes: 24 * mib, Ratio: 0.5, GrowthBytesPerSecond: 48 << 10,
						TimeLeft: durpb.New(4 * time.Minute)}},
			}
		case o != nil && e.GetSeq() == 600:
			o.PrecedingWarnings = []*pb.PrecedingWarning{{WarningKind: pb.WarningKind_WARNING_KIND_NODE_LOW, Role: "node",
				Lead: durpb.New(30 * time.Second), Figures: &pb.WarningFigures{MemAvailableBytes: 90 * mib, MemTotalBytes: 2048 * mib}}}
		case e.GetExit().GetOomEventId() != "" && e.GetExit().GetWorkload().GetContainerName() == "api":
			apiExit = e
		}
	}
	addr := startAggregator(t, evs)
	out, errOut, code := run(t, "", "explain", "cart-7d9", "-n", "shop", "--server", addr, "--insecure")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Logf("\n%s", out)
	want := []string{
		"[oom limit/container]\n  The container's memory limit was hit",
		"\n  Warned 30s before: node-low (node).\n" +
			"      -30s     node-low      the node is low on memory: 90.0 MiB available of 2.0 GiB (opened)\n",
		"[not-oom]\n  Container worker of pod shop/cart-7d9 exited with code 137 (Error): it was killed with SIGKILL, but the kernel logged no OOM kill",
		"[oom-limit]\n  Container api of pod shop/cart-7d9 exited with code 137 (OOMKilled)",
		"\n  Warned 4m12s before: forecast, near-limit 93%.\n" +
			"      -4m12s   forecast      container api (pod shop/cart-7d9) will reach its 24.0 MiB limit in about 4m0s: working set 12.0 MiB (50%), growing 48.0 KiB/s (opened; resolved 20s before the kill)\n" +
			"      -1m30s   near-limit    container api (pod shop/cart-7d9) is near its 24.0 MiB limit: working set 22.0 MiB (93%) (opened)\n" +
			"  Kernel log (node-a/" + xBoot + "/oom/359):\n",
	}
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Fatalf("output lacks, after offset %d:\n%s", at, w)
		}
		at += i + len(w)
	}
	if strings.Count(out, "Warned") != 2 {
		t.Errorf("warnings told %d times, want 2", strings.Count(out, "Warned"))
	}

	t.Run("by event ID", func(t *testing.T) {
		out, errOut, code := run(t, "", "explain", apiExit.GetId(), "--server", addr, "--insecure")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.HasPrefix(out, "Pod shop/cart-7d9 (uid "+xPodUID+"): 1 exit, newest first.") || !strings.Contains(out, "[oom-limit]") ||
			!strings.Contains(out, "  Warned 4m12s before: forecast, near-limit 93%.\n") {
			t.Errorf("explain %s:\n%s", apiExit.GetId(), out)
		}
		out, _, code = run(t, "", "explain", xNode+"/"+xBoot+"/oom/600", "--server", addr, "--insecure")
		if code != 0 || !strings.Contains(out, "1 OOM kill with no exit record") || !strings.Contains(out, "Warned 30s before: node-low (node).") {
			t.Errorf("explain the kill:\n%s", out)
		}
		_, errOut, code = run(t, "", "explain", xNode+"/"+xBoot+"/oom/999", "--server", addr, "--insecure")
		if code != 1 || !strings.Contains(errOut, "get event") {
			t.Errorf("an unknown event: exit %d: %s", code, errOut)
		}
	})
}
