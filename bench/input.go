package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
)

// Kinds of kill, as the kernel states them and as the table scores them.
const (
	KindNode  = "node"  // the node ran out of memory (CONSTRAINT_NONE, global_oom)
	KindLimit = "limit" // a cgroup's memory limit was hit (CONSTRAINT_MEMCG)
)

// Kill is one process the kernel killed in an Input: the truth a parser is
// scored against.
type Kill struct {
	PID  int
	Comm string
	// Cgroup is the victim's cgroup as the kernel printed it (task_memcg in
	// the oom-kill summary, or the memory.oom.group cgroup for group
	// members), or "" when the kernel printed none (OOM storm kill lines).
	Cgroup string
	Kind   string
	// GroupMember marks a task killed because memory.oom.group was set.
	GroupMember bool
	// Storm marks a kill whose report header the kernel rate-limited.
	Storm bool
}

// Input is a kernel log held in memory in the /dev/kmsg rendering, one
// record per line ("PRIO,SEQ,USEC,-;message\n"), with the kills it holds.
type Input struct {
	// Name is the short name used in the table and benchmark names.
	Name string
	// Desc says what the input holds.
	Desc string
	// Data holds every record, each ending in '\n'.
	Data []byte
	// offsets[i] is where record i starts; the last entry is len(Data).
	offsets []int
	// Kills are the kills the input holds, in log order.
	Kills []Kill
}

// Records returns the number of records.
func (in *Input) Records() int { return len(in.offsets) - 1 }

// Record returns record i, with its trailing newline, as /dev/kmsg's read
// returns it. It aliases Data.
func (in *Input) Record(i int) []byte { return in.Data[in.offsets[i]:in.offsets[i+1]] }

// gen writes records deterministically.
type gen struct {
	in      *Input
	seq     int64
	usec    int64
	rng     *rand.Rand
	nextPID int
}

func newGen(name, desc string, seed uint64, sizeHint int) *gen {
	in := &Input{Name: name, Desc: desc, Data: make([]byte, 0, sizeHint*96), offsets: make([]int, 1, sizeHint+1)}
	return &gen{in: in, usec: 5_000_000, rng: rand.New(rand.NewPCG(seed, 0x6f6f6d77)), nextPID: 20000}
}

// add appends one record at priority prio.
func (g *gen) add(prio int, msg string) {
	d := g.in.Data
	d = strconv.AppendInt(d, int64(prio), 10)
	d = append(d, ',')
	d = strconv.AppendInt(d, g.seq, 10)
	d = append(d, ',')
	d = strconv.AppendInt(d, g.usec, 10)
	d = append(d, ",-;"...)
	d = append(d, msg...)
	d = append(d, '\n')
	g.in.Data = d
	g.in.offsets = append(g.in.offsets, len(d))
	g.seq++
	g.usec += int64(5 + g.rng.IntN(200))
}

func (g *gen) addf(prio int, format string, args ...any) { g.add(prio, fmt.Sprintf(format, args...)) }

func (g *gen) pid() int {
	g.nextPID += 1 + g.rng.IntN(50)
	return g.nextPID
}

func (g *gen) hex(n int) string {
	const digits = "0123456789abcdef"
	var b strings.Builder
	for range n {
		b.WriteByte(digits[g.rng.IntN(16)])
	}
	return b.String()
}

func (g *gen) podUID() string {
	return g.hex(8) + "_" + g.hex(4) + "_4" + g.hex(3) + "_a" + g.hex(3) + "_" + g.hex(12)
}

// containerCgroup returns a kubelet systemd-driver container scope path.
func (g *gen) containerCgroup(qos string) string {
	if qos == "guaranteed" {
		return "/kubepods.slice/kubepods-pod" + g.podUID() + ".slice/cri-containerd-" + g.hex(64) + ".scope"
	}
	return fmt.Sprintf("/kubepods.slice/kubepods-%[1]s.slice/kubepods-%[1]s-pod%[2]s.slice/cri-containerd-%[3]s.scope",
		qos, g.podUID(), g.hex(64))
}

var comms = [...]string{"java", "python3", "node", "nginx", "envoy", "postgres", "redis-server", "ruby", "php-fpm", "dotnet"}

