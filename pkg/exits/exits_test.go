package exits

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	node   = "node-a"
	bootID = "0f5d6c1e-7b7a-4c55-9a43-3f1b2c0d9e8f"
)

// base is the wall-clock time of the kills in these tests.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// The real kernel logs of package analysis.
const fixtureDir = "../analysis/testdata"

var (
	fixturesMu sync.Mutex
	fixtures   = map[string][]*pb.Event{}
)

// fixture returns a copy of the i-th OOM kill of a real kernel log, as the
// agent puts it (wire.FromAnalysis), stamped at `at` as the live kernel
// source stamps it. Logs without sequence numbers get 1000+i, as a live
// log would have some.
func fixture(t *testing.T, name string, i int, at time.Time) *pb.Event {
	t.Helper()
	fixturesMu.Lock()
	evs, ok := fixtures[name]
	if !ok {
		f, err := os.Open(filepath.Join(fixtureDir, name))
		if err != nil {
			fixturesMu.Unlock()
			t.Fatal(err)
		}
		_, err = analysis.ReadLogYear(f, 2026, analysis.StreamOptions{Hold: time.Minute}, func(e analysis.Event) {
			evs = append(evs, wire.FromAnalysis(node, bootID, e))
		})
		f.Close()
		if err != nil {
			fixturesMu.Unlock()
			t.Fatalf("%s: %v", name, err)
		}
		fixtures[name] = evs
	}
	fixturesMu.Unlock()
	if i >= len(evs) {
		t.Fatalf("%s has %d kills, not %d", name, len(evs), i+1)
	}
	e := proto.Clone(evs[i]).(*pb.Event)
	if e.Seq < 0 {
		e.Seq = 1000 + int64(i)
	}
	e.Time = timestamppb.New(at)
	return e
}

// victimContainer returns the container ID of an event's first victim.
func victimContainer(t *testing.T, e *pb.Event) *pb.Workload {
	t.Helper()
	w := e.GetOom().GetVictims()[0].GetWorkload()
	if w.GetContainerId() == "" {
		t.Fatalf("fixture victim has no container: %v", w)
	}
	return w
}

// exitOf is the runtime's view of the exit of the container w.
func exitOf(w *pb.Workload, code int32, reason string, fin time.Time) cri.Container {
	return cri.Container{
		ID: w.GetContainerId(), Name: "api", PodUID: w.GetPodUid(), PodNamespace: "shop", PodName: "cart-7d9",
		Image: "oomwatch.test/hog:1", State: cri.StateExited, ExitCode: code, Reason: reason,
		StartedAt: fin.Add(-time.Minute), FinishedAt: fin, MemoryLimitBytes: 32 << 20,
	}
}

func newJoiner(t *testing.T, states States, opts Options) (*Joiner, *fakeSink, *fakeClock) {
	t.Helper()
	clk := &fakeClock{t: base}
	opts.Node, opts.BootID, opts.Now = node, bootID, clk.Now
	sink := &fakeSink{}
	if states == nil {
		states = &fakeStates{}
	}
	return New(sink, states, testLog(t), opts), sink, clk
}

// one returns the only event put, failing when there is not exactly one.
func one(t *testing.T, evs []*pb.Event) *pb.Event {
	t.Helper()
	if len(evs) != 1 {
		for _, e := range evs {
			t.Logf("event: %v", e)
		}
		t.Fatalf("got %d events, want 1", len(evs))
	}
	return evs[0]
}

func oomID(e *pb.Event) string {
	return fmt.Sprintf("%s/%s/oom/%d", e.GetNode(), e.GetBootId(), e.GetSeq())
}

