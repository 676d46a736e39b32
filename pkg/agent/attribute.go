package agent

import (
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
	"github.com/oomwatch/oomwatch/pkg/proc"
	"github.com/oomwatch/oomwatch/pkg/recent"
	"github.com/oomwatch/oomwatch/pkg/workload"
)

// KillCounters reads the OOM-kill counters of the node's cgroups, by cgroup
// path (cgroupstat.Counters).
type KillCounters interface {
	OOMKills() (map[string]uint64, error)
}

// ContainerCounters returns the KillCounters of the container and pod
// cgroups under the cgroup mount root: kubepods' containers and pods, and
// the containers of other runtimes the cgroup path names. Pods count too: a
// container's cgroup is removed soon after its main process is killed, its
// pod's lives on, and the kernel counts a kill in both.
//
// under, when given, limits the walk to those subtrees (cgroup paths such
// as "/kubepods"): a node's other cgroups need not be read.
func ContainerCounters(root string, under ...string) KillCounters {
	within := func(cg string) bool {
		if len(under) == 0 {
			return true
		}
		for _, u := range under {
			u = strings.TrimSuffix(u, "/")
			// Inside the subtree, or on the way to it.
			if cg == u || strings.HasPrefix(cg, u+"/") || strings.HasPrefix(u, cg+"/") {
				return true
			}
		}
		return false
	}
	return cgroupstat.Counters{
		Root: root,
		Keep: func(cg string) bool { return within(cg) && counted(cg) },
		// A container's own children are not walked: its counter already
		// counts theirs.
		Descend: func(cg string) bool { return within(cg) && workload.FromCgroup(cg).Kind != workload.KindContainer },
	}
}

// counted tells whether a cgroup's OOM-kill counter is kept.
func counted(cg string) bool {
	k := workload.FromCgroup(cg).Kind
	return k == workload.KindContainer || k == workload.KindPod
}

// TaskLister is KillCounters that also lists the processes of the cgroups
// it reads (cgroupstat.Counters).
type TaskLister interface {
	Tasks() (map[int]string, error)
}

// Bounds of what the attributor remembers.
const (
	// pidCacheSize bounds the PIDs whose cgroup is remembered.
	pidCacheSize = 16384
	// snapshotEvery bounds how often the containers' processes are listed
	// (at the start of OOM reports).
	snapshotEvery = 250 * time.Millisecond
	// maxAttributions bounds the kills attributed and not yet emitted.
	maxAttributions = 4096
	// maxBalances bounds the cgroups with an unexplained counter rise.
	maxBalances = 4096
	// balanceTTL is how long an unexplained rise of a cgroup that is gone
	// stays a candidate.
	balanceTTL = time.Minute
)

// attribution is how one kill was attributed.
type attribution struct {
	cgroup     string
	by         string
	candidates int
}

// balance is a cgroup's OOM-kill counter rises not yet matched with a kill
// line: rises seen by scans minus kills read with this cgroup.
type balance struct {
	n    int
	seen time.Time // when the cgroup was last seen by a scan
}

// attributor places each kill the kernel names only by PID. The kernel
// rate-limits its OOM report (10 per 5 s node-wide) but not the kill line
// nor the per-cgroup oom_kill counters; by the time the line is read the
// victim is gone from /proc. So it keeps the cgroups of PIDs it saw (task
// dumps, /proc lookups) and the last OOM-kill counter of every container
// cgroup; a kill line without a cgroup goes to the PID's remembered cgroup,
// else to the only container whose counter rose unexplained.
type attributor struct {
	proc     proc.FS
	counters KillCounters // may be nil
	now      func() time.Time
	// onFound is told of every cgroup a kill is attributed to, while the
	// container may still exist (names, figures).
	onFound func(cgroup string)

	pids    *recent.Map[int, seenPID]
	results *recent.Map[int, attribution]
	base    map[string]uint64 // nil until the first scan
	bal     map[string]*balance
	// log says once that the counters cannot be read.
	log    *logrus.Entry
	warned bool
	// lastSnapshot is when the containers' processes were last listed.
	lastSnapshot time.Time
}

func newAttributor(fs proc.FS, counters KillCounters, now func() time.Time, log *logrus.Entry) *attributor {
	if now == nil {
		now = time.Now
	}
	a := &attributor{proc: fs, counters: counters, now: now, log: log,
		pids: recent.NewMap[int, seenPID](pidCacheSize), results: recent.NewMap[int, attribution](maxAttributions),
		bal: map[string]*balance{}}
	// The first scan is the baseline: kills before the agent started are
	// not this run's to explain.
	a.scan()
	return a
}

// seenPID is where a PID ran, and when that was seen.
type seenPID struct {
	cgroup string
	at     time.Time
}

// pidTTL bounds how long a remembered PID is trusted: PIDs are reused.
const pidTTL = 10 * time.Minute

// remember records where a PID ran, seen while it lived. The root cgroup
// is not remembered: an exiting task (a victim being killed) shows it in
// /proc, wherever it ran.
func (a *attributor) remember(pid int, cgroup string) {
	if pid > 0 && cgroup != "" && cgroup != "/" {
		a.pids.Put(pid, seenPID{cgroup: cgroup, at: a.now()})
	}
}

