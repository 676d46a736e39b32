package analysis

import (
	"slices"
	"time"

	"github.com/oomwatch/oomwatch/pkg/oom"
)

// StreamOptions tune a Stream.
type StreamOptions struct {
	// Hold is how long (kernel monotonic time, or the wall clock's in a
	// log without it) a report waits for later reports of the same boot
	// before it is judged: a PID first seen with
	// its cgroup in a later report (as its victim), or a larger holder of
	// the same incident, improves the verdict. 0 judges at once.
	Hold time.Duration
	// MaxHeld bounds the reports waiting, whatever their age. Default 64.
	MaxHeld int
	// IncidentWindow is how close in time kills must be to share an
	// incident. Default 60 s.
	IncidentWindow time.Duration
	// BootTime dates events from their monotonic timestamps when the
	// rendering carries no wall clock.
	BootTime time.Time
	// Cgroups, when set, is asked for the cgroups of PIDs a report names
	// that no report printed (the agent reads /proc while the tasks live;
	// it can tell from the report's time whether they may still). It may
	// return fewer.
	Cgroups func(r *oom.Report, pids []int) map[int]string
	// Requests, when set, weighs memory holders by usage over request.
	Requests Requests
}

// Stream judges a stream of reports from one kernel log. Within one boot a
// PID names one process, so what one report says of a PID (its cgroup)
// serves every report of that boot. Memory is bounded: at most MaxHeld
// reports wait, and the PID map is reset at each boot.
type Stream struct {
	opts   StreamOptions
	emit   func(Event)
	held   []*oom.Report
	pids   map[int]string
	recent []Holder // holders of recent reports, for incidents
	// killed are the victims of recent judged reports, with when they
	// died: from then on they hold nothing.
	killed []killedAt
	// limits are the limited cgroups of recent full limit reports.
	limits []limitSeen
	last   time.Duration
	lastOK bool
	// basis is the clock that places reports in incidents, set by the
	// first report that has one (see clock); now is the latest time on it.
	basis clockBasis
	now   float64
	nowOK bool
	// seen are the recent victims' kill lines (see killPrint), a ring of
	// maxSeen, kept across boots; repeats counts the reports skipped as
	// copies of one already taken.
	seen    [maxSeen]killPrint
	nseen   int
	repeats int64
}

// killPrint tells one kill line from any other: the victim's PID, name
// and anon-rss, the line's sequence number (-1 in renderings without one),
// and when the kernel printed it (monotonic, else wall time, in
// nanoseconds).
type killPrint struct {
	pid     int
	comm    string
	anonKB  int64
	seq     int64
	at      int64
	hasMono bool
}

// maxSeen bounds the kill lines a Stream remembers to find repeats.
const maxSeen = 256

// clockBasis is the clock a Stream compares reports by.
type clockBasis uint8

const (
	basisUnset clockBasis = iota
	// basisMono: the kernel's monotonic time (kmsg, dmesg, most syslog).
	basisMono
	// basisWall: wall-clock time, for a log whose rendering carries no
	// monotonic time (dmesg -T, journal and syslog lines without it).
	basisWall
)

type killedAt struct {
	pid     int
	seconds float64
}

type limitSeen struct {
	memcg   string
	seconds float64
}

// maxLimits bounds the limited cgroups remembered for an incident.
const maxLimits = 256

// NewStream returns a Stream that calls emit for every judged event, in
// the order the reports came.
func NewStream(opts StreamOptions, emit func(Event)) *Stream {
	if opts.MaxHeld <= 0 {
		opts.MaxHeld = 64
	}
	if opts.IncidentWindow <= 0 {
		opts.IncidentWindow = time.Minute
	}
	return &Stream{opts: opts, emit: emit, pids: map[int]string{}}
}

