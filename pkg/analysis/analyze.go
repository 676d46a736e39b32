package analysis

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/oom"
	"github.com/oomwatch/oomwatch/pkg/workload"
)

// TopConsumers is how many of the largest tasks an event lists.
const TopConsumers = 5

// Context is what is known beyond the report itself.
type Context struct {
	// Cgroups maps PIDs to cgroup paths learned elsewhere: other reports
	// of the same boot, or /proc/<pid>/cgroup read while the task lived.
	Cgroups map[int]string
	// BootTime, when set, dates events from their monotonic timestamps.
	BootTime time.Time
	// Incident lists memory holders seen in other reports of the same
	// incident, for reports that print no task dump.
	Incident []Holder
	// Requests, when set, weighs holders by usage over request.
	Requests Requests
	// Limits lists the limited cgroups of the full limit reports of the same
	// incident: a bare kill line of a rate-limited storm takes the one its
	// victim lies under.
	Limits []string
}

// Holder is a task with a known resident size, from a task dump or a kill line.
type Holder struct {
	PID      int
	Comm     string
	RSSBytes int64
	// SharedBytes is the part of RSSBytes in file and shmem pages, which
	// the other processes of a workload may map too (HasShared: known).
	SharedBytes int64
	HasShared   bool
	Adj         int
	HasAdj      bool
	Cgroup      string
	// Seconds is when the holder was seen: kernel monotonic seconds, or,
	// in a log whose rendering has no monotonic time, the wall clock's
	// (Unix seconds).
	Seconds float64
	// Dead marks a holder an earlier report of the incident killed: it
	// held nothing at the kill being judged.
	Dead bool
}

// Analyze turns one report into an event.
func Analyze(r *oom.Report, ctx Context) Event {
	v := r.Victim()
	ev := Event{
		Seq:          r.Seq,
		EndSeq:       r.EndSeq,
		Complete:     r.Complete,
		DumpCut:      r.DumpCut,
		Lines:        r.Lines,
		LinesDropped: r.LinesDropped,
		GroupCgroup:  r.GroupCgroup,
	}
	ev.Kind, ev.Constraint, ev.OOMMemcg = classify(r)
	if ev.Kind == KindLimit && ev.OOMMemcg != "" {
		ev.LimitFrom = LimitFromReport
	}
	if v != nil && v.HasMono {
		s := v.Mono.Seconds()
		ev.UptimeSeconds = &s
	} else if r.HasMono {
		s := r.Mono.Seconds()
		ev.UptimeSeconds = &s
	}
	switch {
	case v != nil && !v.Wall.IsZero():
		t := v.Wall
		ev.Time = &t
	case !r.Wall.IsZero():
		t := r.Wall
		ev.Time = &t
	case !ctx.BootTime.IsZero() && ev.UptimeSeconds != nil:
		t := ctx.BootTime.Add(SecondsDuration(*ev.UptimeSeconds))
		ev.Time = &t
	}
	if r.HasMemcgUsage && ev.Kind == KindLimit {
		u, l := r.MemcgUsageKB*1024, r.MemcgLimitKB*1024
		ev.MemcgUsageBytes = &u
		if r.MemcgLimitKB < unlimitedKB {
			ev.MemcgLimitBytes = &l
		}
		if r.HasMemswUsage && atLimit(r.MemswUsageKB, r.MemswLimitKB) &&
			(!atLimit(r.MemcgUsageKB, r.MemcgLimitKB) || memswFull(r)) {
			// Memory was under its limit and memory+swap at its own:
			// that limit was hit (an unlimited one, 2^53 kB, never is).
			su, sl := r.MemswUsageKB*1024, r.MemswLimitKB*1024
			ev.MemswUsageBytes, ev.MemswLimitBytes = &su, &sl
		}
	}
	cg := func(pid int, own string) string {
		if own != "" {
			return own
		}
		return ctx.Cgroups[pid]
	}
	for _, vi := range r.Victims {
		p := processOf(vi.Task, cg(vi.PID, vi.Cgroup))
		p.GroupMember, p.SelectionOnly, p.SharedMemory = vi.GroupMember, vi.Selected, vi.SharedMemory
		ev.Victims = append(ev.Victims, p)
	}
	if t := r.Trigger; t != nil {
		p := Process{PID: t.PID, Comm: t.Comm}
		if t.HasAdj {
			adj := t.OOMScoreAdj
			p.OOMScoreAdj = &adj
		}
		if t.PID != 0 {
			p.Workload = WorkloadOf(cg(t.PID, ""))
			if row := r.TaskByPID(t.PID); row != nil {
				rss := row.RSSBytes
				p.RSSBytes = &rss
			}
		}
		ev.Trigger = &p
	}
	ev.LimitLowered = r.LimitWritten && ev.Kind == KindLimit
	if ev.Trigger != nil && ev.Trigger.Cgroup == "" && ev.Kind == KindLimit && ev.OOMMemcg != "" && !ev.LimitLowered {
		// A limit kill is invoked by a task charging the limited cgroup:
		// the trigger ran in it (or below it), even when it is gone before
		// anyone could read /proc (a thread of the victim, say). Not the
		// writer of a lowered memory.max, which may run anywhere.
		ev.Trigger.Workload = WorkloadOf(ev.OOMMemcg)
	}
	ev.TopConsumers = topConsumers(r, cg)
	if len(ev.Victims) == 0 {
		ev.Reason = "no process was killed"
		return ev
	}
	if ev.Kind == KindLimit && ev.OOMMemcg == "" {
		// A rate-limited storm prints bare kill lines: the incident's full
		// reports name the limit that its victims lie under.
		if m := innermost(ctx.Limits, ev.Victims[0].Cgroup); m != "" {
			ev.OOMMemcg, ev.LimitFrom = m, LimitFromIncident
		}
	}
	ev.LimitScope = limitScope(ev.Kind, ev.OOMMemcg, ev.Victims[0].Cgroup)
	judge(&ev, r, ctx, cg)
	return ev
}

