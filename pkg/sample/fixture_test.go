package sample

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
)

// v1Unlimited is what a cgroup v1 memory.limit_in_bytes says without a
// limit on a 4 KiB-page kernel: PAGE_COUNTER_MAX pages.
const v1Unlimited = "9223372036854771712"

// tree builds a cgroup mount and a /proc under t.TempDir(), with the files
// and formats the kernel writes.
type tree struct {
	tb    testing.TB
	root  string // the cgroup mount
	proc  string // the /proc root
	mode  cgroupstat.Mode
	extra bool // write the other control files a real cgroup directory has
}

func newTree(tb testing.TB, mode cgroupstat.Mode) *tree {
	tb.Helper()
	base := tb.TempDir()
	tr := &tree{tb: tb, root: filepath.Join(base, "cgroup"), proc: filepath.Join(base, "proc"), mode: mode}
	if mode == cgroupstat.ModeV1 {
		tr.write("memory/memory.limit_in_bytes", v1Unlimited+"\n")
		tr.write("unified/cgroup.controllers", "\n")
	} else {
		tr.write("cgroup.controllers", "cpuset cpu io memory hugetlb pids rdma misc\n")
	}
	tr.writeProc("meminfo", "MemTotal:       16384000 kB\nMemFree:         1024000 kB\nMemAvailable:    4096000 kB\nBuffers:           10240 kB\n")
	tr.writeProc("pressure/memory", "some avg10=2.50 avg60=1.25 avg300=0.30 total=123456\nfull avg10=1.00 avg60=0.50 avg300=0.10 total=65432\n")
	return tr
}

func (tr *tree) write(rel, content string) {
	tr.tb.Helper()
	writeFile(tr.tb, filepath.Join(tr.root, filepath.FromSlash(rel)), content)
}

func (tr *tree) writeProc(rel, content string) {
	tr.tb.Helper()
	writeFile(tr.tb, filepath.Join(tr.proc, filepath.FromSlash(rel)), content)
}

// writeFile writes p, making its directory.
func writeFile(tb testing.TB, p, content string) {
	tb.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		tb.Fatal(err)
	}
}

// dir is the directory of cgroup cg, relative to the mount.
func (tr *tree) dir(cg string) string {
	if tr.mode == cgroupstat.ModeV1 {
		return "memory" + cg
	}
	return strings.TrimPrefix(cg, "/")
}

// abs is the absolute directory of cgroup cg.
func (tr *tree) abs(cg string) string {
	return filepath.Join(tr.root, filepath.FromSlash(tr.dir(cg)))
}

// mem are a group's figures as the fixture writes them.
type mem struct {
	usage, inactive int64
	limit, high     string // as written; "" writes "max" (v1: PAGE_COUNTER_MAX)
	highEvents      uint64 // v2 memory.events high
	maxEvents       uint64 // v2 memory.events max; v1 failcnt
	oom, oomKill    uint64
	underOOM        bool
	psi             string // memory.pressure content; "" writes none
}

// group writes the memory files of cgroup cg.
func (tr *tree) group(cg string, m mem) {
	tr.tb.Helper()
	d := tr.dir(cg) + "/"
	limit := m.limit
	if tr.mode == cgroupstat.ModeV1 {
		if limit == "" {
			limit = v1Unlimited
		}
		tr.write(d+"memory.usage_in_bytes", fmt.Sprintf("%d\n", m.usage))
		tr.write(d+"memory.limit_in_bytes", limit+"\n")
		tr.write(d+"memory.failcnt", fmt.Sprintf("%d\n", m.maxEvents))
		under := 0
		if m.underOOM {
			under = 1
		}
		tr.write(d+"memory.oom_control", fmt.Sprintf("oom_kill_disable %d\nunder_oom %d\noom_kill %d\n", under, under, m.oomKill))
		tr.write(d+"memory.stat", statV1(m))
		if tr.extra {
			for _, f := range otherFilesV1 {
				tr.write(d+f, "0\n")
			}
		}
		return
	}
	if limit == "" {
		limit = "max"
	}
	high := m.high
	if high == "" {
		high = "max"
	}
	tr.write(d+"memory.current", fmt.Sprintf("%d\n", m.usage))
	tr.write(d+"memory.max", limit+"\n")
	tr.write(d+"memory.high", high+"\n")
	tr.write(d+"memory.events", fmt.Sprintf("low 0\nhigh %d\nmax %d\noom %d\noom_kill %d\noom_group_kill 0\n", m.highEvents, m.maxEvents, m.oom, m.oomKill))
	tr.write(d+"memory.stat", statV2(m))
	if m.psi != "" {
		tr.write(d+"memory.pressure", m.psi)
	}
	if tr.extra {
		for _, f := range otherFilesV2 {
			tr.write(d+f, "0\n")
		}
	}
}

// statV2 is a 6.1 kernel's memory.stat with the figures of m.
func statV2(m mem) string {
	file := m.inactive * 2
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
`, max(m.usage-file, 0), file, max(m.usage-file, 0), m.inactive, file-m.inactive)
}

// statV1 is a 5.10 kernel's memory.stat with the figures of m; the local
// inactive_file differs from the hierarchical total, which is what counts.
func statV1(m mem) string {
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
`, m.inactive, max(m.usage-m.inactive, 0), m.inactive)
}

// Other control files of a container cgroup directory (6.1, cgroup v2 with
// the usual controllers; 5.10 v1 memory hierarchy), for the walk's cost.
var (
	otherFilesV2 = []string{
		"cgroup.controllers", "cgroup.events", "cgroup.freeze", "cgroup.kill", "cgroup.max.depth",
		"cgroup.max.descendants", "cgroup.pressure", "cgroup.procs", "cgroup.stat", "cgroup.subtree_control",
		"cgroup.threads", "cgroup.type", "cpu.idle", "cpu.max", "cpu.max.burst", "cpu.pressure", "cpu.stat",
		"cpu.weight", "cpu.weight.nice", "io.max", "io.pressure", "io.stat", "io.weight", "memory.events.local",
		"memory.low", "memory.min", "memory.numa_stat", "memory.oom.group", "memory.peak", "memory.reclaim",
		"memory.swap.current", "memory.swap.events", "memory.swap.high", "memory.swap.max", "pids.current",
		"pids.events", "pids.max", "pids.peak",
	}
	otherFilesV1 = []string{
		"cgroup.clone_children", "cgroup.event_control", "cgroup.procs", "memory.force_empty",
		"memory.kmem.failcnt", "memory.kmem.limit_in_bytes", "memory.kmem.max_usage_in_bytes",
		"memory.kmem.usage_in_bytes", "memory.max_usage_in_bytes", "memory.move_charge_at_immigrate",
		"memory.numa_stat", "memory.pressure_level", "memory.soft_limit_in_bytes", "memory.swappiness",
		"memory.use_hierarchy", "notify_on_release", "tasks",
	}
)

// cgroupfsPaths and systemdPaths give the cgroup path of a pod or container
// for a QoS class ("guaranteed", "burstable", "besteffort").
func cgroupfsPaths(qos, uid, id string) (pod, ctr string) {
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

func systemdPaths(qos, uid, id string) (pod, ctr string) {
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
