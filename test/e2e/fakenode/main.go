// Command fakenode stands in, inside the e2e guest, for what a Kubernetes
// node has and the guest has not: a container runtime's CRI endpoint and
// the API server's view of the node's pods. It serves the scenario's pods
// (test/e2e/scenario.Pod, as JSON) over the real protocols: a CRI
// RuntimeService (k8s.io/cri-api v1, gRPC on a unix socket, with
// containerd-shaped verbose info) and GET /api/v1/pods (a core/v1 PodList
// with requests, limits and container IDs). The agent resolves names,
// requests and limits from them exactly as on a node.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/oomwatch/oomwatch/test/e2e/scenario"
)

func main() {
	podsFile := flag.String("pods", "", "JSON array of scenario.Pod")
	sock := flag.String("cri", scenario.CRISocket, "CRI unix socket to serve")
	api := flag.String("api", scenario.KubeAPI, "address to serve the pod list on")
	node := flag.String("node", "e2e-node", "the node's name (the field selector the API accepts)")
	flag.Parse()
	if err := run(*podsFile, *sock, *api, *node); err != nil {
		fmt.Fprintln(os.Stderr, "fakenode:", err)
		os.Exit(1)
	}
}

func run(podsFile, sock, api, node string) error {
	b, err := os.ReadFile(podsFile)
	if err != nil {
		return err
	}
	var pods []scenario.Pod
	if err := json.Unmarshal(b, &pods); err != nil {
		return fmt.Errorf("%s: %w", podsFile, err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	_ = os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return err
	}
	srv := grpc.NewServer()
	runtimeapi.RegisterRuntimeServiceServer(srv, &runtime{pods: pods, created: time.Now().UnixNano()})
	go func() { _ = srv.Serve(l) }()
	defer srv.Stop()

	hl, err := net.Listen("tcp", api)
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: podList(pods, node), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(hl) }()
	defer hs.Close()
	<-ctx.Done()
	return nil
}

// runtime is a CRI RuntimeService over the scenario's pods: every sandbox
// ready, every container running.
type runtime struct {
	runtimeapi.UnimplementedRuntimeServiceServer
	pods    []scenario.Pod
	created int64
}

func sandboxID(p scenario.Pod) string { return scenario.SandboxID(p.UID) }

func (r *runtime) Version(context.Context, *runtimeapi.VersionRequest) (*runtimeapi.VersionResponse, error) {
	return &runtimeapi.VersionResponse{Version: "0.1.0", RuntimeName: "fakenode", RuntimeVersion: "e2e",
		RuntimeApiVersion: "v1"}, nil
}

func (r *runtime) sandbox(p scenario.Pod) *runtimeapi.PodSandbox {
	return &runtimeapi.PodSandbox{
		Id:       sandboxID(p),
		Metadata: &runtimeapi.PodSandboxMetadata{Name: p.Name, Uid: p.UID, Namespace: p.Namespace},
		State:    runtimeapi.PodSandboxState_SANDBOX_READY, CreatedAt: r.created,
		Labels: labels(p.Labels, map[string]string{"io.kubernetes.pod.name": p.Name,
			"io.kubernetes.pod.namespace": p.Namespace, "io.kubernetes.pod.uid": p.UID}),
	}
}

