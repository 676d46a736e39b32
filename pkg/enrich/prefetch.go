package enrich

import (
	"bytes"
	"context"
	"path"
	"sync"
	"time"

	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/workload"
)

// Refresher is a Runtime that can be told to list the node's containers
// again at once (cri.Resolver, rate-limited there).
type Refresher interface {
	Refresh(ctx context.Context) error
}

// NowResolver is a Runtime that can list the node's containers at once on
// a miss, however recent the last listing (cri.Resolver.ContainerNow).
type NowResolver interface {
	ContainerNow(ctx context.Context, id string) (cri.Container, bool)
}

// Bounds of the lookups made while a report is read.
const (
	// prefetchWorkers bounds the runtime lookups in flight; past it a
	// lookup is skipped (the one at enrichment time remains).
	prefetchWorkers = 4
	// prefetchTimeout bounds one lookup.
	prefetchTimeout = 5 * time.Second
	// maxPrefetched bounds the containers remembered from lookups.
	maxPrefetched = 512
)

var invokedWord = []byte(" invoked oom-killer:")

// prefetcher asks the runtime about a report's containers while they still
// exist: a Job's container that lived less than the runtime poll interval
// and is removed right after its kill would otherwise never be named.
type prefetcher struct {
	sem  chan struct{}
	mu   sync.Mutex
	ctrs map[string]cri.Container
	// wg tracks lookups in flight (tests wait for them).
	wg sync.WaitGroup
}

func newPrefetcher() *prefetcher {
	return &prefetcher{sem: make(chan struct{}, prefetchWorkers), ctrs: map[string]cri.Container{}}
}

// early looks at a record before the summary test: a report's first line
// makes the runtime list its containers, while the victim's still exists.
func (e *Enricher) early(msg []byte) {
	if e.runtime == nil || !bytes.Contains(msg, invokedWord) {
		return
	}
	r, ok := e.runtime.(Refresher)
	if !ok {
		return
	}
	e.async(func(ctx context.Context) { _ = r.Refresh(ctx) })
}

// Prefetch is told of a cgroup a kill was attributed to after the report
// (a rate-limited kill placed by its OOM-kill counter): its figures are
// read and its container looked up at once.
func (e *Enricher) Prefetch(cgroup string) {
	if cgroup == "" {
		return
	}
	e.snap(cgroup)
	w := workload.FromCgroup(cgroup)
	if w.Kind == workload.KindContainer && w.PodUID != "" {
		e.snap(path.Dir(cgroup))
	}
	e.prefetchContainer(w.ContainerID)
}

// prefetchContainer looks a container up in the background and keeps the
// answer.
func (e *Enricher) prefetchContainer(id string) {
	if e.runtime == nil || id == "" {
		return
	}
	e.async(func(ctx context.Context) {
		var c cri.Container
		var ok bool
		if n, isN := e.runtime.(NowResolver); isN {
			c, ok = n.ContainerNow(ctx, id)
		} else {
			c, ok = e.runtime.Container(ctx, id)
		}
		if ok {
			e.pre.put(id, c)
		}
	})
}

// async runs f in the background unless prefetchWorkers already run.
func (e *Enricher) async(f func(ctx context.Context)) {
	select {
	case e.pre.sem <- struct{}{}:
	default:
		return
	}
	e.pre.wg.Add(1)
	go func() {
		defer e.pre.wg.Done()
		defer func() { <-e.pre.sem }()
		ctx, cancel := context.WithTimeout(context.Background(), prefetchTimeout)
		defer cancel()
		f(ctx)
	}()
}

func (p *prefetcher) put(id string, c cri.Container) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ctrs) >= maxPrefetched {
		clear(p.ctrs)
	}
	p.ctrs[id] = c
}

func (p *prefetcher) get(id string) (cri.Container, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.ctrs[id]
	return c, ok
}

// container asks the runtime about a container, falling back on what a
// lookup during the report learned.
func (e *Enricher) container(ctx context.Context, id string) (cri.Container, bool) {
	if c, ok := e.runtime.Container(ctx, id); ok {
		return c, true
	}
	return e.pre.get(id)
}
