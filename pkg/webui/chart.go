package webui

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// bar is one workload of a kill's memory chart.
type bar struct {
	Who   who
	Roles []string
	// Size is the memory held, in words; Permille its bar's length.
	Size     string
	Permille int
	Known    bool
	Tasks    string // "hog (pid 220), sh (pid 95) and 1 more"
	Limits   string // "no request, no limit (BestEffort)"
	Cgroup   string // "cgroup: peak 232.8 MiB, after the kill 135.1 MiB"
	// Notes are Tasks, Limits and Cgroup in one line.
	Notes    string
	rss      int64
	pids     map[int32]bool
	names    []string
	resource *pb.Resources
}

// chart is a kill's memory held per workload at kill time.
type chart struct {
	// Per is what a bar stands for: "pod" or "container".
	Per     string
	Caption string
	Bars    []*bar
	Node    string // the node's memory, when the agent read it
	More    int    // workloads left out
}

// chartOf sums the memory a node-level, node-allocatable or pod-scope
// kill's report shows per workload: per pod for a node-level kill or
// kubepods' limit (the pods compete for the node, or for what it leaves
// them), per container for a pod's limit (the containers compete for the
// pod's). Other kills have no chart: a container that hit its own limit
// competed with no one.
func chartOf(k *pb.OOMKill) *chart {
	c := &chart{}
	switch {
	case wire.Kind(k) == analysis.KindNode:
		c.Per = "pod"
		c.Caption = "Memory held per pod and host workload at kill time"
	case wire.Kind(k) == analysis.KindLimit && wire.Scope(k) == analysis.ScopeAllocatable:
		c.Per = "pod"
		c.Caption = "Memory held per pod at kill time, under the node-allocatable limit"
	case wire.Kind(k) == analysis.KindLimit && wire.Scope(k) == analysis.ScopePod:
		c.Per = "container"
		c.Caption = "Memory held per container of the pod at kill time"
	default:
		return nil
	}
	key := func(w *pb.Workload, pid int32) string {
		switch {
		case c.Per == "pod" && w.GetPodUid() != "":
			return "pod:" + w.GetPodUid()
		case c.Per == "container" && w.GetContainerId() != "":
			return "ctr:" + w.GetContainerId()
		case w.GetCgroup() != "":
			return "cg:" + w.GetCgroup()
		}
		return "pid:" + strconv.Itoa(int(pid))
	}
	bars := map[string]*bar{}
	var order []string
	get := func(w *pb.Workload, pid int32) *bar {
		k := key(w, pid)
		b := bars[k]
		if b == nil {
			b = &bar{pids: map[int32]bool{}}
			if c.Per == "pod" {
				b.Who = podWho(w)
			} else {
				b.Who = whoOf(w)
			}
			bars[k] = b
			order = append(order, k)
		}
		if b.resource == nil {
			if c.Per == "pod" && w.GetPodResources() != nil {
				b.resource = w.GetPodResources()
			} else if c.Per == "container" && w.GetContainerResources() != nil {
				b.resource = w.GetContainerResources()
			}
		}
		return b
	}
	add := func(p *pb.Process, role string) {
		if p == nil {
			return
		}
		b := get(p.GetWorkload(), p.GetPid())
		if role != "" && !slices.Contains(b.Roles, role) {
			b.Roles = append(b.Roles, role)
		}
		if p.RssBytes != nil && !b.pids[p.GetPid()] {
			b.pids[p.GetPid()] = true
			b.rss += p.GetRssBytes()
			b.Known = true
			b.names = append(b.names, fmt.Sprintf("%s (pid %d)", p.GetComm(), p.GetPid()))
		}
	}
	for _, v := range k.GetVictims() {
		add(v, roleVictim)
	}
	add(k.GetTrigger(), roleTrigger)
	for _, p := range k.GetTopConsumers() {
		add(p, "")
	}
	tasks := map[*bar]int{}
	if cu := k.GetCulprit(); cu != nil {
		b := get(cu.GetWorkload(), cu.GetPid())
		if !slices.Contains(b.Roles, roleCulprit) {
			b.Roles = append(b.Roles, roleCulprit)
		}
		// The culprit's size is summed over all its tasks in the dump,
		// of which the top consumers are only the largest.
		if cu.RssBytes != nil && cu.GetRssBytes() > b.rss {
			b.rss, b.Known = cu.GetRssBytes(), true
			tasks[b] = int(cu.GetTasks())
		}
	}
	var largest int64
	for _, k := range order {
		b := bars[k]
		largest = max(largest, b.rss)
		b.Tasks = taskList(b.names, max(tasks[b], len(b.names)))
		b.Limits = limitsOf(b.Who.QoS, b.resource)
		b.Cgroup = cgroupFigures(b.resource)
		b.Notes = joinNonEmpty(" · ", b.Tasks, b.Limits, b.Cgroup)
		// A fixed order of roles reads better than the order found.
		slices.SortFunc(b.Roles, func(x, y string) int { return roleRank(x) - roleRank(y) })
		c.Bars = append(c.Bars, b)
	}
	slices.SortStableFunc(c.Bars, func(x, y *bar) int {
		switch {
		case x.rss > y.rss:
			return -1
		case x.rss < y.rss:
			return 1
		}
		return 0
	})
	for _, b := range c.Bars {
		if b.Known {
			b.Size = analysis.Bytes(b.rss)
			if largest > 0 {
				b.Permille = int(b.rss * 1000 / largest)
			}
		} else {
			b.Size = "size not in the report"
		}
	}
	if len(c.Bars) > maxBars {
		c.More = len(c.Bars) - maxBars
		c.Bars = c.Bars[:maxBars]
	}
	if n := k.GetNodeMemory(); n != nil && n.GetMemTotalBytes() > 0 {
		c.Node = fmt.Sprintf("The node has %s of memory; %s was available when the agent read the report, after the kill.",
			analysis.Bytes(n.GetMemTotalBytes()), analysis.Bytes(n.GetMemAvailableBytes()))
	}
	if len(c.Bars) == 0 {
		return nil
	}
	return c
}

func roleRank(r string) int {
	return slices.Index([]string{roleVictim, roleTrigger, roleCulprit}, r)
}

// taskList names a bar's tasks, the first few of them.
func taskList(names []string, total int) string {
	const shown = 3
	if len(names) == 0 {
		return ""
	}
	s := strings.Join(names[:min(shown, len(names))], ", ")
	if more := total - min(shown, len(names)); more > 0 {
		s += fmt.Sprintf(" and %d more", more)
	}
	return s
}
