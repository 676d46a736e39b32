package warn

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func precursors(ps []Precursor) string {
	var b []string
	for _, p := range ps {
		who := p.Cgroup
		if p.Node() {
			who = "node"
		}
		b = append(b, fmt.Sprintf("%s %s %s %v", who, p.Kind, p.State, p.Lead))
	}
	return strings.Join(b, ", ")
}

// A container grows to its kill while its pod is under pressure and the
// node is low; another pod's warnings are not its. The kill finds the same
// precursors while its cgroup is still sampled and after it is gone.
func TestPreceding(t *testing.T) {
	e, _ := New(DefaultConfig())
	const c1, pod1, c2 = "/kubepods/pod1/c1", "/kubepods/pod1", "/kubepods/pod2/c2"
	kill := 54 * time.Second
	for el := time.Duration(0); el < kill; el += 2 * time.Second {
		ws := int64(10*MiB + el.Seconds()*MiB)
		p := named(pod1, CgroupSample{WorkingSet: ws, Usage: ws, PSIKnown: true, PSIFullAvg10: el.Seconds() / 2})
		n := NodeSample{At: t0.Add(el), MemTotal: 4 << 30, MemAvailable: 200 * MiB}
		groups := []CgroupSample{named(c1, CgroupSample{WorkingSet: ws, Usage: ws, Limit: 64 * MiB}), p, named(c2, at(0.95))}
		for i := range groups {
			groups[i].At = t0.Add(el)
		}
		e.Observe(n, groups)
	}
	want := "node node-low opened 54s, /kubepods/pod1 pressure updated 34s, /kubepods/pod1/c1 forecast updated 32s, /kubepods/pod1/c1 near-limit updated 24s"
	if got := precursors(e.Preceding(c1, pod1, t0.Add(kill))); got != want {
		t.Errorf("while sampled:\n\t%s\nwant\n\t%s", got, want)
	}
	// Each keeps the figures it opened with beside its latest: the forecast
	// opened 32 s before the kill, at 32 MiB, and was updated since.
	for _, p := range e.Preceding(c1, pod1, t0.Add(kill)) {
		if p.Cgroup == c1 && p.Kind == Forecast {
			if p.Opening.WorkingSet != 32*MiB || p.Figures.WorkingSet <= p.Opening.WorkingSet {
				t.Errorf("forecast: opening working set %d, latest %d; want 32 MiB and more since",
					p.Opening.WorkingSet, p.Figures.WorkingSet)
			}
		}
	}
	// The container's cgroup goes; its warnings resolve as gone, and still count.
	for el := kill; el < kill+time.Minute; el += 2 * time.Second {
		observe(e, el, true, named(pod1, at(0.1)), named(c2, at(0.95)))
	}
	got := e.Preceding(c1, pod1, t0.Add(kill))
	want = "node node-low resolved 54s, /kubepods/pod1 pressure updated 34s, /kubepods/pod1/c1 forecast resolved 32s, /kubepods/pod1/c1 near-limit resolved 24s"
	if precursors(got) != want {
		t.Errorf("after gone:\n\t%s\nwant\n\t%s", precursors(got), want)
	}
	for _, p := range got {
		if p.Cgroup == c1 && p.Reason != Gone {
			t.Errorf("%v: want gone", p.Warning)
		}
	}
	// No pod cgroup, or the pod's own kill: the same warnings once each.
	if n := len(e.Preceding(c1, "", t0.Add(kill))); n != 3 {
		t.Errorf("without a pod cgroup: %d precursors, want 3", n)
	}
	if n := len(e.Preceding(pod1, pod1, t0.Add(kill))); n != 2 {
		t.Errorf("the pod's own kill: %d precursors, want node-low and pressure", n)
	}
	// Early on, only what had opened by then.
	if ps := e.Preceding(c1, pod1, t0.Add(10*time.Second)); precursors(ps) != "node node-low resolved 10s" {
		t.Errorf("at +10s: %s", precursors(ps))
	}
	// Long after: resolved warnings past the lookback no longer count.
	if ps := e.Preceding(c1, pod1, t0.Add(kill+20*time.Minute)); precursors(ps) != "/kubepods/pod1 pressure updated 20m34s" {
		t.Errorf("20 min later: %s", precursors(ps))
	}
}

func TestHistoryBounded(t *testing.T) {
	cfg := DefaultConfig()
	cfg.History = 3
	e, _ := New(cfg)
	el := time.Duration(0)
	for i := range 10 {
		psi := func(v float64) CgroupSample { return named("/c", CgroupSample{PSIKnown: true, PSIFullAvg10: v}) }
		observe(e, el, false, psi(50))
		observe(e, el+2*time.Second, false, psi(0))
		el += 10 * time.Second
		if len(e.history) > 3 {
			t.Fatalf("history %d after %d resolves", len(e.history), i+1)
		}
	}
	ps := e.Preceding("/c", "", t0.Add(el))
	if len(ps) != 3 || ps[0].Since != t0.Add(70*time.Second) || ps[2].Since != t0.Add(90*time.Second) {
		t.Errorf("precursors %s, want the newest 3", precursors(ps))
	}
}