// nonOOM writes one ordinary kernel record: USB, ext4, audit and network
// lines in roughly the proportions of a busy Kubernetes node.
func (g *gen) nonOOM() {
	r := g.rng
	switch k := r.IntN(20); {
	case k < 6:
		// Container churn: veth pairs, bridge ports, promiscuous mode.
		veth := g.hex(8)
		switch r.IntN(5) {
		case 0:
			g.addf(6, "cni0: port %d(veth%s) entered blocking state", 1+r.IntN(64), veth)
		case 1:
			g.addf(6, "cni0: port %d(veth%s) entered forwarding state", 1+r.IntN(64), veth)
		case 2:
			g.addf(6, "device veth%s entered promiscuous mode", veth)
		case 3:
			g.addf(6, "IPv6: ADDRCONF(NETDEV_CHANGE): veth%s: link becomes ready", veth)
		default:
			g.addf(6, "eth0: renamed from tmp%05d", r.IntN(100000))
		}
	case k < 11:
		// AppArmor denials and BPF program loads from the audit subsystem.
		sec, ms, id := 1_700_000_000+r.IntN(1_000_000), r.IntN(1000), 100+r.IntN(100000)
		if r.IntN(2) == 0 {
			g.addf(5, `audit: type=1400 audit(%d.%03d:%d): apparmor="DENIED" operation="open" class="file" profile="cri-containerd.apparmor.d" name="/proc/%d/mounts" pid=%d comm="%s" requested_mask="r" denied_mask="r" fsuid=0 ouid=0`,
				sec, ms, id, 1+r.IntN(60000), 1+r.IntN(60000), comms[r.IntN(len(comms))])
		} else {
			g.addf(5, "audit: type=1334 audit(%d.%03d:%d): prog-id=%d op=LOAD", sec, ms, id, r.IntN(5000))
		}
	case k < 14:
		switch r.IntN(3) {
		case 0:
			g.addf(6, "EXT4-fs (nvme%dn1p%d): mounted filesystem %s-%s-%s-%s-%s with ordered data mode. Quota mode: none.",
				r.IntN(4), 1+r.IntN(8), g.hex(8), g.hex(4), g.hex(4), g.hex(4), g.hex(12))
		case 1:
			g.addf(6, "EXT4-fs (sda%d): re-mounted %s-%s-%s-%s-%s. Quota mode: none.", 1+r.IntN(4), g.hex(8), g.hex(4), g.hex(4), g.hex(4), g.hex(12))
		default:
			g.addf(4, "EXT4-fs warning (device nvme0n1p1): ext4_dx_add_entry:%d: Directory (ino: %d) index full, reach max htree level :2", 2000+r.IntN(500), r.IntN(1<<24))
		}
	case k < 17:
		switch r.IntN(3) {
		case 0:
			g.addf(6, "usb %d-%d: new high-speed USB device number %d using xhci_hcd", 1+r.IntN(4), 1+r.IntN(8), 2+r.IntN(120))
		case 1:
			g.addf(6, "usb %d-%d: USB disconnect, device number %d", 1+r.IntN(4), 1+r.IntN(8), 2+r.IntN(120))
		default:
			g.addf(6, "usb %d-%d: New USB device found, idVendor=%s, idProduct=%s, bcdDevice= 1.%02d", 1+r.IntN(4), 1+r.IntN(8), g.hex(4), g.hex(4), r.IntN(100))
		}
	default:
		switch r.IntN(4) {
		case 0:
			g.addf(4, "TCP: request_sock_TCP: Possible SYN flooding on port %d. Sending cookies.  Check SNMP counters.", 1024+r.IntN(60000))
		case 1:
			g.addf(4, "nf_conntrack: nf_conntrack: table full, dropping packet")
		case 2:
			g.addf(6, "e1000e 0000:00:1f.6 eno1: NIC Link is Up 1000 Mbps Full Duplex, Flow Control: Rx/Tx")
		default:
			g.addf(4, "overlayfs: upperdir is in-use as upperdir/workdir of another mount, accessing files from both mounts will result in undefined behavior.")
		}
	}
}

// noise writes n ordinary records.
func (g *gen) noise(n int) {
	for range n {
		g.nonOOM()
	}
}

