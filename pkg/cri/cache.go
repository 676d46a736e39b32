package cri

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// RuntimeService is the part of the CRI runtime service the cache uses.
// runtimeapi.RuntimeServiceClient (Client.Runtime) satisfies it.
type RuntimeService interface {
	ListPodSandbox(ctx context.Context, in *runtimeapi.ListPodSandboxRequest, opts ...grpc.CallOption) (*runtimeapi.ListPodSandboxResponse, error)
	PodSandboxStatus(ctx context.Context, in *runtimeapi.PodSandboxStatusRequest, opts ...grpc.CallOption) (*runtimeapi.PodSandboxStatusResponse, error)
	ListContainers(ctx context.Context, in *runtimeapi.ListContainersRequest, opts ...grpc.CallOption) (*runtimeapi.ListContainersResponse, error)
	ContainerStatus(ctx context.Context, in *runtimeapi.ContainerStatusRequest, opts ...grpc.CallOption) (*runtimeapi.ContainerStatusResponse, error)
	GetContainerEvents(ctx context.Context, in *runtimeapi.GetEventsRequest, opts ...grpc.CallOption) (grpc.ServerStreamingClient[runtimeapi.ContainerEventResponse], error)
}

// CacheOptions configure a Cache. Zero values take the defaults.
type CacheOptions struct {
	// PollInterval is how often the runtime is listed. Default 5 s.
	PollInterval time.Duration
	// PollOnlyInterval is how often the runtime is listed when it has no
	// container event stream (containerd 1.6), so polls are the only way
	// to see an exit. kubelet removes the containers of a deleted pod about
	// a second after they exit, and an exit no poll saw is lost: the
	// default is 1 s, kubelet's own relist period. Never longer than
	// PollInterval.
	PollOnlyInterval time.Duration
	// Retention is how long removed containers and pods stay resolvable.
	// Default 10 min.
	Retention time.Duration
	// MaxContainers and MaxPods bound the cache. Beyond them, removed
	// entries go first (oldest removal first), then exited containers and
	// not-ready sandboxes (oldest first), then the oldest others.
	// Defaults 4096 and 1024.
	MaxContainers, MaxPods int
	// RPCTimeout bounds each CRI call. Default 5 s.
	RPCTimeout time.Duration
	// OnExit, when set, is called once for each container seen moving to
	// exited (by polling or by an event), with its exit code, reason and
	// finish time. A container first seen already exited is reported only
	// when it finished after the cache started. It is called from the
	// cache's goroutine, without locks held: it must return quickly.
	OnExit func(Container)
	// TaskExits, when set, is followed while the runtime has no CRI
	// container event stream (containerd 1.6): each exit of a container's
	// main process is confirmed at once instead of at the next poll.
	TaskExits TaskExits
}

// Defaults of CacheOptions.
const (
	DefaultPollInterval  = 5 * time.Second
	DefaultPollOnly      = time.Second
	DefaultRetention     = 10 * time.Minute
	DefaultMaxContainers = 4096
	DefaultMaxPods       = 1024
	DefaultRPCTimeout    = 5 * time.Second
)

// minPrefix is the shortest ID prefix Container resolves.
const minPrefix = 4

// detailsMaxAge is how long the verbose status of a running container is
// trusted: its limits can change in place (UpdateContainerResources,
// in-place pod resize), so it is fetched again after that.
const detailsMaxAge = 5 * time.Minute

// Cache is a short-lived copy of the runtime's pods and containers. Its
// lookups are safe for concurrent use; Run keeps it fresh.
type Cache struct {
	rt   RuntimeService
	log  *logrus.Entry
	opts CacheOptions
	now  func() time.Time
	// pollOnly is closed when the runtime turns out to have no event
	// stream: Run then lists it every PollOnlyInterval.
	pollOnly     chan struct{}
	pollOnlyOnce sync.Once

	refreshMu sync.Mutex // one refresh at a time

	mu         sync.RWMutex
	containers map[string]*containerEntry // by full ID
	pods       map[string]*podEntry       // by sandbox ID
	started    time.Time
	synced     bool  // a refresh succeeded at least once
	lastErr    error // of the last refresh; nil when it succeeded
	full       bool  // trim evicted an entry the runtime still lists
}

type containerEntry struct {
	c          Container
	detailed   bool      // from a verbose ContainerStatus
	detailedAt time.Time // when it was fetched
	// codeless: listed as exited, but its status (the exit code) could
	// not be had, removed in between most likely. Its exit is reported
	// once a status or the runtime's task exit event tells the code.
	codeless bool
}

