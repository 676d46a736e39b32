package webui

import (
	"compress/gzip"
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/webui/webuitest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// now is the clock of every test page: an hour after the e2e scenarios.
var now = time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

// The IDs of the real events in testdata.
const (
	colBoot      = "b6bdad9f-2974-4b24-b073-f5dd2bf2b02c"
	colIncident  = "/incidents/e2e-node/" + colBoot + "/340"
	sidecarBoot  = "5233729a-539e-4e9c-b6a4-057fb663e508"
	burstablePod = "4d5e6f70-8192-4d4e-9f50-6b7c8d9e0f1a"
	bestEffort   = "3c4d5e6f-7081-4c3d-8e4f-5a6b7c8d9e0f"
)

// realEvents reads a scenario's events from testdata.
func realEvents(t testing.TB, scenario string) []*pb.Event {
	t.Helper()
	f, err := os.Open(filepath.Join("testdata", scenario+".json"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	evs, err := webuitest.ReadEvents(f)
	if err != nil {
		t.Fatalf("%s: %v", scenario, err)
	}
	return evs
}

// named is a kill on node-b with the names an agent with CRI adds: a
// container that hit its own limit.
func named(seq int64, at time.Time) *pb.Event {
	w := &pb.Workload{Cgroup: "/kubepods.slice/kubepods-burstable.slice/x", WorkloadKind: "container",
		PodUid: "9a8b7c6d-1111-2222-3333-444455556666", ContainerId: strings.Repeat("ab", 32), Runtime: "containerd",
		Qos: "burstable", Namespace: "shop", PodName: "cart-7d9", ContainerName: "api", Image: "shop/cart:1.2",
		ContainerResources: &pb.Resources{MemoryLimitBytes: 64 << 20, CgroupRead: true, MemoryMaxBytes: 64 << 20, MemoryPeakBytes: 64 << 20}}
	p := &pb.Process{Pid: int32(4000 + seq), Comm: "java", RssBytes: proto.Int64(60 << 20), OomScoreAdj: proto.Int32(968), Workload: w}
	return &pb.Event{Node: "node-b", BootId: "11111111-2222-3333-4444-555555555555", Seq: seq, Time: timestamppb.New(at),
		Payload: &pb.Event_Oom{Oom: &pb.OOMKill{
			Kind: "limit", LimitScope: "container", Constraint: "CONSTRAINT_MEMCG", OomMemcg: w.Cgroup, Complete: true,
			Victims: []*pb.Process{p}, Trigger: p, TopConsumers: []*pb.Process{p},
			Culprit:         &pb.Culprit{Pid: p.Pid, Comm: "java", RssBytes: proto.Int64(60 << 20), Tasks: 1, Source: "task-dump", Workload: w},
			MemcgUsageBytes: proto.Int64(64 << 20), MemcgLimitBytes: proto.Int64(64 << 20),
			Reason: "The container's memory limit was hit; the kernel killed java <script>alert(1)</script>.",
			Lines:  []string{"java invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=968", "<b>not bold</b>", "one line\nnot two"},
		}}}
}

// exitOfNamed is the runtime's exit of named(seq)'s container.
func exitOfNamed(seq int64, at time.Time) *pb.Event {
	k := named(seq, at)
	return &pb.Event{Node: "node-b", BootId: k.BootId, Seq: 900000 + seq, Time: timestamppb.New(at.Add(time.Second)),
		Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{Workload: k.GetOom().GetVictims()[0].GetWorkload(), ExitCode: 137,
			RuntimeReason: "OOMKilled", Verdict: "oom-limit", Explanation: "the container hit its own limit", OomEventId: eventid.String(k)}}}
}

// fakeFeed is a Feed whose events the test publishes.
type fakeFeed struct {
	mu   sync.Mutex
	subs []*fakeSub
	err  error
}

type fakeSub struct {
	f                      *pb.EventFilter
	ready, behind, closing chan struct{}
	mu                     sync.Mutex
	q                      []*pb.Event
	closed                 bool
}

func (f *fakeFeed) Subscribe(flt *pb.EventFilter, buffer int) (Subscription, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	s := &fakeSub{f: flt, ready: make(chan struct{}, 1), behind: make(chan struct{}), closing: make(chan struct{})}
	f.subs = append(f.subs, s)
	return s, nil
}

// open returns the subscriptions not closed.
func (f *fakeFeed) open() []*fakeSub {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []*fakeSub
	for _, s := range f.subs {
		s.mu.Lock()
		if !s.closed {
			out = append(out, s)
		}
		s.mu.Unlock()
	}
	return out
}

func (f *fakeFeed) publish(evs ...*pb.Event) {
	for _, s := range f.open() {
		s.mu.Lock()
		for _, e := range evs {
			if store.Matches(s.f, e) {
				s.q = append(s.q, e)
			}
		}
		s.mu.Unlock()
		select {
		case s.ready <- struct{}{}:
		default:
		}
	}
}

func (s *fakeSub) Ready() <-chan struct{}   { return s.ready }
func (s *fakeSub) Behind() <-chan struct{}  { return s.behind }
func (s *fakeSub) Closing() <-chan struct{} { return s.closing }
func (s *fakeSub) Take() []*pb.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.q
	s.q = nil
	return q
}
func (s *fakeSub) Close() {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
}

// env is the pages over a real store holding the two real scenarios, a
// named kill with its exit on node-b, and a storm of 30 kills on node-c.
type env struct {
	st   *store.Store
	ui   *UI
	srv  *httptest.Server
	feed *fakeFeed
}

func newEnv(t testing.TB, o Options) *env {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "oomwatch.db"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	evs := append(realEvents(t, "node-besteffort-collateral"), realEvents(t, "pod-limit-sidecar")...)
	at := time.Date(2026, 11, 27, 8, 30, 0, 0, time.UTC)
	evs = append(evs, named(7, at), exitOfNamed(7, at))
	// A culprit named for its request, not its size.
	ranked := named(8, at.Add(10*time.Minute))
	ranked.GetOom().Culprit.RankedBy = "over-request"
	evs = append(evs, ranked)
	for i := range 30 {
		e := named(int64(100+i), at.Add(-time.Hour+time.Duration(i)*time.Second))
		e.Node, e.BootId = "node-c", "22222222-2222-3333-4444-555555555555"
		e.GetOom().Victims[0].Workload = &pb.Workload{Cgroup: "/system.slice/batch.service", WorkloadKind: "system-service", Unit: "batch.service"}
		e.GetOom().Kind, e.GetOom().LimitScope = "limit", "other"
		evs = append(evs, e)
	}
	if _, err := st.Put(context.Background(), evs); err != nil {
		t.Fatal(err)
	}
	if o.Now == nil {
		o.Now = func() time.Time { return now }
	}
	e := &env{st: st, feed: &fakeFeed{}}
	e.ui, err = New(st, e.feed, o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(e.ui)
	t.Cleanup(e.srv.Close)
	return e
}

// get fetches a path without following redirects.
func (e *env) get(t *testing.T, path string) (int, string, http.Header) {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

func TestPages(t *testing.T) {
	e := newEnv(t, Options{KillsPerPage: 10})
	sidecar := "/incidents/e2e-node/" + sidecarBoot + "/339"
	named := "/incidents/node-b/11111111-2222-3333-4444-555555555555/7"
	storm := "/incidents/node-c/22222222-2222-3333-4444-555555555555/100"
	tests := []struct {
		name, path string
		status     int
		// want are substrings of the body, in order; not must be absent.
		want, not []string
		location  string
	}{
		{name: "incidents", path: "/", status: 200, want: []string{
			`<html lang="en">`, "<title>Incidents · oomwatch</title>", "<h1>Memory-pressure incidents</h1>",
			`data-live="/live"`,
			// Newest first: node-b 08:30, then the collateral scenario
			// 07:53, the sidecar 07:34, node-c 07:30.
			`href="` + named + `"`, "pod shop/cart-7d9 › api",
			`href="` + colIncident + `"`, "2026-11-27 07:53:40 UTC", "1 h ago", "node-level", ">2<", "1 collateral", "pod 4d5e6f70-8192-4d4e-9f50-6b7c8d9e0f1a › c2c2c2c2c2c2", "Burstable", "233.8 MiB",
			`href="` + sidecar + `"`, "limit",
			`href="` + storm + `"`, ">30<"}},
		{name: "kind node", path: "/?kind=node", status: 200, want: []string{`<option value="node" selected>`, colIncident}, not: []string{sidecar, named, storm, "data-live=\"/live\""}},
		{name: "namespace", path: "/?namespace=shop", status: 200, want: []string{`value="shop"`, named}, not: []string{colIncident, sidecar}},
		{name: "node", path: "/?node=e2e-node", status: 200, want: []string{colIncident, sidecar}, not: []string{named, storm}},
		{name: "collateral", path: "/?collateral=1", status: 200, want: []string{"checked", colIncident, sidecar}, not: []string{named, storm}},
		{name: "nothing matches", path: "/?node=nowhere", status: 200, want: []string{"No incidents match these filters."}},
		{name: "live rows only", path: "/?partial=1", status: 200, want: []string{"<table", colIncident}, not: []string{"<html", "<form"}},
		{name: "unknown kind", path: "/?kind=bogus", status: 400, want: []string{"400 Bad Request", "Unknown kind &#34;bogus&#34;"}},
		{name: "unknown parameter", path: "/?nod=x", status: 400, want: []string{"Unknown query parameter &#34;nod&#34;"}},
		{name: "twice", path: "/?node=a&node=b", status: 400, want: []string{"given 2 times"}},
		{name: "bad collateral", path: "/?collateral=maybe", status: 400},
		{name: "forged page", path: "/?page=AAAA", status: 400, want: []string{"page parameter"}},
		{name: "long node", path: "/?node=" + strings.Repeat("n", 300), status: 400},
		{name: "control character", path: "/?node=a%00b", status: 400},
		{name: "malformed query", path: "/?node=%zz", status: 400, want: []string{"malformed"}},

		{name: "incident", path: colIncident, status: 200, want: []string{
			"<title>Node e2e-node ran out of memory, 2026-11-27 07:53:40.772 UTC · oomwatch</title>",
			"<h1>Node e2e-node ran out of memory</h1>",
			"2 kills in 93 ms, 1 collateral. The largest memory holder was pod 4d5e6f70-8192-4d4e-9f50-6b7c8d9e0f1a › c2c2c2c2c2c2 (Burstable) with 233.8 MiB.",
			"Timeline", `href="#kill-340"`, `href="#kill-395"`,
			`id="kill-340"`, "Kill 1: hog (pid 212) in pod 3c4d5e6f-7081-4c3d-8e4f-5a6b7c8d9e0f › c1c1c1c1c1c1",
			"<strong>Collateral:</strong> victim of", "pod 4d5e6f70-8192-4d4e-9f50-6b7c8d9e0f1a › c2c2c2c2c2c2", "chosen for its oom_score_adj rather than its size",
			"Memory held per pod and host workload at kill time",
			// The culprit's pod first: it is also the trigger.
			`/pods/` + burstablePod, "trigger</span>", "culprit</span>", "223.7 MiB",
			"the root cgroup", "49.0 MiB", "aggregator (pid 97), agent (pid 189), sh (pid 95)",
			`/pods/` + bestEffort, "victim</span>", "11.9 MiB", "no request, no limit (BestEffort)", "cgroup: peak 10.5 MiB, after the kill 16.0 KiB",
			"The node has 343.8 MiB of memory",
			`id="kill-340-kernel"`, "/kills/e2e-node/" + colBoot + "/340/kernel.txt", "Out of memory: Killed process 212 (hog)",
			`id="kill-395"`, "not collateral"}},
		{name: "pod-scope incident", path: sidecar, status: 200, want: []string{
			"Memory limit hit on e2e-node", "limit · pod", "Memory held per container of the pod at kill time", "b1b1b1b1b1b1", "culprit</span>", "b2b2b2b2b2b2", "victim</span>"}},
		{name: "escaped", path: named, status: 200, want: []string{"&lt;script&gt;alert(1)&lt;/script&gt;", "usage 64.0 MiB of limit 64.0 MiB", "&lt;b&gt;not bold&lt;/b&gt;", `one line\x0anot two`},
			not: []string{"<script>alert", "<b>not bold", "Memory held per"}},
		{name: "culprit over its request", path: "/incidents/node-b/11111111-2222-3333-4444-555555555555/8", status: 200,
			want: []string{"named for being furthest over its memory request"}},
		{name: "storm page 1", path: storm, status: 200, want: []string{`href="#kill-100"`, `href="` + storm + `?page=2#kill-110"`, "Kills in detail, page 1 of 3", `id="kill-100"`, `id="kill-109"`, `rel="next"`},
			not: []string{`id="kill-110"`}},
		{name: "storm page 3", path: storm + "?page=3", status: 200, want: []string{`href="` + storm + `#kill-100"`, "page 3 of 3", `id="kill-120"`, `rel="prev"`},
			not: []string{`id="kill-119"`}},
		{name: "storm page 4", path: storm + "?page=4", status: 400, want: []string{"3 page(s)"}},
		{name: "page zero", path: storm + "?page=0", status: 400},
		{name: "later kill of an incident", path: "/incidents/e2e-node/" + colBoot + "/395", status: 302, location: colIncident + "#kill-395"},
		{name: "kill", path: "/kills/e2e-node/" + colBoot + "/395", status: 302, location: colIncident + "#kill-395"},
		{name: "kill on page 2", path: "/kills/node-c/22222222-2222-3333-4444-555555555555/115", status: 302, location: storm + "?page=2#kill-115"},
		{name: "kernel text", path: "/kills/e2e-node/" + colBoot + "/340/kernel.txt", status: 200,
			want: []string{"hog invoked oom-killer", "\nOut of memory: Killed process 212 (hog)"}, not: []string{"<html"}},
		{name: "unknown incident", path: "/incidents/e2e-node/" + colBoot + "/1", status: 404, want: []string{"404 Not Found", "No incident"}},
		{name: "not a number", path: "/incidents/e2e-node/" + colBoot + "/x", status: 404},
		{name: "unknown kill", path: "/kills/e2e-node/" + colBoot + "/1/kernel.txt", status: 404},
		{name: "kernel text escaped", path: "/kills/node-b/11111111-2222-3333-4444-555555555555/7/kernel.txt", status: 200,
			want: []string{"<b>not bold</b>\none line\\x0anot two\n"}},

		{name: "pod as victim", path: "/pods/" + bestEffort, status: 200, want: []string{
			"<h1>Pod " + bestEffort + "</h1>", "BestEffort", "c1c1c1c1c1c1", `data-live="/live?pod=` + bestEffort + `"`,
			"/kills/e2e-node/" + colBoot + "/340", "victim</span>", "collateral"},
			not: []string{"/kills/e2e-node/" + colBoot + "/395\""}},
		{name: "pod as trigger and culprit", path: "/pods/" + burstablePod, status: 200, want: []string{
			"/kills/e2e-node/" + colBoot + "/395", "victim</span> <span class=\"role role-trigger\">trigger</span> <span class=\"role role-culprit\">culprit</span>",
			"/kills/e2e-node/" + colBoot + "/340", "trigger</span> <span class=\"role role-culprit\">culprit</span>"}},
		{name: "pod by name", path: "/pods/cart-7d9?namespace=shop", status: 200, want: []string{"<h1>Pod shop/cart-7d9</h1>", "Container exits", "oom-limit",
			`href="/kills/node-b/11111111-2222-3333-4444-555555555555/7"`}},
		{name: "pod in another namespace", path: "/pods/cart-7d9?namespace=bank", status: 404},
		{name: "unknown pod", path: "/pods/nobody", status: 404, want: []string{"No kill or exit"}},

		{name: "no page", path: "/nowhere", status: 404, want: []string{"<h1>404 Not Found</h1>"}},
		{name: "static", path: "/static/app.css", status: 200, want: []string{"--victim-bar"}},
		{name: "no static", path: "/static/nope.js", status: 404},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body, hdr := e.get(t, tt.path)
			if status != tt.status {
				t.Fatalf("status %d, want %d\n%s", status, tt.status, body)
			}
			rest := body
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					if strings.Contains(body, w) {
						t.Fatalf("%q is out of order\n%s", w, body)
					}
					t.Fatalf("no %q in\n%s", w, body)
				}
				rest = rest[i+len(w):]
			}
			for _, n := range tt.not {
				if strings.Contains(body, n) {
					t.Errorf("%q should not be there", n)
				}
			}
			if got := hdr.Get("Location"); got != tt.location {
				t.Errorf("Location %q, want %q", got, tt.location)
			}
			if status != http.StatusFound && !strings.Contains(hdr.Get("Content-Security-Policy"), "script-src 'self'") {
				t.Errorf("no Content-Security-Policy: %v", hdr)
			}
		})
	}
}