// header writes the start of a 6.1 report: the trigger, its stack and
// registers. It interleaves an unrelated record, as other CPUs do.
func (g *gen) header(trigger string, triggerPID, adj int, memcg bool) {
	gfp := "0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO)"
	if memcg {
		gfp = "0xcc0(GFP_KERNEL)"
	}
	g.addf(4, "%s invoked oom-killer: gfp_mask=%s, order=0, oom_score_adj=%d", trigger, gfp, adj)
	g.addf(4, "CPU: %d PID: %d Comm: %s Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2", g.rng.IntN(8), triggerPID, trigger)
	g.add(4, "Hardware name: QEMU Standard PC (i440FX + PIIX, 1996), BIOS 1.16.2-debian-1.16.2-1 04/01/2014")
	g.add(4, "Call Trace:")
	g.add(4, " <TASK>")
	g.add(4, " dump_stack_lvl+0x44/0x5c")
	g.add(4, " dump_header+0x4c/0x22b")
	g.add(4, " oom_kill_process.cold+0xb/0x10")
	g.add(4, " out_of_memory+0x1fd/0x4c0")
	g.nonOOM()
	if memcg {
		g.add(4, " mem_cgroup_out_of_memory+0x134/0x150")
		g.add(4, " try_charge_memcg+0x696/0x780")
		g.add(4, " charge_memcg+0x39/0xf0")
	} else {
		g.add(4, " __alloc_pages_slowpath.constprop.0+0x67f/0xe70")
		g.add(4, " __alloc_pages+0x305/0x330")
		g.add(4, " vma_alloc_folio+0x9c/0x370")
	}
	g.add(4, " __handle_mm_fault+0x95c/0xfa0")
	g.add(4, " handle_mm_fault+0xdb/0x2d0")
	g.add(4, " do_user_addr_fault+0x191/0x560")
	g.add(4, " exc_page_fault+0x70/0x170")
	g.add(4, " asm_exc_page_fault+0x22/0x30")
	g.add(4, "RIP: 0033:0x42370a")
	g.add(4, "RSP: 002b:00007fff3956b798 EFLAGS: 00000206")
	g.add(4, "RAX: 0000000000000001 RBX: 0000000000000018 RCX: 000000000003b010")
	g.add(4, " </TASK>")
}

// memInfo writes the node-wide Mem-Info block of a node-level report.
func (g *gen) memInfo() {
	g.add(4, "Mem-Info:")
	g.add(4, `active_anon:467 inactive_anon:48470 isolated_anon:0\x0a active_file:0 inactive_file:0 isolated_file:0\x0a unevictable:0 dirty:0 writeback:0\x0a slab_reclaimable:2272 slab_unreclaimable:1660\x0a mapped:562 shmem:674 pagetables:113\x0a sec_pagetables:0 bounce:0\x0a kernel_misc_reclaimable:0\x0a free:613 free_pcp:132 free_cma:0`)
	g.add(4, "Node 0 active_anon:1868kB inactive_anon:193880kB active_file:0kB inactive_file:0kB unevictable:0kB isolated(anon):0kB isolated(file):0kB mapped:2248kB dirty:0kB writeback:0kB shmem:2696kB shmem_thp: 0kB shmem_pmdmapped: 0kB anon_thp: 0kB writeback_tmp:0kB kernel_stack:880kB pagetables:452kB sec_pagetables:0kB all_unreclaimable? yes")
	g.add(4, "Node 0 DMA free:892kB boost:0kB min:132kB low:164kB high:196kB reserved_highatomic:0KB active_anon:0kB inactive_anon:14300kB active_file:0kB inactive_file:0kB unevictable:0kB writepending:0kB present:15992kB managed:15360kB mlocked:0kB bounce:0kB free_pcp:0kB local_pcp:0kB free_cma:0kB")
	g.add(4, "lowmem_reserve[]: 0 192 192 192 192")
	g.add(4, "Node 0 DMA32 free:1560kB boost:0kB min:1704kB low:2128kB high:2552kB reserved_highatomic:0KB active_anon:1868kB inactive_anon:179480kB active_file:0kB inactive_file:0kB unevictable:0kB writepending:0kB present:245632kB managed:207016kB mlocked:0kB bounce:0kB free_pcp:528kB local_pcp:328kB free_cma:0kB")
	g.add(4, "lowmem_reserve[]: 0 0 0 0 0")
	g.add(4, "Node 0 DMA: 1*4kB (M) 1*8kB (U) 1*16kB (M) 1*32kB (U) 1*64kB (U) 0*128kB 1*256kB (U) 1*512kB (U) 0*1024kB 0*2048kB 0*4096kB = 892kB")
	g.add(4, "Node 0 hugepages_total=0 hugepages_free=0 hugepages_surp=0 hugepages_size=2048kB")
	g.add(4, "674 total pagecache pages")
	g.add(4, "0 pages in swap cache")
	g.add(4, "Free swap  = 0kB")
	g.add(4, "Total swap = 0kB")
	g.add(4, "65406 pages RAM")
	g.add(4, "9812 pages reserved")
}