// exitReported tells whether the container's exit has been reported.
func (e *containerEntry) exitReported() bool { return e.c.State == StateExited && !e.codeless }

type podEntry struct {
	p        Pod
	detailed bool // from a verbose PodSandboxStatus
}

// NewCache returns a cache over rt; call Run to fill it.
func NewCache(rt RuntimeService, log *logrus.Entry, opts CacheOptions) *Cache {
	if opts.PollInterval <= 0 {
		opts.PollInterval = DefaultPollInterval
	}
	if opts.PollOnlyInterval <= 0 {
		opts.PollOnlyInterval = DefaultPollOnly
	}
	opts.PollOnlyInterval = min(opts.PollOnlyInterval, opts.PollInterval)
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.MaxContainers <= 0 {
		opts.MaxContainers = DefaultMaxContainers
	}
	if opts.MaxPods <= 0 {
		opts.MaxPods = DefaultMaxPods
	}
	if opts.RPCTimeout <= 0 {
		opts.RPCTimeout = DefaultRPCTimeout
	}
	c := &Cache{
		rt:         rt,
		log:        log,
		opts:       opts,
		now:        time.Now,
		containers: make(map[string]*containerEntry),
		pods:       make(map[string]*podEntry),
		pollOnly:   make(chan struct{}),
	}
	c.started = c.now()
	return c
}

// Run refreshes the cache every PollInterval and follows the runtime's
// container events until ctx ends; it returns nil then. A runtime without
// GetContainerEvents (containerd 1.6) is polled only, every
// PollOnlyInterval. Failed refreshes are logged when the runtime goes away
// and when it comes back.
func (c *Cache) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.followEvents(ctx)
	}()
	defer wg.Wait()
	t := time.NewTicker(c.opts.PollInterval)
	defer t.Stop()
	pollOnly := c.pollOnly
	for {
		c.refreshAndLog(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-pollOnly:
			t.Reset(c.opts.PollOnlyInterval)
			pollOnly = nil
		}
	}
}

func (c *Cache) refreshAndLog(ctx context.Context) {
	c.mu.RLock()
	wasOK, first := c.lastErr == nil && c.synced, !c.synced && c.lastErr == nil
	c.mu.RUnlock()
	err := c.Refresh(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
	case err != nil && (wasOK || first):
		c.log.WithError(err).Warn("container runtime unreachable; names unavailable until it answers")
	case err != nil:
		c.log.WithError(err).Debug("container runtime still unreachable")
	case !wasOK && !first:
		c.log.Info("container runtime answers again")
	}
}

// Reachable tells whether the last refresh succeeded.
func (c *Cache) Reachable() bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.synced && c.lastErr == nil
}

// Refresh lists the runtime's sandboxes and containers once, fetches the
// verbose status of those that are new or changed state, marks those gone
// as removed and drops those removed longer than the retention ago. It
// returns an error wrapping ErrUnavailable when the listing fails.
func (c *Cache) Refresh(ctx context.Context) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	err := c.refresh(ctx)
	c.mu.Lock()
	c.lastErr = err
	if err == nil {
		c.synced = true
	}
	c.mu.Unlock()
	return err
}