// TestVerdicts joins SIGKILL exits with real OOM kills of every kind and
// compares the events with testdata/verdicts.golden.json.
func TestVerdicts(t *testing.T) {
	sibling := func(e *pb.Event) {
		// sapcc's pod-level kill is a one-line summary without a task dump:
		// give it the culprit a dump would have named, a sibling container.
		v := e.GetOom().GetVictims()[0].GetWorkload()
		rss := int64(40 << 20)
		e.GetOom().Culprit = &pb.Culprit{Pid: 4242, Comm: "leak", RssBytes: &rss, Tasks: 1, Source: "task-dump",
			Workload: &pb.Workload{Cgroup: "/kubepods/sidecar", WorkloadKind: "container", PodUid: v.GetPodUid(),
				ContainerId: strings.Repeat("5", 64), ContainerName: "sidecar", Namespace: "shop", PodName: "cart-7d9"}}
		e.GetOom().Collateral = true // as package analysis judges a victim that is not the culprit
	}
	cases := []struct {
		name, fixture string
		index         int
		victim        int // the victim whose container exits
		edit          func(*pb.Event)
		oomFirst      bool
		verdict       string
		collateral    bool
		culprit       string // comm of the culprit, "" for none
		says          []string
	}{
		{name: "limit-v2-systemd", fixture: "debian-6.1-kmsg-v2-systemd-container-limit.kmsg", verdict: VerdictOOMLimit,
			says: []string{"Container api of pod shop/cart-7d9 exited with code 137 (OOMKilled): the kernel's OOM killer killed hog (pid 93) because the container hit its own memory limit of 24 MiB."}},
		{name: "limit-v1-cgroupfs", fixture: "sapcc-kmsg-raw-memcg-v1-cgroupfs-and-v2-systemd.txt", oomFirst: true, verdict: VerdictOOMLimit,
			says: []string{"killed prometheus-conf (pid 3401999) because the container hit its own memory limit"}},
		{name: "limit-v1-docker", fixture: "cadvisor-4.8-memcg-v1-docker-gunpowder.txt", index: 1, verdict: VerdictOOMLimit,
			says: []string{"killed gunpowder-memho (pid 1667) because the container hit its own memory limit of 300 MiB."}},
		{name: "pod-limit-no-dump", fixture: "cadvisor-5.0-memcg-oomkill-summary-line.txt", verdict: VerdictOOMPodLimit,
			says: []string{"because pod shop/cart-7d9 hit its memory limit; the kernel's report does not say which container held the memory."}},
		{name: "pod-limit-own", fixture: "public-2026-k8s-v2-memcg-oomgroup-and-global.txt", oomFirst: true, verdict: VerdictOOMPodLimit, culprit: "MainThread",
			says: []string{"hit its memory limit", "this container held the most memory (MainThread, pid 268654"}},
		{name: "pod-limit-group-member", fixture: "public-2026-k8s-v2-memcg-oomgroup-and-global.txt", victim: 1, verdict: VerdictOOMPodLimit,
			collateral: true, culprit: "MainThread",
			edit: func(e *pb.Event) {
				// The report prints no cgroup for the memory.oom.group kill of
				// tini: place it in a sibling container, as /proc would tell.
				v := e.GetOom().GetVictims()
				v[1].Workload = &pb.Workload{Cgroup: "/kubepods.slice/sibling.scope", WorkloadKind: "container",
					PodUid: v[0].GetWorkload().GetPodUid(), ContainerId: strings.Repeat("7", 64)}
			},
			says: []string{"killed tini (pid 235173) (memory.oom.group) because pod shop/cart-7d9 hit its memory limit; its sibling container cabbede held the most memory (MainThread, pid 268654"}},
		{name: "pod-limit-sibling", fixture: "sapcc-kmsg-raw-memcg-v1-cgroupfs-and-v2-systemd.txt", index: 1, edit: sibling, verdict: VerdictOOMPodLimit, culprit: "leak", collateral: true,
			says: []string{"killed stress (pid 255629) because pod shop/cart-7d9 hit its memory limit", "its sibling container sidecar held the most memory (leak, pid 4242, 40 MiB)."}},
		{name: "node-collateral", fixture: "debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg", verdict: VerdictOOMNode, collateral: true, culprit: "hog",
			says: []string{"because the node ran out of memory; it was a collateral victim: the largest memory holder was guaranteed pod f0e1d2c3-b4a5-4697-8877-665544332211 container 000011112222"}},
		{name: "node-own", fixture: "debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg", index: 1, oomFirst: true, verdict: VerdictOOMNode, culprit: "hog",
			says: []string{"because the node ran out of memory; this container held the most memory (hog, pid 96"}},
		{name: "node-collateral-group", fixture: "report-6.1-global-oom-k8s-collateral-oomgroup.txt", verdict: VerdictOOMNode, collateral: true, culprit: "memory_leak",
			says: []string{"killed prometheus-conf (pid 10843) because the node ran out of memory; it was a collateral victim: the largest memory holder was user session user@1000.service (memory_leak, pid 115727, 11.2 GiB)."}},
		{name: "limit-above-pod", fixture: "debian-6.1-kmsg-v2-systemd-container-limit.kmsg", verdict: VerdictOOMNode, culprit: "hog",
			edit: func(e *pb.Event) {
				// The same report, had the limit been the burstable slice's.
				k := e.GetOom()
				k.LimitScope, k.Scope, k.OomMemcg = analysis.ScopeOther, wire.ScopeToPB(analysis.ScopeOther), "/kubepods.slice/kubepods-burstable.slice"
			},
			says: []string{"because the cgroup /kubepods.slice/kubepods-burstable.slice, above the pod, hit its memory limit of 24 MiB; this container held the most memory"}},
		{name: "node-allocatable", fixture: "debian-6.1-kmsg-v2-systemd-container-limit.kmsg", verdict: VerdictOOMNode, culprit: "hog",
			edit: func(e *pb.Event) {
				// The same report, had the limit been kubepods' (kubelet's
				// node-allocatable enforcement).
				k := e.GetOom()
				k.LimitScope, k.Scope, k.OomMemcg = analysis.ScopeAllocatable, wire.ScopeToPB(analysis.ScopeAllocatable), "/kubepods.slice"
			},
			says: []string{"because the pods together hit the node-allocatable limit of 24 MiB, which kubelet sets on kubepods.slice; this container held the most memory"}},
		{name: "cpuset", fixture: "debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg", index: 1, verdict: VerdictOOMNode, culprit: "hog",
			edit: func(e *pb.Event) {
				e.GetOom().Kind, e.GetOom().OomKind = analysis.KindCpuset, wire.KindToPB(analysis.KindCpuset)
			},
			says: []string{"because the memory nodes its cpuset allows ran out"}},
	}
	golden := map[string]json.RawMessage{}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j, sink, clk := newJoiner(t, nil, Options{})
			ctx := context.Background()
			oom := fixture(t, tc.fixture, tc.index, base)
			if tc.edit != nil {
				tc.edit(oom)
			}
			w := oom.GetOom().GetVictims()[tc.victim].GetWorkload()
			exit := exitOf(w, 137, "OOMKilled", base.Add(150*time.Millisecond))
			if tc.oomFirst {
				j.OOM(oom)
				clk.Add(time.Second)
				j.Exit(exit)
			} else {
				j.Exit(exit)
				clk.Add(time.Second)
				j.OOM(oom)
			}
			j.process(ctx)
			ev := one(t, sink.take())
			x := ev.GetExit()
			if x.GetVerdict() != tc.verdict {
				t.Errorf("verdict %q, want %q", x.GetVerdict(), tc.verdict)
			}
			if x.GetExitCode() != 137 || x.GetRuntimeReason() != "OOMKilled" || !x.GetFinishedAt().AsTime().Equal(exit.FinishedAt) {
				t.Errorf("exit %d %q at %v", x.GetExitCode(), x.GetRuntimeReason(), x.GetFinishedAt().AsTime())
			}
			if x.GetOomEventId() != oomID(oom) {
				t.Errorf("oom_event_id %q, want %q", x.GetOomEventId(), oomID(oom))
			}
			if x.GetCollateral() != tc.collateral {
				t.Errorf("collateral %v, want %v", x.GetCollateral(), tc.collateral)
			}
			if got := x.GetCulprit().GetComm(); got != tc.culprit {
				t.Errorf("culprit %q, want %q", got, tc.culprit)
			}
			for _, s := range tc.says {
				if !strings.Contains(x.GetExplanation(), s) {
					t.Errorf("explanation\n  %s\nlacks\n  %s", x.GetExplanation(), s)
				}
			}
			if len(x.GetEvidence()) == 0 || len(x.GetEvidence()) > maxEvidence {
				t.Errorf("%d evidence lines", len(x.GetEvidence()))
			}
			killed := false
			for _, l := range x.GetEvidence() {
				killed = killed || strings.Contains(l, "Killed process") || strings.Contains(l, "oom-kill:")
			}
			if !killed {
				t.Errorf("evidence names no kill: %q", x.GetEvidence())
			}
			wl := x.GetWorkload()
			if wl.GetContainerId() != exit.ID || wl.GetContainerName() != "api" || wl.GetPodName() != "cart-7d9" ||
				wl.GetNamespace() != "shop" || wl.GetImage() != exit.Image || wl.GetCgroup() != w.GetCgroup() {
				t.Errorf("workload %v", wl)
			}
			if ev.GetNode() != node || ev.GetBootId() != bootID || ev.GetSeq() != Seq(exit) || ev.GetSeq() < 0 ||
				!ev.GetTime().AsTime().Equal(exit.FinishedAt) || eventid.TypeOf(ev) != eventid.TypeExit {
				t.Errorf("envelope %v", ev)
			}
			golden[tc.name] = canonical(t, ev)
		})
	}
	checkGolden(t, "verdicts.golden.json", golden)
}

