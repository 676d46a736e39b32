package warn

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// unlimited is where a limit stops being one: cgroup v1 reports "no limit"
// as the largest page-aligned int64 (9223372036854771712).
const unlimited = int64(1) << 62

// Engine holds the state of the warnings of one node: per cgroup, its
// recent samples and open warnings; and the recently resolved warnings.
// Its memory is bounded by Config.MaxCgroups, ForecastMaxPoints and
// History. An Engine is not safe for concurrent use.
type Engine struct {
	cfg     Config
	groups  map[string]*group
	node    subject
	history []Warning // resolved warnings, a ring of cfg.History
	next    int       // the oldest slot once the ring is full
	stats   Stats
}

// Stats count what the engine tracked and what it could not.
type Stats struct {
	// Tracked is the number of cgroups held now.
	Tracked int
	// Untracked counts samples of new cgroups refused past MaxCgroups.
	Untracked uint64
	// Invalid counts samples refused as malformed: no cgroup path, no time,
	// negative bytes.
	Invalid uint64
}

// subject is a cgroup, or the node, with its open warnings.
type subject struct {
	cgroup   string
	workload Workload
	last     time.Time // latest sample's time
	open     [numKinds]*tracked
}

// tracked is an open warning: as last sent, and its latest figures.
type tracked struct {
	sent Warning
	key  float64 // the kind's key figure when sent (higher is worse)
	// betterSince is when the key became better than sent by UpdateChange
	// and stayed so; zero when it is not.
	betterSince time.Time
	latest      Figures
}

// group is a cgroup's state between samples.
type group struct {
	subject
	ws       series
	prevWS   int64
	prevMax  uint64
	havePrev bool
	// near-limit: since when the working set is at or above the ratio.
	aboveSince time.Time
	// limit-reclaim: consecutive rising intervals, the last rise, and the
	// counter and time the rises are measured from.
	rises     int
	lastRise  time.Time
	riseBase  uint64
	riseStart time.Time
}

// New returns an Engine configured by cfg.
func New(cfg Config) (*Engine, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Engine{cfg: cfg, groups: make(map[string]*group)}, nil
}

// Stats returns the engine's counts.
func (e *Engine) Stats() Stats {
	s := e.stats
	s.Tracked = len(e.groups)
	return s
}

// Observe takes one round of samples, the node's (zero when not read) and
// the cgroups', and returns the warnings that changed: opened, updated,
// resolved; nil when none did. Cgroups missing from rounds for
// Config.GoneAfter are forgotten, their open warnings resolved as Gone.
func (e *Engine) Observe(node NodeSample, groups []CgroupSample) []Warning {
	var out []Warning
	now := node.At
	for i := range groups {
		if groups[i].At.After(now) {
			now = groups[i].At
		}
	}
	if now.IsZero() {
		e.stats.Invalid += uint64(len(groups))
		return nil
	}
	if !node.At.IsZero() {
		out = e.observeNode(node, out)
	}
	for i := range groups {
		out = e.observeGroup(groups[i], out)
	}
	return e.sweep(now, out)
}

// sweep forgets the cgroups not seen for GoneAfter, resolving their open
// warnings, in cgroup order so that the output is deterministic.
func (e *Engine) sweep(now time.Time, out []Warning) []Warning {
	var gone []string
	for path, g := range e.groups {
		if g.last.After(now) {
			g.last = now // the clock went backwards: the grace starts again
			continue
		}
		if now.Sub(g.last) > e.cfg.GoneAfter {
			gone = append(gone, path)
		}
	}
	slices.Sort(gone)
	for _, path := range gone {
		out = e.resolveAll(&e.groups[path].subject, now, Gone, out)
		delete(e.groups, path)
	}
	return out
}

// rebase starts a subject's time over after the clock went backwards: its
// open warnings count their update gaps from now.
func (s *subject) rebase(now time.Time) {
	for _, t := range s.open {
		if t != nil {
			t.sent.At, t.betterSince = now, time.Time{}
		}
	}
}

func (e *Engine) observeNode(n NodeSample, out []Warning) []Warning {
	s := &e.node
	switch {
	case n.At.Equal(s.last):
		return out // the same reading again
	case n.At.Before(s.last):
		s.rebase(n.At)
	}
	s.last = n.At
	if n.MemTotal > 0 && n.MemAvailable >= 0 && n.EvictionThreshold >= 0 {
		out = e.step(s, NodeLow, e.nodeLow(n), n.At, out)
	}
	if psi, ok := cleanPSI(n.PSIKnown, n.PSIFullAvg10); ok {
		out = e.step(s, Pressure, e.pressure(psi, Figures{}), n.At, out)
	}
	return out
}

