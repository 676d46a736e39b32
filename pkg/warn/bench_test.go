package warn

import (
	"fmt"
	"testing"
	"time"
)

// BenchmarkObserve is one round of a busy node: 1000 cgroups, each with a
// full forecast window.
func BenchmarkObserve(b *testing.B) {
	e, _ := New(DefaultConfig())
	groups := make([]CgroupSample, 1000)
	round := func(r int) {
		for i := range groups {
			groups[i] = CgroupSample{
				At: t0.Add(time.Duration(r) * time.Second), Cgroup: fmt.Sprintf("/kubepods/pod%d/c", i),
				WorkingSet: int64(30+i%50+r%7) * MiB, Usage: 90 * MiB, Limit: lim, PSIKnown: true,
			}
		}
		e.Observe(NodeSample{At: groups[0].At, MemTotal: 8 << 30, MemAvailable: 4 << 30}, groups)
	}
	for r := range 150 {
		round(r)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for r := range b.N {
		round(150 + r)
	}
}
