package sample

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3/cgroup1"
	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	"github.com/containerd/cgroups/v3/cgroup2"
	"golang.org/x/sys/unix"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
)

// The cost goal of issue #17: sampling 300 containers every 10 s costs
// under 0.2% of a core and under 2 MiB of agent memory.
const (
	benchContainers = 300
	benchPods       = benchContainers / 3
	benchInterval   = 10 * time.Second
)

// benchID and benchUID make distinct, well-formed IDs for pod i and its
// container j.
func benchUID(i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i) }
func benchID(i, j int) string {
	return fmt.Sprintf("%016x%016x%016x%016x", i, j, i*j+1, 0xabcdef)
}

// benchTree writes a node of 100 burstable pods with 3 containers each,
// with every control file a real cgroup directory has, in the layout
// kubelet's driver makes (systemd on v2, cgroupfs on v1, as is usual).
func benchTree(tb testing.TB, mode cgroupstat.Mode) *tree {
	tr := newTree(tb, mode)
	tr.Extra = true
	paths, root := systemdPaths, "/kubepods.slice"
	if mode == cgroupstat.ModeV1 {
		paths, root = cgroupfsPaths, "/kubepods"
	}
	tr.group(root, mem{usage: 6 << 30, inactive: 1 << 30, limit: "12884901888", psi: psiSome})
	for i := range benchPods {
		for j := range 3 {
			pod, ctr := paths("burstable", benchUID(i), benchID(i, j))
			if j == 0 {
				tr.group(pod, mem{usage: 300 << 20, inactive: 20 << 20, psi: psiSome})
			}
			tr.group(ctr, mem{usage: 100 << 20, inactive: 10 << 20, limit: "268435456", psi: psiSome, highEvents: 3})
		}
	}
	return tr
}

// costReport runs rounds of s into two alternating snapshots, as the agent
// will, and reports CPU time per round (user + system, from getrusage), the
// share of a core that is at a 10 s interval, and the heap the Sampler and
// its two snapshots retain.
func costReport(b *testing.B, cfg Config, wantGroups int) {
	b.Helper()
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	s, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	snaps := new([2]Snapshot)
	for i := range snaps { // warm: the tree is learned, the room grown
		if err := s.Sample(time.Now(), &snaps[i]); err != nil {
			b.Fatal(err)
		}
	}
	if got := len(snaps[0].Groups); got != wantGroups || snaps[0].Errors != 0 {
		b.Fatalf("%d groups (want %d), %d errors: %v", got, wantGroups, snaps[0].Errors, snaps[0].Err)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	retained := int64(after.HeapAlloc) - int64(before.HeapAlloc)

	measureRounds(b, len(snaps[0].Groups), func(i int) {
		if err := s.Sample(time.Now(), &snaps[i%2]); err != nil {
			b.Fatal(err)
		}
	})
	b.ReportMetric(float64(retained), "retained-B")
	runtime.KeepAlive(s)
	runtime.KeepAlive(snaps)
}

// measureRounds runs round b.N times and reports the CPU time a round
// takes (user and system, from getrusage), the share of a core that is at
// a 10 s interval, and the groups a round reads.
func measureRounds(b *testing.B, groups int, round func(i int)) {
	b.Helper()
	var ru0, ru1 unix.Rusage
	b.ReportAllocs()
	b.ResetTimer()
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru0)
	for i := 0; i < b.N; i++ {
		round(i)
	}
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru1)
	b.StopTimer()
	cpu := float64(cpuNanos(ru1)-cpuNanos(ru0)) / float64(b.N)
	b.ReportMetric(cpu, "cpu-ns/round")
	b.ReportMetric(100*cpu/float64(benchInterval), "core-%@10s")
	b.ReportMetric(float64(groups), "groups")
}

func cpuNanos(ru unix.Rusage) int64 {
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkSample300 samples 300 containers in 100 pods on tmpfs fixture
// trees. tmpfs files cost less to read than the kernel's cgroup files
// (memory.stat is generated on read); BenchmarkSampleReal300 measures those.
func BenchmarkSample300(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode.String(), func(b *testing.B) {
			tr := benchTree(b, mode)
			costReport(b, Config{CgroupRoot: tr.root, ProcRoot: tr.proc}, benchContainers+benchPods)
		})
	}
}

// BenchmarkLibrary300 reads the same 400 groups as BenchmarkSample300
// through github.com/containerd/cgroups/v3, without the walk (the group
// paths are given): what using the library for the reads would cost.
// v2: cgroup2.Load + StatFiltered(StatMemory|StatMemoryEvents), plus
// memory.high, which the library does not read. v1: the cgroup1 memory
// controller's Stat without the memsw and kmem files.
func BenchmarkLibrary300(b *testing.B) {
	for _, mode := range modes {
		b.Run(mode.String(), func(b *testing.B) {
			tr := benchTree(b, mode)
			_, snap := sampleOnce(b, Config{CgroupRoot: tr.root, ProcRoot: tr.proc})
			libraryCost(b, tr.root, mode, snap)
		})
	}
}

func libraryCost(b *testing.B, root string, mode cgroupstat.Mode, snap *Snapshot) {
	b.Helper()
	var paths []string
	for _, g := range snap.Groups {
		paths = append(paths, g.Workload.Cgroup)
	}
	if len(paths) == 0 {
		b.Fatal("no groups")
	}
	_, memDir, err := cgroupstat.DetectMode(root)
	if err != nil {
		b.Fatal(err)
	}
	v1mem := cgroup1.NewMemory(filepath.Dir(memDir), cgroup1.IgnoreModules("memsw", "kmem", "kmem.tcp"))
	measureRounds(b, len(paths), func(int) {
		for _, p := range paths {
			if mode == cgroupstat.ModeV1 {
				var m v1stats.Metrics
				if err := v1mem.Stat(p, &m); err != nil {
					b.Fatal(err)
				}
				continue
			}
			mgr, err := cgroup2.Load(p, cgroup2.WithMountpoint(memDir))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := mgr.StatFiltered(cgroup2.StatMemory | cgroup2.StatMemoryEvents); err != nil {
				b.Fatal(err)
			}
			if _, err := os.ReadFile(filepath.Join(memDir, p, "memory.high")); err != nil {
				b.Fatal(err)
			}
		}
	})
}