// within reports whether cgroup lies in (or is) dir.
func within(cgroup, dir string) bool {
	if cgroup == "" || dir == "" {
		return false
	}
	if dir == "/" || cgroup == dir {
		return true
	}
	return strings.HasPrefix(cgroup, dir) && cgroup[len(dir)] == '/'
}

// innermost returns the deepest of limits that cgroup lies in, or "".
func innermost(limits []string, cgroup string) string {
	best := ""
	for _, l := range limits {
		if within(cgroup, l) && len(l) > len(best) {
			best = l
		}
	}
	return best
}

// unlimitedKB: a limit this large is the kernel's "max" (PAGE_COUNTER_MAX
// pages, printed as 9007199254740988kB with 4 KiB pages), no limit at all.
const unlimitedKB = 1 << 52

// memswFull tells a cgroup v1 report whose memory+swap is full to the
// kB while memory still had room for a charge batch (256 kB): the kernel
// charges memory+swap first, so that is the limit a charge failed on.
func memswFull(r *oom.Report) bool {
	return r.MemswLimitKB > 0 && r.MemswUsageKB >= r.MemswLimitKB && r.MemcgLimitKB-r.MemcgUsageKB > 256
}

// atLimit tells whether a cgroup's usage is at its limit (kB) as the
// kernel reports it at an OOM: within 256 kB (a charge batch: 32 pages of
// 4 KiB, 64 on recent kernels) or 1% of it, whichever is larger.
func atLimit(usage, limit int64) bool {
	return limit > 0 && limit-usage <= max(256, limit/100)
}

