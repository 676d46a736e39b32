package cri

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// IDs of the containerd recording in testdata.
const (
	cdSandbox   = "4d26515dc92529c8a2f4018089124b799de02b2823ad6f21a390d218ab8967a4"
	cdContainer = "91042e6476cc3be41df074f547b20891eb86a67e513d03abbb460102adf57196"
	cdPodUID    = "5b0c7e0a-5f7e-4b8e-9a51-0c1d2e3f4a5b"
)

func testLog() (*logrus.Entry, *logtest.Hook) {
	l, hook := logtest.NewNullLogger()
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l), hook
}

// entriesAt counts log entries at level or more severe.
func entriesAt(h *logtest.Hook, level logrus.Level) []*logrus.Entry {
	var out []*logrus.Entry
	for _, e := range h.AllEntries() {
		if e.Level <= level {
			out = append(out, e)
		}
	}
	return out
}

// fakeClock is a settable clock for retention tests.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func sandbox(id, uid, ns, name string, labels, annotations map[string]string) *runtimeapi.PodSandboxStatus {
	return &runtimeapi.PodSandboxStatus{
		Id:          id,
		Metadata:    &runtimeapi.PodSandboxMetadata{Name: name, Uid: uid, Namespace: ns},
		State:       runtimeapi.PodSandboxState_SANDBOX_READY,
		CreatedAt:   time.Date(2026, 11, 27, 6, 0, 0, 0, time.UTC).UnixNano(),
		Labels:      labels,
		Annotations: annotations,
	}
}

func running(id, name, image string, labels map[string]string) *runtimeapi.ContainerStatus {
	t0 := time.Date(2026, 11, 27, 6, 0, 1, 0, time.UTC).UnixNano()
	return &runtimeapi.ContainerStatus{
		Id:        id,
		Metadata:  &runtimeapi.ContainerMetadata{Name: name},
		State:     runtimeapi.ContainerState_CONTAINER_RUNNING,
		CreatedAt: t0, StartedAt: t0,
		Image:    &runtimeapi.ImageSpec{Image: image},
		ImageRef: "sha256:01bb9667a01690630ca202e939637b26cd9b93e848c13fa09cb39b94f177e918",
		Labels:   labels,
	}
}

// containerdFake is a fake answering with the verbose infos recorded from
// containerd 1.6.20 (test/containerd), without ContainerStatus.resources.
func containerdFake(t *testing.T) (*fakeRuntime, string) {
	f := &fakeRuntime{name: "containerd"}
	sock := startFake(t, f)
	f.addPod(sandbox(cdSandbox, cdPodUID, "shop", "cart-7d9", map[string]string{"app": "cart", "team": "x"}, nil),
		string(readTestdata(t, "containerd-1.6.20-sandbox-info.json")))
	f.addCtr(cdSandbox, running(cdContainer, "api", "oomwatch.test/hog:1", nil),
		string(readTestdata(t, "containerd-1.6.20-container-info-exited.json")))
	return f, sock
}

