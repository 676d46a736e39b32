package webui

import (
	"context"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// warningStore answers List with its warnings and keeps the filters: which
// warnings the store selects by open_warnings_only and warning_kinds is
// package store's business; this asserts what the page asks and shows.
type warningStore struct {
	Store
	evs []*pb.Event

	mu      sync.Mutex
	filters []*pb.EventFilter
}

func (s *warningStore) List(_ context.Context, f *pb.EventFilter, _ int, _ string) ([]*pb.Event, string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.filters = append(s.filters, f)
	return s.evs, "", nil
}

func (s *warningStore) last() *pb.EventFilter {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.filters[len(s.filters)-1]
}

// hostileWarning is a warning whose names and summary are HTML.
func hostileWarning() *pb.Event {
	m := &pb.MemoryWarning{WarningKind: pb.WarningKind_WARNING_KIND_NEAR_LIMIT, State: pb.WarningState_WARNING_STATE_OPEN,
		Workload: &pb.Workload{Cgroup: "/kubepods/x", WorkloadKind: "container", PodUid: "9a8b7c6d-1111-2222-3333-444455556666",
			Namespace: "<b>shop</b>", PodName: `cart"><script>alert(1)</script>`, ContainerName: "<img src=x onerror=alert(2)>"},
		Since:   timestamppb.New(now.Add(-4 * time.Minute)),
		Figures: &pb.WarningFigures{WorkingSetBytes: 60 << 20, LimitBytes: 64 << 20, Ratio: 0.93},
		Summary: "near <script>alert(3)</script> limit"}
	return &pb.Event{Id: "node-b/11111111-2222-3333-4444-555555555555/warning/5", Node: "node-b", BootId: "11111111-2222-3333-4444-555555555555",
		Seq: 5, Time: timestamppb.New(now.Add(-time.Minute)), Payload: &pb.Event_Warning{Warning: m}}
}

func nodeWarning() *pb.Event {
	m := &pb.MemoryWarning{WarningKind: pb.WarningKind_WARNING_KIND_NODE_LOW, State: pb.WarningState_WARNING_STATE_OPEN,
		Since: timestamppb.New(now.Add(-2 * time.Minute)), Figures: &pb.WarningFigures{MemAvailableBytes: 180 << 20, MemTotalBytes: 2 << 30}}
	m.Summary = vocab.Warning(m)
	return &pb.Event{Id: "node-b/11111111-2222-3333-4444-555555555555/warning/6", Node: "node-b", BootId: "11111111-2222-3333-4444-555555555555",
		Seq: 6, Time: timestamppb.New(now), Payload: &pb.Event_Warning{Warning: m}}
}

func TestWarningsPage(t *testing.T) {
	st := &warningStore{evs: []*pb.Event{hostileWarning(), nodeWarning()}}
	ui, err := New(st, nil, Options{Now: func() time.Time { return now }}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ui: ui, srv: httptest.NewServer(ui)}
	t.Cleanup(e.srv.Close)

	code, body, h := e.get(t, "/warnings?node=node-b&namespace=shop&kind=near-limit")
	if code != 200 || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("status %d, CSP %q", code, h.Get("Content-Security-Policy"))
	}
	f := st.last()
	if !f.GetOpenWarningsOnly() || f.GetNode() != "node-b" || f.GetNamespace() != "shop" || strings.Join(f.GetTypes(), ",") != "warning" ||
		len(f.GetWarningKinds()) != 1 || f.GetWarningKinds()[0] != pb.WarningKind_WARNING_KIND_NEAR_LIMIT {
		t.Errorf("filter %v", f)
	}
	at := 0
	for _, w := range []string{
		"<title>At risk · oomwatch</title>", `<a href="/warnings" aria-current="page">At risk</a>`, "<h1>At risk now</h1>",
		`<option value="near-limit" selected>near-limit</option>`,
		"Open warnings, newest first",
		`<span class="kind">near-limit</span>`, "node-b",
		"pod &lt;b&gt;shop&lt;/b&gt;/cart&#34;&gt;&lt;script&gt;alert(1)&lt;/script&gt; › &lt;img src=x onerror=alert(2)&gt;",
		"93% of 64.0 MiB", `<time datetime="2026-11-27T08:56:00Z">4 min ago</time>`, "near &lt;script&gt;alert(3)&lt;/script&gt; limit",
		`<span class="kind">node-low</span>`, "the node", "180.0 MiB free of 2.0 GiB", "the node is low on memory: 180.0 MiB available of 2.0 GiB",
	} {
		i := strings.Index(body[at:], w)
		if i < 0 {
			t.Fatalf("the page lacks, after offset %d, %q:\n%s", at, w, body)
		}
		at += i + len(w)
	}
	for _, bad := range []string{"<script>alert", "<img src=x", "<b>shop", "State</th>"} {
		if strings.Contains(body, bad) {
			t.Errorf("the page has %q", bad)
		}
	}

	code, body, _ = e.get(t, "/warnings?all=1")
	if code != 200 || st.last().GetOpenWarningsOnly() || !strings.Contains(body, "State</th>") || !strings.Contains(body, "<td data-label=\"State\">open</td>") {
		t.Errorf("all=1: status %d, filter %v", code, st.last())
	}
	st.evs = nil
	if _, body, _ = e.get(t, "/warnings"); !strings.Contains(body, "Nothing is at risk now") {
		t.Errorf("no warnings:\n%s", body)
	}
	for _, q := range []string{"?kind=bogus", "?all=maybe", "?pod=x", "?node=" + strings.Repeat("a", 254)} {
		if code, _, _ := e.get(t, "/warnings"+q); code != 400 {
			t.Errorf("%s: status %d, want 400", q, code)
		}
	}
}

