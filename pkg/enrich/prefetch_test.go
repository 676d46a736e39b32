package enrich

import (
	"context"
	"sync"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/cri"
)

// shortLived is a fake runtime whose one container is removed (and
// forgotten) once the test says so, as a Job's container deleted right
// after its kill.
type shortLived struct {
	mu        sync.Mutex
	c         cri.Container
	removed   bool
	refreshes int
}

func (s *shortLived) Container(_ context.Context, id string) (cri.Container, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.removed || id != s.c.ID {
		return cri.Container{}, false
	}
	return s.c, true
}

func (s *shortLived) Pod(context.Context, string) (cri.Pod, bool) { return cri.Pod{}, false }

func (s *shortLived) Refresh(context.Context) error {
	s.mu.Lock()
	s.refreshes++
	s.mu.Unlock()
	return nil
}

func (s *shortLived) remove() {
	s.mu.Lock()
	s.removed = true
	s.mu.Unlock()
}

func TestEnrichNamesContainerRemovedAfterKill(t *testing.T) {
	tests := []struct {
		name string
		read func(e *Enricher)
	}{
		{"summary line", func(e *Enricher) {
			e.Observe([]byte("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + ctr + ",task_memcg=" + ctr + ",task=api,pid=7,uid=0"))
		}},
		{"attributed after a bare kill line", func(e *Enricher) { e.Prefetch(ctr) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := &shortLived{c: cri.Container{ID: ctrID, Name: "migrate", Image: "jobs/migrate:3", PodUID: podUID,
				PodNamespace: "batch", PodName: "migrate-29sx4"}}
			e := New(root, rt, nil)
			e.Observe([]byte("migrate invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=999"))
			tc.read(e)
			e.pre.wg.Wait()
			rt.remove()
			ev := event()
			e.Enrich(context.Background(), ev)
			w := ev.Victims[0].Workload
			if w.ContainerName != "migrate" || w.PodName != "migrate-29sx4" || w.Namespace != "batch" {
				t.Fatalf("names lost with the container: %+v", w)
			}
			if rt.refreshes != 1 {
				t.Fatalf("%d runtime refreshes at the report's start, want 1", rt.refreshes)
			}
			if _, ok := e.stats(ctr); !ok {
				t.Fatalf("the container's figures were not read at kill time")
			}
		})
	}
}

// Lookups in flight are bounded: a storm of reports never starts more than
// prefetchWorkers goroutines.
func TestPrefetchBounded(t *testing.T) {
	block := make(chan struct{})
	rt := &blockingRuntime{block: block}
	e := New(root, rt, nil)
	for range 100 {
		e.Prefetch(ctr)
	}
	if n := len(e.pre.sem); n != prefetchWorkers {
		t.Fatalf("%d lookups in flight, want %d", n, prefetchWorkers)
	}
	close(block)
	e.pre.wg.Wait()
}

type blockingRuntime struct{ block chan struct{} }

func (b *blockingRuntime) Container(context.Context, string) (cri.Container, bool) {
	<-b.block
	return cri.Container{}, false
}

func (b *blockingRuntime) Pod(context.Context, string) (cri.Pod, bool) { return cri.Pod{}, false }