// cleanPSI returns a PSI percentage fit to compare, or false when it is
// unknown or not a number.
func cleanPSI(known bool, v float64) (float64, bool) {
	if !known || math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
		return 0, false
	}
	return min(v, 100), true
}

func (e *Engine) observeGroup(s CgroupSample, out []Warning) []Warning {
	g := e.groups[s.Cgroup]
	if s.Cgroup == "" || s.At.IsZero() || s.WorkingSet < 0 || s.Usage < 0 {
		e.stats.Invalid++
		if g != nil && s.At.After(g.last) {
			g.last = s.At // there, but misread: not gone
		}
		return out
	}
	if g == nil {
		if len(e.groups) >= e.cfg.MaxCgroups {
			e.stats.Untracked++
			return out
		}
		g = &group{subject: subject{cgroup: s.Cgroup}}
		e.groups[s.Cgroup] = g
	}
	switch {
	case s.At.Equal(g.last):
		return out // the same reading again
	case s.At.Before(g.last):
		// The clock went backwards: move what was measured over time with
		// it, the last sample one interval before this one, so that the
		// step itself opens and resolves nothing.
		g.rebase(s.At)
		g.shift(s.At.Sub(g.last) - g.ws.lastGap())
	}
	g.workload = s.Workload
	if g.havePrev && s.MaxEvents < g.prevMax {
		// A counter went backwards: another cgroup at the same path.
		out = e.resolveAll(&g.subject, s.At, Reset, out)
		g.restart()
	}
	if g.havePrev && s.WorkingSet < g.prevWS/2 {
		g.ws.reset() // collapsed (a process killed or restarted): a new trend
	}
	if s.Limit <= 0 || s.Limit >= unlimited {
		s.Limit = 0
	}
	g.ws.add(s.At, s.WorkingSet, e.cfg.ForecastWindow, e.cfg.ForecastMaxPoints)
	f := g.ws.fit(e.cfg.ForecastMinPoints, e.cfg.ForecastMinSpan)
	g.countRise(s, g.open[LimitReclaim] != nil)

	out = e.step(&g.subject, NearLimit, e.nearLimit(g, s, f), s.At, out)
	out = e.step(&g.subject, LimitReclaim, e.limitReclaim(g, s), s.At, out)
	if psi, ok := cleanPSI(s.PSIKnown, s.PSIFullAvg10); ok {
		out = e.step(&g.subject, Pressure, e.pressure(psi, memFigures(s)), s.At, out)
	}
	out = e.step(&g.subject, Forecast, e.forecast(s, f), s.At, out)

	g.last, g.prevWS, g.prevMax, g.havePrev = s.At, s.WorkingSet, s.MaxEvents, true
	return out
}

// restart forgets what the group measured over time (its open warnings
// were resolved).
func (g *group) restart() {
	g.ws.reset()
	g.havePrev = false
	g.aboveSince = time.Time{}
	g.rises = 0
	g.lastRise = time.Time{}
}

// shift moves the group's times by d.
func (g *group) shift(d time.Duration) {
	g.ws.shift(d)
	for _, t := range []*time.Time{&g.last, &g.aboveSince, &g.lastRise, &g.riseStart} {
		if !t.IsZero() {
			*t = t.Add(d)
		}
	}
}

// countRise follows the max event counter: consecutive rising intervals,
// and the base the rises are measured from (kept while a warning is open).
func (g *group) countRise(s CgroupSample, open bool) {
	if !g.havePrev {
		return
	}
	if s.MaxEvents <= g.prevMax {
		g.rises = 0
		return
	}
	if g.rises == 0 && !open {
		g.riseBase, g.riseStart = g.prevMax, g.last
	}
	g.rises++
	g.lastRise = s.At
}

