package warn

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"
)

const lim = 100 * MiB

// at is a sample of cgroup /c at a working-set ratio of a 100 MiB limit,
// with page cache on top.
func at(ratio float64) CgroupSample {
	ws := int64(ratio * lim)
	return CgroupSample{WorkingSet: ws, Usage: min(ws+5*MiB, lim), Limit: lim}
}

// psi is a sample of cgroup /c at 50% with PSI full avg10 v.
func psi(v float64) CgroupSample {
	s := at(0.5)
	s.PSIKnown, s.PSIFullAvg10 = true, v
	return s
}

// phase is a stretch of samples every 2 s, gen given the time since the
// start of the scenario.
type phase struct {
	d   time.Duration
	gen func(el time.Duration) CgroupSample
}

func steady(d time.Duration, s CgroupSample) phase {
	return phase{d, func(time.Duration) CgroupSample { return s }}
}

// alternate swings between two samples, one each 2 s.
func alternate(d time.Duration, a, b CgroupSample) phase {
	return phase{d, func(el time.Duration) CgroupSample {
		if (el/(2*time.Second))%2 == 0 {
			return a
		}
		return b
	}}
}

// line is a sample whose working set grows from ws at rate bytes/s, from
// the start of the scenario.
func line(d time.Duration, ws, rate float64) phase {
	return phase{d, func(el time.Duration) CgroupSample {
		w := int64(ws + rate*el.Seconds())
		return CgroupSample{WorkingSet: w, Usage: w, Limit: lim}
	}}
}

// run plays phases against an engine, cgroup /c every 2 s, and returns the
// warnings of the kinds watched as "kind state[ reason] +offset".
func run(t *testing.T, cfg Config, watch []Kind, phases ...phase) []string {
	t.Helper()
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	el := time.Duration(0)
	for _, p := range phases {
		for end := el + p.d; el < end; el += 2 * time.Second {
			s := p.gen(el)
			s.At, s.Cgroup = t0.Add(el), "/c"
			for _, w := range e.Observe(NodeSample{}, []CgroupSample{s}) {
				if slices.Contains(watch, w.Kind) {
					out = append(out, brief(w))
					t.Logf("+%v %v", el, w)
				}
			}
		}
	}
	return out
}

func brief(w Warning) string {
	s := w.Kind.String() + " " + w.State.String()
	if w.Reason != NotResolved {
		s += " " + w.Reason.String()
	}
	return s + " +" + w.At.Sub(t0).String()
}

// match compares warnings with wanted ones; a wanted "+?" matches any time.
func match(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		w, g := want[i], got[i]
		if strings.HasSuffix(w, " +?") {
			w, g = strings.TrimSuffix(w, "?"), g[:strings.LastIndex(g, "+")+1]
		}
		if w != g {
			return false
		}
	}
	return true
}

