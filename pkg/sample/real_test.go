package sample

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
	"github.com/oomwatch/oomwatch/pkg/workload"
)

// realTree is a kubepods tree of real cgroups made under this process's
// own memory cgroup on this machine's mount.
type realTree struct {
	mode     cgroupstat.Mode
	memDir   string
	kubepods string // cgroup path of the tree's kubepods root
	dirs     []string
}

// newRealTree makes <own cgroup>/oomwatch-sample-<pid>/kubepods/burstable/
// pod<uid>/<id> for pods pods of containers containers each; it skips the
// test where cgroups cannot be made (not root, no memory controller, or a
// v2 group with processes, which cannot give its children the controller).
func newRealTree(tb testing.TB, pods, containers int) *realTree {
	tb.Helper()
	if os.Getenv("OOMWATCH_SKIP_SYSTEM_TESTS") == "1" {
		tb.Skip("OOMWATCH_SKIP_SYSTEM_TESTS=1")
	}
	mode, memDir, err := cgroupstat.DetectMode(cgroupstat.DefaultRoot)
	if err != nil {
		tb.Skipf("no memory controller here: %v", err)
	}
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		tb.Skip(err)
	}
	own, err := workload.ParseProcCgroup(bytes.NewReader(b))
	if err != nil {
		tb.Skip(err)
	}
	rt := &realTree{mode: mode, memDir: memDir}
	base := path.Join(own, fmt.Sprintf("oomwatch-sample-%d", os.Getpid()))
	rt.kubepods = base + "/kubepods"
	tb.Cleanup(rt.remove)
	mk := func(cg string) {
		tb.Helper()
		if err := os.Mkdir(filepath.Join(memDir, cg), 0o755); err != nil {
			tb.Skipf("cannot make cgroups here (the test runs as root): %v", err)
		}
		rt.dirs = append(rt.dirs, cg)
	}
	mk(base)
	mk(rt.kubepods)
	mk(rt.kubepods + "/burstable")
	if mode == cgroupstat.ModeV2 {
		for _, cg := range []string{base, rt.kubepods, rt.kubepods + "/burstable"} {
			if err := os.WriteFile(filepath.Join(memDir, cg, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
				tb.Skipf("cannot enable the memory controller below %s: %v", cg, err)
			}
		}
	}
	for i := range pods {
		pod, _ := cgroupfsPaths("burstable", benchUID(i), "")
		pod = base + pod
		mk(pod)
		if mode == cgroupstat.ModeV2 {
			if err := os.WriteFile(filepath.Join(memDir, pod, "cgroup.subtree_control"), []byte("+memory"), 0o644); err != nil {
				tb.Skipf("cannot enable the memory controller below %s: %v", pod, err)
			}
		}
		for j := range containers {
			mk(pod + "/" + benchID(i, j))
		}
	}
	return rt
}

