// Package sampletest builds cgroup mounts and /proc trees under a test's
// temporary directory, with the files and formats the kernel writes, for
// the tests of package sample and of its users (the agent's warnings).
package sampletest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
)

// V1Unlimited is what a cgroup v1 memory.limit_in_bytes says without a
// limit on a 4 KiB-page kernel: PAGE_COUNTER_MAX pages.
const V1Unlimited = "9223372036854771712"

// Tree is a cgroup mount and a /proc under a test's temporary directory.
type Tree struct {
	TB   testing.TB
	Root string // the cgroup mount
	Proc string // the /proc root
	Mode cgroupstat.Mode
	// Extra: write the other control files a real cgroup directory has.
	Extra bool
}

// New makes a Tree of cgroup version mode, with a node's meminfo (16 GB,
// 4 GB available) and memory pressure.
func New(tb testing.TB, mode cgroupstat.Mode) *Tree {
	tb.Helper()
	base := tb.TempDir()
	tr := &Tree{TB: tb, Root: filepath.Join(base, "cgroup"), Proc: filepath.Join(base, "proc"), Mode: mode}
	if mode == cgroupstat.ModeV1 {
		tr.Write("memory/memory.limit_in_bytes", V1Unlimited+"\n")
		tr.Write("unified/cgroup.controllers", "\n")
	} else {
		tr.Write("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
	}
	tr.WriteProc("meminfo", "MemTotal:       16384000 kB\nMemFree:         1024000 kB\nMemAvailable:    4096000 kB\nBuffers:           10240 kB\n")
	tr.WriteProc("pressure/memory", "some avg10=2.50 avg60=1.25 avg300=0.30 total=123456\nfull avg10=1.00 avg60=0.50 avg300=0.10 total=65432\n")
	return tr
}

// Write writes the file rel of the cgroup mount.
func (tr *Tree) Write(rel, content string) {
	tr.TB.Helper()
	WriteFile(tr.TB, filepath.Join(tr.Root, filepath.FromSlash(rel)), content)
}

// WriteProc writes the file rel of /proc.
func (tr *Tree) WriteProc(rel, content string) {
	tr.TB.Helper()
	WriteFile(tr.TB, filepath.Join(tr.Proc, filepath.FromSlash(rel)), content)
}

// WriteFile writes p, making its directory.
func WriteFile(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// Dir is the directory of cgroup cg, relative to the mount.
func (tr *Tree) Dir(cg string) string {
	if tr.Mode == cgroupstat.ModeV1 {
		return "memory" + cg
	}
	return strings.TrimPrefix(cg, "/")
}

// Abs is the absolute directory of cgroup cg.
func (tr *Tree) Abs(cg string) string {
	return filepath.Join(tr.Root, filepath.FromSlash(tr.Dir(cg)))
}

// Remove removes cgroup cg and its children, as the kernel does when its
// container ends.
func (tr *Tree) Remove(cg string) {
	tr.TB.Helper()
	if err := os.RemoveAll(tr.Abs(cg)); err != nil {
		tr.TB.Fatal(err)
	}
}

// Mem are a group's figures as the fixture writes them.
type Mem struct {
	Usage, Inactive int64
	Limit, High     string // as written; "" writes "max" (v1: PAGE_COUNTER_MAX)
	HighEvents      uint64 // v2 memory.events high
	MaxEvents       uint64 // v2 memory.events max; v1 failcnt
	OOM, OOMKill    uint64
	UnderOOM        bool
	PSI             string // memory.pressure content; "" writes none
}

// Group writes the memory files of cgroup cg.
func (tr *Tree) Group(cg string, m Mem) {
	tr.TB.Helper()
	d := tr.Dir(cg) + "/"
	limit := m.Limit
	if tr.Mode == cgroupstat.ModeV1 {
		if limit == "" {
			limit = V1Unlimited
		}
		tr.Write(d+"memory.usage_in_bytes", fmt.Sprintf("%d\n", m.Usage))
		tr.Write(d+"memory.limit_in_bytes", limit+"\n")
		tr.Write(d+"memory.failcnt", fmt.Sprintf("%d\n", m.MaxEvents))
		under := 0
		if m.UnderOOM {
			under = 1
		}
		tr.Write(d+"memory.oom_control", fmt.Sprintf("oom_kill_disable %d\nunder_oom %d\noom_kill %d\n", under, under, m.OOMKill))
		tr.Write(d+"memory.stat", statV1(m))
		if tr.Extra {
			for _, f := range OtherFilesV1 {
				tr.Write(d+f, "0\n")
			}
		}
		return
	}
	if limit == "" {
		limit = "max"
	}
	high := m.High
	if high == "" {
		high = "max"
	}
	tr.Write(d+"memory.current", fmt.Sprintf("%d\n", m.Usage))
	tr.Write(d+"memory.max", limit+"\n")
	tr.Write(d+"memory.high", high+"\n")
	tr.Write(d+"memory.events", fmt.Sprintf("low 0\nhigh %d\nmax %d\noom %d\noom_kill %d\noom_group_kill 0\n", m.HighEvents, m.MaxEvents, m.OOM, m.OOMKill))
	tr.Write(d+"memory.stat", statV2(m))
	if m.PSI != "" {
		tr.Write(d+"memory.pressure", m.PSI)
	}
	if tr.Extra {
		for _, f := range OtherFilesV2 {
			tr.Write(d+f, "0\n")
		}
	}
}

// statV2 is a 6.1 kernel's memory.stat with the figures of m.
func statV2(m Mem) string {
	file := m.Inactive * 2
	return fmt.Sprintf(`anon %d
file %d
kernel 1622016
kernel_stack 163840
pagetables 528384
sec_pagetables 0
percpu 4680
sock 0
vmalloc 0
shmem 0
zswap 0
zswapped 0
file_mapped 3244032
file_dirty 0
file_writeback 0
swapcached 0
anon_thp 0
file_thp 0
shmem_thp 0
inactive_anon %d
active_anon 4096
inactive_file %d
active_file %d
unevictable 0
slab_reclaimable 617024
slab_unreclaimable 247392
slab 864416
workingset_refault_anon 0
workingset_refault_file 0
workingset_activate_anon 0
workingset_activate_file 0
workingset_restore_anon 0
workingset_restore_file 0
workingset_nodereclaim 0
pgscan 0
pgsteal 0
pgscan_kswapd 0
pgscan_direct 0
pgsteal_kswapd 0
pgsteal_direct 0
pgfault 23877
pgmajfault 112
pgrefill 0
pgactivate 1
pgdeactivate 0
pglazyfree 0
pglazyfreed 0
zswpin 0
zswpout 0
thp_fault_alloc 0
thp_collapse_alloc 0
`, max(m.Usage-file, 0), file, max(m.Usage-file, 0), m.Inactive, file-m.Inactive)
}

// statV1 is a 5.10 kernel's memory.stat with the figures of m; the local
// inactive_file differs from the hierarchical total, which is what counts.
func statV1(m Mem) string {
	return fmt.Sprintf(`cache 0
rss 0
rss_huge 0
shmem 0
mapped_file 0
dirty 0
writeback 0
swap 0
pgpgin 0
pgpgout 0
pgfault 0
pgmajfault 0
inactive_anon 0
active_anon 0
inactive_file 7
active_file 0
unevictable 0
hierarchical_memory_limit 9223372036854771712
hierarchical_memsw_limit 9223372036854771712
total_cache %d
total_rss %d
total_rss_huge 0
total_shmem 0
total_mapped_file 3522560
total_dirty 0
total_writeback 0
total_swap 0
total_pgpgin 87896070
total_pgpgout 87811471
total_pgfault 87877697
total_pgmajfault 18159
total_inactive_anon 5115904
total_active_anon 40960
total_inactive_file %d
total_active_file 0
total_unevictable 0
`, m.Inactive, max(m.Usage-m.Inactive, 0), m.Inactive)
}

// OtherFilesV2 and OtherFilesV1 are the other control files of a container cgroup directory (6.1, cgroup v2 with
// the usual controllers; 5.10 v1 memory hierarchy), for the walk's cost.
var (
	OtherFilesV2 = []string{
		"cgroup.controllers", "cgroup.events", "cgroup.freeze", "cgroup.kill", "cgroup.max.depth",
		"cgroup.max.descendants", "cgroup.pressure", "cgroup.procs", "cgroup.stat", "cgroup.subtree_control",
		"cgroup.threads", "cgroup.type", "cpu.idle", "cpu.max", "cpu.max.burst", "cpu.pressure", "cpu.stat",
		"cpu.weight", "cpu.weight.nice", "io.max", "io.pressure", "io.stat", "io.weight", "memory.events.local",
		"memory.low", "memory.min", "memory.numa_stat", "memory.oom.group", "memory.peak", "memory.reclaim",
		"memory.swap.current", "memory.swap.events", "memory.swap.high", "memory.swap.max", "pids.current",
		"pids.events", "pids.max", "pids.peak",
	}
	OtherFilesV1 = []string{
		"cgroup.clone_children", "cgroup.event_control", "cgroup.procs", "memory.force_empty",
		"memory.kmem.failcnt", "memory.kmem.limit_in_bytes", "memory.kmem.max_usage_in_bytes",
		"memory.kmem.Usage_in_bytes", "memory.max_usage_in_bytes", "memory.move_charge_at_immigrate",
		"memory.numa_stat", "memory.pressure_level", "memory.soft_limit_in_bytes", "memory.swappiness",
		"memory.use_hierarchy", "notify_on_release", "tasks",
	}
)

// CgroupfsPaths and SystemdPaths give the cgroup path of a pod or container
// for a QoS class ("guaranteed", "burstable", "besteffort").
func CgroupfsPaths(qos, uid, id string) (pod, ctr string) {
	pod = "/kubepods"
	if qos != "guaranteed" {
		pod += "/" + qos
	}
	pod += "/pod" + uid
	if id == "" {
		return pod, ""
	}
	return pod, pod + "/" + id
}

func SystemdPaths(qos, uid, id string) (pod, ctr string) {
	u := strings.ReplaceAll(uid, "-", "_")
	if qos == "guaranteed" {
		pod = "/kubepods.slice/kubepods-pod" + u + ".slice"
	} else {
		pod = "/kubepods.slice/kubepods-" + qos + ".slice/kubepods-" + qos + "-pod" + u + ".slice"
	}
	if id == "" {
		return pod, ""
	}
	return pod, pod + "/cri-containerd-" + id + ".scope"
}