// canonical is protojson with stable whitespace.
func canonical(t *testing.T, m proto.Message) json.RawMessage {
	t.Helper()
	b, err := protojson.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func checkGolden(t *testing.T, name string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs (run go test -update and review the diff):\n%s", path, got)
	}
}

// TestWindow checks the timing both ways: the exit held for an OOM kill
// reported after it, an OOM kill waiting for its exit, and kills outside
// the window.
func TestWindow(t *testing.T) {
	const limitFixture = "debian-6.1-kmsg-v2-systemd-container-limit.kmsg"
	ctx := context.Background()
	cases := []struct {
		name     string
		killAt   time.Duration // kernel time of the kill, from the exit
		oomAfter time.Duration // when the OOM event arrives, from the exit's arrival (negative: before)
		verdict  string
		// decidedAt is when the exit is decided, from its arrival.
		decidedAt time.Duration
	}{
		{name: "exit first, kill reported 1s later", killAt: -100 * time.Millisecond, oomAfter: time.Second, verdict: VerdictOOMLimit, decidedAt: time.Second},
		{name: "exit first, kill reported at the end of the hold", killAt: -100 * time.Millisecond, oomAfter: DefaultHold - time.Millisecond, verdict: VerdictOOMLimit, decidedAt: DefaultHold - time.Millisecond},
		{name: "exit first, kill reported after the hold", killAt: -100 * time.Millisecond, oomAfter: DefaultHold + time.Second, verdict: VerdictNotOOM, decidedAt: DefaultHold},
		{name: "kill first", killAt: -100 * time.Millisecond, oomAfter: -2 * time.Second, verdict: VerdictOOMLimit, decidedAt: 0},
		{name: "kill first, 29s before the exit", killAt: -29 * time.Second, oomAfter: -28 * time.Second, verdict: VerdictOOMLimit, decidedAt: 0},
		{name: "kill 31s before the exit", killAt: -31 * time.Second, oomAfter: -30 * time.Second, verdict: VerdictNotOOM, decidedAt: DefaultHold},
		{name: "kill stamped 1s after the exit (clock skew)", killAt: time.Second, oomAfter: 500 * time.Millisecond, verdict: VerdictOOMLimit, decidedAt: 500 * time.Millisecond},
		{name: "kill 5s after the exit", killAt: 5 * time.Second, oomAfter: time.Second, verdict: VerdictNotOOM, decidedAt: DefaultHold},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j, sink, clk := newJoiner(t, nil, Options{})
			fin := base
			oom := fixture(t, limitFixture, 0, fin.Add(tc.killAt))
			exit := exitOf(victimContainer(t, oom), 137, "OOMKilled", fin)
			// Step the clock 1 ms at a time over 40 s from the first
			// arrival, running the joiner at each step as Run would.
			start := min(tc.oomAfter, 0)
			clk.Add(start)
			var decided time.Duration = -1
			var ev *pb.Event
			for now := start; now <= 40*time.Second && decided < 0; now += time.Millisecond {
				if now == 0 {
					j.Exit(exit)
				}
				if now == tc.oomAfter {
					j.OOM(oom)
				}
				j.process(ctx)
				if evs := sink.take(); len(evs) > 0 {
					ev, decided = one(t, evs), now
				}
				clk.Add(time.Millisecond)
			}
			if ev == nil {
				t.Fatal("never decided")
			}
			if ev.GetExit().GetVerdict() != tc.verdict || decided != tc.decidedAt {
				t.Errorf("verdict %q after %v, want %q after %v: %s", ev.GetExit().GetVerdict(), decided,
					tc.verdict, tc.decidedAt, ev.GetExit().GetExplanation())
			}
			if (tc.verdict == VerdictNotOOM) != (ev.GetExit().GetOomEventId() == "") {
				t.Errorf("oom_event_id %q", ev.GetExit().GetOomEventId())
			}
		})
	}
}

