package analysis

import (
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/oom"
)

// BenchmarkJudgeStorm10k judges a node-level report of 10,000 tasks and
// the five kill lines without a dump (rate-limited) that follow it within
// the hold, released together: each bare kill is judged by its incident's
// holders, the big report's among them. Cgroups are unknown, as in a
// report read from the backlog.
func BenchmarkJudgeStorm10k(b *testing.B) {
	g := newAwkward(11)
	big := g.report(10000)
	big.Victims = big.Victims[:1]
	var bare []*oom.Report
	for len(bare) < 5 {
		r := g.report(0)
		if len(r.Victims) == 1 {
			bare = append(bare, r)
		}
	}
	opts := StreamOptions{Hold: time.Hour, Cgroups: func(*oom.Report, []int) map[int]string { return nil }}
	events := 0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := NewStream(opts, func(Event) { events++ })
		s.Add(big)
		for _, r := range bare {
			s.Add(r)
		}
		s.Flush()
	}
	if events != 6*b.N {
		b.Fatalf("%d events for %d runs", events, b.N)
	}
}
