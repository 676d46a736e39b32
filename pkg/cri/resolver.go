package cri

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
)

// missRefreshEvery bounds how often a lookup miss makes the Resolver
// refresh the cache before answering: a container created and OOM-killed
// between two polls is then still found, and a storm of misses costs one
// listing per second at most.
const missRefreshEvery = time.Second

// refreshEvery bounds how often Refresh lists the runtime's containers: an
// OOM report's start asks for it, and an OOM storm starts many reports.
const refreshEvery = 200 * time.Millisecond

// Resolver answers name lookups for the agent whether or not a runtime is
// there: with no cache (Dial failed) or an unreachable runtime it answers
// "not found" and logs "container runtime unreachable; names unavailable"
// once. Safe for concurrent use.
type Resolver struct {
	cache *Cache
	log   *logrus.Entry
	once  sync.Once

	mu          sync.Mutex
	lastRefresh time.Time
	lastAsked   time.Time // by Refresh
}

// NewResolver returns a resolver over cache, which may be nil.
func NewResolver(cache *Cache, log *logrus.Entry) *Resolver {
	return &Resolver{cache: cache, log: log}
}

// Container resolves a container ID (full, or a unique prefix). On a miss
// it refreshes the cache (at most once a second) and looks again.
func (r *Resolver) Container(ctx context.Context, id string) (Container, bool) {
	if r.cache == nil {
		r.unavailable()
		return Container{}, false
	}
	if c, ok := r.cache.Container(id); ok {
		return c, true
	}
	if r.refreshOnMiss(ctx) {
		return r.cache.Container(id)
	}
	return Container{}, false
}

// Pod resolves a pod UID, refreshing on a miss as Container does.
func (r *Resolver) Pod(ctx context.Context, uid string) (Pod, bool) {
	if r.cache == nil {
		r.unavailable()
		return Pod{}, false
	}
	if p, ok := r.cache.Pod(uid); ok {
		return p, true
	}
	if r.refreshOnMiss(ctx) {
		return r.cache.Pod(uid)
	}
	return Pod{}, false
}

// refreshOnMiss refreshes the cache unless it was refreshed for a miss
// less than a second ago; it tells whether looking again is worth it.
func (r *Resolver) refreshOnMiss(ctx context.Context) bool {
	r.mu.Lock()
	if time.Since(r.lastRefresh) < missRefreshEvery {
		r.mu.Unlock()
		if !r.cache.Reachable() {
			r.unavailable()
		}
		return false
	}
	r.lastRefresh = time.Now()
	r.mu.Unlock()
	if err := r.cache.Refresh(ctx); err != nil {
		r.unavailable()
		return false
	}
	return true
}

// Refresh lists the runtime's containers again now, unless it did less
// than 200 ms ago: an OOM report's first line, and a kill attributed to a
// container the cache does not know, call it so that a container killed
// before the next poll is known before it is removed (the cache keeps
// removed containers for its retention).
func (r *Resolver) Refresh(ctx context.Context) error {
	if r.cache == nil {
		return nil
	}
	r.mu.Lock()
	if time.Since(r.lastAsked) < refreshEvery {
		r.mu.Unlock()
		return nil
	}
	r.lastAsked = time.Now()
	r.mu.Unlock()
	if err := r.cache.Refresh(ctx); err != nil {
		return fmt.Errorf("refresh: %w", err)
	}
	return nil
}

// ContainerNow resolves a container ID, listing the runtime at once on a
// miss, however recent the last listing: it is asked for the container of
// a kill the moment the kill is attributed, before the runtime removes it.
// Callers bound how many run at once.
func (r *Resolver) ContainerNow(ctx context.Context, id string) (Container, bool) {
	if r.cache == nil {
		r.unavailable()
		return Container{}, false
	}
	if c, ok := r.cache.Container(id); ok {
		return c, true
	}
	if err := r.cache.Refresh(ctx); err != nil {
		r.unavailable()
		return Container{}, false
	}
	return r.cache.Container(id)
}

func (r *Resolver) unavailable() {
	r.once.Do(func() {
		r.log.Warn("container runtime unreachable; names unavailable")
	})
}