// step moves one warning of a subject along with its verdict of this
// sample: opens it, resolves it, or sends it again when its figures moved
// enough.
func (e *Engine) step(s *subject, k Kind, v verdict, now time.Time, out []Warning) []Warning {
	t := s.open[k]
	if t == nil {
		if !v.open {
			return out
		}
		w := Warning{
			Kind: k, State: Opened, Cgroup: s.cgroup, Workload: s.workload,
			Since: now, At: now, Figures: v.figures, Opening: v.figures, Thresholds: v.thresholds,
		}
		s.open[k] = &tracked{sent: w, key: v.key, latest: v.figures}
		return append(out, w)
	}
	t.latest = v.figures
	if v.clear {
		return append(out, e.resolve(s, k, now, Cleared))
	}
	// Worse now by UpdateChange: sent soon. Better by UpdateChange on every
	// sample for UpdateEvery: sent then. A figure that swings back and forth
	// is sent at its worst, then no more.
	moved := change(t.key, v.key) >= e.cfg.UpdateChange
	switch {
	case !moved || v.key > t.key:
		t.betterSince = time.Time{}
	case t.betterSince.IsZero():
		t.betterSince = now
	}
	worse := moved && v.key > t.key && now.Sub(t.sent.At) >= e.cfg.UpdateMinGap
	better := !t.betterSince.IsZero() && now.Sub(t.betterSince) >= e.cfg.UpdateEvery
	if worse || better {
		t.sent.State, t.sent.At, t.sent.Workload = Updated, now, s.workload
		t.sent.Figures, t.sent.Thresholds = v.figures, v.thresholds
		t.key, t.betterSince = v.key, time.Time{}
		out = append(out, t.sent)
	}
	return out
}

// change is how much a key figure moved, relative to where it was.
func change(old, cur float64) float64 {
	d := math.Abs(cur - old)
	if d == 0 {
		return 0
	}
	if old == 0 {
		return math.Inf(1)
	}
	return d / math.Abs(old)
}

// resolve closes a subject's open warning of kind k with its latest
// figures, keeps it in the history and returns it.
func (e *Engine) resolve(s *subject, k Kind, now time.Time, why Reason) Warning {
	t := s.open[k]
	s.open[k] = nil
	w := t.sent
	w.State, w.Reason, w.At, w.Figures, w.Workload = Resolved, why, now, t.latest, s.workload
	if now.Before(w.Since) {
		w.At = w.Since // a clock that went backwards does not make it end before it began
	}
	e.remember(w)
	return w
}

// resolveAll resolves every open warning of a subject.
func (e *Engine) resolveAll(s *subject, now time.Time, why Reason, out []Warning) []Warning {
	for _, k := range kinds {
		if s.open[k] != nil {
			out = append(out, e.resolve(s, k, now, why))
		}
	}
	return out
}

// remember keeps a resolved warning, forgetting the oldest past History.
func (e *Engine) remember(w Warning) {
	if len(e.history) < e.cfg.History {
		e.history = append(e.history, w)
		return
	}
	e.history[e.next] = w
	e.next = (e.next + 1) % len(e.history)
}

// Open returns the warnings open now, with their latest figures, node first
// then by cgroup and kind.
func (e *Engine) Open() []Warning {
	out := e.node.current()
	paths := make([]string, 0, len(e.groups))
	for p := range e.groups {
		paths = append(paths, p)
	}
	slices.Sort(paths)
	for _, p := range paths {
		out = append(out, e.groups[p].current()...)
	}
	return out
}

// current returns a subject's open warnings with their latest figures, by
// kind.
func (s *subject) current() []Warning {
	var out []Warning
	for _, t := range s.open {
		if t != nil {
			w := t.sent
			w.Figures = t.latest
			out = append(out, w)
		}
	}
	return out
}

// String renders a warning on one line, for logs and test failures.
func (w Warning) String() string {
	var b strings.Builder
	who := w.Cgroup
	if w.Node() {
		who = "node"
	}
	fmt.Fprintf(&b, "%s %s %s", w.Kind, w.State, who)
	if w.Reason != NotResolved {
		fmt.Fprintf(&b, " (%s)", w.Reason)
	}
	f := w.Figures
	switch w.Kind {
	case NearLimit, Forecast:
		fmt.Fprintf(&b, " ws=%.1fMiB limit=%.1fMiB ratio=%.3f", mib(f.WorkingSet), mib(f.Limit), f.Ratio)
		if f.GrowthRate != 0 {
			fmt.Fprintf(&b, " rate=%.3fMiB/s left=%v fit=%d/%v r2=%.2f", f.GrowthRate/MiB, f.TimeLeft.Round(time.Second), f.FitPoints, f.FitWindow, f.FitR2)
		}
	case LimitReclaim:
		fmt.Fprintf(&b, " ratio=%.3f max+%d rate=%.2f/s", f.Ratio, f.MaxEventsDelta, f.MaxEventsRate)
	case Pressure:
		fmt.Fprintf(&b, " full-avg10=%.1f%%", f.PSIFullAvg10)
	case NodeLow:
		fmt.Fprintf(&b, " available=%.1fMiB threshold=%.1fMiB", mib(f.MemAvailable), mib(f.EvictionThreshold))
	}
	return b.String()
}

func mib(v int64) float64 { return float64(v) / MiB }
