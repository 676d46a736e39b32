package analysis

import (
	"math/rand/v2"
	"reflect"
	"sort"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/oom"
)

// TestTopConsumersIsAStableSort checks the one-pass pick against what it
// replaces: the tasks sorted by size, stably, and the first TopConsumers
// kept, on dumps with many equal sizes.
func TestTopConsumersIsAStableSort(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{1, 2, TopConsumers - 1, TopConsumers, TopConsumers + 1, 50, 2000} {
		for round := 0; round < 20; round++ {
			r := &oom.Report{}
			for i := 0; i < n; i++ {
				r.Tasks = append(r.Tasks, oom.Task{PID: 1000 + i, RSSBytes: int64(rng.IntN(8)) * 4096})
			}
			idx := make([]int, n)
			for i := range idx {
				idx[i] = i
			}
			sort.SliceStable(idx, func(a, b int) bool { return r.Tasks[idx[a]].RSSBytes > r.Tasks[idx[b]].RSSBytes })
			var want []int
			for _, i := range idx[:min(TopConsumers, n)] {
				want = append(want, r.Tasks[i].PID)
			}
			var got []int
			for _, p := range topConsumers(r, func(int, string) string { return "" }) {
				got = append(got, p.PID)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%d tasks: top PIDs %v, want %v", n, got, want)
			}
		}
	}
}