// TestOtherSignals covers exits the OOM killer did not cause: SIGKILL
// without a kill on record, SIGTERM, other signals and exits that are not
// signals.
func TestOtherSignals(t *testing.T) {
	ctx := context.Background()
	w := &pb.Workload{ContainerId: strings.Repeat("ab", 32), PodUid: "3f9a2c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"}
	cases := []struct {
		name    string
		code    int32
		reason  string
		stop    time.Duration // stop requested this long before the exit; 0: unknown
		verdict string        // "" for no event
		says    []string
	}{
		{name: "sigkill", code: 137, reason: "Error", verdict: VerdictNotOOM, says: []string{
			"Container api of pod shop/cart-7d9 exited with code 137 (Error): it was killed with SIGKILL, but the kernel logged no OOM kill in this container in the 30s before it exited",
			"The runtime did not say whether or when a stop was requested."}},
		{name: "sigkill after a stop request", code: 137, reason: "Error", stop: 31 * time.Second, verdict: VerdictNotOOM, says: []string{
			"A stop was requested at 11:59:29.000Z, 31s before it exited."}},
		{name: "sigkill said OOMKilled", code: 137, reason: "OOMKilled", verdict: VerdictNotOOM, says: []string{
			"The runtime reports OOMKilled, yet no kernel OOM kill of this container is on record"}},
		{name: "sigterm", code: 143, reason: "Error", verdict: VerdictGraceful, says: []string{
			"exited with code 143 (Error): it ended on SIGTERM"}},
		{name: "sigabrt", code: 134, reason: "Error", verdict: VerdictNotOOM, says: []string{
			"it was killed by SIGABRT (signal 6), which the kernel's OOM killer does not send."}},
		{name: "sigsegv", code: 139, verdict: VerdictNotOOM, says: []string{"exited with code 139: it was killed by SIGSEGV (signal 11)"}},
		{name: "exit 1", code: 1, reason: "Error"},
		{name: "exit 0", code: 0, reason: "Completed"},
		{name: "exit 128", code: 128},
		{name: "exit 255", code: 255},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			j, sink, clk := newJoiner(t, nil, Options{})
			exit := exitOf(w, tc.code, tc.reason, base)
			if tc.stop > 0 {
				j.StopRequested(strings.ToUpper(exit.ID), base.Add(-tc.stop))
			}
			j.Exit(exit)
			j.process(ctx)
			if evs := sink.take(); len(evs) != 0 {
				t.Fatalf("decided before the hold ended: %v", evs)
			}
			clk.Add(DefaultHold)
			j.process(ctx)
			evs := sink.take()
			if tc.verdict == "" {
				if len(evs) != 0 {
					t.Fatalf("exit %d reported: %v", tc.code, evs)
				}
				if s := j.Stats(); s.Ignored != 1 || s.Exits != 0 {
					t.Errorf("stats %+v", s)
				}
				return
			}
			x := one(t, evs).GetExit()
			if x.GetVerdict() != tc.verdict || x.GetExitCode() != tc.code || x.GetOomEventId() != "" || len(x.GetEvidence()) != 0 || x.GetCulprit() != nil {
				t.Errorf("got %v", x)
			}
			if (tc.stop > 0) != (x.GetStopRequestedAt() != nil) {
				t.Errorf("stop_requested_at %v", x.GetStopRequestedAt())
			}
			for _, s := range tc.says {
				if !strings.Contains(x.GetExplanation(), s) {
					t.Errorf("explanation\n  %s\nlacks\n  %s", x.GetExplanation(), s)
				}
			}
		})
	}
}