// memcgInfo writes the memcg part of a limit report.
func (g *gen) memcgInfo(memcg string) {
	g.add(6, "memory: usage 24576kB, limit 24576kB, failcnt 45")
	g.add(6, "swap: usage 0kB, limit 9007199254740988kB, failcnt 0")
	g.addf(6, "Memory cgroup stats for %s:", memcg)
	g.add(6, `anon 24977408\x0afile 0\x0akernel 106496\x0akernel_stack 0\x0apagetables 77824\x0asec_pagetables 0\x0apercpu 0\x0asock 0\x0avmalloc 0\x0ashmem 0\x0afile_mapped 0\x0afile_dirty 0\x0afile_writeback 0\x0aswapcached 0\x0aanon_thp 0\x0afile_thp 0\x0ashmem_thp 0\x0ainactive_anon 24932352\x0aactive_anon 4096\x0ainactive_file 0\x0aactive_file 0\x0aunevictable 0`)
}

// dump writes the task dump: n rows, the victim's row among them.
func (g *gen) dump(n int, victim int, victimComm string, victimAdj int) {
	g.add(6, "Tasks state (memory values in pages):")
	g.add(6, "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name")
	at := g.rng.IntN(n)
	for i := range n {
		pid, comm, rss, adj := g.pid(), comms[g.rng.IntN(len(comms))], 100+g.rng.IntN(3000), -997+g.rng.IntN(1997)
		if i == at {
			pid, comm, rss, adj = victim, victimComm, 6220, victimAdj
		}
		g.addf(6, "[%7d] %5d %5d %8d %8d %8d %8d %13d %s", pid, 0, pid, rss+195, rss, 61440+g.rng.IntN(40000), 0, adj, comm)
	}
}

// killLine writes a 6.1 kill line.
func (g *gen) killLine(prefix string, pid int, comm string, adj int) {
	g.addf(3, "%s: Killed process %d (%s) total-vm:25660kB, anon-rss:24228kB, file-rss:4kB, shmem-rss:648kB, UID:0 pgtables:84kB oom_score_adj:%d",
		prefix, pid, comm, adj)
}

