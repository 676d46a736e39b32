package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/oomwatch/oomwatch/pkg/agent"
	"github.com/oomwatch/oomwatch/pkg/aggregator"
	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/enrich"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/exits"
	"github.com/oomwatch/oomwatch/pkg/proc"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// eventLog is a sink that keeps every event and tells of each.
type eventLog struct {
	mu     sync.Mutex
	events []*pb.Event
	added  chan struct{}
}

func newEventLog() *eventLog { return &eventLog{added: make(chan struct{}, 1)} }

func (l *eventLog) Put(_ context.Context, evs ...*pb.Event) error {
	l.mu.Lock()
	l.events = append(l.events, evs...)
	l.mu.Unlock()
	select {
	case l.added <- struct{}{}:
	default:
	}
	return nil
}

func (l *eventLog) all() []*pb.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*pb.Event(nil), l.events...)
}

// newestKmsgSeq returns the sequence number of the newest record in the
// kernel log, read from /dev/kmsg without blocking.
func newestKmsgSeq(t *testing.T) int64 {
	t.Helper()
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("open /dev/kmsg: %v", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, 16<<10)
	newest := int64(-1)
	for {
		n, err := unix.Read(fd, buf)
		switch {
		case errors.Is(err, unix.EAGAIN):
			return newest
		case errors.Is(err, unix.EPIPE):
			continue // overwritten while reading: the next read goes on
		case err != nil:
			t.Fatalf("read /dev/kmsg: %v", err)
		}
		// "<prio>,<seq>,<usec>,<flags>;<text>"
		head, _, _ := bytes.Cut(buf[:n], []byte(";"))
		f := strings.Split(string(head), ",")
		if len(f) < 2 {
			t.Fatalf("kmsg record header %q", head)
		}
		seq, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			t.Fatalf("kmsg record header %q: %v", head, err)
		}
		newest = max(newest, seq)
	}
}

const (
	exitsPodUID = "7c1d2e3f-4a5b-4c6d-8e9f-0a1b2c3d4e5f"
	exitsPod    = "exits-demo"
	exitsNS     = "shop"
	exitsNode   = "exits-node"
)