// classify reads the kind of kill from the kernel's own words; it never guesses.
func classify(r *oom.Report) (kind, constraint, memcg string) {
	if s := r.Summary; s != nil {
		constraint = s.Constraint
		switch {
		case s.OOMMemcg != "":
			// Only a memory cgroup OOM prints oom_memcg=. Kernels from
			// 4.19 to 5.2 printed the constraint before computing it
			// (fixed by "mm/oom_kill.c: fix uninitialized oc->constraint"):
			// CONSTRAINT_NONE for every kill.
			kind = KindLimit
		case s.Constraint == "CONSTRAINT_NONE":
			kind = KindNode
		case s.Constraint == "CONSTRAINT_MEMCG":
			kind = KindLimit
		case s.Constraint == "CONSTRAINT_CPUSET":
			kind = KindCpuset
		case s.Constraint == "CONSTRAINT_MEMORY_POLICY":
			kind = KindMempolicy
		case s.GlobalOOM:
			kind = KindNode
		}
		if kind == KindLimit {
			memcg = s.OOMMemcg
		}
	}
	if kind == "" {
		v := r.Victim()
		switch {
		case r.LegacyLimitOf != "":
			kind = KindLimit
		case r.SelectedMemcg || (v != nil && v.Message == "Memory cgroup out of memory"):
			kind = KindLimit
		case r.SelectedGlobal || (v != nil && strings.HasPrefix(v.Message, "Out of memory")):
			kind = KindNode
		default:
			kind = KindUnknown
		}
	}
	if kind == KindLimit && memcg == "" {
		memcg = r.LegacyLimitOf
		if memcg == "" {
			// The first "Memory cgroup stats for" block is the limited cgroup's.
			memcg = r.MemcgStatsFor
		}
	}
	return kind, constraint, memcg
}

// limitScope tells whose limit a limit kill hit.
func limitScope(kind, memcg, victimCgroup string) string {
	if kind != KindLimit || memcg == "" {
		return ""
	}
	w := workload.FromCgroup(memcg)
	switch w.Kind {
	case workload.KindContainer:
		return ScopeContainer
	case workload.KindPod:
		return ScopePod
	case workload.KindQoS:
		if w.QoS == "" {
			return ScopeAllocatable
		}
	}
	return ScopeOther
}

func processOf(t oom.Task, cgroup string) Process {
	p := Process{PID: t.PID, Comm: t.Comm, Workload: WorkloadOf(cgroup)}
	if t.HasUID {
		uid := t.UID
		p.UID = &uid
	}
	if t.HasRSS {
		rss := t.RSSBytes
		p.RSSBytes = &rss
	}
	if t.HasAdj {
		adj := t.OOMScoreAdj
		p.OOMScoreAdj = &adj
	}
	return p
}

func topConsumers(r *oom.Report, cg func(int, string) string) []Process {
	if len(r.Tasks) == 0 {
		return nil
	}
	// The n largest, the first listed among equals (what a stable sort by
	// size would put first), picked in one pass: a node's dump may list
	// 10,000 tasks, and sorting them all cost more than judging them.
	n := min(TopConsumers, len(r.Tasks))
	idx := make([]int, 0, n)
	for i := range r.Tasks {
		rss := r.Tasks[i].RSSBytes
		if len(idx) == n && rss <= r.Tasks[idx[n-1]].RSSBytes {
			continue
		}
		j := len(idx)
		for j > 0 && r.Tasks[idx[j-1]].RSSBytes < rss {
			j--
		}
		if len(idx) < n {
			idx = append(idx, 0)
		}
		copy(idx[j+1:], idx[j:len(idx)-1])
		idx[j] = i
	}
	out := make([]Process, 0, n)
	for _, i := range idx {
		t := r.Tasks[i]
		own := ""
		for _, v := range r.Victims {
			if v.PID == t.PID {
				own = v.Cgroup
			}
		}
		out = append(out, processOf(t, cg(t.PID, own)))
	}
	return out
}

// unitKey names the workload a holder's memory is summed under: per
// container under a pod's limit (the siblings compete), per pod otherwise
// (the node, a QoS or other parent limit), per task when the cgroup is not
// known.
func unitKey(h Holder, scope string) string {
	if h.Cgroup == "" {
		// One allocation, not fmt.Sprintf's.
		var b [24]byte
		return string(strconv.AppendInt(append(b[:0], "pid:"...), int64(h.PID), 10))
	}
	w := workload.FromCgroup(h.Cgroup)
	if scope == ScopePod || scope == ScopeContainer {
		if k := w.Key(); k != "" {
			return k
		}
	}
	if k := w.PodKey(); k != "" {
		return k
	}
	return "cgroup:" + h.Cgroup
}

