package agent

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// cgroupTree is a fixture cgroup mount whose OOM-kill counters a fake
// kernel raises, in the victim's group and every ancestor, before it prints
// the kill line, as the kernel does.
type cgroupTree struct {
	t    *testing.T
	root string
	v1   bool
	mu   sync.Mutex
	n    map[string]int
}

func newCgroupTree(t *testing.T, v1 bool) *cgroupTree {
	root := t.TempDir()
	c := &cgroupTree{t: t, root: root, v1: v1, n: map[string]int{}}
	if v1 {
		c.write("memory/memory.limit_in_bytes", "9223372036854771712\n")
	} else {
		c.write("cgroup.controllers", "cpu memory pids\n")
	}
	return c
}

func (c *cgroupTree) write(p, s string) {
	c.t.Helper()
	f := filepath.Join(c.root, filepath.FromSlash(p))
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		c.t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte(s), 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// counterFile is the file holding cg's counter.
func (c *cgroupTree) counterFile(cg string) string {
	if c.v1 {
		return path.Join("memory", cg, "memory.oom_control")
	}
	return path.Join(cg, "memory.events")
}

func (c *cgroupTree) set(cg string, n int) {
	if c.v1 {
		c.write(c.counterFile(cg), fmt.Sprintf("oom_kill_disable 0\nunder_oom 0\noom_kill %d\n", n))
	} else {
		c.write(c.counterFile(cg), fmt.Sprintf("low 0\nhigh 0\nmax 9\noom 4\noom_kill %d\noom_group_kill 0\n", n))
	}
}

// add makes a cgroup and its ancestors, with their counters at n.
func (c *cgroupTree) add(cg string, n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := cg; p != "/"; p = path.Dir(p) {
		if _, ok := c.n[p]; !ok {
			c.n[p] = n
			c.set(p, n)
		}
	}
}

// kill raises the counters of cg and its ancestors.
func (c *cgroupTree) kill(cg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for p := cg; p != "/"; p = path.Dir(p) {
		c.n[p]++
		c.set(p, c.n[p])
	}
}

// kernel is a fake Enricher that plays the kernel's counters: it sees each
// record before the pipeline does and raises the victim's counters when a
// kill line comes.
type kernel struct {
	tree   *cgroupTree
	truth  map[int]string
	before func(pid int) // called before the counters rise
	// removed lists the victims whose container cgroup is gone before the
	// agent can look (the runtime cleaned up after the main process died).
	removed map[int]bool
}

var killedRE = regexp.MustCompile(`Killed process (\d+) `)

func (k *kernel) Observe(msg []byte) {
	m := killedRE.FindSubmatch(msg)
	if m == nil {
		return
	}
	pid, _ := strconv.Atoi(string(m[1]))
	if k.before != nil {
		k.before(pid)
	}
	if cg := k.truth[pid]; cg != "" {
		k.tree.kill(cg)
		if k.removed[pid] {
			k.tree.remove(cg)
		}
	}
}

// remove removes a cgroup directory, as the runtime does after its
// container's main process died.
func (c *cgroupTree) remove(cg string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	dir := filepath.Join(c.root, filepath.FromSlash(path.Dir(c.counterFile(cg))))
	if err := os.RemoveAll(dir); err != nil {
		c.t.Fatal(err)
	}
	delete(c.n, cg)
}

func (k *kernel) Enrich(context.Context, *analysis.Event) {}

// limitKill returns the records of one memcg limit kill of pid in cg: a
// whole report, or only its kill line when rateLimited.
func limitKill(seq *int64, pid int, cg string, rateLimited bool) []devkmsg.Item {
	var lines []string
	if !rateLimited {
		lines = append(lines,
			"hog invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0",
			fmt.Sprintf("CPU: 1 PID: %d Comm: hog Not tainted 5.10.0-33-amd64 #1 Debian 5.10.226-1", pid),
			"memory: usage 24576kB, limit 24576kB, failcnt 93",
			fmt.Sprintf("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=%s,task_memcg=%s,task=hog,pid=%d,uid=0", cg, cg, pid))
	}
	lines = append(lines,
		fmt.Sprintf("Memory cgroup out of memory: Killed process %d (hog) total-vm:30000kB, anon-rss:24000kB, file-rss:500kB, shmem-rss:0kB, UID:0 pgtables:100kB oom_score_adj:0", pid),
		fmt.Sprintf("oom_reaper: reaped process %d (hog), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", pid))
	var out []devkmsg.Item
	for _, l := range lines {
		*seq++
		mono := time.Duration(*seq) * 10 * time.Millisecond
		out = append(out, devkmsg.Item{Record: kernlog.Record{Seq: *seq, Mono: mono, HasMono: true, Priority: 3, Message: []byte(l)}})
	}
	return out
}

func containerCgroup(v1 bool, i int) string {
	uid := fmt.Sprintf("0f1e2d3c-4b5a-4968-a7b6-%012d", i)
	id := fmt.Sprintf("%064x", 0xc0ffee00+i)
	if v1 {
		return "/kubepods/burstable/pod" + uid + "/" + id
	}
	return "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uid, "-", "_") +
		".slice/cri-containerd-" + id + ".scope"
}

// Twenty limit kills, one per container, within 5 s: the kernel prints the
// first ten reports whole and the last ten as bare kill lines. Every kill
// is attributed to its container, the bare ones by their OOM-kill counter.
func TestPipelineAttributesRateLimitedKills(t *testing.T) {
	for _, v1 := range []bool{true, false} {
		t.Run(map[bool]string{true: "cgroup v1", false: "cgroup v2"}[v1], func(t *testing.T) {
			tree := newCgroupTree(t, v1)
			truth := map[int]string{}
			var items []devkmsg.Item
			var seq int64
			// A container killed before the agent started: its counter is
			// the baseline, not a candidate.
			tree.add(containerCgroup(v1, 99), 3)
			for i := range 20 {
				pid := 5000 + i
				truth[pid] = containerCgroup(v1, i)
				tree.add(truth[pid], 0)
				items = append(items, limitKill(&seq, pid, truth[pid], i >= 10)...)
			}
			sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "1.0", nil), Enricher: &kernel{tree: tree, truth: truth},
				Counters: ContainerCounters(tree.root)}, items)
			if len(sink.events) != 20 {
				t.Fatalf("%d events, want 20", len(sink.events))
			}
			for i, e := range sink.events {
				k := e.GetOom()
				v := k.GetVictims()[0]
				want := analysis.AttributedReport
				if i >= 10 {
					want = analysis.AttributedCounter
				}
				if v.GetWorkload().GetCgroup() != truth[int(v.GetPid())] || k.GetAttributedBy() != want {
					t.Errorf("kill %d (pid %d): cgroup %q attributed by %q, want %q by %q", i, v.GetPid(),
						v.GetWorkload().GetCgroup(), k.GetAttributedBy(), truth[int(v.GetPid())], want)
				}
				if v.GetWorkload().GetContainerId() == "" || v.GetWorkload().GetPodUid() == "" {
					t.Errorf("kill %d: workload %v has no container or pod", i, v.GetWorkload())
				}
			}
		})
	}
}

