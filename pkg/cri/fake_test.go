package cri

import (
	"context"
	"maps"
	"net"
	"path/filepath"
	"sync"
	"testing"

	eventsv1 "github.com/containerd/containerd/api/services/events/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// fakeRuntime is a hand-written CRI RuntimeService served over a real
// gRPC unix socket. Tests put sandboxes and containers in it, each with
// the verbose info string a given runtime would send; it answers the
// listing, status and (when events is true) event calls like a runtime.
type fakeRuntime struct {
	runtimeapi.UnimplementedRuntimeServiceServer

	name    string // Version's runtime name
	events  bool   // GetContainerEvents implemented
	mu      sync.Mutex
	pods    map[string]*fakePod
	ctrs    map[string]*fakeCtr
	subs    []chan *runtimeapi.ContainerEventResponse
	calls   map[string]int
	listErr error // ListPodSandbox fails with it when set
	// bus, when set, is served as containerd's native event service.
	bus *fakeBus
}

type fakePod struct {
	sb   *runtimeapi.PodSandboxStatus
	info string
}

type fakeCtr struct {
	st        *runtimeapi.ContainerStatus
	sandboxID string
	info      string
	// statusGone makes ContainerStatus answer NotFound while the listing
	// still shows the container: removed between the two calls.
	statusGone bool
}

// startFake serves f on a unix socket under t.TempDir and returns the
// socket path; the server stops when the test ends.
func startFake(t *testing.T, f *fakeRuntime) string {
	t.Helper()
	if f.pods == nil {
		f.pods, f.ctrs, f.calls = map[string]*fakePod{}, map[string]*fakeCtr{}, map[string]int{}
	}
	sock := filepath.Join(t.TempDir(), "cri.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, f)
	if f.bus != nil {
		eventsv1.RegisterEventsServer(srv, f.bus)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(srv.Stop)
	return sock
}

func (f *fakeRuntime) count(m string) {
	f.mu.Lock()
	f.calls[m]++
	f.mu.Unlock()
}

func (f *fakeRuntime) callCount(m string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[m]
}

func (f *fakeRuntime) addPod(sb *runtimeapi.PodSandboxStatus, info string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.pods[sb.Id] = &fakePod{sb: sb, info: info}
}

func (f *fakeRuntime) addCtr(sandboxID string, st *runtimeapi.ContainerStatus, info string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctrs[st.Id] = &fakeCtr{st: st, sandboxID: sandboxID, info: info}
	f.publish(st.Id, runtimeapi.ContainerEventType_CONTAINER_CREATED_EVENT)
}

// exit moves a container to exited, as a runtime does when its task ends.
func (f *fakeRuntime) exit(id string, code int32, reason string, finished int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.ctrs[id]
	c.st.State = runtimeapi.ContainerState_CONTAINER_EXITED
	c.st.ExitCode, c.st.Reason, c.st.FinishedAt = code, reason, finished
	f.publish(id, runtimeapi.ContainerEventType_CONTAINER_STOPPED_EVENT)
}

// goneAfterListing lets the listing show the container, exited, while
// its status is already gone, as when the runtime removes it between a
// poll's ListContainers and its ContainerStatus.
func (f *fakeRuntime) goneAfterListing(id string) {
	f.mu.Lock()
	f.ctrs[id].st.State = runtimeapi.ContainerState_CONTAINER_EXITED
	f.mu.Unlock()
	f.setStatusGone(id, true)
}

func (f *fakeRuntime) removeCtr(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.ctrs, id)
	f.publish(id, runtimeapi.ContainerEventType_CONTAINER_DELETED_EVENT)
}

func (f *fakeRuntime) removePod(id string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.pods, id)
}

func (f *fakeRuntime) setListErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listErr = err
}