func (c *Cache) refresh(ctx context.Context) error {
	lctx, cancel := context.WithTimeout(ctx, c.opts.RPCTimeout)
	sbs, err := c.rt.ListPodSandbox(lctx, &runtimeapi.ListPodSandboxRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("%w: list pod sandboxes: %w", ErrUnavailable, err)
	}
	lctx, cancel = context.WithTimeout(ctx, c.opts.RPCTimeout)
	ctrs, err := c.rt.ListContainers(lctx, &runtimeapi.ListContainersRequest{})
	cancel()
	if err != nil {
		return fmt.Errorf("%w: list containers: %w", ErrUnavailable, err)
	}

	// Decide under the read lock what needs a status call, make the calls
	// without any lock, then apply.
	now := c.now()
	c.mu.RLock()
	var needPod, needCtr []string
	for _, sb := range sbs.GetItems() {
		e := c.pods[sb.GetId()]
		if e == nil || !e.detailed || e.p.State != sandboxState(sb.GetState()) {
			needPod = append(needPod, sb.GetId())
		}
	}
	for _, ct := range ctrs.GetContainers() {
		e := c.containers[ct.GetId()]
		if e == nil || !e.detailed || e.c.State != containerState(ct.GetState()) ||
			(e.c.State == StateRunning && now.Sub(e.detailedAt) > detailsMaxAge) {
			needCtr = append(needCtr, ct.GetId())
		}
	}
	c.mu.RUnlock()

	podStatus := make(map[string]*runtimeapi.PodSandboxStatusResponse, len(needPod))
	for _, id := range needPod {
		if r := c.sandboxStatus(ctx, id); r != nil {
			podStatus[id] = r
		}
	}
	ctrStatus := make(map[string]*runtimeapi.ContainerStatusResponse, len(needCtr))
	for _, id := range needCtr {
		if r := c.containerStatus(ctx, id); r != nil {
			ctrStatus[id] = r
		}
	}

	var exits []Container
	seenPods := make(map[string]bool, len(sbs.GetItems()))
	for _, sb := range sbs.GetItems() {
		seenPods[sb.GetId()] = true
	}
	seenCtrs := make(map[string]bool, len(ctrs.GetContainers()))
	for _, ct := range ctrs.GetContainers() {
		seenCtrs[ct.GetId()] = true
	}
	c.mu.Lock()
	// Mark what is gone, then apply what is listed.
	for id, e := range c.pods {
		if !seenPods[id] && e.p.Removed.IsZero() {
			e.p.Removed = now
		}
	}
	for id, e := range c.containers {
		if !seenCtrs[id] && e.c.Removed.IsZero() {
			e.c.Removed = now
		}
	}
	c.expire(now)
	for _, sb := range sbs.GetItems() {
		c.applySandbox(sb, podStatus[sb.GetId()])
	}
	for _, ct := range ctrs.GetContainers() {
		if ex, ok := c.applyContainer(ct, ctrStatus[ct.GetId()]); ok {
			exits = append(exits, ex)
		}
	}
	c.trim()
	c.mu.Unlock()
	c.reportExits(exits)
	return nil
}

func (c *Cache) sandboxStatus(ctx context.Context, id string) *runtimeapi.PodSandboxStatusResponse {
	sctx, cancel := context.WithTimeout(ctx, c.opts.RPCTimeout)
	defer cancel()
	r, err := c.rt.PodSandboxStatus(sctx, &runtimeapi.PodSandboxStatusRequest{PodSandboxId: id, Verbose: true})
	if err != nil {
		// Removed between the listing and now, most likely: the listing
		// still gives the names.
		c.log.WithError(err).WithField("sandbox", id).Debug("pod sandbox status")
		return nil
	}
	return r
}

func (c *Cache) containerStatus(ctx context.Context, id string) *runtimeapi.ContainerStatusResponse {
	sctx, cancel := context.WithTimeout(ctx, c.opts.RPCTimeout)
	defer cancel()
	r, err := c.rt.ContainerStatus(sctx, &runtimeapi.ContainerStatusRequest{ContainerId: id, Verbose: true})
	if err != nil {
		c.log.WithError(err).WithField("container", id).Debug("container status")
		return nil
	}
	return r
}

// applySandbox merges a listed sandbox and, when fetched, its verbose
// status into the cache. c.mu is held.
func (c *Cache) applySandbox(sb *runtimeapi.PodSandbox, st *runtimeapi.PodSandboxStatusResponse) {
	e := c.pods[sb.GetId()]
	if e == nil {
		e = &podEntry{}
		c.pods[sb.GetId()] = e
	}
	p := e.p
	p.SandboxID = sb.GetId()
	md := sb.GetMetadata()
	p.UID, p.Namespace, p.Name, p.Attempt = md.GetUid(), md.GetNamespace(), md.GetName(), md.GetAttempt()
	p.State = sandboxState(sb.GetState())
	p.CreatedAt = nanos(sb.GetCreatedAt())
	p.Labels = keepLabels(sb.GetLabels())
	p.OwnerKind, p.OwnerName = inferOwner(p.Name, sb.GetLabels(), sb.GetAnnotations())
	if p.RuntimeHandler == "" {
		p.RuntimeHandler = sb.GetRuntimeHandler()
	}
	p.Removed = time.Time{}
	if st != nil {
		c.applySandboxStatus(&p, st)
		e.detailed = true
	}
	e.p = p
}