// Add takes the next report. A copy of a report already taken (a log
// pasted twice, or quoted in a reply after its first showing: every kill
// line the same, to the microsecond) is counted in Repeats and skipped.
func (s *Stream) Add(r *oom.Report) {
	if s.repeat(r) {
		s.repeats++
		return
	}
	if r.HasMono {
		if s.lastOK && r.Mono < s.last {
			// The clock went back: a new boot, where PIDs mean other processes.
			s.NewBoot()
		}
		s.last, s.lastOK = r.Mono, true
	}
	if s.basis == basisUnset {
		switch {
		case r.HasMono:
			s.basis = basisMono
		case !r.Wall.IsZero():
			s.basis = basisWall
		}
	}
	if at, ok := s.clock(r); ok && (!s.nowOK || at > s.now) {
		s.now, s.nowOK = at, true
	}
	s.learn(r)
	s.held = append(s.held, r)
	s.release(false)
}

// Repeats returns how many reports Add skipped as copies.
func (s *Stream) Repeats() int64 { return s.repeats }

// repeat tells whether every kill line of r was seen before, and
// remembers them otherwise. A report without a kill line, or one whose kill
// line has no time, is never a repeat.
func (s *Stream) repeat(r *oom.Report) bool {
	if len(r.Victims) == 0 {
		return false
	}
	var buf [4]killPrint
	prints, all := buf[:0], true
	for i := range r.Victims {
		p, ok := printOf(&r.Victims[i])
		if !ok {
			return false
		}
		all = all && slices.Contains(s.seen[:min(s.nseen, maxSeen)], p)
		prints = append(prints, p)
	}
	if all {
		return true
	}
	for _, p := range prints {
		s.seen[s.nseen%maxSeen] = p
		s.nseen++
	}
	return false
}

// printOf returns the print of a victim's kill line; ok is false when the
// line carried no time.
func printOf(v *oom.Victim) (killPrint, bool) {
	p := killPrint{pid: v.PID, comm: v.Comm, anonKB: v.AnonKB, seq: v.Seq}
	switch {
	case v.HasMono:
		p.at, p.hasMono = int64(v.Mono), true
	case !v.Wall.IsZero():
		p.at = v.Wall.UnixNano()
	default:
		return p, false
	}
	return p, true
}

// NewBoot tells the stream that the reports after this belong to another
// boot of the kernel, where PIDs name other processes and no incident of
// the boot before goes on: the reader saw a boot's first record or a
// journal's boot separator. The reports waiting are judged first.
func (s *Stream) NewBoot() {
	s.Flush()
	s.pids = map[int]string{}
	s.recent = nil
	s.limits = nil
	s.killed = nil
	s.lastOK, s.nowOK = false, false
}

// clock returns when r happened on the stream's clock (see clockBasis), in
// seconds; ok is false when r does not carry that clock, and is then in no
// incident.
func (s *Stream) clock(r *oom.Report) (at float64, ok bool) {
	switch {
	case s.basis == basisMono && r.HasMono:
		return r.Mono.Seconds(), true
	case s.basis == basisWall && !r.Wall.IsZero():
		return float64(r.Wall.UnixNano()) / 1e9, true
	}
	return 0, false
}

// HeldFrom returns the sequence number of the first record of the oldest
// report still waiting, if any: a reader that checkpoints its input must
// not pass it.
func (s *Stream) HeldFrom() (int64, bool) {
	if len(s.held) == 0 {
		return 0, false
	}
	return s.held[0].Seq, true
}

// Flush judges every waiting report. Call it at the end of the input.
func (s *Stream) Flush() { s.release(true) }

// Release judges the reports that have waited long enough by the kernel's
// clock as last seen plus idle (how long the source has been quiet).
func (s *Stream) Release(idle time.Duration) {
	if s.nowOK {
		s.now += idle.Seconds()
	}
	s.release(false)
}