// TestSignalAfterOOM: an exit by another signal after an OOM kill in the
// container keeps its verdict and mentions the kill.
func TestSignalAfterOOM(t *testing.T) {
	j, sink, _ := newJoiner(t, nil, Options{})
	oom := fixture(t, "debian-6.1-kmsg-v2-systemd-container-limit.kmsg", 0, base)
	j.OOM(oom)
	j.Exit(exitOf(victimContainer(t, oom), 143, "Error", base.Add(2*time.Second)))
	j.process(context.Background())
	x := one(t, sink.take()).GetExit()
	if x.GetVerdict() != VerdictGraceful || x.GetOomEventId() != oomID(oom) {
		t.Errorf("got %v", x)
	}
	if want := "Earlier, 2s before the exit, the kernel's OOM killer had killed hog (pid 93) in it because the container hit its own memory limit of 24 MiB."; !strings.Contains(x.GetExplanation(), want) {
		t.Errorf("explanation %q lacks %q", x.GetExplanation(), want)
	}
}

// TestOOMChild: an OOM kill in a container that keeps running is reported
// after the grace period, unless the container exits or stops first.
func TestOOMChild(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name    string
		state   string        // running, exited, unknown
		exit    int32         // exit code reported, -1 for none
		exitAt  time.Duration // when the exit arrives, from the OOM event
		want    bool
		verdict string
	}{
		{name: "keeps running", state: "running", exit: -1, want: true},
		{name: "exits 137 within the grace", state: "running", exit: 137, exitAt: 200 * time.Millisecond, verdict: VerdictOOMLimit},
		{name: "exits 1 within the grace", state: "running", exit: 1, exitAt: 5 * time.Second},
		{name: "exit seen first", state: "running", exit: 137, exitAt: -time.Second, verdict: VerdictOOMLimit},
		{name: "runtime says exited", state: "exited", exit: -1},
		{name: "runtime does not know it", state: "unknown", exit: -1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			states := &fakeStates{}
			j, sink, clk := newJoiner(t, states, Options{})
			oom := fixture(t, "debian-6.1-kmsg-v2-systemd-container-limit.kmsg", 0, base)
			w := victimContainer(t, oom)
			if tc.state != "unknown" {
				states.set(w.GetContainerId(), tc.state == "running")
			}
			var events []*pb.Event
			step := 100 * time.Millisecond
			exitAt := tc.exitAt
			if tc.exit < 0 {
				exitAt = time.Hour
			}
			for now := min(exitAt, 0); now <= 15*time.Second; now += step {
				if now == exitAt {
					j.Exit(exitOf(w, tc.exit, "Error", base.Add(max(now, 0))))
				}
				if now == 0 {
					j.OOM(oom)
				}
				j.process(ctx)
				events = append(events, sink.take()...)
				if now == DefaultGrace-step && len(events) > 0 && tc.want {
					t.Fatalf("oom-child reported before the grace period ended: %v", events)
				}
				clk.Add(step)
			}
			var verdicts []string
			for _, e := range events {
				verdicts = append(verdicts, e.GetExit().GetVerdict())
			}
			want := []string{}
			if tc.verdict != "" {
				want = append(want, tc.verdict)
			}
			if tc.want {
				want = append(want, VerdictOOMChild)
			}
			if strings.Join(verdicts, ",") != strings.Join(want, ",") {
				t.Fatalf("verdicts %q, want %q", verdicts, want)
			}
			if !tc.want {
				return
			}
			ev := events[len(events)-1]
			x := ev.GetExit()
			if x.GetExitCode() != 0 || x.GetRuntimeReason() != "Running" || x.GetOomEventId() != oomID(oom) ||
				x.GetFinishedAt() != nil || x.GetWorkload().GetContainerId() != w.GetContainerId() || len(x.GetEvidence()) == 0 {
				t.Errorf("got %v", x)
			}
			if !ev.GetTime().AsTime().Equal(base) || ev.GetSeq() < 0 || ev.GetSeq() != childSeq(w.GetContainerId(), oomID(oom)) {
				t.Errorf("envelope time %v seq %d", ev.GetTime().AsTime(), ev.GetSeq())
			}
			wantSay := "Container 1a2b3c4d5e6f of pod 5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9 is still running: the kernel's OOM killer killed hog (pid 93), not its main process, because the container hit its own memory limit of 24 MiB; the container was still running 10s after the kill was logged."
			if x.GetExplanation() != wantSay {
				t.Errorf("explanation\n  %s\nwant\n  %s", x.GetExplanation(), wantSay)
			}
		})
	}
}