func labels(sets ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

func (r *runtime) ListPodSandbox(context.Context, *runtimeapi.ListPodSandboxRequest) (*runtimeapi.ListPodSandboxResponse, error) {
	resp := &runtimeapi.ListPodSandboxResponse{}
	for _, p := range r.pods {
		resp.Items = append(resp.Items, r.sandbox(p))
	}
	return resp, nil
}

func (r *runtime) PodSandboxStatus(_ context.Context, req *runtimeapi.PodSandboxStatusRequest) (*runtimeapi.PodSandboxStatusResponse, error) {
	for _, p := range r.pods {
		if sandboxID(p) != req.PodSandboxId {
			continue
		}
		sb := r.sandbox(p)
		resp := &runtimeapi.PodSandboxStatusResponse{Status: &runtimeapi.PodSandboxStatus{Id: sb.Id,
			Metadata: sb.Metadata, State: sb.State, CreatedAt: sb.CreatedAt, Labels: sb.Labels}}
		if req.Verbose {
			var limit int64
			for _, c := range p.Containers {
				if c.LimitMiB == 0 {
					limit = 0
					break
				}
				limit += c.LimitMiB << 20
			}
			info, _ := json.Marshal(map[string]any{"config": map[string]any{"linux": map[string]any{
				"resources": map[string]any{"memory_limit_in_bytes": limit}}}})
			resp.Info = map[string]string{"info": string(info)}
		}
		return resp, nil
	}
	return nil, status.Errorf(codes.NotFound, "sandbox %q not found", req.PodSandboxId)
}

func (r *runtime) container(p scenario.Pod, c scenario.Container) *runtimeapi.Container {
	return &runtimeapi.Container{
		Id: c.ID, PodSandboxId: sandboxID(p), Metadata: &runtimeapi.ContainerMetadata{Name: c.Name},
		Image: &runtimeapi.ImageSpec{Image: c.Image}, ImageRef: c.Image,
		State: runtimeapi.ContainerState_CONTAINER_RUNNING, CreatedAt: r.created,
		Labels: map[string]string{"io.kubernetes.container.name": c.Name, "io.kubernetes.pod.name": p.Name,
			"io.kubernetes.pod.namespace": p.Namespace, "io.kubernetes.pod.uid": p.UID},
	}
}

func (r *runtime) ListContainers(context.Context, *runtimeapi.ListContainersRequest) (*runtimeapi.ListContainersResponse, error) {
	resp := &runtimeapi.ListContainersResponse{}
	for _, p := range r.pods {
		for _, c := range p.Containers {
			resp.Containers = append(resp.Containers, r.container(p, c))
		}
	}
	return resp, nil
}

func (r *runtime) ContainerStatus(_ context.Context, req *runtimeapi.ContainerStatusRequest) (*runtimeapi.ContainerStatusResponse, error) {
	for _, p := range r.pods {
		for _, c := range p.Containers {
			if c.ID != req.ContainerId {
				continue
			}
			ct := r.container(p, c)
			resp := &runtimeapi.ContainerStatusResponse{Status: &runtimeapi.ContainerStatus{Id: ct.Id,
				Metadata: ct.Metadata, State: ct.State, CreatedAt: ct.CreatedAt, StartedAt: ct.CreatedAt,
				Image: ct.Image, ImageRef: ct.ImageRef, Labels: ct.Labels}}
			if req.Verbose {
				info, _ := json.Marshal(map[string]any{"sandboxID": sandboxID(p),
					"config": map[string]any{"linux": map[string]any{"resources": map[string]any{
						"memory_limit_in_bytes": c.LimitMiB << 20}}}})
				resp.Info = map[string]string{"info": string(info)}
			}
			return resp, nil
		}
	}
	return nil, status.Errorf(codes.NotFound, "container %q not found", req.ContainerId)
}

// podList serves GET /api/v1/pods?fieldSelector=spec.nodeName=<node> as
// the API server does, in core/v1 JSON.
func podList(pods []scenario.Pod, node string) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/v1/pods", func(w http.ResponseWriter, req *http.Request) {
		if fs := req.URL.Query().Get("fieldSelector"); fs != "spec.nodeName="+node {
			http.Error(w, fmt.Sprintf("fieldSelector %q: want spec.nodeName=%s", fs, node), http.StatusBadRequest)
			return
		}
		items := make([]any, 0, len(pods))
		for _, p := range pods {
			var ctrs, statuses []any
			for _, c := range p.Containers {
				res := map[string]any{}
				if c.RequestMiB > 0 {
					res["requests"] = map[string]string{"memory": fmt.Sprintf("%dMi", c.RequestMiB)}
				}
				if c.LimitMiB > 0 {
					res["limits"] = map[string]string{"memory": fmt.Sprintf("%dMi", c.LimitMiB)}
				}
				ctrs = append(ctrs, map[string]any{"name": c.Name, "image": c.Image, "resources": res})
				statuses = append(statuses, map[string]any{"name": c.Name, "image": c.Image,
					"containerID": "containerd://" + c.ID, "ready": true})
			}
			items = append(items, map[string]any{
				"metadata": map[string]any{"uid": p.UID, "namespace": p.Namespace, "name": p.Name, "labels": p.Labels},
				"spec":     map[string]any{"nodeName": node, "containers": ctrs},
				"status":   map[string]any{"phase": "Running", "containerStatuses": statuses},
			})
		}
		w.Header().Set("Content-Type", "application/json")
		err := json.NewEncoder(w).Encode(map[string]any{"kind": "PodList", "apiVersion": "v1",
			"metadata": map[string]any{"resourceVersion": "1"}, "items": items})
		if err != nil && !errors.Is(err, net.ErrClosed) {
			fmt.Fprintln(os.Stderr, "fakenode: pod list:", err)
		}
	})
	return mux
}