func dialFake(t *testing.T, sock string) *Client {
	t.Helper()
	c, err := Dial(context.Background(), sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestCacheResolvesContainerdInfo(t *testing.T) {
	f, sock := containerdFake(t)
	// A second container sharing the first 12 hex digits, for prefixes.
	twin := cdContainer[:12] + "ffffffffffffffffffffffffffffffffffffffffffffffffffff"
	f.addCtr(cdSandbox, running(twin, "sidecar", "oomwatch.test/hog:1", nil), `{}`)
	log, _ := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{})
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctr, ok := c.Container(cdContainer)
	if !ok {
		t.Fatal("container not found")
	}
	if ctr.Name != "api" || ctr.PodUID != cdPodUID || ctr.PodNamespace != "shop" || ctr.PodName != "cart-7d9" ||
		ctr.Image != "oomwatch.test/hog:1" || ctr.State != StateRunning || ctr.PodSandboxID != cdSandbox {
		t.Errorf("container names: %+v", ctr)
	}
	if ctr.MemoryLimitBytes != 32<<20 || ctr.MemoryLimitSource != SourceRuntimeSpec || !ctr.HasOOMScoreAdj || ctr.OOMScoreAdj != 937 {
		t.Errorf("container limits: limit %d from %q, oom_score_adj %d (%v)", ctr.MemoryLimitBytes, ctr.MemoryLimitSource, ctr.OOMScoreAdj, ctr.HasOOMScoreAdj)
	}
	pod, ok := c.Pod(cdPodUID)
	if !ok {
		t.Fatal("pod not found")
	}
	if pod.Namespace != "shop" || pod.Name != "cart-7d9" || pod.OverheadBytes != 1<<20 || pod.MemoryLimitBytes != 48<<20 ||
		pod.CgroupParent != "/kubepods/burstable/pod"+cdPodUID || pod.Labels["app"] != "cart" || pod.Labels["team"] != "" {
		t.Errorf("pod: %+v", pod)
	}

	lookups := []struct {
		id   string
		want string // "" for not found
	}{
		{cdContainer, cdContainer},
		{cdContainer[:13], cdContainer},
		{twin[:13], twin},
		{"  " + cdContainer + "\n", cdContainer},
		{"91042E6476CC", ""}, // ambiguous after lower-casing
		{cdContainer[:12], ""},
		{"910", ""}, // shorter than minPrefix
		{"", ""},
		{"deadbeef", ""},
	}
	for _, l := range lookups {
		got, ok := c.Container(l.id)
		if ok != (l.want != "") || (ok && got.ID != l.want) {
			t.Errorf("Container(%q) = %q, %v; want %q", l.id, got.ID, ok, l.want)
		}
	}
	if _, ok := c.Pod("no-such-uid"); ok {
		t.Error("unknown pod found")
	}
	// Callers get copies.
	pod.Labels["app"] = "changed"
	if p2, _ := c.Pod(cdPodUID); p2.Labels["app"] != "cart" {
		t.Error("caller's change reached the cache")
	}
}

func TestCacheStatusResourcesWin(t *testing.T) {
	f := &fakeRuntime{name: "containerd"}
	sock := startFake(t, f)
	f.addPod(sandbox("sb1", "uid1", "ns", "pod", nil, nil), `{}`)
	st := running("c1", "app", "img", nil)
	st.Resources = &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20, OomScoreAdj: -997}}
	// The spec says otherwise (an in-place resize the spec does not show).
	f.addCtr("sb1", st, `{"runtimeSpec":{"process":{"oomScoreAdj":5},"linux":{"resources":{"memory":{"limit":33554432}}}}}`)
	log, _ := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{})
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	got, _ := c.Container("c1")
	if got.MemoryLimitBytes != 64<<20 || got.MemoryLimitSource != SourceCRIStatus || got.OOMScoreAdj != -997 {
		t.Fatalf("got limit %d from %q, oom_score_adj %d", got.MemoryLimitBytes, got.MemoryLimitSource, got.OOMScoreAdj)
	}
}

func TestCacheRetention(t *testing.T) {
	f, sock := containerdFake(t)
	log, _ := testLog()
	clock := &fakeClock{t: time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)}
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{Retention: 10 * time.Minute})
	c.now = clock.now
	ctx := context.Background()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	f.removeCtr(cdContainer)
	f.removePod(cdSandbox)
	clock.add(time.Second)
	removedAt := clock.now()
	if err := c.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		after time.Duration
		want  bool
	}{
		{0, true},
		{9 * time.Minute, true},
		{10 * time.Minute, true},
		{10*time.Minute + time.Second, false},
	}
	for _, s := range steps {
		t.Run(fmt.Sprint(s.after), func(t *testing.T) {
			clock.t = removedAt.Add(s.after)
			if err := c.Refresh(ctx); err != nil {
				t.Fatal(err)
			}
			ctr, okC := c.Container(cdContainer)
			pod, okP := c.Pod(cdPodUID)
			if okC != s.want || okP != s.want {
				t.Fatalf("%v after removal: container %v, pod %v; want %v", s.after, okC, okP, s.want)
			}
			if s.want && (!ctr.Removed.Equal(removedAt) || !pod.Removed.Equal(removedAt) || ctr.PodName != "cart-7d9") {
				t.Fatalf("removed entry: container %+v pod %+v", ctr, pod)
			}
		})
	}
}