func (s *Stream) learn(r *oom.Report) {
	for _, v := range r.Victims {
		if v.Cgroup != "" {
			s.pids[v.PID] = v.Cgroup
		}
	}
	if s.opts.Cgroups == nil {
		return
	}
	// Sized once: a node's dump may list 10,000 tasks.
	ask := make([]int, 0, len(r.Victims)+1+len(r.Tasks))
	add := func(pid int) {
		if _, ok := s.pids[pid]; !ok && pid > 0 {
			ask = append(ask, pid)
		}
	}
	// Victims the report does not place (a rate-limited report's bare
	// kill line): the reader may know them from before they died.
	for _, v := range r.Victims {
		if v.Cgroup == "" {
			add(v.PID)
		}
	}
	if r.Trigger != nil {
		add(r.Trigger.PID)
	}
	for _, t := range r.Tasks {
		add(t.PID)
	}
	for pid, cg := range s.opts.Cgroups(r, ask) {
		if cg != "" {
			s.pids[pid] = cg
		}
	}
}

func (s *Stream) release(all bool) {
	n := 0
	for n < len(s.held) {
		at, ok := s.clock(s.held[n])
		ready := all || len(s.held)-n > s.opts.MaxHeld || s.opts.Hold <= 0 ||
			(ok && s.nowOK && s.now-at >= s.opts.Hold.Seconds())
		if !ready {
			break
		}
		n++
	}
	for _, r := range s.held[:n] {
		var incident []Holder
		if len(r.Tasks) == 0 {
			// Only a report without a task dump is judged by its
			// incident's holders (judgeWithoutDump), and a held report's
			// may be a dump of 10,000 tasks.
			incident = s.incident(r)
		}
		s.emit(Analyze(r, Context{Cgroups: s.pids, BootTime: s.opts.BootTime, Incident: incident,
			Requests: s.opts.Requests, Limits: s.incidentLimits(r)}))
	}
	for _, r := range s.held[:n] {
		s.remember(r)
	}
	s.held = append(s.held[:0], s.held[n:]...)
}

// incident lists the holders of the other reports within the incident
// window of r: those still waiting and those judged recently.
func (s *Stream) incident(r *oom.Report) []Holder {
	at, ok := s.clock(r)
	if !ok {
		return nil
	}
	win := s.opts.IncidentWindow.Seconds()
	// The victims killed before r held nothing at r, whatever they held
	// when a report listed them: they compare, but are no culprit. Not
	// those the oom_reaper could not empty (mlocked memory): they held it
	// until they exited.
	gone := map[int]bool{}
	for _, k := range s.killed {
		if k.seconds < at {
			gone[k.pid] = true
		}
	}
	for _, o := range s.held {
		if ot, ok := s.clock(o); o != r && ok && ot < at {
			for _, v := range o.Victims {
				gone[v.PID] = !slices.Contains(o.Unreaped, v.PID)
			}
		}
	}
	var out []Holder
	for _, h := range s.recent {
		if h.Seconds >= at-win && h.Seconds <= at+win {
			h.Dead = gone[h.PID]
			out = append(out, h)
		}
	}
	for _, o := range s.held {
		if ot, ok := s.clock(o); o == r || !ok || ot < at-win || ot > at+win {
			continue
		}
		n := len(out)
		out = appendHolders(out, o, func(pid int, own string) string {
			if own != "" {
				return own
			}
			return s.pids[pid]
		})
		for i := n; i < len(out); i++ {
			out[i].Dead = gone[out[i].PID]
		}
	}
	return out
}

// LimitOf returns the limited cgroup a report names itself (a memory
// cgroup OOM: every task of its dump runs in that cgroup or below), or ""
// (a node-wide OOM, or a report that does not say).
func LimitOf(r *oom.Report) string {
	if kind, _, memcg := classify(r); kind == KindLimit {
		return memcg
	}
	return ""
}