// Two counters rise before one bare kill line is read: which one it was
// cannot be told, and the event says so rather than guess. A PID seen
// alive in /proc, or remembered from an earlier lookup, needs no counter.
func TestPipelineAttributionAmbiguousProcAndCache(t *testing.T) {
	tree := newCgroupTree(t, false)
	a, b, c := containerCgroup(false, 1), containerCgroup(false, 2), containerCgroup(false, 3)
	for _, cg := range []string{a, b, c} {
		tree.add(cg, 0)
	}
	truth := map[int]string{601: a, 602: b, 603: c}
	var seq int64
	var items []devkmsg.Item
	items = append(items, limitKill(&seq, 601, a, true)...)
	items = append(items, limitKill(&seq, 603, c, true)...)
	k := &kernel{tree: tree, truth: truth, before: func(pid int) {
		// Another container's kill happened just before 601's line was
		// printed; its own line comes later.
		if pid == 601 {
			tree.kill(b)
			truth[602] = ""
		}
	}}
	// 603 still shows in /proc when its line is read.
	sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "1.0", map[int]string{603: c}), Enricher: k,
		Counters: ContainerCounters(tree.root)}, items)
	if len(sink.events) != 2 {
		t.Fatalf("%d events, want 2", len(sink.events))
	}
	first, second := sink.events[0].GetOom(), sink.events[1].GetOom()
	if first.GetAttributedBy() != analysis.AttributedNone || first.GetAttributionCandidates() != 2 ||
		first.GetVictims()[0].GetWorkload().GetCgroup() != "" {
		t.Errorf("ambiguous kill: by %q, %d candidates, cgroup %q", first.GetAttributedBy(), first.GetAttributionCandidates(),
			first.GetVictims()[0].GetWorkload().GetCgroup())
	}
	if second.GetAttributedBy() != analysis.AttributedProc || second.GetVictims()[0].GetWorkload().GetCgroup() != c {
		t.Errorf("live victim: by %q, cgroup %q", second.GetAttributedBy(), second.GetVictims()[0].GetWorkload().GetCgroup())
	}
}

