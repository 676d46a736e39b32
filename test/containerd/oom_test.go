package containerd

import (
	"context"
	"errors"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
	"github.com/oomwatch/oomwatch/pkg/cri"
)

// testWriter sends log lines to t.Log until the test ends.
type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(b), "\n"))
	}
	return len(b), nil
}

func testLog(t testing.TB) *logrus.Entry {
	w := &testWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	l := logrus.New()
	l.SetOutput(w)
	l.SetLevel(logrus.DebugLevel)
	return logrus.NewEntry(l)
}

const (
	podUID       = "3f9a2c1e-8b7d-4e6f-a5c4-1d2e3f4a5b6c"
	podNamespace = "shop"
	podName      = "cart-7d9"
	limitBytes   = 32 << 20
	oomScoreAdj  = 937 // a Burstable pod's; raising it needs no CAP_SYS_RESOURCE
)

// TestRealContainerdOOM runs a pod in a real containerd 1.6 whose container
// (memory limit 32 MiB, cgroupfs parent /kubepods/burstable/pod<uid>) tries
// to hold 64 MiB and is killed by the kernel's memcg OOM killer. It checks
// what CRI reports (137, OOMKilled), what pkg/cgroupstat reads (the limit
// while it runs, the kill count afterwards) and that pkg/cri resolves the
// container and its pod before and after kubelet-style removal.
func TestRealContainerdOOM(t *testing.T) {
	SkipIfDisabled(t)
	if os.Geteuid() != 0 {
		t.Fatalf("needs root for containerd, mounts and cgroups (set %s=1 to skip)", EnvSkip)
	}
	h := Start(t, Options{Images: []Image{HogImage(t)}})
	t.Logf("containerd harness (%s snapshotter): install %v, build images %v, start %v, import %v",
		h.Snapshotter, h.Timings.Install, h.Timings.BuildImages, h.Timings.Start, h.Timings.Import)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := testLog(t)
	client, err := cri.Dial(ctx, h.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	if client.RuntimeName != "containerd" {
		t.Errorf("runtime %q", client.RuntimeName)
	}
	exits := make(chan cri.Container, 8)
	cache := cri.NewCache(client.Runtime(), log, cri.CacheOptions{
		PollInterval: 200 * time.Millisecond,
		OnExit: func(c cri.Container) {
			select {
			case exits <- c:
			default:
			}
		},
	})
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- cache.Run(runCtx) }()
	defer func() {
		stopRun()
		if err := <-runDone; err != nil {
			t.Errorf("cache.Run: %v", err)
		}
	}()
	resolver := cri.NewResolver(cache, log)

	rt := h.Runtime()
	parent := "/kubepods/burstable/pod" + podUID
	h.CleanupCgroup(parent)
	sbConfig := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: podName, Uid: podUID, Namespace: podNamespace},
		LogDirectory: t.TempDir(),
		Labels: map[string]string{
			"app": "cart", "io.kubernetes.pod.name": podName, "io.kubernetes.pod.namespace": podNamespace, "io.kubernetes.pod.uid": podUID,
		},
		Annotations: map[string]string{"kubernetes.io/config.source": "api"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: parent,
			// The node's network namespace: no CNI needed (and no hostname:
			// runc refuses one without a private UTS namespace).
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
			}},
			// What kubelet passes for a pod whose RuntimeClass has an
			// overhead: containerd records both, applies neither itself.
			Overhead:  &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: 1 << 20},
			Resources: &runtimeapi.LinuxContainerResources{MemoryLimitInBytes: limitBytes},
		},
	}
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbConfig})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v\n%s", err, h.Log())
	}
	sandboxID := sb.PodSandboxId

	oomStart := time.Now()
	created, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
		PodSandboxId:  sandboxID,
		SandboxConfig: sbConfig,
		Config: &runtimeapi.ContainerConfig{
			Metadata: &runtimeapi.ContainerMetadata{Name: "api"},
			Image:    &runtimeapi.ImageSpec{Image: HogRef},
			// 64 MiB in 4 MiB steps every 250 ms: about 2 s before the
			// 32 MiB limit, time to read the cgroup while it runs.
			Command: []string{"/hog"},
			Args:    []string{"-mb", "64", "-step", "4", "-interval", "250ms"},
			LogPath: "api/0.log",
			Labels: map[string]string{
				"io.kubernetes.container.name": "api", "io.kubernetes.pod.name": podName,
				"io.kubernetes.pod.namespace": podNamespace, "io.kubernetes.pod.uid": podUID,
			},
			Linux: &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
				MemoryLimitInBytes: limitBytes, OomScoreAdj: oomScoreAdj,
			}},
		},
	})
	if err != nil {
		t.Fatalf("CreateContainer: %v\n%s", err, h.Log())
	}
	id := created.ContainerId
	if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: id}); err != nil {
		t.Fatalf("StartContainer: %v\n%s", err, h.Log())
	}

	// Watch the container's own memory cgroup from now until it is gone:
	// containerd deletes the task, and runc the cgroup, milliseconds after
	// the OOM kill, and on cgroup v1 the kill count is local to the group
	// (the kernel's memcg_memory_event propagates events up the tree only
	// on v2), so this is the only moment it can be read.
	ctrCgroup := parent + "/" + id
	watched := make(chan cgroupWatch, 1)
	go func() { watched <- watchCgroup(ctx, ctrCgroup) }()

	var st *runtimeapi.ContainerStatus
	for deadline := time.Now().Add(60 * time.Second); ; {
		resp, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id})
		if err != nil {
			t.Fatal(err)
		}
		if st = resp.Status; st.State == runtimeapi.ContainerState_CONTAINER_EXITED {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("container still %v after 60 s\n%s", st.State, h.Log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	oomTook := time.Since(oomStart)
	if st.ExitCode != 137 || st.Reason != "OOMKilled" {
		t.Errorf("CRI reports exit %d reason %q, want 137 OOMKilled", st.ExitCode, st.Reason)
	}

	w := <-watched
	t.Logf("container cgroup %s: %d reads while it lived, %d of them after the kill over %v; first: %+v; last: %+v",
		ctrCgroup, w.reads, w.killReads, w.goneAt.Sub(w.killAt), w.first, w.last)
	if w.err != nil {
		t.Errorf("watch container cgroup: %v", w.err)
	}
	if w.reads == 0 {
		t.Fatal("never read the container's cgroup")
	}
	if w.first.MaxBytes != limitBytes || w.last.MaxBytes != limitBytes {
		t.Errorf("container cgroup limit = %d then %d, want %d", w.first.MaxBytes, w.last.MaxBytes, limitBytes)
	}
	if w.last.Events.OOMKill < 1 {
		t.Errorf("container cgroup oom_kill = %d just before removal, want >= 1", w.last.Events.OOMKill)
	}
	if mode, _, _ := cgroupstat.DetectMode(""); mode == cgroupstat.ModeV1 && !w.last.V1 {
		t.Errorf("container cgroup read as v2 on a v1 memory host")
	}
	if w.last.PeakBytes < limitBytes*9/10 {
		t.Errorf("container cgroup peak %d, want near the %d limit", w.last.PeakBytes, limitBytes)
	}
	// The pod's group outlives the container's; on v1 it does not count the
	// kill (see above), on v2 it does.
	if pod, err := cgroupstat.Read("", parent); err != nil {
		t.Errorf("read pod cgroup %s: %v", parent, err)
	} else {
		t.Logf("pod cgroup %s after the kill: %+v", parent, pod)
		if !pod.V1 && pod.Events.OOMKill < 1 {
			t.Errorf("v2 pod cgroup oom_kill = %d, want >= 1", pod.Events.OOMKill)
		}
	}

	// The agent's lookup at kill time, then kubelet removes everything.
	checkResolves := func(when string, removed bool) {
		t.Helper()
		c, ok := resolver.Container(ctx, id)
		if !ok {
			t.Fatalf("%s: container %s not resolved", when, id)
		}
		if c.Name != "api" || c.PodNamespace != podNamespace || c.PodName != podName || c.PodUID != podUID || c.Image != HogRef {
			t.Errorf("%s: names %+v", when, c)
		}
		if c.MemoryLimitBytes != limitBytes || !c.HasOOMScoreAdj || c.OOMScoreAdj != oomScoreAdj {
			t.Errorf("%s: limit %d (%s), oom_score_adj %d", when, c.MemoryLimitBytes, c.MemoryLimitSource, c.OOMScoreAdj)
		}
		if c.State != cri.StateExited || c.ExitCode != 137 || c.Reason != "OOMKilled" || c.FinishedAt.IsZero() {
			t.Errorf("%s: exit %v %d %q at %v", when, c.State, c.ExitCode, c.Reason, c.FinishedAt)
		}
		if removed == c.Removed.IsZero() {
			t.Errorf("%s: Removed = %v", when, c.Removed)
		}
		if short, ok := resolver.Container(ctx, id[:12]); !ok || short.ID != id {
			t.Errorf("%s: short ID not resolved", when)
		}
		p, ok := resolver.Pod(ctx, podUID)
		if !ok {
			t.Fatalf("%s: pod %s not resolved", when, podUID)
		}
		if p.Namespace != podNamespace || p.Name != podName || p.SandboxID != sandboxID || p.CgroupParent != parent ||
			p.OverheadBytes != 1<<20 || p.MemoryLimitBytes != limitBytes || p.Labels["app"] != "cart" {
			t.Errorf("%s: pod %+v", when, p)
		}
		if removed == p.Removed.IsZero() {
			t.Errorf("%s: pod Removed = %v", when, p.Removed)
		}
	}
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	checkResolves("after the exit", false)
	select {
	case c := <-exits:
		if c.ID != id || c.ExitCode != 137 || c.Reason != "OOMKilled" || c.PodName != podName {
			t.Errorf("OnExit got %+v", c)
		}
	case <-time.After(5 * time.Second):
		t.Error("OnExit not called for the OOM-killed container")
	}

	if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sandboxID}); err != nil {
		t.Fatal(err)
	}
	if _, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: id}); err == nil {
		t.Fatal("the runtime still knows the removed container")
	}
	if err := cache.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	checkResolves("after removal", true)
	t.Logf("OOM run (create -> exit seen): %v", oomTook)
}