// The incident page tells the warnings that preceded a kill: on its
// timeline and on its card, with their lead times, escaped.
func TestIncidentWarnings(t *testing.T) {
	st, err := store.Open(context.Background(), t.TempDir()+"/oomwatch.db", quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	at := time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)
	k := named(7, at)
	w := k.GetOom().GetVictims()[0].GetWorkload()
	w.ContainerName = "<i>api</i>"
	k.GetOom().PrecedingWarnings = []*pb.PrecedingWarning{
		{WarningKind: pb.WarningKind_WARNING_KIND_NEAR_LIMIT, Role: "victim", Cgroup: w.GetCgroup(), Lead: durationpb.New(90 * time.Second),
			Figures: &pb.WarningFigures{WorkingSetBytes: 60 << 20, LimitBytes: 64 << 20, Ratio: 0.93}},
		{WarningKind: pb.WarningKind_WARNING_KIND_FORECAST, Role: "victim", Cgroup: w.GetCgroup(), Lead: durationpb.New(252 * time.Second),
			ResolvedAt: timestamppb.New(at.Add(-20 * time.Second)),
			Figures: &pb.WarningFigures{WorkingSetBytes: 40 << 20, LimitBytes: 64 << 20, Ratio: 0.63, GrowthBytesPerSecond: 1 << 20,
				TimeLeft: durationpb.New(40 * time.Second)}},
	}
	plain := named(8, at.Add(time.Hour))
	if _, err := st.Put(context.Background(), []*pb.Event{k, plain}); err != nil {
		t.Fatal(err)
	}
	ui, err := New(st, nil, Options{Now: func() time.Time { return now }}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	e := &env{ui: ui, srv: httptest.NewServer(ui)}
	t.Cleanup(e.srv.Close)
	code, body, _ := e.get(t, "/incidents/node-b/11111111-2222-3333-4444-555555555555/7")
	if code != 200 {
		t.Fatalf("status %d", code)
	}
	pos := 0
	for _, want := range []string{
		`<br><span class="warned">Warned 4m12s before: forecast, near-limit 93%</span></td>`,
		`<div class="warned-before"><p><strong>Warned 4m12s before: forecast, near-limit 93%.</strong></p>`,
		`<li><span class="lead">-4m12s</span> <span class="kind">forecast</span> container &lt;i&gt;api&lt;/i&gt; (pod shop/cart-7d9) will reach its 64.0 MiB limit in about 40s: working set 40.0 MiB (63%), growing 1.0 MiB/s <span class="dim">(opened; resolved 20s before the kill)</span></li>`,
		`<li><span class="lead">-1m30s</span> <span class="kind">near-limit</span> container &lt;i&gt;api&lt;/i&gt; (pod shop/cart-7d9) is near its 64.0 MiB limit: working set 60.0 MiB (93%) <span class="dim">(opened)</span></li>`,
	} {
		i := strings.Index(body[pos:], want)
		if i < 0 {
			t.Fatalf("the incident page lacks, after offset %d, %q:\n%s", pos, want, body)
		}
		pos += i + len(want)
	}
	if strings.Contains(body, "<i>api") {
		t.Errorf("a name is not escaped")
	}
	// A kill without warnings says nothing of them.
	_, body, _ = e.get(t, "/incidents/node-b/11111111-2222-3333-4444-555555555555/8")
	if strings.Contains(body, "arned") {
		t.Errorf("a kill without warnings mentions them")
	}
}

func TestLiveOfWarning(t *testing.T) {
	l := liveOf(nodeWarning())
	if l.Kind != "warning node-low" || !strings.HasPrefix(l.Victim, "the node is low on memory") {
		t.Errorf("liveOf(warning) = %+v", l)
	}
}