// applySandboxStatus fills what only the verbose status tells.
func (c *Cache) applySandboxStatus(p *Pod, st *runtimeapi.PodSandboxStatusResponse) {
	s := st.GetStatus()
	if s.GetRuntimeHandler() != "" {
		p.RuntimeHandler = s.GetRuntimeHandler()
	}
	if raw, ok := st.GetInfo()["info"]; ok {
		si, err := parseSandboxInfo([]byte(raw))
		if err != nil {
			c.log.WithError(err).WithField("sandbox", p.SandboxID).Debug("sandbox verbose info")
			return
		}
		if p.RuntimeHandler == "" {
			p.RuntimeHandler = si.RuntimeHandler
		}
		p.OverheadBytes, p.MemoryLimitBytes, p.CgroupParent = si.OverheadBytes, si.MemoryLimitBytes, si.CgroupParent
	}
}

// applyContainer merges a listed container and, when fetched, its verbose
// status. It returns the container when it is seen moving to exited.
// c.mu is held.
func (c *Cache) applyContainer(ct *runtimeapi.Container, st *runtimeapi.ContainerStatusResponse) (Container, bool) {
	e := c.containers[ct.GetId()]
	fresh := e == nil
	if fresh {
		e = &containerEntry{}
		c.containers[ct.GetId()] = e
	}
	prev := e.c.State
	if e.codeless {
		prev = StateUnknown // its exit is news once its code comes
	}
	x := e.c
	x.ID = ct.GetId()
	if ct.GetPodSandboxId() != "" { // an event may not name it; it never changes
		x.PodSandboxID = ct.GetPodSandboxId()
	}
	x.Name, x.Attempt = ct.GetMetadata().GetName(), ct.GetMetadata().GetAttempt()
	if img := ct.GetImage().GetImage(); img != "" && x.Image == "" {
		x.Image = img
	}
	if x.ImageRef == "" {
		x.ImageRef = ct.GetImageRef()
	}
	x.State = containerState(ct.GetState())
	x.CreatedAt = nanos(ct.GetCreatedAt())
	x.Labels, x.Annotations = ct.GetLabels(), ct.GetAnnotations()
	x.Removed = time.Time{}
	if st != nil && st.GetStatus() != nil {
		c.applyContainerStatus(&x, st)
		e.detailed, e.detailedAt = true, c.now()
		e.codeless = false
	} else if x.State == StateExited && !fresh && prev != StateExited {
		// An exit without its code is no exit to report yet.
		e.codeless, e.detailed = true, false
		e.c = x
		return x, false
	}
	e.c = x
	return x, c.isNewExit(fresh, prev, x)
}

// isNewExit tells whether x's exit is news: a state change seen, or a
// container first seen exited that finished after the cache started.
func (c *Cache) isNewExit(fresh bool, prev State, x Container) bool {
	if x.State != StateExited {
		return false
	}
	if fresh {
		return !x.FinishedAt.IsZero() && !x.FinishedAt.Before(c.started)
	}
	return prev != StateExited
}

// applyContainerStatus fills x from a (verbose) ContainerStatus.
func (c *Cache) applyContainerStatus(x *Container, st *runtimeapi.ContainerStatusResponse) {
	s := st.GetStatus()
	if s.GetMetadata().GetName() != "" {
		x.Name, x.Attempt = s.GetMetadata().GetName(), s.GetMetadata().GetAttempt()
	}
	if img := s.GetImage().GetImage(); img != "" {
		x.Image = img
	}
	if s.GetImageRef() != "" {
		x.ImageRef = s.GetImageRef()
	}
	x.State = containerState(s.GetState())
	if t := nanos(s.GetCreatedAt()); !t.IsZero() {
		x.CreatedAt = t
	}
	x.StartedAt, x.FinishedAt = nanos(s.GetStartedAt()), nanos(s.GetFinishedAt())
	x.ExitCode, x.Reason, x.Message = s.GetExitCode(), s.GetReason(), s.GetMessage()
	if len(s.GetLabels()) > 0 {
		x.Labels = s.GetLabels()
	}
	if len(s.GetAnnotations()) > 0 {
		x.Annotations = s.GetAnnotations()
	}
	var ci containerInfo
	raw, hasInfo := st.GetInfo()["info"]
	if hasInfo {
		var err error
		if ci, err = parseContainerInfo([]byte(raw)); err != nil {
			c.log.WithError(err).WithField("container", x.ID).Debug("container verbose info")
		}
		if x.PodSandboxID == "" {
			x.PodSandboxID = ci.SandboxID
		}
	}
	// The limit as the runtime reports it now, else as runc applied it,
	// else as kubelet asked for it. A status that tells none of these (one
	// an event carries, without the verbose info) leaves what was known.
	switch lr := s.GetResources().GetLinux(); {
	case lr != nil:
		x.MemoryLimitBytes, x.MemoryLimitSource = max(lr.GetMemoryLimitInBytes(), 0), SourceCRIStatus
		x.OOMScoreAdj, x.HasOOMScoreAdj = lr.GetOomScoreAdj(), true
		return
	case ci.HasSpecMemoryLimit:
		x.MemoryLimitBytes, x.MemoryLimitSource = ci.SpecMemoryLimit, SourceRuntimeSpec
	case ci.HasConfigMemoryLimit:
		x.MemoryLimitBytes, x.MemoryLimitSource = ci.ConfigMemoryLimit, SourceConfig
	case hasInfo:
		x.MemoryLimitBytes, x.MemoryLimitSource = 0, ""
	}
	switch {
	case ci.HasSpecOOMScoreAdj:
		x.OOMScoreAdj, x.HasOOMScoreAdj = ci.SpecOOMScoreAdj, true
	case ci.HasConfigOOMScoreAdj:
		x.OOMScoreAdj, x.HasOOMScoreAdj = ci.ConfigOOMScoreAdj, true
	case hasInfo:
		x.OOMScoreAdj, x.HasOOMScoreAdj = 0, false
	}
}