// TestRealContainerdExits runs oomwatch's agent pieces in-process against
// the real containerd of the harness and this host's real kernel log: the
// /dev/kmsg source (starting after the newest record), the agent pipeline
// (with the enricher naming victims through CRI) and the exits Joiner fed
// by the CRI cache's OnExit hook and the pipeline's events. Four containers
// of one pod, each with a 32 MiB memory limit (cgroup v1 here, where a
// memcg OOM in a limited group is safe):
//
//	(a) a hog killed at its limit:                  exit 137, oom-limit
//	(b) a shell ignoring SIGTERM, stopped with 1 s: exit 137, not-oom
//	(c) a shell whose hog child is killed:          no exit, oom-child
//	(d) a shell exiting on SIGTERM, stopped:        exit 143, graceful
func TestRealContainerdExits(t *testing.T) {
	SkipIfDisabled(t)
	if os.Geteuid() != 0 {
		t.Fatalf("needs root for containerd, /dev/kmsg, mounts and cgroups (set %s=1 to skip)", EnvSkip)
	}
	h := Start(t, Options{Images: []Image{HogImage(t)}})
	t.Logf("containerd harness (%s snapshotter): install %v, build images %v, start %v, import %v",
		h.Snapshotter, h.Timings.Install, h.Timings.BuildImages, h.Timings.Start, h.Timings.Import)

	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	log := testLog(t)
	procfs := proc.New("/proc")
	bootID, err := procfs.BootID()
	if err != nil {
		t.Fatal(err)
	}
	client, err := cri.Dial(ctx, h.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	// The agent's wiring: cache -> Joiner.Exit, pipeline -> Joiner.OOM.
	exitEvents := newEventLog()
	var joiner *exits.Joiner
	cache := cri.NewCache(client.Runtime(), log.WithField("component", "cri"), cri.CacheOptions{
		PollInterval: 200 * time.Millisecond,
		OnExit:       func(c cri.Container) { joiner.Exit(c) },
		TaskExits:    client,
	})
	const grace = 5 * time.Second
	joiner = exits.New(exitEvents, exits.CRIStates{Cache: cache}, log.WithField("component", "exits"),
		exits.Options{Node: exitsNode, BootID: bootID, Grace: grace})
	oomEvents := newEventLog()
	pipe := agent.NewPipeline(agent.PipelineConfig{
		Node: exitsNode, BootID: bootID, Proc: procfs, Sink: oomEvents,
		Enricher: enrich.New("", cri.NewResolver(cache, log), nil),
		Observe:  joiner.OOM,
	}, log.WithField("component", "pipeline"))
	after := newestKmsgSeq(t)
	items := make(chan devkmsg.Item, 256)
	src := devkmsg.New(log.WithField("component", "kmsg"), devkmsg.Options{After: after})

	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	runErrs := make(chan error, 4)
	for name, run := range map[string]func() error{
		"cache":    func() error { return cache.Run(runCtx) },
		"joiner":   func() error { return joiner.Run(runCtx) },
		"pipeline": func() error { return pipe.Run(runCtx, items) },
		"kmsg":     func() error { return src.Run(runCtx, items) },
	} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := run(); err != nil && !errors.Is(err, context.Canceled) {
				runErrs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	// Stop the agent pieces before the harness stops the pod: its exits
	// are not part of the test.
	defer func() {
		stop()
		wg.Wait()
		close(runErrs)
		for err := range runErrs {
			t.Error(err)
		}
	}()

	rt := h.Runtime()
	parent := "/kubepods/burstable/pod" + exitsPodUID
	h.CleanupCgroup(parent)
	sbConfig := &runtimeapi.PodSandboxConfig{
		Metadata:     &runtimeapi.PodSandboxMetadata{Name: exitsPod, Uid: exitsPodUID, Namespace: exitsNS},
		LogDirectory: t.TempDir(),
		Labels: map[string]string{"io.kubernetes.pod.name": exitsPod, "io.kubernetes.pod.namespace": exitsNS,
			"io.kubernetes.pod.uid": exitsPodUID},
		Linux: &runtimeapi.LinuxPodSandboxConfig{
			CgroupParent: parent,
			SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
				Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
			}},
		},
	}
	sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: sbConfig})
	if err != nil {
		t.Fatalf("RunPodSandbox: %v\n%s", err, h.Log())
	}
	startContainer := func(name string, cmd ...string) (string, time.Time) {
		t.Helper()
		created, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
			PodSandboxId:  sb.PodSandboxId,
			SandboxConfig: sbConfig,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: name},
				Image:    &runtimeapi.ImageSpec{Image: HogRef},
				Command:  cmd[:1],
				Args:     cmd[1:],
				LogPath:  name + "/0.log",
				Labels: map[string]string{"io.kubernetes.container.name": name, "io.kubernetes.pod.name": exitsPod,
					"io.kubernetes.pod.namespace": exitsNS, "io.kubernetes.pod.uid": exitsPodUID},
				Linux: &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
					MemoryLimitInBytes: limitBytes, OomScoreAdj: oomScoreAdj,
				}},
			},
		})
		if err != nil {
			t.Fatalf("CreateContainer %s: %v\n%s", name, err, h.Log())
		}
		if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: created.ContainerId}); err != nil {
			t.Fatalf("StartContainer %s: %v\n%s", name, err, h.Log())
		}
		return created.ContainerId, time.Now()
	}
	// The four containers run at once; each event is told apart by its
	// container ID.
	hog := []string{"/hog", "-mb", "64", "-step", "4", "-interval", "100ms"}
	idA, startA := startContainer("limit", hog...)
	idB, startB := startContainer("stubborn", "/bin/sh", "-c", "trap '' TERM; echo ready; sleep 1000")
	idC, startC := startContainer("parent", "/bin/sh", "-c", strings.Join(hog, " ")+"; echo hog gone; sleep 1000")
	idD, startD := startContainer("polite", "/bin/sh", "-c", "trap 'exit 143' TERM; while :; do sleep 1 & wait $!; done")
	idE, startE := startContainer("removed", "/bin/sh", "-c", "trap '' TERM; echo ready; sleep 1000")
	names := map[string]string{idA: "limit", idB: "stubborn", idC: "parent", idD: "polite", idE: "removed"}

	// Let the shells install their traps, then stop (b) with a 1 s grace
	// period (runc sends SIGTERM, then SIGKILL) and (d) with 10 s.
	time.Sleep(time.Second)
	stops := map[string]time.Time{}
	var stopWG sync.WaitGroup
	for id, timeout := range map[string]int64{idB: 1, idD: 10} {
		stops[id] = time.Now()
		stopWG.Add(1)
		go func() {
			defer stopWG.Done()
			if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: id, Timeout: timeout}); err != nil {
				t.Errorf("StopContainer %s: %v", names[id], err)
			}
		}()
	}
	// (e) as kubelet ends a deleted pod: stopped with 1 s, then removed
	// at once, long before the next poll.
	stops[idE] = time.Now()
	stopWG.Add(1)
	go func() {
		defer stopWG.Done()
		if _, err := rt.StopContainer(ctx, &runtimeapi.StopContainerRequest{ContainerId: idE, Timeout: 1}); err != nil {
			t.Errorf("StopContainer removed: %v", err)
		}
		if _, err := rt.RemoveContainer(ctx, &runtimeapi.RemoveContainerRequest{ContainerId: idE}); err != nil {
			t.Errorf("RemoveContainer removed: %v", err)
		}
	}()
	stopWG.Wait()

	// Wait for one event per container.
	byID := map[string]*pb.Event{}
	seenAt := map[string]time.Time{}
	deadline := time.After(90 * time.Second)
	for len(byID) < len(names) {
		select {
		case <-exitEvents.added:
		case <-deadline:
			t.Fatalf("events for %d of 5 containers after 90 s: %v\nOOM events: %v\n%s", len(byID), exitEvents.all(), oomEvents.all(), h.Log())
		}
		for _, e := range exitEvents.all() {
			id := e.GetExit().GetWorkload().GetContainerId()
			if _, ok := byID[id]; !ok && names[id] != "" {
				byID[id], seenAt[id] = e, time.Now()
			}
		}
	}
	// No event more: (a)'s kill must not also come as oom-child, (c) must
	// not exit. The oom-child checks are due `grace` after each kill.
	time.Sleep(grace + time.Second)
	if n := len(exitEvents.all()); n != len(names) {
		for _, e := range exitEvents.all() {
			t.Logf("event: %v", e)
		}
		t.Errorf("%d events, want %d", n, len(names))
	}

	// The OOM events the pipeline made of this host's kernel log.
	oomOf := map[string]*pb.Event{}
	for _, e := range oomEvents.all() {
		for _, v := range e.GetOom().GetVictims() {
			if id := v.GetWorkload().GetContainerId(); names[id] != "" {
				oomOf[id] = e
			}
		}
	}
	hello := &pb.Hello{Node: exitsNode, BootId: bootID}
	check := func(id string, verdict string, code int32, reason string, says ...string) *pb.ContainerExit {
		t.Helper()
		e := byID[id]
		x := e.GetExit()
		t.Logf("%s: %s", names[id], x.GetExplanation())
		if x.GetVerdict() != verdict || x.GetExitCode() != code || x.GetRuntimeReason() != reason {
			t.Errorf("%s: verdict %q exit %d %q, want %q %d %q", names[id], x.GetVerdict(), x.GetExitCode(), x.GetRuntimeReason(), verdict, code, reason)
		}
		w := x.GetWorkload()
		if w.GetContainerName() != names[id] || w.GetPodName() != exitsPod || w.GetNamespace() != exitsNS || w.GetPodUid() != exitsPodUID {
			t.Errorf("%s: workload %v", names[id], w)
		}
		for _, s := range says {
			if !strings.Contains(x.GetExplanation(), s) {
				t.Errorf("%s: explanation lacks %q", names[id], s)
			}
		}
		if err := aggregator.ValidateEvent(e, hello); err != nil {
			t.Errorf("%s: the aggregator would refuse the event: %v", names[id], err)
		}
		if eventid.TypeOf(e) != eventid.TypeExit || e.GetNode() != exitsNode || e.GetBootId() != bootID {
			t.Errorf("%s: envelope %v", names[id], e)
		}
		if oom := oomOf[id]; verdict == exits.VerdictOOMLimit || verdict == exits.VerdictOOMChild {
			if oom == nil {
				t.Fatalf("%s: no OOM event from the kernel log", names[id])
			}
			if want := fmt.Sprintf("%s/%s/oom/%d", exitsNode, bootID, oom.GetSeq()); x.GetOomEventId() != want {
				t.Errorf("%s: oom_event_id %q, want %q", names[id], x.GetOomEventId(), want)
			}
			killed := false
			for _, l := range x.GetEvidence() {
				killed = killed || strings.Contains(l, "Killed process") && strings.Contains(l, "(hog)")
			}
			if !killed || len(x.GetEvidence()) > 20 {
				t.Errorf("%s: evidence %q", names[id], x.GetEvidence())
			}
		} else if x.GetOomEventId() != "" || oom != nil {
			t.Errorf("%s: joined with OOM event %q (%v)", names[id], x.GetOomEventId(), oom)
		}
		return x
	}

	// (a) killed at its own limit.
	x := check(idA, exits.VerdictOOMLimit, 137, "OOMKilled",
		"Container limit of pod shop/exits-demo exited with code 137 (OOMKilled): the kernel's OOM killer killed hog (pid ",
		"because the container hit its own memory limit of 32 MiB.")
	if f := x.GetFinishedAt().AsTime(); f.Before(startA) || time.Since(f) > 2*time.Minute || !byID[idA].GetTime().AsTime().Equal(f) {
		t.Errorf("limit: finished_at %v", f)
	}
	// (b) SIGKILL after the stop's grace period: not the OOM killer.
	x = check(idB, exits.VerdictNotOOM, 137, "Error",
		"it was killed with SIGKILL, but the kernel logged no OOM kill in this container",
		"The runtime did not say whether or when a stop was requested.")
	if x.GetStopRequestedAt() != nil {
		t.Errorf("stubborn: stop_requested_at %v: containerd's CRI does not report it", x.GetStopRequestedAt())
	}
	if took := x.GetFinishedAt().AsTime().Sub(stops[idB]); took < 900*time.Millisecond || took > 10*time.Second {
		t.Errorf("stubborn: exited %v after the stop request, want about the 1 s timeout", took)
	}
	// (c) the hog child killed, the shell still running.
	x = check(idC, exits.VerdictOOMChild, 0, "Running",
		"Container parent of pod shop/exits-demo is still running: the kernel's OOM killer killed hog (pid ",
		"not its main process, because the container hit its own memory limit of 32 MiB")
	if x.GetFinishedAt() != nil {
		t.Errorf("parent: finished_at %v", x.GetFinishedAt())
	}
	if st, err := rt.ContainerStatus(ctx, &runtimeapi.ContainerStatusRequest{ContainerId: idC}); err != nil ||
		st.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("parent: status %v, %v: want still running", st.GetStatus().GetState(), err)
	}
	// (d) a graceful stop.
	check(idD, exits.VerdictGraceful, 143, "Error", "exited with code 143 (Error): it ended on SIGTERM")

	// (e) removed by the time anyone could list it: the runtime's task
	// exit event told the agent, with the exit code (the runtime's reason
	// too when its status was still there a moment after the exit).
	e := byID[idE].GetExit()
	t.Logf("removed: %s", e.GetExplanation())
	if e.GetVerdict() != exits.VerdictNotOOM || e.GetExitCode() != 137 || (e.GetRuntimeReason() != "Error" && e.GetRuntimeReason() != "") ||
		e.GetWorkload().GetContainerName() != "removed" || e.GetWorkload().GetPodName() != exitsPod {
		t.Errorf("removed: verdict %q exit %d %q workload %v, want not-oom 137", e.GetVerdict(), e.GetExitCode(), e.GetRuntimeReason(), e.GetWorkload())
	}
	if took := e.GetFinishedAt().AsTime().Sub(stops[idE]); took < 900*time.Millisecond || took > 10*time.Second {
		t.Errorf("removed: exited %v after the stop request, want about the 1 s timeout", took)
	}

	for id, start := range map[string]time.Time{idA: startA, idB: startB, idC: startC, idD: startD, idE: startE} {
		t.Logf("%s: container started -> event put: %v", names[id], seenAt[id].Sub(start).Round(time.Millisecond))
	}
	t.Logf("joiner stats: %+v", joiner.Stats())
}