func TestAttributorPIDCache(t *testing.T) {
	at := newAttributor(fakeProc(t, "1.0", nil), nil, nil, nil)
	cg := containerCgroup(true, 7)
	at.remember(4242, cg)
	at.killSeen(4242, "")
	if got, ok := at.lookup(4242); !ok || got != cg {
		t.Fatalf("lookup = %q, %v", got, ok)
	}
	ev := &analysis.Event{Victims: []analysis.Process{{PID: 4242, Workload: analysis.Workload{Cgroup: cg}}}}
	at.label(ev)
	if ev.AttributedBy != analysis.AttributedPIDCache {
		t.Fatalf("attributed by %q", ev.AttributedBy)
	}
	// Forgotten once emitted; an unknown PID with no counters is
	// unattributed.
	at.killSeen(4343, "")
	ev = &analysis.Event{Victims: []analysis.Process{{PID: 4343}}}
	at.label(ev)
	if ev.AttributedBy != analysis.AttributedNone {
		t.Fatalf("attributed by %q", ev.AttributedBy)
	}
}

// The cache of PIDs is bounded, and so are the kills awaiting their event.
func TestAttributorBounded(t *testing.T) {
	at := newAttributor(fakeProc(t, "1.0", nil), nil, nil, nil)
	for pid := 1; pid <= 3*pidCacheSize; pid++ {
		at.remember(pid, "/x")
		at.killSeen(pid, "/x")
	}
	if n := at.pids.Len(); n > pidCacheSize {
		t.Fatalf("%d PIDs remembered, bound %d", n, pidCacheSize)
	}
	if n := at.results.Len(); n > maxAttributions {
		t.Fatalf("%d attributions kept, bound %d", n, maxAttributions)
	}
}