// TestDedupe: the same exit seen twice is reported once, and its sequence
// number does not depend on the joiner, so the aggregator drops a replay
// after a restart.
func TestDedupe(t *testing.T) {
	ctx := context.Background()
	oom := fixture(t, "debian-6.1-kmsg-v2-systemd-container-limit.kmsg", 0, base)
	exit := exitOf(victimContainer(t, oom), 137, "OOMKilled", base.Add(100*time.Millisecond))
	var seqs []int64
	for run := range 2 {
		j, sink, clk := newJoiner(t, nil, Options{})
		j.OOM(oom)
		j.Exit(exit)
		j.process(ctx)
		again := exit
		again.ID = strings.ToUpper(again.ID) // the same container, spelt otherwise
		j.Exit(again)
		j.Exit(exit)
		clk.Add(time.Minute)
		j.process(ctx)
		ev := one(t, sink.take())
		seqs = append(seqs, ev.GetSeq())
		if s := j.Stats(); s.Exits != 1 || s.Duplicates != 2 || s.Reported[VerdictOOMLimit] != 1 {
			t.Errorf("run %d: stats %+v", run, s)
		}
	}
	if seqs[0] != seqs[1] || seqs[0] != Seq(exit) {
		t.Errorf("seqs %v, Seq %d", seqs, Seq(exit))
	}
	other := exit
	other.FinishedAt = other.FinishedAt.Add(time.Nanosecond)
	if Seq(other) == Seq(exit) {
		t.Error("a different finish time gives the same seq")
	}
}