// TestGolden compares whole pages with reviewed files (go test -update
// rewrites them).
func TestGolden(t *testing.T) {
	e := newEnv(t, Options{})
	for name, path := range map[string]string{
		"incidents":                      "/",
		"incident-besteffort-collateral": colIncident,
		"pod-besteffort":                 "/pods/" + bestEffort,
	} {
		t.Run(name, func(t *testing.T) {
			status, body, _ := e.get(t, path)
			if status != http.StatusOK {
				t.Fatalf("status %d", status)
			}
			file := filepath.Join("testdata", "golden", name+".html")
			if *update {
				if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(file, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if body != string(want) {
				t.Errorf("%s differs from %s (go test -update rewrites it):\n%s", path, file, firstDiff(string(want), body))
			}
		})
	}
}

// firstDiff shows the first line that differs.
func firstDiff(want, got string) string {
	wl, gl := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := range max(len(wl), len(gl)) {
		var w, g string
		if i < len(wl) {
			w = wl[i]
		}
		if i < len(gl) {
			g = gl[i]
		}
		if w != g {
			return fmt.Sprintf("line %d:\nwant %s\n got %s", i+1, w, g)
		}
	}
	return ""
}

// panicky is a Store that panics.
type panicky struct{ Store }

func (panicky) Incidents(context.Context, *pb.EventFilter, time.Duration, int, string) ([]*pb.Incident, string, error) {
	panic("boom")
}

func TestPanicIsServerError(t *testing.T) {
	ui, err := New(panicky{}, nil, Options{}, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	rec := httptest.NewRecorder()
	ui.ServeHTTP(rec, httptest.NewRequest("GET", "/", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status %d", rec.Code)
	}
	// Without a feed, no page is live.
	rec = httptest.NewRecorder()
	ui.ServeHTTP(rec, httptest.NewRequest("GET", "/live", nil))
	if rec.Code != http.StatusNotFound {
		t.Fatalf("live without a feed: status %d", rec.Code)
	}
}

func TestMethods(t *testing.T) {
	e := newEnv(t, Options{})
	resp, err := http.Post(e.srv.URL+"/", "text/plain", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: status %d", resp.StatusCode)
	}
	// A large page is compressed for a client that takes gzip.
	req, _ := http.NewRequest("GET", e.srv.URL+"/incidents/node-c/22222222-2222-3333-4444-555555555555/100", nil)
	req.Header.Set("Accept-Encoding", "br;q=1.0, gzip;q=0.8")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q", resp.Header.Get("Content-Encoding"))
	}
	zr, err := gzip.NewReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	page, err := io.ReadAll(zr)
	resp.Body.Close()
	if err != nil || !strings.Contains(string(page), `id="kill-124"`) {
		t.Fatalf("gzip page: %v\n%.300s", err, page)
	}
	resp, err = http.Head(e.srv.URL + colIncident)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HEAD: status %d", resp.StatusCode)
	}
}

// FuzzRequest sends any address to the pages: none may fail with a server
// error or a panic (the handler turns a panic into 500).
func FuzzRequest(f *testing.F) {
	e := newEnv(f, Options{KillsPerPage: 10, Heartbeat: time.Millisecond})
	for _, seed := range []string{
		"/", "/?kind=node&collateral=1", "/?node=e2e-node&namespace=shop&page=x", colIncident, colIncident + "?page=2",
		"/incidents/node-c/22222222-2222-3333-4444-555555555555/100?page=3", "/kills/e2e-node/" + colBoot + "/395",
		"/kills/e2e-node/" + colBoot + "/340/kernel.txt", "/pods/" + bestEffort, "/pods/cart-7d9?namespace=shop&page=",
		"/live?pod=cart-7d9", "/static/app.js?v=1", "/%2e%2e/etc/passwd", "/incidents/a%2Fb/c/-1",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, target string) {
		if !strings.HasPrefix(target, "/") {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, "GET", "http://oomwatch"+target, nil)
		if err != nil {
			return
		}
		rec := httptest.NewRecorder()
		e.ui.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s: status %d\n%s", target, rec.Code, rec.Body)
		}
	})
}
