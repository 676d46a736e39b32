package cri

import (
	"context"
	"strings"
	"time"

	eventsapi "github.com/containerd/containerd/api/events"
	eventsv1 "github.com/containerd/containerd/api/services/events/v1"
	"github.com/containerd/containerd/api/types"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// TaskExit is the exit of a container's main process as the runtime's own
// event bus announces it, the moment the runtime learns of it.
type TaskExit struct {
	ContainerID string
	ExitCode    int32
	At          time.Time
}

// TaskExits streams a runtime's task exits to fn until ctx ends or the
// stream fails. It returns an error with gRPC code Unimplemented when the
// runtime has no such stream.
type TaskExits interface {
	WatchTaskExits(ctx context.Context, fn func(TaskExit)) error
}

// taskExitTopic is containerd's topic for a task's process exits.
const taskExitTopic = "/tasks/exit"

// taskExitType is the name the event's Any carries (its URL ends in it).
const taskExitType = "containerd.events.TaskExit"

// WatchTaskExits follows containerd's native event service, served on the
// same socket as CRI. containerd 1.6 has no CRI container event stream,
// and kubelet removes a deleted pod's exited container at its next relist
// (about a second later): a poll can miss the exit, the event cannot. A
// runtime that is not containerd answers Unimplemented.
func (c *Client) WatchTaskExits(ctx context.Context, fn func(TaskExit)) error {
	stream, err := eventsv1.NewEventsClient(c.conn).Subscribe(ctx,
		&eventsv1.SubscribeRequest{Filters: []string{`topic=="` + taskExitTopic + `"`}})
	if err != nil {
		return err
	}
	return recvAll(stream.Recv, func(env *types.Envelope) {
		if te, ok := decodeTaskExit(env.GetTopic(), env.GetEvent().GetTypeUrl(), env.GetEvent().GetValue()); ok {
			fn(te)
		}
	})
}

// decodeTaskExit reads one event of containerd's bus. It keeps only the
// exits of a container's main process: an exec'd process (a probe, kubectl
// exec) exits under the same container ID with its own process ID.
func decodeTaskExit(topic, typeURL string, value []byte) (TaskExit, bool) {
	if topic != taskExitTopic || !strings.HasSuffix(typeURL, taskExitType) {
		return TaskExit{}, false
	}
	var ev eventsapi.TaskExit
	if err := proto.Unmarshal(value, &ev); err != nil || ev.GetContainerID() == "" {
		return TaskExit{}, false
	}
	if ev.GetID() != "" && ev.GetID() != ev.GetContainerID() {
		return TaskExit{}, false
	}
	te := TaskExit{ContainerID: ev.GetContainerID(), ExitCode: int32(min(ev.GetExitStatus(), 255))}
	if t := ev.GetExitedAt(); t != nil {
		te.At = t.AsTime()
	}
	return te, true
}

// exitConfirmDelays are the waits before each ContainerStatus that
// confirms a task exit: containerd's CRI plugin records the exit on the
// same event, a moment after it is published, later on a loaded node.
// Waiting long costs nothing when kubelet removes the container meanwhile
// (the status is then NotFound, and the event tells the exit at once).
var exitConfirmDelays = []time.Duration{20 * time.Millisecond, 80 * time.Millisecond, 200 * time.Millisecond,
	500 * time.Millisecond, time.Second, 2 * time.Second}

// maxConfirming bounds the task exits confirmed at once; beyond it an exit
// is taken from the event alone.
const maxConfirming = 16

// streamTaskExits applies the runtime's task exits until the stream ends.
func (c *Cache) streamTaskExits(ctx context.Context) error {
	sem := make(chan struct{}, maxConfirming)
	return c.opts.TaskExits.WatchTaskExits(ctx, func(te TaskExit) {
		if !c.runningContainer(te.ContainerID) {
			return // a sandbox's pause process, or an exit already seen
		}
		select {
		case sem <- struct{}{}:
			go func() {
				defer func() { <-sem }()
				c.confirmExit(ctx, te)
			}()
		default:
			c.exitFromEvent(te)
		}
	})
}

// runningContainer tells whether id is a container whose exit has not
// been reported. One a poll already found removed counts: kubelet removes
// a deleted pod's container moments after its exit, and a poll between
// the two sees it gone before the exit's event is read. So does one a
// poll listed as exited without being able to get its exit code.
func (c *Cache) runningContainer(id string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e := c.containers[id]
	return e != nil && !e.exitReported()
}

// confirmExit asks the runtime for the container's status until it shows
// the exit, so the exit carries the runtime's reason; a container removed
// meanwhile, or still running by the runtime's account after the last
// wait, is taken from the event alone.
func (c *Cache) confirmExit(ctx context.Context, te TaskExit) {
	for _, d := range exitConfirmDelays {
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		sctx, cancel := context.WithTimeout(ctx, c.opts.RPCTimeout)
		st, err := c.rt.ContainerStatus(sctx, &runtimeapi.ContainerStatusRequest{ContainerId: te.ContainerID, Verbose: true})
		cancel()
		switch {
		case status.Code(err) == codes.NotFound:
			c.exitFromEvent(te)
			return
		case err != nil:
			c.log.WithError(err).WithField("container", te.ContainerID).Debug("container status after task exit")
		case st.GetStatus().GetState() == runtimeapi.ContainerState_CONTAINER_EXITED:
			c.applyStatus(ctx, te.ContainerID, "", st)
			return
		}
	}
	// Still running by the runtime's account, or not answering: its CRI
	// lags the event, which is the runtime's own word that the main
	// process exited. Kubelet may remove the container before the next
	// poll, so the exit is taken from the event, without a reason.
	c.exitFromEvent(te)
}

// exitFromEvent records a task exit the runtime can no longer describe.
func (c *Cache) exitFromEvent(te TaskExit) {
	c.mu.Lock()
	e := c.containers[te.ContainerID]
	if e == nil || e.exitReported() {
		c.mu.Unlock()
		return
	}
	x := e.c
	x.State, x.ExitCode = StateExited, te.ExitCode
	if !te.At.IsZero() {
		x.FinishedAt = te.At
	}
	e.c, e.codeless = x, false
	c.mu.Unlock()
	c.reportExits([]Container{x})
}
