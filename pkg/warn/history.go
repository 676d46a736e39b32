package warn

import (
	"cmp"
	"slices"
	"strings"
	"time"
)

// Precursor is a warning that came before an OOM kill, and how long before.
type Precursor struct {
	Warning
	// Lead is how long before the kill the warning opened.
	Lead time.Duration
}

// Preceding returns the warnings that had opened by the time of a kill at
// `at` for the killed cgroup, its pod's cgroup ("" when none) and the node:
// those still open, and those resolved no earlier than Config.Lookback
// before the kill (resolved warnings are kept up to Config.History). They
// are in the order they opened.
func (e *Engine) Preceding(cgroup, podCgroup string, at time.Time) []Precursor {
	var out []Precursor
	add := func(w Warning) {
		if w.Since.After(at) {
			return
		}
		out = append(out, Precursor{Warning: w, Lead: at.Sub(w.Since)})
	}
	paths := []string{cgroup}
	if podCgroup != cgroup {
		paths = append(paths, podCgroup)
	}
	subjects := []*subject{&e.node}
	for _, path := range paths {
		if g := e.groups[path]; path != "" && g != nil {
			subjects = append(subjects, &g.subject)
		}
	}
	for _, s := range subjects {
		for _, w := range s.current() {
			add(w)
		}
	}
	from := at.Add(-e.cfg.Lookback)
	for _, w := range e.history {
		if (w.Cgroup == "" || w.Cgroup == cgroup || (podCgroup != "" && w.Cgroup == podCgroup)) && !w.At.Before(from) {
			add(w)
		}
	}
	slices.SortStableFunc(out, func(a, b Precursor) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		if c := strings.Compare(a.Cgroup, b.Cgroup); c != 0 {
			return c
		}
		return cmp.Compare(a.Kind, b.Kind)
	})
	return out
}