// snapshot remembers where every process of the node's containers runs,
// at most every snapshotEvery: called when an OOM report starts, while a
// storm's later victims still live. The kernel may name them by PID alone.
func (a *attributor) snapshot() {
	tl, ok := a.counters.(TaskLister)
	if !ok {
		return
	}
	now := a.now()
	if !a.lastSnapshot.IsZero() && now.Sub(a.lastSnapshot) < snapshotEvery {
		return
	}
	a.lastSnapshot = now
	tasks, _ := tl.Tasks()
	for pid, cg := range tasks {
		a.remember(pid, cg)
	}
}

// scan reads the counters and adds their rises to the balances.
func (a *attributor) scan() {
	if a.counters == nil {
		return
	}
	cur, err := a.counters.OOMKills()
	if err != nil && !a.warned && a.log != nil {
		a.warned = true
		a.log.WithError(err).Warn("cannot read every cgroup's OOM-kill counter: kills the kernel names by PID alone may stay unattributed")
	}
	if cur == nil {
		return
	}
	if err != nil {
		// A partial scan (too many groups): the groups it did not reach
		// keep their last counters, lest they look new next time.
		for cg, n := range a.base {
			if _, ok := cur[cg]; !ok {
				cur[cg] = n
			}
		}
	}
	now := a.now()
	if a.base != nil {
		for cg, n := range cur {
			// A group not seen before was made since the last scan, with
			// its counter at 0.
			if old := a.base[cg]; n > old {
				a.credit(cg, int(min(n-old, 1<<20)), now)
			}
		}
	}
	for cg, b := range a.bal {
		if _, ok := cur[cg]; ok {
			b.seen = now
		} else if b.n <= 0 || now.Sub(b.seen) > balanceTTL {
			delete(a.bal, cg)
		}
	}
	a.base = cur
}

// credit adds n to a cgroup's balance (negative: a kill read).
func (a *attributor) credit(cg string, n int, now time.Time) {
	b := a.bal[cg]
	if b == nil {
		if len(a.bal) >= maxBalances {
			return
		}
		b = &balance{seen: now}
		a.bal[cg] = b
	}
	b.n += n
}

// killSeen attributes the kill of pid, read just now; cgroup is what the
// report said ("" when nothing).
func (a *attributor) killSeen(pid int, cgroup string) {
	now := a.now()
	at := attribution{cgroup: cgroup, by: analysis.AttributedReport}
	if cgroup == "" {
		at = a.place(pid)
	}
	if at.cgroup != "" {
		a.remember(pid, at.cgroup)
		// The kill explains one rise of its container's and its pod's
		// counters.
		if a.base != nil {
			for _, cg := range countedOf(at.cgroup) {
				a.credit(cg, -1, now)
			}
			// Kills read between scans leave balances below zero; a scan
			// settles them before they fill the bound.
			if len(a.bal) > maxBalances/2 {
				a.scan()
			}
		}
		if a.onFound != nil && at.by != analysis.AttributedReport {
			a.onFound(at.cgroup)
		}
	}
	a.results.Put(pid, at)
}

// place finds the cgroup of a victim the report did not name.
func (a *attributor) place(pid int) attribution {
	// A victim is killed before its line is printed, but may not have
	// exited yet: /proc is the truth while it lasts. Once it exits, the
	// kernel moves it to the root cgroup (cgroup_exit): "/" says nothing.
	if cg, err := a.proc.Cgroup(pid); err == nil && cg != "" && cg != "/" {
		return attribution{cgroup: cg, by: analysis.AttributedProc}
	}
	if p, ok := a.pids.Get(pid); ok && a.now().Sub(p.at) < pidTTL {
		return attribution{cgroup: p.cgroup, by: analysis.AttributedPIDCache}
	}
	a.scan()
	// The containers whose counter rose unexplained; when none (the
	// victim's container cgroup was removed before the scan), the pods.
	var ctrs, pods []string
	for cg, b := range a.bal {
		if b.n <= 0 {
			continue
		}
		if workload.FromCgroup(cg).Kind == workload.KindContainer {
			ctrs = append(ctrs, cg)
		} else {
			pods = append(pods, cg)
		}
	}
	cands := ctrs
	if len(cands) == 0 {
		cands = pods
	}
	if len(cands) == 1 {
		return attribution{cgroup: cands[0], by: analysis.AttributedCounter, candidates: 1}
	}
	return attribution{by: analysis.AttributedNone, candidates: len(cands)}
}

// lookup answers the pipeline's question for a victim PID.
func (a *attributor) lookup(pid int) (string, bool) {
	at, ok := a.results.Get(pid)
	if !ok || at.cgroup == "" {
		return "", false
	}
	return at.cgroup, true
}

// label sets how ev's first victim was attributed, and forgets it.
func (a *attributor) label(ev *analysis.Event) {
	if len(ev.Victims) == 0 {
		return
	}
	v := ev.Victims[0]
	at, ok := a.results.Get(v.PID)
	a.results.Delete(v.PID)
	switch {
	case v.Cgroup == "":
		ev.AttributedBy = analysis.AttributedNone
		ev.AttributionCandidates = at.candidates
	case ok && at.cgroup == v.Cgroup:
		ev.AttributedBy = at.by
		ev.AttributionCandidates = at.candidates
	case ok && at.by == analysis.AttributedReport:
		ev.AttributedBy = analysis.AttributedReport
	default:
		// Placed by another report of the same boot.
		ev.AttributedBy = analysis.AttributedPIDCache
	}
}

// countedOf returns the counted cgroups cg is or lies in: its container's
// and its pod's.
func countedOf(cg string) []string {
	var out []string
	for p := cg; p != "/" && p != "." && p != ""; p = parent(p) {
		if counted(p) {
			out = append(out, p)
		}
	}
	return out
}

func parent(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}