// The victim's container cgroup is removed before the agent reads the
// counters (a Job's container whose main process was the victim): the
// kill goes to its pod, whose counter rose too.
func TestPipelineAttributesToPodWhenContainerIsGone(t *testing.T) {
	for _, v1 := range []bool{true, false} {
		t.Run(map[bool]string{true: "cgroup v1", false: "cgroup v2"}[v1], func(t *testing.T) {
			tree := newCgroupTree(t, v1)
			a, b := containerCgroup(v1, 1), containerCgroup(v1, 2)
			tree.add(a, 0)
			tree.add(b, 0)
			var seq int64
			items := limitKill(&seq, 701, a, true)
			k := &kernel{tree: tree, truth: map[int]string{701: a}, removed: map[int]bool{701: true}}
			sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "1.0", nil), Enricher: k, Counters: ContainerCounters(tree.root)}, items)
			if len(sink.events) != 1 {
				t.Fatalf("%d events", len(sink.events))
			}
			o := sink.events[0].GetOom()
			w := o.GetVictims()[0].GetWorkload()
			if o.GetAttributedBy() != analysis.AttributedCounter || w.GetCgroup() != path.Dir(a) || w.GetWorkloadKind() != "pod" ||
				w.GetPodUid() == "" {
				t.Fatalf("attributed by %q to %q (%s, pod %q), want its pod %q", o.GetAttributedBy(), w.GetCgroup(),
					w.GetWorkloadKind(), w.GetPodUid(), path.Dir(a))
			}
		})
	}
}

// Five containers' hogs are killed at the same moment: every counter has
// risen before the first line is read, so counters alone cannot tell the
// bare kills apart. The processes listed when the first report started
// can.
func TestPipelineAttributesSimultaneousKillsFromSnapshot(t *testing.T) {
	tree := newCgroupTree(t, true)
	truth := map[int]string{}
	var items []devkmsg.Item
	var seq int64
	for i := range 5 {
		pid := 800 + i
		truth[pid] = containerCgroup(true, i)
		tree.add(truth[pid], 0)
		tree.write(path.Join("memory", truth[pid], "cgroup.procs"), fmt.Sprintf("%d\n%d\n", pid, pid+100))
		items = append(items, limitKill(&seq, pid, truth[pid], i > 0)...)
	}
	raised := false
	k := &kernel{tree: tree, truth: map[int]string{}, before: func(int) {
		if !raised {
			raised = true
			for _, cg := range truth {
				tree.kill(cg)
			}
		}
	}}
	sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "1.0", nil), Enricher: k, Counters: ContainerCounters(tree.root)}, items)
	if len(sink.events) != 5 {
		t.Fatalf("%d events", len(sink.events))
	}
	for i, e := range sink.events {
		o := e.GetOom()
		v := o.GetVictims()[0]
		want := analysis.AttributedPIDCache
		if i == 0 {
			want = analysis.AttributedReport
		}
		if v.GetWorkload().GetCgroup() != truth[int(v.GetPid())] || o.GetAttributedBy() != want {
			t.Errorf("kill %d: %q by %q, want %q by %q", i, v.GetWorkload().GetCgroup(), o.GetAttributedBy(), truth[int(v.GetPid())], want)
		}
	}
}

// Counters limited to a subtree read nothing outside it.
func TestContainerCountersUnder(t *testing.T) {
	tree := newCgroupTree(t, true)
	in, out := containerCgroup(true, 1), "/other/burstable/pod0f1e2d3c-4b5a-4968-a7b6-000000000002/"+fmt.Sprintf("%064x", 7)
	tree.add(in, 1)
	tree.add(out, 1)
	got, err := ContainerCounters(tree.root, path.Dir(in)).OOMKills()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[in] != 1 || got[path.Dir(in)] != 1 {
		t.Fatalf("counters %v, want %s and its pod only", got, in)
	}
}

// A victim that has begun exiting shows the root cgroup in /proc: that is
// not where it ran, and the counters decide.
func TestAttributorIgnoresExitingVictimInRoot(t *testing.T) {
	tree := newCgroupTree(t, true)
	cg := containerCgroup(true, 3)
	tree.add(cg, 0)
	at := newAttributor(fakeProc(t, "1.0", map[int]string{901: "/"}), ContainerCounters(tree.root), nil, nil)
	at.remember(901, "/")
	tree.kill(cg)
	at.killSeen(901, "")
	if got, ok := at.lookup(901); !ok || got != cg {
		t.Fatalf("lookup = %q, %v; want %q from the counters", got, ok, cg)
	}
}