// holderList is a list of memory holders, read in place.
type holderList interface {
	Len() int
	At(i int) Holder
	// pid is At(i).PID.
	pid(i int) int
}

// holderSlice is a holderList of holders already made (an incident's).
type holderSlice []Holder

func (s holderSlice) Len() int        { return len(s) }
func (s holderSlice) At(i int) Holder { return s[i] }
func (s holderSlice) pid(i int) int   { return s[i].PID }

// reportHolders are a report's holders (see holders) read in place, not
// copied: a node's dump may list 10,000 tasks.
type reportHolders struct {
	r  *oom.Report
	cg func(int, string) string
	// extra are the killed processes, by index, that the dump does not
	// show and whose sizes are known: the holders after the dump's.
	extra []int
}

func newReportHolders(r *oom.Report, cg func(int, string) string) *reportHolders {
	hs := &reportHolders{r: r, cg: cg}
	for i := range r.Victims {
		if v := &r.Victims[i]; v.HasRSS && r.TaskByPID(v.PID) == nil {
			hs.extra = append(hs.extra, i)
		}
	}
	return hs
}

func (hs *reportHolders) Len() int { return len(hs.r.Tasks) + len(hs.extra) }

func (hs *reportHolders) At(i int) Holder {
	r := hs.r
	if i < len(r.Tasks) {
		t := &r.Tasks[i]
		own := ""
		for k := range r.Victims {
			if r.Victims[k].PID == t.PID {
				own = r.Victims[k].Cgroup
			}
		}
		return Holder{PID: t.PID, Comm: t.Comm, RSSBytes: t.RSSBytes, SharedBytes: t.SharedBytes, HasShared: t.HasShared,
			Adj: t.OOMScoreAdj, HasAdj: t.HasAdj, Cgroup: hs.cg(t.PID, own), Seconds: r.Mono.Seconds()}
	}
	v := &r.Victims[hs.extra[i-len(r.Tasks)]]
	return Holder{PID: v.PID, Comm: v.Comm, RSSBytes: v.RSSBytes, SharedBytes: v.SharedBytes, HasShared: v.HasShared,
		Adj: v.OOMScoreAdj, HasAdj: v.HasAdj, Cgroup: hs.cg(v.PID, v.Cgroup), Seconds: v.Mono.Seconds()}
}

func (hs *reportHolders) pid(i int) int {
	if i < len(hs.r.Tasks) {
		return hs.r.Tasks[i].PID
	}
	return hs.r.Victims[hs.extra[i-len(hs.r.Tasks)]].PID
}

// rss returns the size of holder i, as At(i).RSSBytes without its cgroup.
func (hs *reportHolders) rss(i int) int64 {
	if i < len(hs.r.Tasks) {
		return hs.r.Tasks[i].RSSBytes
	}
	return hs.r.Victims[hs.extra[i-len(hs.r.Tasks)]].RSSBytes
}

// holders lists the report's tasks with known sizes: the task dump, and the
// killed processes that the dump does not show.
func holders(r *oom.Report, cg func(int, string) string) []Holder {
	return appendHolders(nil, r, cg)
}

// appendHolders appends the report's holders (see holders) to dst.
func appendHolders(dst []Holder, r *oom.Report, cg func(int, string) string) []Holder {
	hs := newReportHolders(r, cg)
	n := hs.Len()
	dst = slices.Grow(dst, n)
	for i := 0; i < n; i++ {
		dst = append(dst, hs.At(i))
	}
	return dst
}

// victimUnit tells the holders summed under the victim's unit from the
// others: unitKey(h, scope) == key, with each cgroup's key made once.
type victimUnit struct {
	key, scope string
	// pid is the victim's PID when its unit is a task's of unknown
	// cgroup (isPID).
	pid   int
	isPID bool
	same  map[string]bool // by cgroup
}