func TestCacheOnExit(t *testing.T) {
	f := &fakeRuntime{name: "containerd"}
	sock := startFake(t, f)
	f.addPod(sandbox("sb1", "uid1", "shop", "cart", nil, nil), `{}`)
	before := time.Now().Add(-time.Hour).UnixNano()
	old := running("old", "done", "img", nil)
	old.State, old.ExitCode, old.Reason, old.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, 0, "Completed", before
	f.addCtr("sb1", old, `{}`)
	f.addCtr("sb1", running("c1", "api", "img", nil), `{}`)

	var mu sync.Mutex
	var exits []Container
	log, _ := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{OnExit: func(x Container) {
		mu.Lock()
		exits = append(exits, x)
		mu.Unlock()
	}})
	ctx := context.Background()
	refresh := func() {
		t.Helper()
		if err := c.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	refresh()
	finished := time.Now().UnixNano()
	f.exit("c1", 137, "OOMKilled", finished)
	// Created and exited between two polls: first seen exited, after start.
	quick := running("quick", "init", "img", nil)
	quick.State, quick.ExitCode, quick.Reason, quick.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, 1, "Error", finished
	f.addCtr("sb1", quick, `{}`)
	refresh()
	refresh()
	mu.Lock()
	defer mu.Unlock()
	got := map[string]Container{}
	for _, x := range exits {
		if _, dup := got[x.ID]; dup {
			t.Errorf("exit of %s reported twice", x.ID)
		}
		got[x.ID] = x
	}
	if len(got) != 2 {
		t.Fatalf("exits reported for %v, want c1 and quick", got)
	}
	if x := got["c1"]; x.ExitCode != 137 || x.Reason != "OOMKilled" || x.FinishedAt.UnixNano() != finished || x.PodName != "cart" || x.Name != "api" {
		t.Errorf("c1 exit: %+v", x)
	}
	if x := got["quick"]; x.ExitCode != 1 || x.Reason != "Error" {
		t.Errorf("quick exit: %+v", x)
	}
}

func TestCacheBounded(t *testing.T) {
	f := &fakeRuntime{name: "containerd"}
	sock := startFake(t, f)
	f.addPod(sandbox("sb1", "uid1", "ns", "p", nil, nil), `{}`)
	exited := func(id string, finished time.Time) *runtimeapi.ContainerStatus {
		s := running(id, id, "img", nil)
		s.State, s.FinishedAt = runtimeapi.ContainerState_CONTAINER_EXITED, finished.UnixNano()
		return s
	}
	t0 := time.Now().Add(-time.Hour)
	f.addCtr("sb1", running("live1", "a", "img", nil), `{}`)
	f.addCtr("sb1", exited("exit-old", t0), `{}`)
	f.addCtr("sb1", exited("exit-new", t0.Add(time.Minute)), `{}`)
	log, hook := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{MaxContainers: 4})
	ctx := context.Background()
	refresh := func() {
		t.Helper()
		if err := c.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	refresh()
	f.removeCtr("live1") // removed: first to go
	f.addCtr("sb1", running("live2", "b", "img", nil), `{}`)
	f.addCtr("sb1", running("live3", "c", "img", nil), `{}`)
	refresh()
	f.addCtr("sb1", running("live4", "d", "img", nil), `{}`) // evicts the oldest exited
	refresh()
	want := map[string]bool{"live1": false, "exit-old": false, "exit-new": true, "live2": true, "live3": true, "live4": true}
	for id, w := range want {
		if _, ok := c.Container(id); ok != w {
			t.Errorf("Container(%s) found = %v, want %v", id, ok, w)
		}
	}
	if n, _ := c.Len(); n != 4 {
		t.Errorf("cache holds %d containers, want 4", n)
	}
	// More live containers than the bound: the removed and exited ones go,
	// then the oldest live ones; the newest stay, and that is logged once.
	f.removeCtr("exit-new")
	for _, id := range []string{"live5", "live6"} {
		s := running(id, id, "img", nil)
		s.CreatedAt = time.Now().UnixNano()
		f.addCtr("sb1", s, `{}`)
	}
	refresh()
	refresh()
	if n, _ := c.Len(); n != 4 {
		t.Errorf("cache holds %d containers, want 4", n)
	}
	for _, id := range []string{"live5", "live6"} {
		if _, ok := c.Container(id); !ok {
			t.Errorf("newest container %s evicted", id)
		}
	}
	if w := entriesAt(hook, logrus.WarnLevel); len(w) != 1 {
		t.Errorf("%d warnings, want 1 about the bound", len(w))
	}
}

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// eventCache runs a cache on a fake runtime named name that serves
// container events, with pod sb1 (shop/cart); it polls once at start, then
// not for an hour, so only events can update it. Exits go to the channel.
func eventCache(t *testing.T, name string) (*fakeRuntime, *Cache, chan Container) {
	t.Helper()
	f := &fakeRuntime{name: name, events: true}
	sock := startFake(t, f)
	f.addPod(sandbox("sb1", "uid1", "shop", "cart", nil, nil), `{}`)
	exits := make(chan Container, 4)
	log, _ := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{PollInterval: time.Hour, OnExit: func(x Container) { exits <- x }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitFor(t, "first refresh", c.Reachable)
	waitFor(t, "event subscription", func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.subs) == 1
	})
	return f, c, exits
}

