package exits

import (
	"context"

	"github.com/oomwatch/oomwatch/pkg/cri"
)

// CRIStates backs States with the agent's CRI cache.
type CRIStates struct {
	Cache *cri.Cache
}

// ContainerState refreshes the cache first, so that an exit the last poll
// has not seen yet (containerd 1.6 has no event stream) is not taken for a
// running container; if the runtime does not answer, the cached state is
// used. The refresh reports new exits to the cache's OnExit hook.
func (s CRIStates) ContainerState(ctx context.Context, id string) (running, known bool) {
	if s.Cache == nil {
		return false, false
	}
	_ = s.Cache.Refresh(ctx) // unreachable runtime: fall back to the cached state
	c, ok := s.Cache.Container(id)
	if !ok || !c.Removed.IsZero() {
		return false, ok
	}
	return c.State == cri.StateRunning, true
}