// trim evicts entries beyond MaxContainers and MaxPods: removed ones
// first (oldest removal first), then exited containers and not-ready
// sandboxes (oldest first), then the oldest others. Evicting what the
// runtime still lists means the bound is too small for the node: that is
// logged once, and such entries come back (and are fetched again) on the
// next refresh. c.mu is held.
func (c *Cache) trim() {
	if n := len(c.containers) - c.opts.MaxContainers; n > 0 {
		ids := make([]string, 0, len(c.containers))
		for id := range c.containers {
			ids = append(ids, id)
		}
		rank := func(e *containerEntry) (int, time.Time) {
			switch {
			case !e.c.Removed.IsZero():
				return 0, e.c.Removed
			case e.c.State == StateExited:
				return 1, e.c.FinishedAt
			}
			return 2, e.c.CreatedAt
		}
		sort.Slice(ids, func(i, j int) bool {
			ri, ti := rank(c.containers[ids[i]])
			rj, tj := rank(c.containers[ids[j]])
			if ri != rj {
				return ri < rj
			}
			return ti.Before(tj)
		})
		for _, id := range ids[:n] {
			if c.containers[id].c.Removed.IsZero() {
				c.warnFull("containers", c.opts.MaxContainers)
			}
			delete(c.containers, id)
		}
	}
	if n := len(c.pods) - c.opts.MaxPods; n > 0 {
		ids := make([]string, 0, len(c.pods))
		for id := range c.pods {
			ids = append(ids, id)
		}
		rank := func(e *podEntry) (int, time.Time) {
			switch {
			case !e.p.Removed.IsZero():
				return 0, e.p.Removed
			case e.p.State != StateReady:
				return 1, e.p.CreatedAt
			}
			return 2, e.p.CreatedAt
		}
		sort.Slice(ids, func(i, j int) bool {
			ri, ti := rank(c.pods[ids[i]])
			rj, tj := rank(c.pods[ids[j]])
			if ri != rj {
				return ri < rj
			}
			return ti.Before(tj)
		})
		for _, id := range ids[:n] {
			if c.pods[id].p.Removed.IsZero() {
				c.warnFull("pods", c.opts.MaxPods)
			}
			delete(c.pods, id)
		}
	}
}

// warnFull logs, once per cache, that the bound evicts live entries.
func (c *Cache) warnFull(what string, limit int) {
	if c.full {
		return
	}
	c.full = true
	c.log.WithField("max", limit).Warnf("CRI cache bound reached: the runtime lists more %s than the cache keeps; some are not resolvable", what)
}

// expire drops entries removed longer than the retention ago. c.mu is held.
func (c *Cache) expire(now time.Time) {
	for id, e := range c.containers {
		if !e.c.Removed.IsZero() && now.Sub(e.c.Removed) > c.opts.Retention {
			delete(c.containers, id)
		}
	}
	for id, e := range c.pods {
		if !e.p.Removed.IsZero() && now.Sub(e.p.Removed) > c.opts.Retention {
			delete(c.pods, id)
		}
	}
}

func (c *Cache) reportExits(exits []Container) {
	if c.opts.OnExit == nil {
		return
	}
	for _, x := range exits {
		c.opts.OnExit(c.withPod(x))
	}
}
