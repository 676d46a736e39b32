package agent

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/cri"
	"github.com/oomwatch/oomwatch/pkg/exits"
)

// runtimeNames connects to the container runtime in the background and
// answers name lookups once connected. Until then (or when no runtime is
// reachable at all) lookups answer "not found", events carry UIDs only,
// and that is said once.
type runtimeNames struct {
	endpoint string
	log      *logrus.Entry
	cur      atomic.Pointer[cri.Resolver]
	cache    atomic.Pointer[cri.Cache]
	once     sync.Once
	onExit   func(cri.Container)
}

func (r *runtimeNames) run(ctx context.Context) {
	wait := time.Second
	for {
		client, err := cri.Dial(ctx, r.endpoint)
		if err == nil {
			r.log.WithFields(logrus.Fields{"runtime": client.RuntimeName, "version": client.RuntimeVersion,
				"endpoint": client.Endpoint}).Info("connected to the container runtime")
			cache := cri.NewCache(client.Runtime(), r.log, cri.CacheOptions{OnExit: r.onExit, TaskExits: client})
			r.cache.Store(cache)
			r.cur.Store(cri.NewResolver(cache, r.log))
			_ = cache.Run(ctx)
			client.Close()
			return
		}
		r.once.Do(func() {
			r.log.WithError(err).Warn("container runtime unreachable; names unavailable (events carry pod UIDs and container IDs only); retrying in the background")
		})
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		wait = min(wait*2, time.Minute)
	}
}

// Container resolves a container ID.
func (r *runtimeNames) Container(ctx context.Context, id string) (cri.Container, bool) {
	if res := r.cur.Load(); res != nil {
		return res.Container(ctx, id)
	}
	return cri.Container{}, false
}

// ContainerState tells whether a container still runs (for oom-child
// verdicts); known is false until the runtime is connected.
func (r *runtimeNames) ContainerState(ctx context.Context, id string) (running, known bool) {
	return exits.CRIStates{Cache: r.cache.Load()}.ContainerState(ctx, id)
}

// Refresh lists the runtime's containers again (at most once a second).
func (r *runtimeNames) Refresh(ctx context.Context) error {
	if res := r.cur.Load(); res != nil {
		return res.Refresh(ctx)
	}
	return nil
}

// ContainerNow resolves a container ID, listing the runtime at once on a
// miss.
func (r *runtimeNames) ContainerNow(ctx context.Context, id string) (cri.Container, bool) {
	if res := r.cur.Load(); res != nil {
		return res.ContainerNow(ctx, id)
	}
	return cri.Container{}, false
}

// Pod resolves a pod UID.
func (r *runtimeNames) Pod(ctx context.Context, uid string) (cri.Pod, bool) {
	if res := r.cur.Load(); res != nil {
		return res.Pod(ctx, uid)
	}
	return cri.Pod{}, false
}