func newVictimUnit(key, scope string) *victimUnit {
	v := &victimUnit{key: key, scope: scope}
	if p, ok := strings.CutPrefix(key, "pid:"); ok {
		if pid, err := strconv.Atoi(p); err == nil {
			v.pid, v.isPID = pid, true
		}
	}
	return v
}

// has tells whether h is summed under the victim's unit.
func (v *victimUnit) has(h Holder) bool {
	if h.Cgroup == "" {
		return v.isPID && h.PID == v.pid
	}
	same, ok := v.same[h.Cgroup]
	if !ok {
		if v.same == nil {
			v.same = map[string]bool{}
		}
		same = unitKey(h, v.scope) == v.key
		v.same[h.Cgroup] = same
	}
	return same
}

// largest sums holders per unit and returns the largest unit.
func largest(hs []Holder, scope string) (unit, bool) {
	us := sum(holderSlice(hs), scope)
	best := us.largest()
	return us.unit(holderSlice(hs), best), best != none
}

// judge finds the culprit, decides collateral and writes the reason.
func judge(ev *Event, r *oom.Report, ctx Context, cg func(int, string) string) {
	victim := ev.Victims[0]
	vi := r.Victim()
	scope := ev.LimitScope
	victimHolder := Holder{PID: victim.PID, Cgroup: victim.Cgroup}
	victimKey := unitKey(victimHolder, scope)

	source := SourceVictims
	if len(r.Tasks) > 0 {
		source = SourceTaskDump
	}
	best, ok, byRequest := culpritOf(newReportHolders(r, cg), scope, victimKey, ctx.Requests)
	var culprit *Culprit
	if ok {
		rss := best.rss
		culprit = &Culprit{PID: best.top.PID, Comm: best.top.Comm, RSSBytes: &rss, Tasks: best.tasks,
			Source: source, Workload: best.workload}
		if byRequest {
			culprit.RankedBy = RankedOverRequest
		}
	}
	// Without a task dump the victim may be the only holder the report
	// and its incident name: nothing to compare it with, unless its
	// oom_score_adj says the kernel chose it by size alone (bySize).
	compared := source == SourceTaskDump
	if source != SourceTaskDump {
		var others bool
		culprit, others = judgeWithoutDump(ev, r, ctx, culprit, victimKey)
		compared = others
		for i := range r.Victims {
			if unitKey(Holder{PID: r.Victims[i].PID, Cgroup: cg(r.Victims[i].PID, r.Victims[i].Cgroup)}, scope) != victimKey {
				compared = true
			}
		}
	}
	ev.Culprit = culprit
	ev.CollateralVerdict = collateralVerdict(ev, culprit, scope, victimKey)
	// Nothing was compared with the victim's workload, or the rows a paste
	// left out of the dump may hold more than it.
	if ev.CollateralVerdict == CollateralNo && scope != ScopeContainer &&
		(!compared && (!bySize(vi, r.KernelRelease) || constrained(ev.Kind)) || r.DumpCut && culprit.RankedBy != RankedMajority) {
		ev.CollateralVerdict = CollateralUnknown
	}
	ev.Collateral = ev.CollateralVerdict == CollateralYes
	if vi.HasAdj && vi.OOMScoreAdj > 0 && culprit != nil && ev.Collateral {
		ev.ChosenForScoreAdj = true
	}
	if vi.HasAdj && vi.OOMScoreAdj > 0 && source == SourceTaskDump {
		for _, t := range r.Tasks {
			if t.RSSBytes > vi.RSSBytes && t.PID != vi.PID {
				ev.ChosenForScoreAdj = true
				break
			}
		}
	}
	ev.Reason = reason(ev)
}