func TestCacheFollowsEvents(t *testing.T) {
	f, c, exits := eventCache(t, "cri-o")
	f.addCtr("sb1", running("c1", "api", "img", nil), `{"sandboxID":"sb1","runtimeSpec":{"linux":{"resources":{"memory":{"limit":1048576}}}}}`)
	waitFor(t, "created event", func() bool { _, ok := c.Container("c1"); return ok })
	if x, _ := c.Container("c1"); x.PodName != "cart" || x.MemoryLimitBytes != 1<<20 {
		t.Errorf("from event: %+v", x)
	}
	f.exit("c1", 137, "OOMKilled", time.Now().UnixNano())
	select {
	case x := <-exits:
		if x.ID != "c1" || x.ExitCode != 137 {
			t.Errorf("exit: %+v", x)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit reported from the stopped event")
	}
	f.removeCtr("c1")
	waitFor(t, "deleted event", func() bool { x, ok := c.Container("c1"); return ok && !x.Removed.IsZero() })
	if n := f.callCount("ListContainers"); n != 1 {
		t.Errorf("ListContainers called %d times, want 1 (events only)", n)
	}
}

// The stopped event is read after the container is gone (kubelet removes
// a deleted pod's exited container at once): the exit comes from the
// status the event carries, with its code and reason, and the limit known
// before stays.
func TestCacheExitFromTheEventsStatus(t *testing.T) {
	f, c, exits := eventCache(t, "containerd")
	f.addCtr("sb1", running("c1", "api", "img", nil), `{"sandboxID":"sb1","runtimeSpec":{"linux":{"resources":{"memory":{"limit":1048576}}}}}`)
	waitFor(t, "created event", func() bool { x, ok := c.Container("c1"); return ok && x.MemoryLimitBytes == 1<<20 })
	f.setStatusGone("c1", true)
	finished := time.Now().UnixNano()
	f.exit("c1", 137, "OOMKilled", finished)
	select {
	case x := <-exits:
		if x.ID != "c1" || x.ExitCode != 137 || x.Reason != "OOMKilled" || x.FinishedAt.UnixNano() != finished ||
			x.PodName != "cart" || x.Name != "api" || x.MemoryLimitBytes != 1<<20 {
			t.Errorf("exit: %+v", x)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no exit reported: the event's own status was not used")
	}
}

func TestCacheWithoutEventsPollsSilently(t *testing.T) {
	f := &fakeRuntime{name: "containerd"} // GetContainerEvents: Unimplemented
	sock := startFake(t, f)
	f.addPod(sandbox("sb1", "uid1", "shop", "cart", nil, nil), `{}`)
	log, hook := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{PollInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "first refresh", c.Reachable)
	f.addCtr("sb1", running("c1", "api", "img", nil), `{}`)
	waitFor(t, "poll to find the container", func() bool { _, ok := c.Container("c1"); return ok })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
	if w := entriesAt(hook, logrus.InfoLevel); len(w) != 0 {
		t.Errorf("polling without events logged above debug: %v", w[0].Message)
	}
}

// Without an event stream the runtime is listed every PollOnlyInterval,
// not every PollInterval: an exit between two polls is lost when kubelet
// removes the container first.
func TestCacheWithoutEventsPollsFaster(t *testing.T) {
	f := &fakeRuntime{name: "containerd"} // GetContainerEvents: Unimplemented
	sock := startFake(t, f)
	log, _ := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{PollInterval: time.Hour, PollOnlyInterval: 10 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	waitFor(t, "polls at the poll-only interval", func() bool { return f.callCount("ListContainers") >= 5 })
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}

func TestCachePollOnlyDefaults(t *testing.T) {
	for _, tc := range []struct {
		poll, pollOnly, want time.Duration
	}{
		{0, 0, DefaultPollOnly},
		{200 * time.Millisecond, 0, 200 * time.Millisecond}, // never slower than PollInterval
		{0, 3 * time.Second, 3 * time.Second},
	} {
		c := NewCache(nil, nil, CacheOptions{PollInterval: tc.poll, PollOnlyInterval: tc.pollOnly})
		if c.opts.PollOnlyInterval != tc.want {
			t.Errorf("PollInterval %v PollOnlyInterval %v: got %v, want %v", tc.poll, tc.pollOnly, c.opts.PollOnlyInterval, tc.want)
		}
	}
}

func TestCacheUnreachableLogsTransitions(t *testing.T) {
	f := &fakeRuntime{name: "containerd"}
	sock := startFake(t, f)
	log, hook := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{})
	ctx := context.Background()
	c.refreshAndLog(ctx)
	if !c.Reachable() {
		t.Fatal("not reachable after a good refresh")
	}
	f.setListErr(status.Error(codes.Unavailable, "runtime restarting"))
	for i := 0; i < 3; i++ {
		c.refreshAndLog(ctx)
	}
	if err := c.Refresh(ctx); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Refresh error = %v, want ErrUnavailable", err)
	}
	if c.Reachable() {
		t.Fatal("reachable while listing fails")
	}
	f.setListErr(nil)
	c.refreshAndLog(ctx)
	var warns, infos int
	for _, e := range hook.AllEntries() {
		switch e.Level {
		case logrus.WarnLevel:
			warns++
		case logrus.InfoLevel:
			infos++
		}
	}
	if warns != 1 || infos != 1 {
		t.Errorf("got %d warnings and %d infos, want one of each (down, up)", warns, infos)
	}
}

func TestCacheRefetchesRunningDetails(t *testing.T) {
	f := &fakeRuntime{name: "containerd"}
	sock := startFake(t, f)
	f.addPod(sandbox("sb1", "uid1", "ns", "p", nil, nil), `{}`)
	st := running("c1", "app", "img", nil)
	st.Resources = &runtimeapi.ContainerResources{Linux: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 64 << 20}}
	f.addCtr("sb1", st, `{}`)
	log, _ := testLog()
	clock := &fakeClock{t: time.Date(2026, 11, 27, 7, 0, 0, 0, time.UTC)}
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{})
	c.now = clock.now
	ctx := context.Background()
	limit := func() int64 {
		t.Helper()
		if err := c.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
		x, _ := c.Container("c1")
		return x.MemoryLimitBytes
	}
	if got := limit(); got != 64<<20 {
		t.Fatalf("limit %d", got)
	}
	// An in-place resize: the runtime now reports 128 MiB.
	f.mu.Lock()
	f.ctrs["c1"].st.Resources.Linux.MemoryLimitInBytes = 128 << 20
	f.mu.Unlock()
	clock.add(time.Minute)
	if got := limit(); got != 64<<20 {
		t.Fatalf("refetched after a minute: %d", got)
	}
	clock.add(detailsMaxAge)
	if got := limit(); got != 128<<20 {
		t.Fatalf("not refetched after %v: %d", detailsMaxAge, got)
	}
}