// incidentLimits lists the limited cgroups named by the other reports
// within the incident window of r.
func (s *Stream) incidentLimits(r *oom.Report) []string {
	at, ok := s.clock(r)
	if !ok {
		return nil
	}
	win := s.opts.IncidentWindow.Seconds()
	var out []string
	for _, l := range s.limits {
		if l.seconds >= at-win && l.seconds <= at+win {
			out = append(out, l.memcg)
		}
	}
	for _, o := range s.held {
		if ot, ok := s.clock(o); o == r || !ok || ot < at-win || ot > at+win {
			continue
		}
		if m := LimitOf(o); m != "" {
			out = append(out, m)
		}
	}
	return out
}

// largestHolders appends to dst the places of the TopConsumers largest of
// hs, in the order (among equals too) that a selection sort with swaps
// puts them first, as remember picked them when it copied the holders.
// It reads their sizes alone: a node's dump may list 10,000 tasks.
//
// Only the holders at least as large as the TopConsumers-th largest can
// be picked (candidates); the swaps move the others, never picked, and
// the candidates, whose places are followed.
func largestHolders(hs *reportHolders, dst []int) []int {
	n := hs.Len()
	k := min(n, TopConsumers)
	if k == 0 {
		return dst
	}
	// The k largest sizes, largest first: the last is the threshold.
	var top [TopConsumers]int64
	for i := 0; i < n; i++ {
		rss := hs.rss(i)
		j := min(i, k)
		if j == k && rss <= top[k-1] {
			continue
		}
		for j > 0 && top[j-1] < rss {
			if j < k {
				top[j] = top[j-1]
			}
			j--
		}
		top[j] = rss
	}
	type candidate struct {
		rss int64
		at  int // its place as the sort goes
		i   int // its place in hs
	}
	var buf [64]candidate
	cands := buf[:0]
	for i := 0; i < n; i++ {
		if rss := hs.rss(i); rss >= top[k-1] {
			cands = append(cands, candidate{rss: rss, at: i, i: i})
		}
	}
	for r := 0; r < k; r++ {
		// The largest at place r or after, the first placed among equals.
		m := -1
		for c := range cands {
			if cd := &cands[c]; cd.at >= r && (m < 0 || cd.rss > cands[m].rss || cd.rss == cands[m].rss && cd.at < cands[m].at) {
				m = c
			}
		}
		// The swap: what stood at place r goes where the pick stood.
		for c := range cands {
			if cands[c].at == r {
				cands[c].at = cands[m].at
			}
		}
		cands[m].at = r
		dst = append(dst, cands[m].i)
	}
	return dst
}

// remember keeps the largest holders of a judged report for later incidents.
func (s *Stream) remember(r *oom.Report) {
	at, ok := s.clock(r)
	if !ok {
		return
	}
	if m := LimitOf(r); m != "" {
		if n := len(s.limits); n == 0 || s.limits[n-1].memcg != m {
			s.limits = append(s.limits, limitSeen{memcg: m, seconds: at})
		} else {
			s.limits[n-1].seconds = at
		}
		if len(s.limits) > maxLimits {
			s.limits = s.limits[len(s.limits)-maxLimits:]
		}
	}
	for _, v := range r.Victims {
		if !slices.Contains(r.Unreaped, v.PID) {
			s.killed = append(s.killed, killedAt{pid: v.PID, seconds: at})
		}
	}
	hs := newReportHolders(r, func(pid int, own string) string {
		if own != "" {
			return own
		}
		return s.pids[pid]
	})
	// Keep the few largest: enough to name an incident's culprit.
	var kept [TopConsumers]int
	for _, i := range largestHolders(hs, kept[:0]) {
		h := hs.At(i)
		if s.basis == basisWall {
			h.Seconds = at
		}
		s.recent = append(s.recent, h)
	}
	cut := at - s.opts.IncidentWindow.Seconds()
	s.recent = slices.DeleteFunc(s.recent, func(h Holder) bool { return h.Seconds < cut })
	s.limits = slices.DeleteFunc(s.limits, func(l limitSeen) bool { return l.seconds < cut })
	s.killed = slices.DeleteFunc(s.killed, func(k killedAt) bool { return k.seconds < cut })
}
