package containerd

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/oomwatch/oomwatch/pkg/agent"
	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/enrich"
	"github.com/oomwatch/oomwatch/pkg/proc"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

const (
	stormPods  = 20
	stormLimit = 24 << 20
	stormNS    = "batch"
)

// stormUID is the pod UID of Job pod i.
func stormUID(i int) string { return fmt.Sprintf("5a0b1c2d-3e4f-4a5b-8c6d-%012d", i) }

// TestRealContainerdRateLimitedStorm runs 20 Job pods in the harness's real
// containerd, one container each with its own 24 MiB memory limit (cgroup
// v1 here, where a memcg OOM in a limited group is safe), started one after
// another so that all 20 are killed at their limit within a few seconds.
// The kernel prints at most 10 OOM reports per 5 s node-wide: the later
// kills come as bare "Killed process" lines, their victims gone from /proc.
// Each pod is deleted as soon as its container exited, long before the
// runtime cache's next poll (30 s). The agent's pipeline, reading this
// host's /dev/kmsg, must still attribute every kill to its container and
// name it.
func TestRealContainerdRateLimitedStorm(t *testing.T) {
	SkipIfDisabled(t)
	if os.Geteuid() != 0 {
		t.Fatalf("needs root for containerd, /dev/kmsg, mounts and cgroups (set %s=1 to skip)", EnvSkip)
	}
	h := Start(t, Options{Images: []Image{HogImage(t)}})
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
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
	cache := cri.NewCache(client.Runtime(), log.WithField("component", "cri"), cri.CacheOptions{PollInterval: 30 * time.Second})
	parents := make([]string, stormPods)
	for i := range parents {
		parents[i] = "/kubepods/burstable/pod" + stormUID(i)
		h.CleanupCgroup(parents[i])
	}
	oomEvents := newEventLog()
	pipe := agent.NewPipeline(agent.PipelineConfig{
		Node: "storm-node", BootID: bootID, Proc: procfs, Sink: oomEvents,
		Enricher: enrich.New("", cri.NewResolver(cache, log), nil),
		// Only this test's pods: other tests' kills on this host are not
		// its business.
		Counters: agent.ContainerCounters("", parents...),
	}, log.WithField("component", "pipeline"))
	after := newestKmsgSeq(t)
	items := make(chan devkmsg.Item, 256)
	src := devkmsg.New(log.WithField("component", "kmsg"), devkmsg.Options{After: after})
	runCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	runErrs := make(chan error, 4)
	for name, run := range map[string]func() error{
		"cache":    func() error { return cache.Run(runCtx) },
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
	defer func() {
		stop()
		wg.Wait()
		close(runErrs)
		for err := range runErrs {
			t.Error(err)
		}
	}()
	// The cache has listed the node before the storm, as a running agent's
	// has.
	for deadline := time.Now().Add(10 * time.Second); !cache.Reachable(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the runtime cache never listed the runtime")
		}
	}

	// The pods and their containers are made first, then started one after
	// another; each hog waits for the go file (a host directory mounted in
	// every container), made once all have started, then reaches its limit
	// within milliseconds: however slowly a loaded machine starts
	// containers, the 20 kills come at once.
	rt := h.Runtime()
	goDir := t.TempDir()
	type job struct {
		name, uid, sandbox, container string
		config                        *runtimeapi.PodSandboxConfig
	}
	jobs := make([]*job, stormPods)
	byUID := map[string]*job{}
	for i := range jobs {
		j := &job{name: fmt.Sprintf("migrate-%02d", i), uid: stormUID(i)}
		j.config = &runtimeapi.PodSandboxConfig{
			Metadata:     &runtimeapi.PodSandboxMetadata{Name: j.name, Uid: j.uid, Namespace: stormNS},
			LogDirectory: t.TempDir(),
			Labels: map[string]string{"io.kubernetes.pod.name": j.name, "io.kubernetes.pod.namespace": stormNS,
				"io.kubernetes.pod.uid": j.uid},
			Linux: &runtimeapi.LinuxPodSandboxConfig{
				CgroupParent: parents[i],
				SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{NamespaceOptions: &runtimeapi.NamespaceOption{
					Network: runtimeapi.NamespaceMode_NODE, Pid: runtimeapi.NamespaceMode_CONTAINER, Ipc: runtimeapi.NamespaceMode_POD,
				}},
			},
		}
		sb, err := rt.RunPodSandbox(ctx, &runtimeapi.RunPodSandboxRequest{Config: j.config})
		if err != nil {
			t.Fatalf("RunPodSandbox %s: %v\n%s", j.name, err, h.Log())
		}
		j.sandbox = sb.PodSandboxId
		created, err := rt.CreateContainer(ctx, &runtimeapi.CreateContainerRequest{
			PodSandboxId:  j.sandbox,
			SandboxConfig: j.config,
			Config: &runtimeapi.ContainerConfig{
				Metadata: &runtimeapi.ContainerMetadata{Name: "job"},
				Image:    &runtimeapi.ImageSpec{Image: HogRef},
				Command:  []string{"/hog"},
				Args:     []string{"-mb", "64", "-step", "4", "-wait-file", "/storm/go"},
				Mounts:   []*runtimeapi.Mount{{ContainerPath: "/storm", HostPath: goDir, Readonly: true}},
				LogPath:  "job/0.log",
				Labels: map[string]string{"io.kubernetes.container.name": "job", "io.kubernetes.pod.name": j.name,
					"io.kubernetes.pod.namespace": stormNS, "io.kubernetes.pod.uid": j.uid},
				Linux: &runtimeapi.LinuxContainerConfig{Resources: &runtimeapi.LinuxContainerResources{
					MemoryLimitInBytes: stormLimit, OomScoreAdj: oomScoreAdj,
				}},
			},
		})
		if err != nil {
			t.Fatalf("CreateContainer %s: %v\n%s", j.name, err, h.Log())
		}
		j.container = created.ContainerId
		jobs[i], byUID[j.uid] = j, j
	}
	// Each Job pod is deleted as soon as its container exited.
	deleted := make(chan string, stormPods)
	wg.Add(1)
	go func() {
		defer wg.Done()
		gone := map[string]bool{}
		for len(gone) < stormPods {
			select {
			case <-runCtx.Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
			for _, j := range jobs {
				if gone[j.uid] {
					continue
				}
				st, err := rt.ContainerStatus(runCtx, &runtimeapi.ContainerStatusRequest{ContainerId: j.container})
				if err != nil || st.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_EXITED {
					continue
				}
				_, _ = rt.RemoveContainer(runCtx, &runtimeapi.RemoveContainerRequest{ContainerId: j.container})
				_, _ = rt.StopPodSandbox(runCtx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: j.sandbox})
				_, _ = rt.RemovePodSandbox(runCtx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: j.sandbox})
				gone[j.uid] = true
				deleted <- j.uid
			}
		}
	}()
	started := time.Now()
	for _, j := range jobs {
		if _, err := rt.StartContainer(ctx, &runtimeapi.StartContainerRequest{ContainerId: j.container}); err != nil {
			t.Fatalf("StartContainer %s: %v\n%s", j.name, err, h.Log())
		}
	}
	t.Logf("20 containers started in %v", time.Since(started).Round(time.Millisecond))
	if err := os.WriteFile(filepath.Join(goDir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}

	// One OOM event per Job, its victim the hog. Other tests may kill hogs
	// on this host at the same time: the events placed in other pods are
	// theirs; those placed nowhere may be ours and are shown.
	var events map[string]*pb.Event
	var nowhere []*pb.Event
	deadline := time.After(90 * time.Second)
	for {
		events, nowhere = map[string]*pb.Event{}, nil
		for _, e := range oomEvents.all() {
			v := e.GetOom().GetVictims()[0]
			switch {
			case v.GetComm() != "hog":
			case byUID[v.GetWorkload().GetPodUid()] != nil:
				events[fmt.Sprint(v.GetPid())] = e
			case v.GetWorkload().GetPodUid() == "":
				nowhere = append(nowhere, e)
			}
		}
		if len(events) >= stormPods {
			break
		}
		select {
		case <-oomEvents.added:
		case <-time.After(time.Second):
		case <-deadline:
			for _, e := range nowhere {
				o := e.GetOom()
				t.Logf("a hog placed in no pod: pid %d, cgroup %q, attributed by %q (%d candidates)", o.GetVictims()[0].GetPid(),
					o.GetVictims()[0].GetWorkload().GetCgroup(), o.GetAttributedBy(), o.GetAttributionCandidates())
			}
			t.Fatalf("%d OOM events of the Jobs' hogs after 90 s, want %d\n%s", len(events), stormPods, h.Log())
		}
	}
	// Every pod was deleted right after its kill.
	for range stormPods {
		select {
		case <-deleted:
		case <-time.After(30 * time.Second):
			t.Fatal("a Job pod was not deleted after its kill")
		}
	}

	var first, last time.Time
	by := map[string]int{}
	seen := map[string]bool{}
	var lines []string
	for _, e := range events {
		o := e.GetOom()
		v := o.GetVictims()[0]
		w := v.GetWorkload()
		at := e.GetTime().AsTime()
		if first.IsZero() || at.Before(first) {
			first = at
		}
		if at.After(last) {
			last = at
		}
		by[o.GetAttributedBy()]++
		lines = append(lines, fmt.Sprintf("%s hog[%d] in %s/%s/%s (%s), attributed by %s", at.Format("15:04:05.000"),
			v.GetPid(), w.GetNamespace(), w.GetPodName(), w.GetContainerName(), w.GetWorkloadKind(), o.GetAttributedBy()))
		j := byUID[w.GetPodUid()]
		switch {
		case j == nil:
			t.Errorf("hog[%d]: not attributed to a Job pod: %v (by %q, %d candidates)", v.GetPid(), w, o.GetAttributedBy(),
				o.GetAttributionCandidates())
			continue
		case seen[j.uid]:
			t.Errorf("hog[%d]: two kills attributed to %s", v.GetPid(), j.name)
		}
		seen[j.uid] = true
		if w.GetPodName() != j.name || w.GetNamespace() != stormNS {
			t.Errorf("hog[%d] in %s: pod named %s/%s, want %s/%s", v.GetPid(), j.uid, w.GetNamespace(), w.GetPodName(), stormNS, j.name)
		}
		if w.GetContainerId() != j.container || w.GetContainerName() != "job" {
			t.Errorf("hog[%d] in %s: container %q %q, want %q job (the pod's cgroup may be all that was left)", v.GetPid(), j.name,
				w.GetContainerName(), w.GetContainerId(), j.container)
		}
		if o.GetAttributedBy() == "" || o.GetAttributedBy() == analysis.AttributedNone {
			t.Errorf("hog[%d]: attributed by %q", v.GetPid(), o.GetAttributedBy())
		}
	}
	sort.Strings(lines)
	for _, l := range lines {
		t.Log(l)
	}
	t.Logf("20 kills in %v; attributed by %v", last.Sub(first).Round(time.Millisecond), by)
	if by[analysis.AttributedReport] == stormPods {
		// The kernel allows 10 reports per 5 s window; 20 kills in about
		// 2 s spanning a window's end may, rarely, all be reported.
		t.Errorf("every kill came with its report: the storm did not reach the kernel's rate limit (took %v); run again", last.Sub(first))
	}
}
