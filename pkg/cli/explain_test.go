package cli

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/aggregator"
	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/exits"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

const (
	xNode   = "node-a"
	xBoot   = "0f5d6c1e-7b7a-4c55-9a43-3f1b2c0d9e8f"
	xPodUID = "3f9a2c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"
	xOther  = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
)

// t0 is when the story starts.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func quiet() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(nopWriter{})
	return logrus.NewEntry(l)
}

type nopWriter struct{}

func (nopWriter) Write(b []byte) (int, error) { return len(b), nil }

// kill returns the i-th OOM kill of a real kernel log as the agent sends
// it, its first victim placed in pod (uid, name) container (id, name) as
// the agent's enricher names it, stamped at `at` with sequence seq.
func kill(t *testing.T, file string, i int, seq int64, at time.Time, uid, pod, id, name string) *pb.Event {
	t.Helper()
	f, err := os.Open(filepath.Join(fixtures, file))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var evs []analysis.Event
	if _, err := analysis.ReadLogYear(f, 2026, analysis.StreamOptions{Hold: time.Minute}, func(e analysis.Event) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	e := wire.FromAnalysis(xNode, xBoot, evs[i])
	e.Seq, e.Time = seq, timestamppb.New(at)
	w := e.GetOom().GetVictims()[0].GetWorkload()
	w.PodUid, w.PodName, w.Namespace, w.ContainerId, w.ContainerName = uid, pod, "shop", id, name
	return e
}

type collector struct {
	mu  sync.Mutex
	evs []*pb.Event
}

func (c *collector) Put(_ context.Context, evs ...*pb.Event) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.evs = append(c.evs, evs...)
	return nil
}

func (c *collector) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.evs)
}

type running map[string]bool

func (r running) ContainerState(_ context.Context, id string) (bool, bool) {
	v, ok := r[id]
	return v, ok
}

func ctrID(c byte) string { return strings.Repeat(string(c), 64) }

// story is what the aggregator holds for these tests: the events the
// exits package makes of real OOM kills and exits of pod shop/cart-7d9,
// and of a neighbour pod.
func storyEvents(t *testing.T) []*pb.Event {
	t.Helper()
	const (
		limit  = "debian-6.1-kmsg-v2-systemd-container-limit.kmsg"
		global = "debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg"
	)
	apiA, worker, sidecar, apiB, other := ctrID('a'), ctrID('b'), ctrID('c'), ctrID('d'), ctrID('e')
	// The kills: api at its limit (then exits), sidecar's child twice (the
	// sidecar keeps running; the second is not checked), and a neighbour
	// pod's container killed for the memory cart-7d9's sidecar held.
	kApi := kill(t, limit, 0, 359, t0, xPodUID, "cart-7d9", apiA, "api")
	kChild := kill(t, limit, 0, 500, t0.Add(2*time.Minute), xPodUID, "cart-7d9", sidecar, "sidecar")
	kOrphan := kill(t, limit, 0, 600, t0.Add(3*time.Minute), xPodUID, "cart-7d9", sidecar, "sidecar")
	kOther := kill(t, global, 0, 700, t0.Add(5*time.Minute), xOther, "search-0", other, "search")
	cw := kOther.GetOom().GetCulprit().GetWorkload()
	cw.PodUid, cw.PodName, cw.Namespace, cw.ContainerId, cw.ContainerName = xPodUID, "cart-7d9", "shop", sidecar, "sidecar"

	sink := &collector{}
	states := running{sidecar: true}
	j := exits.New(sink, states, quiet(), exits.Options{Node: xNode, BootID: xBoot, Hold: 10 * time.Millisecond, Grace: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()
	exit := func(id, name, uid, pod string, code int32, reason string, fin time.Time) cri.Container {
		return cri.Container{ID: id, Name: name, PodUID: uid, PodNamespace: "shop", PodName: pod, State: cri.StateExited,
			ExitCode: code, Reason: reason, FinishedAt: fin, MemoryLimitBytes: 24 << 20}
	}
	wait := func(n int) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); sink.len() < n; time.Sleep(time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("the joiner made %d events, want %d", sink.len(), n)
			}
		}
	}
	j.OOM(kApi)
	j.Exit(exit(apiA, "api", xPodUID, "cart-7d9", 137, "OOMKilled", t0.Add(100*time.Millisecond)))
	wait(1)
	j.Exit(exit(worker, "worker", xPodUID, "cart-7d9", 137, "Error", t0.Add(time.Minute)))
	wait(2)
	j.OOM(kChild)
	wait(3)
	// The sidecar is gone, with no exit record, when the second kill's
	// check comes: that kill stays unexplained.
	states[sidecar] = false
	j.OOM(kOrphan)
	j.Exit(exit(apiB, "api", xPodUID, "cart-7d9", 143, "Error", t0.Add(4*time.Minute)))
	wait(4)
	j.Exit(exit(other, "search", xOther, "search-0", 137, "OOMKilled", t0.Add(5*time.Minute+time.Second)))
	j.OOM(kOther)
	wait(5)
	time.Sleep(50 * time.Millisecond) // no further event comes
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if sink.len() != 5 {
		t.Fatalf("the joiner made %d events, want 5", sink.len())
	}
	return append(sink.evs, kApi, kChild, kOrphan, kOther)
}