// collateralVerdict decides whether the victim was collateral: yes only when the
// culprit's workload is known and is not the victim's; no when the victim's
// own workload held the most or the kill is container scope; unknown
// otherwise.
func collateralVerdict(ev *Event, c *Culprit, scope, victimKey string) string {
	switch {
	case scope == ScopeContainer:
		return CollateralNo
	case ev.Kind == KindLimit && ev.OOMMemcg == "":
		// Whose limit is not known, so neither is who could be inside it.
		return CollateralUnknown
	case c == nil || c.RSSBytes == nil:
		return CollateralUnknown
	case culpritKey(c, scope) == victimKey:
		return CollateralNo
	case c.Cgroup == "" && sandboxVictim(ev, scope) && c.PID != ev.Victims[0].PID:
		// A pod's sandbox container holds its pause process alone: a
		// larger holder under the pod's limit ran in another container.
		return CollateralYes
	case ev.Victims[0].Cgroup == "" || c.Cgroup == "":
		return CollateralUnknown
	}
	return CollateralYes
}

// sandboxVictim tells whether a pod-limit kill's victim is the pod's pause
// process (kernels before 5.9 killed the first task they scanned when a
// Guaranteed pod's scores all floored at 1).
func sandboxVictim(ev *Event, scope string) bool {
	v := ev.Victims[0]
	return scope == ScopePod && v.Comm == "pause" && v.Workload.WorkloadKind == string(workload.KindContainer)
}

// triggerInVictimUnit tells whether the trigger ran in the victim's own
// workload: a thread of the victim's process (its name and ID are the
// thread's, not the process's: Chrome's "Chrome_ChildIOT") or a sibling
// task, which is no other workload to blame.
func triggerInVictimUnit(ev *Event, scope, victimKey string) bool {
	t := ev.Trigger
	return t != nil && t.Cgroup != "" && unitKey(Holder{PID: t.PID, Cgroup: t.Cgroup}, scope) == victimKey
}

// triggerIsOther tells whether the trigger is known to be another process
// than the victim.
func triggerIsOther(t *oom.Trigger, v *oom.Victim) bool {
	if t.PID != 0 {
		return t.PID != v.PID
	}
	return t.Comm != "" && t.Comm != v.Comm
}

func culpritKey(c *Culprit, scope string) string {
	return unitKey(Holder{PID: c.PID, Cgroup: c.Cgroup}, scope)
}

// dedupe keeps one holder per PID (its largest sighting): a task seen in
// several reports of an incident is counted once.
func dedupe(hs []Holder) []Holder {
	if len(hs) == 0 {
		return nil
	}
	at := make(map[int]int, len(hs))
	out := make([]Holder, 0, len(hs))
	for _, h := range hs {
		if i, ok := at[h.PID]; ok {
			if h.RSSBytes > out[i].RSSBytes {
				cg := out[i].Cgroup
				out[i] = h
				if h.Cgroup == "" {
					out[i].Cgroup = cg
				}
			}
			continue
		}
		at[h.PID] = len(out)
		out = append(out, h)
	}
	return out
}

// bySize tells whether the kernel chose the victim by its size alone, as
// far as its oom_score_adj shows: 0 adds nothing to anyone's size. A
// negative one (a Guaranteed pod's -997) lowers everyone's score alike,
// but kernels before 5.9 floored scores at 1, so that in a cgroup of such
// tasks the first task scanned died, not the largest (a pod's pause
// process, say): by size only on a kernel known to be 5.9 or later.
func bySize(v *oom.Victim, kernel string) bool {
	switch {
	case !v.HasAdj || v.OOMScoreAdj > 0:
		return false
	case v.OOMScoreAdj == 0:
		return true
	}
	return oom.KernelAtLeast(kernel, 5, 9)
}

// constrained tells whether a kill's kind is an OOM of some memory nodes
// only (a cpuset's, a memory policy's): the kernel chose its victim by the
// whole processes' sizes, which do not tell who held those nodes' memory.
func constrained(kind string) bool { return kind == KindCpuset || kind == KindMempolicy }