// TestBounded feeds far more exits and kills than the bounds, with Run
// never deciding, and checks the state stays within them.
func TestBounded(t *testing.T) {
	opts := Options{MaxPending: 8, MaxKills: 16, MaxChecks: 4, MaxSeen: 32}
	j, _, clk := newJoiner(t, &fakeStates{}, opts)
	oom := fixture(t, "debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg", 0, base)
	for i := range 2000 {
		id := fmt.Sprintf("%064x", i)
		k := proto.Clone(oom).(*pb.Event)
		k.Seq = int64(i)
		k.GetOom().GetVictims()[0].GetWorkload().ContainerId = id
		j.OOM(k)
		j.Exit(cri.Container{ID: fmt.Sprintf("%064x", i+1<<32), ExitCode: 137, FinishedAt: clk.Now()})
		j.StopRequested(id, clk.Now())
		clk.Add(time.Millisecond)
		j.mu.Lock()
		if len(j.pending) > opts.MaxPending || len(j.kills) > opts.MaxKills || len(j.checks) > opts.MaxChecks ||
			j.seen.Len() > opts.MaxSeen || j.exited.Len() > opts.MaxSeen || j.stops.Len() > opts.MaxSeen {
			t.Fatalf("after %d: pending %d kills %d checks %d seen %d exited %d stops %d", i, len(j.pending), len(j.kills),
				len(j.checks), j.seen.Len(), j.exited.Len(), j.stops.Len())
		}
		j.mu.Unlock()
	}
	s := j.Stats()
	if s.Dropped != 2000-8 || s.KillsForgotten != 2000-16 || s.ChecksDropped != 2000-4 {
		t.Errorf("stats %+v", s)
	}
	// Kills older than the window are forgotten even below the bound.
	clk.Add(DefaultWindow + DefaultHold + clockSkew + time.Second)
	j.process(context.Background())
	j.mu.Lock()
	defer j.mu.Unlock()
	if len(j.kills) != 0 || len(j.pending) != 0 {
		t.Errorf("after the window: %d kills, %d pending", len(j.kills), len(j.pending))
	}
}

