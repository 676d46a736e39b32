package warn

import (
	"math"
	"testing"
	"time"
)

// The scenarios of issue #17 item 4, simulated sample by sample with the
// default Config: lead times before a kill, and no false alarms.
//
// The lead time on paper, 1 MiB/s from 10 MiB toward a 64 MiB limit (killed
// at 54 s): near-limit's level trigger at 90% (57.6 MiB) would come at 47.6 s,
// 6 s before the kill, after its 30 s wait even later; so near-limit also
// opens on approach (at or above 60% and reaching the limit within 1 min on
// a good fit). The fit needs 20 s of samples: at 2 s samples it has them at
// 20 s (30 MiB, 47%: below forecast's 50% and the approach's 60%), forecast
// opens at 22 s (32 MiB, 32 s left; 24 s with the jitter below) and
// near-limit at 30 s (40 MiB, 62.5%, 24 s left); at 10 s samples both open
// at 30 s, 24 s before the kill; in the worst phase of the samples (8 s,
// 18 s, ...) the working set is at 59% at 28 s, just under the approach
// ratio, and near-limit opens at 38 s, 16 s before. A container steady at
// 80% has no growth, so it takes neither.

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// round is one sampling round of a simulation.
type round struct {
	node   NodeSample
	groups []CgroupSample
}