// limitReport writes a whole memcg (limit) report with tasks dump rows.
func (g *gen) limitReport(tasks int) {
	memcg := g.containerCgroup("burstable")
	pid, comm := g.pid(), comms[g.rng.IntN(len(comms))]
	g.header(comm, pid, 937, true)
	g.memcgInfo(memcg)
	g.dump(tasks, pid, comm, 937)
	g.addf(6, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=%s,pid=%d,uid=0", memcg, memcg, comm, pid)
	g.killLine("Memory cgroup out of memory", pid, comm, 937)
	g.in.Kills = append(g.in.Kills, Kill{PID: pid, Comm: comm, Cgroup: memcg, Kind: KindLimit})
	g.addf(6, "oom_reaper: reaped process %d (%s), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", pid, comm)
}

// nodeReport writes a whole node-level report with tasks dump rows: the
// victim is a BestEffort container's task, the trigger a Guaranteed pod's.
func (g *gen) nodeReport(tasks int) {
	cg := g.containerCgroup("besteffort")
	trig, pid, comm := g.pid(), g.pid(), comms[g.rng.IntN(len(comms))]
	g.header("java", trig, -997, false)
	g.memInfo()
	g.dump(tasks, pid, comm, 1000)
	g.addf(6, "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=%s,task=%s,pid=%d,uid=0", cg, comm, pid)
	g.killLine("Out of memory", pid, comm, 1000)
	g.in.Kills = append(g.in.Kills, Kill{PID: pid, Comm: comm, Cgroup: cg, Kind: KindNode})
	g.addf(6, "oom_reaper: reaped process %d (%s), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", pid, comm)
}

// groupReport writes a memcg report whose cgroup has memory.oom.group set:
// the chosen victim, then every task of the group, the victim again first
// (as 6.1 prints it).
func (g *gen) groupReport(members int) {
	memcg := g.containerCgroup("burstable")
	pid, comm := g.pid(), "python3"
	g.header(comm, pid, 900, true)
	g.memcgInfo(memcg)
	g.dump(members+1, pid, comm, 900)
	g.addf(6, "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=%s,pid=%d,uid=0", memcg, memcg, comm, pid)
	g.killLine("Memory cgroup out of memory", pid, comm, 900)
	g.in.Kills = append(g.in.Kills, Kill{PID: pid, Comm: comm, Cgroup: memcg, Kind: KindLimit})
	g.addf(6, "Tasks in %s are going to be killed due to memory.oom.group set", memcg)
	g.killLine("Memory cgroup out of memory", pid, comm, 900)
	for range members {
		m := g.pid()
		g.killLine("Memory cgroup out of memory", m, "gunicorn", 900)
		g.in.Kills = append(g.in.Kills, Kill{PID: m, Comm: "gunicorn", Cgroup: memcg, Kind: KindLimit, GroupMember: true})
	}
}

// storm writes n kill lines whose report headers the kernel rate-limited
// (oom_kill_process prints dump_header only when __ratelimit(&oom_rs)
// allows), with unrelated records between them.
func (g *gen) storm(n int) {
	for range n {
		pid := g.pid()
		g.killLine("Memory cgroup out of memory", pid, "sleep", 1000)
		g.in.Kills = append(g.in.Kills, Kill{PID: pid, Comm: "sleep", Kind: KindLimit, Storm: true})
		g.noise(1 + g.rng.IntN(3))
	}
}

// NonOOM returns n ordinary kernel records and no OOM report.
func NonOOM(n int) *Input {
	g := newGen(fmt.Sprintf("non-OOM %s", count(n)), "ordinary records: veth/bridge, audit, ext4, usb, TCP/conntrack lines", 1, n)
	g.noise(n)
	return g.in
}

// NodeReport returns one 6.1 node-level OOM report whose task dump has
// tasks rows, between a few ordinary records.
func NodeReport(tasks int) *Input {
	g := newGen(fmt.Sprintf("node report, %s tasks", count(tasks)), "one 6.1 node-level report: Mem-Info, task dump, oom-kill summary, kill line", 2, tasks+100)
	g.noise(10)
	g.nodeReport(tasks)
	g.noise(40)
	return g.in
}

// Mix returns about n records: ordinary records with OOM reports
// interleaved every so often, cycling through a memcg limit kill, a
// node-level kill, a memory.oom.group kill (with 3 members) and an OOM storm
// (5 kill lines without headers).
func Mix(n, events int) *Input {
	g := newGen(fmt.Sprintf("mix %s, %d reports", count(n), events),
		"ordinary records with limit, node-level, memory.oom.group and storm kills interleaved", 3, n)
	gap := n / (events + 1)
	for i := range events {
		g.noise(max(gap-60, 0))
		switch i % 4 {
		case 0:
			g.limitReport(12)
		case 1:
			g.nodeReport(40)
		case 2:
			g.groupReport(3)
		default:
			g.storm(5)
		}
	}
	for g.in.Records() < n {
		g.nonOOM()
	}
	return g.in
}

// count renders n as 1M, 10k, 512.
func count(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return strconv.Itoa(n/1_000_000) + "M"
	case n >= 1000 && n%1000 == 0:
		return strconv.Itoa(n/1000) + "k"
	}
	return strconv.Itoa(n)
}