// TestRun drives the joiner with its own timers and the real clock.
func TestRun(t *testing.T) {
	states := &fakeStates{}
	sink := &fakeSink{put: make(chan *pb.Event, 4)}
	j := New(sink, states, testLog(t), Options{Node: node, BootID: bootID, Hold: 50 * time.Millisecond, Grace: 100 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- j.Run(ctx) }()

	now := time.Now()
	oom := fixture(t, "debian-6.1-kmsg-v2-systemd-container-limit.kmsg", 0, now)
	w := victimContainer(t, oom)
	states.set(w.GetContainerId(), true)
	j.Exit(exitOf(&pb.Workload{ContainerId: strings.Repeat("c", 64)}, 137, "Error", now))
	j.OOM(oom)
	got := map[string]bool{}
	for range 2 {
		select {
		case e := <-sink.put:
			got[e.GetExit().GetVerdict()] = true
		case <-time.After(10 * time.Second):
			t.Fatalf("got only %v", got)
		}
	}
	if !got[VerdictNotOOM] || !got[VerdictOOMChild] {
		t.Errorf("got %v", got)
	}
	// A sink that blocks until ctx ends does not keep Run from returning.
	sink.mu.Lock()
	sink.block = true
	sink.mu.Unlock()
	j.Exit(exitOf(&pb.Workload{ContainerId: strings.Repeat("d", 64)}, 137, "Error", now))
	time.Sleep(100 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if s := j.Stats(); s.PutErrors != 1 {
		t.Errorf("stats %+v", s)
	}
}

// TestPutError: events the sink refuses are counted.
func TestPutError(t *testing.T) {
	j, sink, clk := newJoiner(t, nil, Options{})
	sink.err = errors.New("disk full")
	j.Exit(exitOf(&pb.Workload{ContainerId: strings.Repeat("e", 64)}, 137, "Error", base))
	clk.Add(DefaultHold)
	j.process(context.Background())
	if s := j.Stats(); s.PutErrors != 1 || s.Reported[VerdictNotOOM] != 0 {
		t.Errorf("stats %+v", s)
	}
}

// TestEvidence: the lines kept from real reports, in order, bounded.
func TestEvidence(t *testing.T) {
	cases := []struct {
		fixture string
		index   int
		want    []string // substrings of the lines kept, in order
	}{
		{"debian-6.1-kmsg-v2-systemd-container-limit.kmsg", 0, []string{
			"hog invoked oom-killer", "memory: usage 24576kB, limit 24576kB", "oom-kill:constraint=CONSTRAINT_MEMCG",
			"Memory cgroup out of memory: Killed process 93 (hog)"}},
		{"cadvisor-4.8-memcg-v1-docker-gunpowder.txt", 0, []string{
			"gunpowder-memho invoked oom-killer", "killed as a result of limit of /docker/", "memory: usage 20480kB, limit 20480kB",
			"Memory cgroup out of memory: Kill process 1381", "Killed process 1381", "oom_reaper: reaped process 1381"}},
		{"report-6.1-global-oom-k8s-collateral-oomgroup.txt", 0, []string{
			"oom-kill:constraint=CONSTRAINT_NONE", "Out of memory: Killed process 10843", "are going to be killed due to memory.oom.group",
			"Out of memory: Killed process 10843"}},
	}
	for _, tc := range cases {
		t.Run(tc.fixture, func(t *testing.T) {
			got := Evidence(fixture(t, tc.fixture, tc.index, base).GetOom().GetLines())
			if len(got) != len(tc.want) {
				t.Fatalf("kept %d lines, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("line %d %q lacks %q", i, got[i], w)
				}
			}
		})
	}
	// A memory.oom.group kill of many tasks keeps the first maxEvidence.
	lines := []string{"x invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0", "Call Trace:"}
	for i := range 500 {
		lines = append(lines, fmt.Sprintf("Memory cgroup out of memory: Killed process %d (worker)", 100+i))
	}
	got := Evidence(lines)
	if len(got) != maxEvidence || got[0] != lines[0] || got[1] != lines[2] {
		t.Errorf("kept %d lines: %q...", len(got), got[:2])
	}
	// A report with none of the marks keeps its first lines.
	if got := Evidence([]string{"a", "b"}); len(got) != 2 {
		t.Errorf("kept %q", got)
	}
}

// TestVerdictOf maps every kind and scope.
func TestVerdictOf(t *testing.T) {
	for _, tc := range []struct{ kind, scope, want string }{
		{analysis.KindLimit, analysis.ScopeContainer, VerdictOOMLimit},
		{analysis.KindLimit, "", VerdictOOMLimit},
		{analysis.KindLimit, analysis.ScopePod, VerdictOOMPodLimit},
		{analysis.KindLimit, analysis.ScopeOther, VerdictOOMNode},
		{analysis.KindLimit, analysis.ScopeAllocatable, VerdictOOMNode},
		{analysis.KindNode, "", VerdictOOMNode},
		{analysis.KindCpuset, "", VerdictOOMNode},
		{analysis.KindMempolicy, "", VerdictOOMNode},
		{analysis.KindUnknown, "", VerdictOOMNode},
	} {
		if got := verdictOf(&kill{kind: tc.kind, scope: tc.scope}); got != tc.want {
			t.Errorf("%s/%s: %q, want %q", tc.kind, tc.scope, got, tc.want)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	if err := (Options{}).Validate(); err != nil {
		t.Error(err)
	}
	for _, o := range []Options{{Window: -1}, {Hold: -time.Second}, {Grace: -1}, {MaxSeen: -1}} {
		if err := o.Validate(); !errors.Is(err, ErrOptions) {
			t.Errorf("%+v: %v", o, err)
		}
	}
}

// Every verdict an exit can carry has its value in the API's enum.
func TestVerdictsHaveEnumValues(t *testing.T) {
	for _, v := range []string{VerdictOOMLimit, VerdictOOMPodLimit, VerdictOOMNode, VerdictOOMChild, VerdictNotOOM, VerdictGraceful} {
		if !wire.KnownExitVerdict(v) || wire.Why(&pb.ContainerExit{ExitVerdict: wire.ExitVerdictToPB(v)}) != v {
			t.Errorf("verdict %q has no enum value of its own", v)
		}
	}
}