// remove removes the groups, deepest first; rmdir fails while a killed
// task is still being torn down, so it retries briefly.
func (rt *realTree) remove() {
	for i := len(rt.dirs) - 1; i >= 0; i-- {
		p := filepath.Join(rt.memDir, rt.dirs[i])
		for try := 0; try < 50; try++ {
			if err := os.Remove(p); err == nil || errors.Is(err, os.ErrNotExist) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// TestRealHost samples this machine's own kubepods tree, when it is a
// Kubernetes node, and its node figures either way.
func TestRealHost(t *testing.T) {
	s, err := New(Config{})
	if err != nil {
		t.Skipf("no memory controller here: %v", err)
	}
	var snap Snapshot
	if err := s.Sample(time.Now(), &snap); err != nil {
		t.Fatal(err)
	}
	checkSane(t, &snap)
	t.Logf("%v host: %d pod and container groups, node %+v", snap.Mode, len(snap.Groups), snap.Node)
}

// TestRealTree makes a small kubepods tree of real cgroups, runs a process
// in one container that writes 8 MiB of page cache under a 64 MiB limit,
// and checks the figures the kernel gives.
func TestRealTree(t *testing.T) {
	rt := newRealTree(t, 2, 2)
	_, ctr := cgroupfsPaths("burstable", benchUID(0), benchID(0, 0))
	ctr = path.Dir(rt.kubepods) + ctr
	ctrDir := filepath.Join(rt.memDir, ctr)
	limitFile := "memory.max"
	if rt.mode == cgroupstat.ModeV1 {
		limitFile = "memory.limit_in_bytes"
	}
	if err := os.WriteFile(filepath.Join(ctrDir, limitFile), []byte(strconv.Itoa(64<<20)), 0o644); err != nil {
		t.Skipf("cannot set a memory limit here: %v", err)
	}
	// The shell moves itself into the group before dd writes, so the page
	// cache is charged there; it then waits to be killed.
	cache := filepath.Join(t.TempDir(), "cache")
	cmd := exec.Command("sh", "-c", `echo $$ > "$1/cgroup.procs" && dd if=/dev/zero of="$2" bs=1M count=8 2>/dev/null && echo ok && exec sleep 60`, "sh", ctrDir, cache)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	line := make([]byte, 3)
	if _, err := out.Read(line); err != nil || string(line) != "ok\n" {
		t.Fatalf("writer: %q, %v", line, err)
	}

	_, snap := sampleOnce(t, Config{Kubepods: []string{rt.kubepods}})
	checkSane(t, snap)
	if len(snap.Groups) != 6 || snap.Node.Kubepods.Workload.Cgroup != rt.kubepods {
		t.Fatalf("%d groups, kubepods %q; want 6, %q", len(snap.Groups), snap.Node.Kubepods.Workload.Cgroup, rt.kubepods)
	}
	g := find(snap, ctr)
	if g == nil {
		t.Fatalf("container %s not sampled", ctr)
	}
	if g.LimitBytes != 64<<20 || g.UsageBytes < 4<<20 || g.Workload.ContainerID != benchID(0, 0) || g.Workload.PodUID != benchUID(0) {
		t.Errorf("container %+v", g)
	}
	for _, other := range snap.Groups {
		if other.Workload.Kind == workload.KindContainer && other.Workload.Cgroup != ctr && other.LimitBytes != 0 {
			t.Errorf("%s: limit %d, want unlimited", other.Workload.Cgroup, other.LimitBytes)
		}
	}
	t.Logf("container: usage %d, inactive file %d, working set %d, limit %d, events %+v, psi %v %+v",
		g.UsageBytes, g.InactiveFileBytes, g.WorkingSetBytes, g.LimitBytes, g.Events, g.Has(FieldPSI), g.PSI)
}

// checkSane checks what holds of any real snapshot.
func checkSane(t *testing.T, snap *Snapshot) {
	t.Helper()
	if snap.Errors != 0 || snap.Truncated {
		t.Errorf("errors %d (first: %v), truncated %v", snap.Errors, snap.Err, snap.Truncated)
	}
	n := snap.Node
	if !n.HaveMemInfo || n.MemTotalBytes <= 0 || n.MemAvailableBytes < 0 || n.MemAvailableBytes > n.MemTotalBytes {
		t.Errorf("node meminfo %v: total %d available %d", n.HaveMemInfo, n.MemTotalBytes, n.MemAvailableBytes)
	}
	if _, err := os.ReadFile("/proc/pressure/memory"); (err == nil) != n.HavePSI {
		t.Errorf("node HavePSI %v, /proc/pressure/memory: %v", n.HavePSI, err)
	}
	if n.HavePSI && (n.PSI.Some.Avg10 < 0 || n.PSI.Some.Avg10 > 100 || n.PSI.Full.Total > n.PSI.Some.Total) {
		t.Errorf("node PSI %+v", n.PSI)
	}
	for _, g := range snap.Groups {
		want := FieldUsage | FieldLimit | FieldInactiveFile | FieldWorkingSet
		if snap.Mode == cgroupstat.ModeV1 {
			want |= FieldFailcnt | FieldOOMControl
		} else {
			want |= FieldHigh | FieldEvents
		}
		if !g.Has(want) {
			t.Errorf("%s: have %b, want at least %b", g.Workload.Cgroup, g.Have, want)
		}
		if g.UsageBytes < 0 || g.WorkingSetBytes < 0 || g.WorkingSetBytes > g.UsageBytes || g.LimitBytes < 0 {
			t.Errorf("%s: usage %d working set %d limit %d", g.Workload.Cgroup, g.UsageBytes, g.WorkingSetBytes, g.LimitBytes)
		}
		if g.Workload.Kind != workload.KindPod && g.Workload.Kind != workload.KindContainer {
			t.Errorf("%s: kind %q", g.Workload.Cgroup, g.Workload.Kind)
		}
		if g.Events.OOMKill > g.Events.OOM && snap.Mode == cgroupstat.ModeV2 {
			t.Errorf("%s: events %+v", g.Workload.Cgroup, g.Events)
		}
	}
}

// BenchmarkSampleReal300 samples 300 containers in 100 pods made as real
// cgroups on this machine's mount (empty ones: the kernel's work to print
// a file hardly depends on what the group holds).
func BenchmarkSampleReal300(b *testing.B) {
	rt := newRealTree(b, benchPods, 3)
	costReport(b, Config{Kubepods: []string{rt.kubepods}}, benchContainers+benchPods)
}

// BenchmarkLibraryReal300 is BenchmarkLibrary300 on the real cgroups of
// BenchmarkSampleReal300.
func BenchmarkLibraryReal300(b *testing.B) {
	rt := newRealTree(b, benchPods, 3)
	_, snap := sampleOnce(b, Config{Kubepods: []string{rt.kubepods}})
	libraryCost(b, cgroupstat.DefaultRoot, rt.mode, snap)
}