// simulate runs an engine with the default config over rounds every
// interval from offset until until (exclusive), as gen describes them, and
// returns every warning it sent.
func simulate(t *testing.T, interval, offset, until time.Duration, gen func(el time.Duration) round) []Warning {
	t.Helper()
	e, err := New(DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var all []Warning
	for el := offset; el < until; el += interval {
		r := gen(el)
		all = append(all, e.Observe(r.node, r.groups)...)
	}
	return all
}

// jitter is a deterministic wobble in [-1, 1] for a sample time.
func jitter(el time.Duration, salt float64) float64 {
	return math.Sin(el.Seconds()*1.7+salt) * math.Cos(el.Seconds()*0.31+salt*2)
}

// firstOpened returns when a kind first opened for a cgroup ("" the node).
func firstOpened(ws []Warning, k Kind, cgroup string) (time.Time, bool) {
	for _, w := range ws {
		if w.Kind == k && w.Cgroup == cgroup && w.State == Opened {
			return w.Since, true
		}
	}
	return time.Time{}, false
}

func count(ws []Warning, k Kind, s State) int {
	n := 0
	for _, w := range ws {
		if w.Kind == k && w.State == s {
			n++
		}
	}
	return n
}

// TestGrowthLeadTime: a container growing about 1 MiB/s from 10 MiB toward
// its 64 MiB limit gets forecast and near-limit at least 15 s before the
// kernel kills it, whatever the sampling interval's phase.
func TestGrowthLeadTime(t *testing.T) {
	const limit = 64 * MiB
	kill := 54 * time.Second
	for _, interval := range []time.Duration{time.Second, 2 * time.Second, 10 * time.Second} {
		worst := map[Kind]time.Duration{Forecast: time.Hour, NearLimit: time.Hour}
		for offset := time.Duration(0); offset < interval; offset += time.Second {
			ws := simulate(t, interval, offset, kill, func(el time.Duration) round {
				w := int64(10*MiB+el.Seconds()*MiB) + int64(jitter(el, 1)*64*1024)
				use := min(w+2*MiB, limit)
				var maxEv uint64
				if use == limit {
					maxEv = uint64(el / time.Second)
				}
				return round{groups: []CgroupSample{{
					At: t0.Add(el), Cgroup: "/kubepods/pod1/c1", WorkingSet: w, Usage: use, Limit: limit,
					MaxEvents: maxEv, PSIKnown: true,
				}}}
			})
			for _, k := range []Kind{Forecast, NearLimit} {
				since, ok := firstOpened(ws, k, "/kubepods/pod1/c1")
				if !ok {
					t.Fatalf("interval %v offset %v: no %s; got %v", interval, offset, k, ws)
				}
				lead := t0.Add(kill).Sub(since)
				worst[k] = min(worst[k], lead)
				if lead < 15*time.Second {
					t.Errorf("interval %v offset %v: %s %v before the kill, want >= 15s", interval, offset, k, lead)
				}
				if n := count(ws, k, Opened); n != 1 {
					t.Errorf("interval %v offset %v: %s opened %d times", interval, offset, k, n)
				}
			}
			for _, w := range ws {
				if w.Kind == Forecast && w.State == Opened {
					if r := w.Figures.GrowthRate / MiB; r < 0.95 || r > 1.05 {
						t.Errorf("forecast rate %.3f MiB/s, want about 1", r)
					}
					if w.Figures.TimeLeft <= 0 || w.Figures.FitWindow < DefaultConfig().ForecastMinSpan {
						t.Errorf("forecast figures %+v", w.Figures)
					}
				}
			}
			if offset == 0 {
				for _, w := range ws {
					t.Logf("interval %v: +%v %v", interval, w.At.Sub(t0), w)
				}
			}
		}
		t.Logf("interval %v: worst lead over phases: forecast %v, near-limit %v", interval, worst[Forecast], worst[NearLimit])
	}
}

// TestNoFalseAlarms: workloads that are not in danger raise nothing in ten
// minutes: steady at 80% (after filling up at once), usage mostly page cache
// with the max counter rising, and GC sawtooths between 60% and 75%.
func TestNoFalseAlarms(t *testing.T) {
	const limit = 64 * MiB
	sample := func(el time.Duration, ws, usage int64, maxEv uint64, psi float64) round {
		return round{
			node:   NodeSample{At: t0.Add(el), MemTotal: 8 << 30, MemAvailable: 5 << 30, PSIKnown: true},
			groups: []CgroupSample{{At: t0.Add(el), Cgroup: "/kubepods/pod1/c1", WorkingSet: ws, Usage: usage, Limit: limit, MaxEvents: maxEv, PSIKnown: true, PSIFullAvg10: psi}},
		}
	}
	sawtooth := func(period time.Duration) func(time.Duration) round {
		return func(el time.Duration) round {
			phase := math.Mod(el.Seconds(), period.Seconds()) / period.Seconds()
			ratio := 0.60 + 0.15*phase + 0.005*jitter(el, 3)
			ws := int64(ratio * limit)
			return sample(el, ws, min(ws+8*MiB, limit), 0, 0.5)
		}
	}
	cases := []struct {
		name string
		gen  func(el time.Duration) round
	}{
		{"steady at 80%", func(el time.Duration) round {
			ws := int64(0.80*limit + jitter(el, 2)*256*1024)
			if el < 4*time.Second { // fills up at once, then holds
				ws = int64(5*MiB + el.Seconds()*12*MiB)
			}
			return sample(el, ws, ws+4*MiB, 0, 0)
		}},
		{"steady at 80%, page cache filling the limit", func(el time.Duration) round {
			ws := int64(0.80*limit + jitter(el, 2)*256*1024)
			return sample(el, ws, limit, uint64(el/time.Second)*3, 1)
		}},
		{"usage 95%, working set 30% (page cache)", func(el time.Duration) round {
			ws := int64(0.30*limit + jitter(el, 4)*512*1024)
			return sample(el, ws, limit*95/100, uint64(el/time.Second), 0.2)
		}},
		{"GC sawtooth 60-75%, 12 s cycle", sawtooth(12 * time.Second)},
		{"GC sawtooth 60-75%, 16 s cycle", sawtooth(16 * time.Second)},
		{"GC sawtooth 60-75%, 19 s cycle", sawtooth(19 * time.Second)},
	}
	for _, tc := range cases {
		for _, interval := range []time.Duration{time.Second, 2 * time.Second, 10 * time.Second} {
			t.Run(tc.name+"/"+interval.String(), func(t *testing.T) {
				ws := simulate(t, interval, 0, 10*time.Minute, tc.gen)
				for _, w := range ws {
					t.Errorf("false alarm at +%v: %v", w.At.Sub(t0), w)
				}
			})
		}
	}
}

// TestLongGCCycle documents the forecast's blind spot: a GC cycle longer
// than ForecastMinSpan, seen from its start, is growth until its first
// collection. It forecasts at most once, resolves at the collection, and
// never again once the window holds a collection.
func TestLongGCCycle(t *testing.T) {
	const limit = 64 * MiB
	period := 45 * time.Second
	ws := simulate(t, 2*time.Second, 0, 10*time.Minute, func(el time.Duration) round {
		phase := math.Mod(el.Seconds(), period.Seconds()) / period.Seconds()
		w := int64((0.60 + 0.15*phase) * limit)
		return round{groups: []CgroupSample{{At: t0.Add(el), Cgroup: "/c", WorkingSet: w, Usage: w, Limit: limit}}}
	})
	for _, w := range ws {
		t.Logf("+%v %v", w.At.Sub(t0), w)
		if w.At.Sub(t0) > period+10*time.Second {
			t.Errorf("warning after the first cycle: %v", w)
		}
		if w.Kind != Forecast {
			t.Errorf("not a forecast: %v", w)
		}
	}
	if n := count(ws, Forecast, Opened); n > 1 {
		t.Errorf("forecast opened %d times", n)
	}
}

// TestNodeRunsOut: pods without limits grow until the node runs out; node-low
// and pressure (node and pod) open before the node-level kill, with and
// without a kubelet eviction threshold.
func TestNodeRunsOut(t *testing.T) {
	const total = 4 << 30
	const rate = 8 * MiB // bytes per second, all pods together
	const start = 1536 * MiB
	const oomAt = 16 * MiB // the kernel kills when available is about gone
	kill := time.Duration(float64(start-oomAt) / rate * float64(time.Second))
	for _, threshold := range []int64{0, 100 * MiB} {
		for _, interval := range []time.Duration{2 * time.Second, 10 * time.Second} {
			ws := simulate(t, interval, 0, kill, func(el time.Duration) round {
				avail := int64(start - el.Seconds()*rate)
				// Stalls set in as the page cache runs out, below about 7%.
				psi := max(0, (300*MiB-float64(avail))/(300*MiB)*60)
				groups := make([]CgroupSample, 4)
				for i := range groups {
					w := int64(200*MiB + el.Seconds()*rate/4)
					groups[i] = CgroupSample{At: t0.Add(el), Cgroup: "/kubepods/burstable/pod" + string(rune('a'+i)), WorkingSet: w, Usage: w, PSIKnown: true, PSIFullAvg10: psi * 0.8}
				}
				return round{
					node:   NodeSample{At: t0.Add(el), MemTotal: total, MemAvailable: avail, EvictionThreshold: threshold, PSIKnown: true, PSIFullAvg10: psi},
					groups: groups,
				}
			})
			for _, want := range []struct {
				k      Kind
				cgroup string
			}{{NodeLow, ""}, {Pressure, ""}, {Pressure, "/kubepods/burstable/poda"}} {
				since, ok := firstOpened(ws, want.k, want.cgroup)
				if !ok {
					t.Errorf("threshold %d interval %v: no %s for %q", threshold, interval, want.k, want.cgroup)
					continue
				}
				t.Logf("threshold %dMiB interval %v: %s %q %v before the node-level kill", threshold/MiB, interval, want.k, want.cgroup, t0.Add(kill).Sub(since))
			}
			for _, w := range ws {
				if w.Kind == NearLimit || w.Kind == Forecast || w.Kind == LimitReclaim {
					t.Errorf("unlimited pods: %v", w)
				}
			}
		}
	}
}