func TestRules(t *testing.T) {
	counter := func(ratio float64, every time.Duration, until time.Duration) func(time.Duration) CgroupSample {
		return func(el time.Duration) CgroupSample {
			s := at(ratio)
			s.MaxEvents = 1000 + 10*uint64(min(el, until)/every)
			return s
		}
	}
	cases := []struct {
		name   string
		watch  []Kind
		phases []phase
		want   []string
	}{
		{"near-limit opens after 30 s at 92%, resolves below 85%", []Kind{NearLimit},
			[]phase{steady(60*time.Second, at(0.92)), steady(10*time.Second, at(0.80))},
			[]string{"near-limit opened +30s", "near-limit resolved cleared +1m0s"}},
		{"a burst to 95% shorter than 30 s raises nothing", []Kind{NearLimit, Forecast},
			[]phase{steady(20*time.Second, at(0.5)), steady(20*time.Second, at(0.95)), steady(time.Minute, at(0.5))},
			nil},
		{"hovering across 90% opens once and stays quiet", []Kind{NearLimit, Forecast},
			[]phase{alternate(10*time.Minute, at(0.88), at(0.92))},
			[]string{"near-limit opened +34s"}},
		{"inside the band near-limit stays open; good news waits a minute", []Kind{NearLimit},
			[]phase{steady(40*time.Second, at(0.92)), steady(5*time.Minute, at(0.87)), steady(4*time.Second, at(0.84))},
			[]string{"near-limit opened +30s", "near-limit updated +1m40s", "near-limit resolved cleared +5m40s"}},
		{"worse is sent again after 10 s", []Kind{NearLimit},
			[]phase{steady(40*time.Second, at(0.90)), steady(time.Minute, at(0.96))},
			[]string{"near-limit opened +30s", "near-limit updated +40s"}},
		{"the limit lifted resolves", []Kind{NearLimit},
			[]phase{steady(40*time.Second, at(0.95)), steady(4*time.Second, CgroupSample{WorkingSet: 95 * MiB})},
			[]string{"near-limit opened +30s", "near-limit resolved cleared +40s"}},
		{"a step to 95% without growth: near-limit after 30 s, no forecast", []Kind{NearLimit, Forecast},
			[]phase{steady(time.Minute, at(0.5)), steady(time.Minute, at(0.95))},
			[]string{"near-limit opened +1m30s"}},
		{"growth crossing 60% within a minute of the limit: near-limit at once", []Kind{NearLimit},
			[]phase{line(80*time.Second, 20*MiB, MiB)},
			[]string{"near-limit opened +40s", "near-limit updated +50s", "near-limit updated +1m0s", "near-limit updated +1m10s"}},

		{"one rise of the max counter is noise", []Kind{LimitReclaim},
			[]phase{steady(20*time.Second, at(0.95)), {2 * time.Second, counter(0.95, time.Hour, time.Hour)}, steady(time.Minute, func() CgroupSample { s := at(0.95); s.MaxEvents = 7; return s }())},
			nil},
		{"rises on consecutive samples open, with the rate; quiet resolves", []Kind{LimitReclaim},
			[]phase{{time.Minute, counter(0.95, 2*time.Second, 18*time.Second)}},
			[]string{"limit-reclaim opened +4s", "limit-reclaim resolved cleared +48s"}},
		{"rises with the working set at 40% (page cache at the limit) raise nothing", []Kind{LimitReclaim},
			[]phase{{time.Minute, counter(0.40, 2*time.Second, time.Hour)}},
			nil},

		{"PSI unknown raises nothing", []Kind{Pressure},
			[]phase{steady(time.Minute, func() CgroupSample { s := psi(50); s.PSIKnown = false; return s }())},
			nil},
		{"PSI not a number raises nothing", []Kind{Pressure},
			[]phase{steady(10*time.Second, psi(math.NaN())), steady(10*time.Second, psi(math.Inf(1))), steady(10*time.Second, psi(-20))},
			nil},
		{"pressure opens at 10, holds at 7, resolves below 5", []Kind{Pressure},
			[]phase{steady(10*time.Second, psi(12)), steady(90*time.Second, psi(7)), steady(4*time.Second, psi(4))},
			[]string{"pressure opened +0s", "pressure updated +1m10s", "pressure resolved cleared +1m40s"}},
		{"pressure swinging 10-30 is sent at its worst, once", []Kind{Pressure},
			[]phase{alternate(5*time.Minute, psi(10), psi(30))},
			[]string{"pressure opened +0s", "pressure updated +10s"}},

		{"growth that stops resolves its forecast", []Kind{Forecast},
			[]phase{line(60*time.Second, 50*MiB, MiB/2), steady(3*time.Minute, CgroupSample{WorkingSet: 80 * MiB, Usage: 80 * MiB, Limit: lim})},
			[]string{"forecast opened +20s", "forecast updated +40s", "forecast updated +56s", "forecast resolved cleared +?"}},
		{"a collapse (restart) resolves forecast and near-limit at once", []Kind{Forecast, NearLimit},
			[]phase{line(60*time.Second, 30*MiB, MiB), steady(10*time.Second, at(0.05))},
			[]string{"forecast opened +20s", "near-limit opened +30s", "forecast updated +34s", "near-limit updated +40s", "forecast updated +44s", "near-limit updated +50s", "forecast updated +54s", "near-limit resolved cleared +1m0s", "forecast resolved cleared +1m0s"}},
		{"a shrinking working set forecasts nothing", []Kind{Forecast, NearLimit},
			[]phase{line(2*time.Minute, 99*MiB, -MiB/4)},
			[]string{"near-limit opened +30s", "near-limit resolved cleared +?"}},
		{"growth below half the limit forecasts nothing", []Kind{Forecast},
			[]phase{line(time.Minute, 10*MiB, MiB/2)},
			nil},
		{"a slow leak past the horizon forecasts nothing", []Kind{Forecast},
			[]phase{line(5*time.Minute, 60*MiB, 16*1024)},
			nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := run(t, DefaultConfig(), tc.watch, tc.phases...)
			if !match(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

func TestLimitReclaimFigures(t *testing.T) {
	e, _ := New(DefaultConfig())
	var opened Warning
	for i := range 5 {
		s := at(0.95)
		s.At, s.Cgroup, s.MaxEvents = t0.Add(time.Duration(i)*2*time.Second), "/c", 100+uint64(i)*6
		for _, w := range e.Observe(NodeSample{}, []CgroupSample{s}) {
			if w.Kind == LimitReclaim && w.State == Opened {
				opened = w
			}
		}
	}
	if opened.Figures.MaxEventsDelta != 12 || opened.Figures.MaxEventsRate != 3 {
		t.Errorf("figures %+v, want delta 12 at 3/s", opened.Figures)
	}
	if th := opened.Thresholds; th.Rises != 2 || th.Quiet != 30*time.Second || th.Open != 0.85 {
		t.Errorf("thresholds %+v", th)
	}
}

// nodeRun plays node samples every 10 s and returns the node's warnings.
func nodeRun(t *testing.T, samples ...NodeSample) []string {
	t.Helper()
	e, _ := New(DefaultConfig())
	var out []string
	for i, n := range samples {
		n.At = t0.Add(time.Duration(i) * 10 * time.Second)
		for _, w := range e.Observe(n, nil) {
			if !w.Node() {
				t.Errorf("not a node warning: %v", w)
			}
			out = append(out, brief(w))
		}
	}
	return out
}

func TestNodeRules(t *testing.T) {
	const gib = 1 << 30
	avail := func(total, thr int64, mibs ...int64) []NodeSample {
		var out []NodeSample
		for _, m := range mibs {
			out = append(out, NodeSample{MemTotal: total, MemAvailable: m * MiB, EvictionThreshold: thr})
		}
		return out
	}
	cases := []struct {
		name    string
		samples []NodeSample
		want    []string
	}{
		// 4 GiB, no threshold: margin max(5% = 204.8 MiB, 256 MiB) = 256 MiB, resolve above 384 MiB.
		{"small node without threshold: 256 MiB floor", avail(4*gib, 0, 1000, 300, 256, 200, 300, 380, 385),
			[]string{"node-low opened +20s", "node-low resolved cleared +1m0s"}},
		// 4 GiB, threshold 100 MiB: opens at 356 MiB, resolves above 484 MiB.
		{"eviction threshold plus margin", avail(4*gib, 100*MiB, 1000, 360, 356, 480, 485),
			[]string{"node-low opened +20s", "node-low resolved cleared +40s"}},
		// 64 GiB: 5% = 3.2 GiB.
		{"large node: 5% of total", avail(64*gib, 0, 4000, 3300, 3270, 3000, 5000),
			[]string{"node-low opened +20s", "node-low resolved cleared +40s"}},
		{"nonsense node samples raise nothing", []NodeSample{{MemTotal: 0, MemAvailable: 0}, {MemTotal: 4 * gib, MemAvailable: -1}, {MemTotal: -4, MemAvailable: 0}, {MemTotal: 4 * gib, MemAvailable: 0, EvictionThreshold: -5}},
			nil},
		{"node pressure, known only", []NodeSample{
			{MemTotal: 4 * gib, MemAvailable: gib, PSIFullAvg10: 50},
			{MemTotal: 4 * gib, MemAvailable: gib, PSIKnown: true, PSIFullAvg10: 15},
			{MemTotal: 4 * gib, MemAvailable: gib, PSIKnown: true, PSIFullAvg10: math.NaN()},
			{MemTotal: 4 * gib, MemAvailable: gib, PSIKnown: true, PSIFullAvg10: 4.9},
		}, []string{"pressure opened +10s", "pressure resolved cleared +30s"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := nodeRun(t, tc.samples...)
			if !match(got, tc.want) {
				t.Errorf("got\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tc.want, "\n\t"))
			}
		})
	}
}

// observe is one round with the given cgroup samples at t0+el.
func observe(e *Engine, el time.Duration, node bool, groups ...CgroupSample) []Warning {
	var n NodeSample
	if node {
		n = NodeSample{At: t0.Add(el), MemTotal: 8 << 30, MemAvailable: 4 << 30}
	}
	for i := range groups {
		groups[i].At = t0.Add(el)
	}
	return e.Observe(n, groups)
}

func named(cgroup string, s CgroupSample) CgroupSample {
	s.Cgroup = cgroup
	return s
}

func TestGoneResolvesAndForgets(t *testing.T) {
	e, _ := New(DefaultConfig())
	for el := time.Duration(0); el <= 40*time.Second; el += 2 * time.Second {
		observe(e, el, true, named("/a", at(0.95)), named("/b", at(0.5)))
	}
	if len(e.Open()) != 1 {
		t.Fatalf("open %v", e.Open())
	}
	var got []Warning
	for el := 42 * time.Second; el <= 90*time.Second; el += 2 * time.Second {
		got = append(got, observe(e, el, true, named("/b", at(0.5)))...) // /a removed
	}
	if len(got) != 1 || got[0].Reason != Gone || got[0].Cgroup != "/a" || got[0].Kind != NearLimit {
		t.Fatalf("got %v, want /a's near-limit resolved as gone", got)
	}
	if d := got[0].At.Sub(t0); d != 72*time.Second {
		t.Errorf("gone at +%v, want +72s (last seen +40s, 30 s grace)", d)
	}
	if s := e.Stats(); s.Tracked != 1 {
		t.Errorf("tracked %d, want /b only", s.Tracked)
	}
	// A round without the node and without /b still ages /b out.
	for el := 92 * time.Second; el <= 130*time.Second; el += 2 * time.Second {
		observe(e, el, false, named("/c", at(0.1)))
	}
	if s := e.Stats(); s.Tracked != 1 {
		t.Errorf("tracked %d, want /c only", s.Tracked)
	}
}

// A counter that goes backwards is a new cgroup at the same path: what was
// open is resolved as reset, and no rise is made of the difference.
func TestCounterBackwards(t *testing.T) {
	e, _ := New(DefaultConfig())
	var got []Warning
	el := time.Duration(0)
	for ; el < 40*time.Second; el += 2 * time.Second {
		s := named("/c", at(0.95))
		s.MaxEvents = 500 + uint64(el/time.Second)
		got = append(got, observe(e, el, false, s)...)
	}
	if len(e.Open()) != 2 {
		t.Fatalf("open %v, want near-limit and limit-reclaim", e.Open())
	}
	got = got[:0]
	for end := el + 20*time.Second; el < end; el += 2 * time.Second {
		s := named("/c", at(0.95))
		s.MaxEvents = 3 // recreated: the counter starts over, and does not rise
		got = append(got, observe(e, el, false, s)...)
	}
	var resets int
	for _, w := range got {
		if w.State == Resolved && w.Reason == Reset {
			resets++
		} else {
			t.Errorf("after the reset: %v", w)
		}
		if w.Figures.MaxEventsDelta > 1000 {
			t.Errorf("a rise made of a counter going backwards: %v", w)
		}
	}
	if resets != 2 {
		t.Errorf("%d reset, want near-limit and limit-reclaim", resets)
	}
}

// A clock that steps backwards, or repeats itself, neither panics nor
// opens nor resolves anything by itself.
func TestClockBackwards(t *testing.T) {
	e, _ := New(DefaultConfig())
	// Growing 0.05 MiB/s from 90%, the counter rising: near-limit,
	// limit-reclaim and forecast open.
	sample := func(i int) CgroupSample {
		ws := int64(90*MiB + float64(i)*MiB/10)
		return named("/c", CgroupSample{WorkingSet: ws, Usage: ws, Limit: lim, MaxEvents: uint64(i) * 3})
	}
	i := 0
	for ; i <= 20; i++ {
		observe(e, time.Duration(i)*2*time.Second, true, sample(i))
	}
	if open := e.Open(); len(open) != 3 {
		t.Fatalf("open %v, want near-limit, limit-reclaim and forecast", open)
	}
	if w := observe(e, 40*time.Second, true, sample(20)); len(w) != 0 {
		t.Errorf("a repeated round: %v", w)
	}
	for el := -time.Hour; el < -time.Hour+time.Minute; el += 2 * time.Second {
		for _, w := range observe(e, el, true, sample(i)) {
			if w.State != Updated {
				t.Errorf("after the clock stepped back: %v", w)
			}
		}
		i++
	}
	if open := e.Open(); len(open) != 3 {
		t.Errorf("open %v", open)
	}
	for _, w := range e.Open() {
		if w.Kind == Forecast && (w.Figures.GrowthRate < 0.049*MiB || w.Figures.GrowthRate > 0.051*MiB) {
			t.Errorf("forecast across the step: %v", w)
		}
	}
}

func TestMalformedSamples(t *testing.T) {
	e, _ := New(DefaultConfig())
	var got []Warning
	for el := time.Duration(0); el <= time.Minute; el += 2 * time.Second {
		got = append(got, observe(e, el, false,
			CgroupSample{WorkingSet: 99 * MiB, Limit: lim},                                  // no cgroup
			named("/neg", CgroupSample{WorkingSet: -1, Usage: 5, Limit: lim}),               // negative
			named("/neglimit", CgroupSample{WorkingSet: 99 * MiB, Limit: -lim}),             // negative limit: unlimited
			named("/v1max", CgroupSample{WorkingSet: 99 * MiB, Limit: 9223372036854771712}), // v1's "no limit"
			named("/zero", CgroupSample{WorkingSet: 0, Usage: 0, Limit: 0}),
			named("/tiny", CgroupSample{WorkingSet: 1, Usage: 1, Limit: 1}), // at its limit of 1 byte
		)...)
	}
	got = append(got, e.Observe(NodeSample{}, []CgroupSample{{Cgroup: "/notime", WorkingSet: 1}})...)
	for _, w := range got {
		if w.Cgroup != "/tiny" {
			t.Errorf("from a malformed or unlimited sample: %v", w)
		}
	}
	if s := e.Stats(); s.Invalid != 2*31+1 {
		t.Errorf("invalid %d, want %d", s.Invalid, 2*31+1)
	}
}

// Thousands of cgroups: tracked up to MaxCgroups, the rest counted; each
// forecast window bounded in points.
func TestBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.MaxCgroups = 1000
	e, _ := New(cfg)
	groups := make([]CgroupSample, 3000)
	for r := range 200 {
		for i := range groups {
			groups[i] = named(fmt.Sprintf("/kubepods/pod%d/c", i), at(0.3+float64(i%50)/100))
		}
		observe(e, time.Duration(r)*500*time.Millisecond, true, groups...)
	}
	s := e.Stats()
	if s.Tracked != 1000 || s.Untracked != 200*2000 {
		t.Errorf("stats %+v, want 1000 tracked, %d untracked", s, 200*2000)
	}
	for p, g := range e.groups {
		if len(g.ws.pts) > cfg.ForecastMaxPoints {
			t.Fatalf("%s holds %d points", p, len(g.ws.pts))
		}
	}
	// All gone: state dropped.
	observe(e, time.Hour, true)
	if s := e.Stats(); s.Tracked != 0 {
		t.Errorf("tracked %d after all left", s.Tracked)
	}
}
