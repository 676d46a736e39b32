package cri

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// followEvents applies the runtime's container events until ctx ends. A
// runtime that does not implement them is polled every PollOnlyInterval
// and, when TaskExits is set, its task exits are followed.
func (c *Cache) followEvents(ctx context.Context) {
	if !c.follow(ctx, "container event stream", c.streamEvents) {
		return
	}
	c.pollOnlyOnce.Do(func() { close(c.pollOnly) })
	if c.opts.TaskExits != nil {
		c.follow(ctx, "task event stream", c.streamTaskExits)
	}
}

// follow runs stream again whenever it ends, one PollInterval later, until
// ctx ends (false) or the runtime answers Unimplemented (true): a stream
// the runtime lacks is left alone, silently.
func (c *Cache) follow(ctx context.Context, what string, stream func(context.Context) error) (unimplemented bool) {
	for {
		err := stream(ctx)
		if ctx.Err() != nil {
			return false
		}
		if status.Code(err) == codes.Unimplemented {
			c.log.Debug("runtime has no " + what + "; polling only")
			return true
		}
		c.log.WithError(err).Debug(what + " ended; reopening")
		select {
		case <-ctx.Done():
			return false
		case <-time.After(c.opts.PollInterval):
		}
	}
}

func (c *Cache) streamEvents(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := c.rt.GetContainerEvents(sctx, &runtimeapi.GetEventsRequest{})
	if err != nil {
		return err
	}
	return recvAll(stream.Recv, func(ev *runtimeapi.ContainerEventResponse) { c.applyEvent(ctx, ev) })
}

// recvAll hands each message of a stream to fn until the stream fails; a
// stream that ends is an error too.
func recvAll[T any](recv func() (T, error), fn func(T)) error {
	for {
		m, err := recv()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("stream closed: %w", err)
		}
		if err != nil {
			return err
		}
		fn(m)
	}
}

// applyEvent updates the cache from one container event: the container's
// verbose status is fetched (events carry no details), its sandbox's too
// when it is not cached yet.
func (c *Cache) applyEvent(ctx context.Context, ev *runtimeapi.ContainerEventResponse) {
	id := ev.GetContainerId()
	if id == "" {
		return
	}
	if ev.GetContainerEventType() == runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT {
		c.mu.Lock()
		if e := c.containers[id]; e != nil && e.c.Removed.IsZero() {
			e.c.Removed = c.now()
		}
		c.mu.Unlock()
		return
	}
	st := c.containerStatus(ctx, id)
	if st == nil {
		st = statusInEvent(ev)
	}
	c.applyStatus(ctx, id, ev.GetPodSandboxStatus().GetId(), st)
}

// statusInEvent is the container's status as the event itself carries it:
// containerd and CRI-O put the statuses of every container of the pod
// into each event, taken when it happened. It stands in when asking now
// fails: kubelet removes a deleted pod's exited container moments after
// its stopped event, often before the event is read. Nil when the event
// does not carry it.
func statusInEvent(ev *runtimeapi.ContainerEventResponse) *runtimeapi.ContainerStatusResponse {
	for _, s := range ev.GetContainersStatuses() {
		if s.GetId() == ev.GetContainerId() {
			return &runtimeapi.ContainerStatusResponse{Status: s}
		}
	}
	return nil
}

// applyStatus updates the cache from one container's verbose status, and
// its sandbox's when that is not cached yet (sandboxHint names it when the
// status does not).
func (c *Cache) applyStatus(ctx context.Context, id, sandboxHint string, st *runtimeapi.ContainerStatusResponse) {
	if st == nil || st.GetStatus() == nil {
		return
	}
	s := st.GetStatus()
	sandboxID := ""
	if raw, ok := st.GetInfo()["info"]; ok {
		if ci, err := parseContainerInfo([]byte(raw)); err == nil {
			sandboxID = ci.SandboxID
		}
	}
	if sandboxID == "" {
		sandboxID = sandboxHint
	}
	var sbResp *runtimeapi.PodSandboxStatusResponse
	c.mu.RLock()
	_, havePod := c.pods[sandboxID]
	c.mu.RUnlock()
	if !havePod && sandboxID != "" {
		sbResp = c.sandboxStatus(ctx, sandboxID)
	}
	// Build the listing entries the poll would have seen.
	ct := &runtimeapi.Container{
		Id: s.GetId(), PodSandboxId: sandboxID, Metadata: s.GetMetadata(), Image: s.GetImage(),
		ImageRef: s.GetImageRef(), State: s.GetState(), CreatedAt: s.GetCreatedAt(),
		Labels: s.GetLabels(), Annotations: s.GetAnnotations(),
	}
	c.mu.Lock()
	if sb := sbResp.GetStatus(); sb != nil {
		c.applySandbox(&runtimeapi.PodSandbox{
			Id: sb.GetId(), Metadata: sb.GetMetadata(), State: sb.GetState(), CreatedAt: sb.GetCreatedAt(),
			Labels: sb.GetLabels(), Annotations: sb.GetAnnotations(), RuntimeHandler: sb.GetRuntimeHandler(),
		}, sbResp)
	}
	ex, exited := c.applyContainer(ct, st)
	c.trim()
	c.mu.Unlock()
	if exited {
		c.reportExits([]Container{ex})
	}
}