// judgeWithoutDump picks the culprit of a report that printed no task dump,
// where only the killed processes' sizes are known:
//  1. a holder of another workload seen larger in the same incident is
//     the culprit;
//  2. else, when the incident shows other holders, all smaller, the
//     victim's own workload is the largest known;
//  3. else, with nothing else to go by: a victim chosen by size alone
//     (bySize) held the most; a victim with a
//     positive oom_score_adj may have been chosen for it, and the task that
//     was allocating when memory ran out (the trigger), when known to be
//     another process, is named instead.
//
// victimMajority tells whether a limit kill's victim alone held over half
// its limited cgroup's usage with its anonymous memory, which the kernel
// charges to the cgroup of the task that touched it: every other workload
// under the limit then held less than the victim's own. File pages are
// left out, as they may be charged to another cgroup.
func victimMajority(ev *Event, vi *oom.Victim) bool {
	return vi != nil && ev.MemcgUsageBytes != nil && *ev.MemcgUsageBytes > 0 && vi.AnonKB > 0 &&
		vi.AnonKB<<10 > *ev.MemcgUsageBytes/2
}

func judgeWithoutDump(ev *Event, r *oom.Report, ctx Context, own *Culprit, victimKey string) (c *Culprit, others bool) {
	scope := ev.LimitScope
	// The incident may hold a node's dump of 10,000 tasks: its holders,
	// dedupe's copy of ctx.Incident, are split in place, and their units
	// are told from the victim's without a key per holder.
	if ev.Kind == KindLimit && scope != ScopeContainer && own != nil && own.RSSBytes != nil &&
		victimMajority(ev, r.Victim()) && culpritKey(own, scope) == victimKey {
		c := *own
		c.RankedBy = RankedMajority
		return &c, true
	}
	hs := dedupe(ctx.Incident)
	outside := hs[:0]
	var inside []Holder
	deadSmaller := false
	victim := newVictimUnit(victimKey, scope)
	for _, h := range hs {
		if ev.Kind == KindLimit && !within(h.Cgroup, ev.OOMMemcg) {
			// A limit kill's culprit can only be inside its limit: the
			// other limit kills of the incident are other stories.
			continue
		}
		switch {
		case h.Dead:
			// Killed before, holding nothing now: no culprit, but one
			// that held less than the victim does still compares.
			if !victim.has(h) && own != nil && own.RSSBytes != nil && h.RSSBytes <= *own.RSSBytes {
				deadSmaller = true
			}
		case !victim.has(h):
			outside = append(outside, h)
		default:
			inside = append(inside, h)
		}
	}
	others = deadSmaller || len(outside) > 0
	if scope == ScopeContainer {
		// A container that hit its own limit: its largest task the
		// incident saw (the grower) is named, the verdict is its own.
		if u, ok := largest(append(inside, holders(r, func(int, string) string { return ev.Victims[0].Cgroup })...), scope); ok &&
			(own == nil || own.RSSBytes == nil || u.rss > *own.RSSBytes) {
			rss := u.rss
			return &Culprit{PID: u.top.PID, Comm: u.top.Comm, RSSBytes: &rss, Tasks: u.tasks,
				Source: SourceIncident, Workload: u.workload}, len(outside) > 0
		}
		return own, others
	}
	if inc, ok := largest(outside, scope); ok {
		if own == nil || own.RSSBytes == nil || inc.rss > *own.RSSBytes {
			rss := inc.rss
			return &Culprit{PID: inc.top.PID, Comm: inc.top.Comm, RSSBytes: &rss, Tasks: inc.tasks,
				Source: SourceIncident, Workload: inc.workload}, others
		}
		return own, others
	}
	if others {
		// Only smaller holders, since killed: the victim's own is the
		// largest known.
		return own, others
	}
	vi := r.Victim()
	if t := r.Trigger; t != nil && vi.HasAdj && vi.OOMScoreAdj > 0 && triggerIsOther(t, vi) && !triggerInVictimUnit(ev, scope, victimKey) {
		return &Culprit{PID: t.PID, Comm: t.Comm, Tasks: 1, Source: SourceTrigger, Workload: ev.Trigger.Workload}, others
	}
	return own, others
}