// startAggregator serves events from the real store and server on 127.0.0.1:0
// and returns its address.
func startAggregator(t *testing.T, events []*pb.Event) string {
	t.Helper()
	st, err := store.Open(context.Background(), filepath.Join(t.TempDir(), "oomwatch.db"), quiet())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Put(context.Background(), events); err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- aggregator.New(st, aggregator.Config{}, quiet()).Serve(ctx, lis) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
		st.Close()
	})
	return lis.Addr().String()
}

func TestExplainStory(t *testing.T) {
	addr := startAggregator(t, storyEvents(t))
	out, errOut, code := run(t, "", "explain", "cart-7d9", "-n", "shop", "--server", addr, "--insecure")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	t.Logf("\n%s", out)
	// Newest first; the kills an exit explains are not repeated; the
	// neighbour's exit and kill, where cart-7d9 only held the memory, are
	// not part of this pod's story.
	want := []string{
		"Pod shop/cart-7d9 (uid " + xPodUID + "): 4 exits and 1 OOM kill with no exit record, newest first.",
		"\n2026-03-01T12:04:00Z on node-a: container api exited with code 143 [graceful]\n",
		"  Container api of pod shop/cart-7d9 exited with code 143 (Error): it ended on SIGTERM",
		"\n2026-03-01T12:03:00Z on node-a: OOM kill of hog (pid 93) in container sidecar, no exit recorded [oom limit/container]\n",
		"  The container's memory limit was hit",
		"  Kernel log (node-a/" + xBoot + "/oom/600):\n      hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=937\n",
		"\n2026-03-01T12:02:00Z on node-a: OOM kill in container sidecar, which kept running [oom-child]\n",
		"  Container sidecar of pod shop/cart-7d9 is still running: the kernel's OOM killer killed hog (pid 93), not its main process",
		"  Kernel log (node-a/" + xBoot + "/oom/500):\n",
		"\n2026-03-01T12:01:00Z on node-a: container worker exited with code 137 [not-oom]\n",
		"  Container worker of pod shop/cart-7d9 exited with code 137 (Error): it was killed with SIGKILL, but the kernel logged no OOM kill",
		"\n2026-03-01T12:00:00Z on node-a: container api exited with code 137 [oom-limit]\n",
		"  Container api of pod shop/cart-7d9 exited with code 137 (OOMKilled): the kernel's OOM killer killed hog (pid 93) because the container hit its own memory limit of 24 MiB.\n",
		"  Kernel log (node-a/" + xBoot + "/oom/359):\n",
		"      Memory cgroup out of memory: Killed process 93 (hog)",
	}
	at := 0
	for _, w := range want {
		i := strings.Index(out[at:], w)
		if i < 0 {
			t.Fatalf("output lacks, after offset %d:\n%s", at, w)
		}
		at += i + len(w)
	}
	for _, not := range []string{"search", "Call Trace"} {
		if strings.Contains(out, not) {
			t.Errorf("output has %q", not)
		}
	}
	if strings.Count(out, "oom/359)") != 1 {
		t.Errorf("the kill the api exit explains is printed again")
	}

	t.Run("by uid and container", func(t *testing.T) {
		out, errOut, code := run(t, "", "explain", xPodUID, "sidecar", "--server", addr, "--insecure")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		if !strings.HasPrefix(out, "Pod shop/cart-7d9, container sidecar: 1 exit and 1 OOM kill with no exit record") ||
			strings.Contains(out, "container api") || strings.Contains(out, "worker") {
			t.Errorf("output:\n%s", out)
		}
		out, _, _ = run(t, "", "explain", "cart-7d9", ctrID('b')[:12], "--server", addr, "--insecure", "-o", "wide")
		if !strings.Contains(out, "container worker ("+ctrID('b')+") exited with code 137 [not-oom]") || strings.Count(out, " on node-a: ") != 1 {
			t.Errorf("by container ID:\n%s", out)
		}
	})

	t.Run("json", func(t *testing.T) {
		out, errOut, code := run(t, "", "explain", "cart-7d9", "--server", addr, "--insecure", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		// Each entry's event, read as the Kubernetes tests read it.
		evs, err := clitest.ReadEvents(strings.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			x, o := e.GetExit(), e.GetOom()
			w, why := x.GetWorkload(), x.GetExplanation()
			if o != nil {
				// The kills of a story are those with a victim in the pod.
				w, why = o.GetVictims()[0].GetWorkload(), o.GetReason()
			}
			got = append(got, eventid.TypeOf(e)+":"+wire.Why(x)+":"+w.GetContainerName())
			if w.GetPodName() != "cart-7d9" || w.GetPodUid() != xPodUID || why == "" || e.GetId() == "" || e.GetTime() == nil {
				t.Errorf("event %v", e)
			}
			if wire.Why(x) == exits.VerdictOOMLimit && (x.GetExitCode() != 137 || len(x.GetEvidence()) != 4 ||
				x.GetOomEventId() != "node-a/"+xBoot+"/oom/359" || x.GetFinishedAt() == nil || wire.ExitVerdict(x) != analysis.CollateralNo) {
				t.Errorf("oom-limit exit %v", x)
			}
			if o != nil && (e.GetId() != "node-a/"+xBoot+"/oom/600" || len(exits.Evidence(o.GetLines())) == 0) {
				t.Errorf("the kill with no exit record: %s, %d kernel lines", e.GetId(), len(o.GetLines()))
			}
		}
		// oom-child is stamped with its kill's time, 12:02; the kill with
		// no exit record is 12:03.
		want := "exit:graceful:api oom::sidecar exit:oom-child:sidecar exit:not-oom:worker exit:oom-limit:api"
		if strings.Join(got, " ") != want {
			t.Errorf("events %q, want %q", strings.Join(got, " "), want)
		}
		if !strings.Contains(out, `"finished_at":"2026-03-01T12:00:00.100Z"`) {
			t.Errorf("finished_at not an RFC 3339 time:\n%s", out)
		}
	})

	t.Run("events by verdict", func(t *testing.T) {
		out, errOut, code := run(t, "", "events", "--verdict", "oom-limit,not-oom", "--server", addr, "--insecure", "-o", "json")
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		evs, err := clitest.ReadEvents(strings.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range evs {
			got = append(got, eventid.TypeOf(e)+":"+wire.Why(e.GetExit())+":"+e.GetExit().GetWorkload().GetPodName())
		}
		if g := strings.Join(got, " "); g != "exit:not-oom:cart-7d9 exit:oom-limit:cart-7d9" {
			t.Errorf("events --verdict oom-limit,not-oom: %s", g)
		}
		out, _, code = run(t, "", "events", "--verdict", "oom-node", "--server", addr, "--insecure")
		if code != 0 || !strings.Contains(out, "exit:oom-node") || !strings.Contains(out, "shop/search-0/search exit 137") ||
			strings.Contains(out, "not-oom") {
			t.Errorf("events --verdict oom-node:\n%s", out)
		}
	})

	t.Run("nothing recorded", func(t *testing.T) {
		out, errOut, code := run(t, "", "explain", "nginx-1", "--server", addr, "--insecure")
		if code != 0 || out != "" || !strings.Contains(errOut, "no exits or OOM kills recorded for pod nginx-1") {
			t.Errorf("exit %d, out %q, err %q", code, out, errOut)
		}
	})
}

func TestExplainUsage(t *testing.T) {
	for _, args := range [][]string{
		{"explain"},
		{"explain", "--server", "127.0.0.1:1", "--insecure"},
		{"explain", "a", "b", "c", "--server", "127.0.0.1:1", "--insecure"},
		{"explain", "cart-7d9"},                                                             // no server
		{"explain", "cart-7d9", "--server", "127.0.0.1:1"},                                  // no transport
		{"explain", "cart-7d9", "--pod", "other", "--server", "127.0.0.1:1", "--insecure"},  // two pods
		{"explain", "cart-7d9", "--type", "bogus", "--server", "127.0.0.1:1", "--insecure"}, // bad type
		{"explain", "cart-7d9", "-o", "yaml", "--server", "127.0.0.1:1", "--insecure"},      // bad output
	} {
		if _, errOut, code := run(t, "", args...); code != 2 {
			t.Errorf("%q: exit %d, want 2: %s", args, code, errOut)
		}
	}
	// The server comes from the environment too.
	var out, errb strings.Builder
	code := Run(context.Background(), IO{Stdin: strings.NewReader(""), Stdout: &out, Stderr: &errb, Getenv: func(k string) string {
		return map[string]string{"OOMWATCH_SERVER": "127.0.0.1:1", "OOMWATCH_INSECURE": "true"}[k]
	}}, []string{"explain", "cart-7d9"})
	if code != 1 || !strings.Contains(errb.String(), "list events") {
		t.Errorf("with OOMWATCH_SERVER of a closed port: exit %d: %s", code, errb.String())
	}
}