// A kernel report lists the pod's pause process under a cgroup named by
// the sandbox ID: it resolves to the pod, as its sandbox.
func TestCacheResolvesSandboxAsContainer(t *testing.T) {
	f := &fakeRuntime{name: "containerd"}
	sock := startFake(t, f)
	const sb = "5ab0c3d1e2f30415263748596a7b8c9d0e1f2a3b4c5d6e7f8091a2b3c4d5e6f7"
	f.addPod(sandbox(sb, "uid1", "shop", "cart", nil, nil), `{}`)
	f.addCtr(sb, running("c1", "api", "img", nil), `{}`)
	log, _ := testLog()
	c := NewCache(dialFake(t, sock).Runtime(), log, CacheOptions{})
	if err := c.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{sb, sb[:12]} {
		x, ok := c.Container(id)
		if !ok || !x.Sandbox || x.Name != SandboxName || x.ID != sb || x.PodName != "cart" || x.PodNamespace != "shop" ||
			x.PodUID != "uid1" || x.State != StateRunning {
			t.Errorf("Container(%s) = %+v, %v; want the cart pod's sandbox", id, x, ok)
		}
	}
	if x, ok := c.Container("c1"); !ok || x.Sandbox || x.Name != "api" {
		t.Errorf("Container(c1) = %+v, %v", x, ok)
	}
	if _, ok := c.Container("ffff"); ok {
		t.Error("an unknown ID resolved")
	}
}
