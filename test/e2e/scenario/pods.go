package scenario

// Pod is a pod of a scenario as the node's container runtime and the
// Kubernetes API know it. The guest has neither a runtime nor an API
// server, so test/e2e/fakenode serves these over the real protocols (a CRI
// RuntimeService on a unix socket, a core/v1 PodList over HTTP) for the
// agent to resolve names, requests and limits the way it does on a node.
// The runtime side against a real containerd is proven by test/containerd.
type Pod struct {
	UID       string `json:"uid"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Labels are the pod's labels (app, ...).
	Labels     map[string]string `json:"labels,omitempty"`
	Containers []Container       `json:"containers"`
}

// Container is a container of a Pod.
type Container struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Image string `json:"image"`
	// Memory request and limit in MiB, 0 for none.
	RequestMiB int64 `json:"request_mib,omitempty"`
	LimitMiB   int64 `json:"limit_mib,omitempty"`
}

// Guest paths of the fake node's endpoints.
const (
	CRISocket = "/tmp/cri.sock"
	KubeAPI   = "127.0.0.1:8001"
)