// publish sends an event to the subscribers without blocking. Like
// containerd's and CRI-O's, it carries the statuses of the pod's
// containers as they are now. f.mu is held.
func (f *fakeRuntime) publish(id string, typ runtimeapi.ContainerEventType) {
	if len(f.subs) == 0 {
		return
	}
	ev := &runtimeapi.ContainerEventResponse{ContainerId: id, ContainerEventType: typ}
	if c := f.ctrs[id]; c != nil {
		for _, o := range f.ctrs {
			if o.sandboxID == c.sandboxID {
				ev.ContainersStatuses = append(ev.ContainersStatuses, proto.Clone(o.st).(*runtimeapi.ContainerStatus))
			}
		}
	}
	for _, ch := range f.subs {
		select {
		case ch <- ev:
		default:
		}
	}
}

// setStatusGone makes ContainerStatus answer NotFound for id (gone) while
// the container stays listed and in the events' statuses, or answer again.
func (f *fakeRuntime) setStatusGone(id string, gone bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ctrs[id].statusGone = gone
}

func (f *fakeRuntime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: f.name, RuntimeVersion: "1.0.0-fake", RuntimeApiVersion: "v1"}, nil
}

func (f *fakeRuntime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	f.count("ListPodSandbox")
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listErr != nil {
		return nil, f.listErr
	}
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, p := range f.pods {
		resp.Items = append(resp.Items, &runtimeapi.PodSandbox{
			Id: p.sb.Id, Metadata: proto.Clone(p.sb.Metadata).(*runtimeapi.PodSandboxMetadata), State: p.sb.State, CreatedAt: p.sb.CreatedAt,
			Labels: maps.Clone(p.sb.Labels), Annotations: maps.Clone(p.sb.Annotations), RuntimeHandler: p.sb.RuntimeHandler,
		})
	}
	return resp, nil
}

func (f *fakeRuntime) PodSandboxStatus(_ context.Context, r *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	f.count("PodSandboxStatus")
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[r.PodSandboxId]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "sandbox %q not found", r.PodSandboxId)
	}
	resp := &runtimeapi.PodSandboxStatusResponse{Status: proto.Clone(p.sb).(*runtimeapi.PodSandboxStatus)}
	if r.Verbose {
		resp.Info = map[string]string{"info": p.info}
	}
	return resp, nil
}

func (f *fakeRuntime) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	f.count("ListContainers")
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := &runtimeapi.ListContainersResponse{}
	for _, c := range f.ctrs {
		resp.Containers = append(resp.Containers, &runtimeapi.Container{
			Id: c.st.Id, PodSandboxId: c.sandboxID, Metadata: proto.Clone(c.st.Metadata).(*runtimeapi.ContainerMetadata),
			Image: proto.Clone(c.st.Image).(*runtimeapi.ImageSpec), ImageRef: c.st.ImageRef,
			State: c.st.State, CreatedAt: c.st.CreatedAt, Labels: maps.Clone(c.st.Labels), Annotations: maps.Clone(c.st.Annotations),
		})
	}
	return resp, nil
}

func (f *fakeRuntime) ContainerStatus(_ context.Context, r *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	f.count("ContainerStatus")
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.ctrs[r.ContainerId]
	if !ok || c.statusGone {
		return nil, status.Errorf(codes.NotFound, "container %q not found", r.ContainerId)
	}
	resp := &runtimeapi.ContainerStatusResponse{Status: proto.Clone(c.st).(*runtimeapi.ContainerStatus)}
	if r.Verbose {
		resp.Info = map[string]string{"info": c.info}
	}
	return resp, nil
}

func (f *fakeRuntime) GetContainerEvents(_ *runtimeapi.GetEventsRequest, s grpc.ServerStreamingServer[runtimeapi.ContainerEventResponse]) error {
	if !f.events {
		return status.Error(codes.Unimplemented, "method GetContainerEvents not implemented")
	}
	ch := make(chan *runtimeapi.ContainerEventResponse, 64)
	f.mu.Lock()
	f.subs = append(f.subs, ch)
	f.mu.Unlock()
	for {
		select {
		case <-s.Context().Done():
			return nil
		case ev := <-ch:
			if err := s.Send(ev); err != nil {
				return err
			}
		}
	}
}