// cgroupWatch is what watchCgroup saw.
type cgroupWatch struct {
	first, last cgroupstat.Stats
	reads       int
	// killReads counts the reads that saw the kill; killAt is the first.
	killReads              int
	killAt, lastAt, goneAt time.Time
	err                    error
}

// watchCgroup reads the memory cgroup at path as fast as it can until the
// group is gone, keeping the first and the last figures.
func watchCgroup(ctx context.Context, path string) cgroupWatch {
	var w cgroupWatch
	for ctx.Err() == nil {
		s, err := cgroupstat.Read("", path)
		now := time.Now()
		switch {
		case errors.Is(err, cgroupstat.ErrNotFound) && w.reads > 0:
			w.goneAt = now
			return w
		case errors.Is(err, cgroupstat.ErrNotFound):
			// Not created yet.
		case err != nil:
			// A file can vanish between two reads while runc removes the group.
			if w.reads == 0 {
				w.err = err
				return w
			}
		default:
			if w.reads == 0 {
				w.first = s
			}
			w.last, w.lastAt = s, now
			w.reads++
			if s.Events.OOMKill > 0 {
				if w.killReads == 0 {
					w.killAt = now
				}
				w.killReads++
			}
		}
		time.Sleep(100 * time.Microsecond)
	}
	w.err = ctx.Err()
	return w
}
