// Package cri gives the node agent the names and limits behind the IDs the
// kernel prints: it talks to the node's container runtime (containerd or
// CRI-O) over the Kubernetes Container Runtime Interface and keeps a
// short-lived cache of its pods and containers, fed by polling and, where
// the runtime offers it, by its container event stream. Entries outlive their
// removal by a retention window, so a container the kubelet removed seconds
// after its OOM kill still resolves.
//
// The figures are the runtime's, never invented: memory limits and
// oom_score_adj as the runtime applied them, the pod overhead and
// pod-level limit kubelet passed in the sandbox config. Memory requests do
// not reach the runtime and are not reported.
package cri

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

var (
	// ErrUnavailable means no container runtime answered on the endpoint
	// (or on any default endpoint).
	ErrUnavailable = errors.New("container runtime unavailable")
	// ErrEndpoint means the endpoint is not a unix socket address.
	ErrEndpoint = errors.New("invalid CRI endpoint")
	// ErrBadInfo means a runtime's verbose status info is not a JSON object.
	ErrBadInfo = errors.New("malformed verbose info")
)

// DefaultEndpoints are tried in order when Dial is given no endpoint:
// containerd's socket, then CRI-O's.
var DefaultEndpoints = []string{
	"unix:///run/containerd/containerd.sock",
	"unix:///var/run/crio/crio.sock",
}

// dialTimeout bounds the Version call that proves a socket is a CRI
// runtime.
const dialTimeout = 3 * time.Second

// maxMsgSize is the largest CRI response accepted: ListContainers on a
// crowded node runs to megabytes (kubelet allows 16 MiB too).
const maxMsgSize = 16 << 20

// Client is a connection to a container runtime's CRI service.
type Client struct {
	conn    *grpc.ClientConn
	runtime runtimeapi.RuntimeServiceClient
	// Endpoint is the address that answered ("unix:///run/...sock").
	Endpoint string
	// RuntimeName and RuntimeVersion are what the runtime said it is
	// ("containerd", "1.6.20").
	RuntimeName, RuntimeVersion string
}

// Dial connects to the CRI runtime service at endpoint ("unix:///path" or
// "/path"), or, when endpoint is empty, to the first of DefaultEndpoints
// that answers. It checks the runtime answers a Version call. It returns an
// error wrapping ErrUnavailable when no runtime answers, ErrEndpoint when
// the endpoint is not a unix socket address.
func Dial(ctx context.Context, endpoint string) (*Client, error) {
	if endpoint != "" {
		return dialOne(ctx, endpoint)
	}
	var errs []error
	for _, ep := range DefaultEndpoints {
		c, err := dialOne(ctx, ep)
		if err == nil {
			return c, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w: no runtime on the default endpoints: %w", ErrUnavailable, errors.Join(errs...))
}

// SocketPath returns the socket path of a "unix:///path", "unix:/path" or
// "/path" endpoint.
func SocketPath(endpoint string) (string, error) {
	p := endpoint
	if rest, ok := strings.CutPrefix(endpoint, "unix://"); ok {
		p = rest
	} else if rest, ok := strings.CutPrefix(endpoint, "unix:"); ok {
		p = rest
	}
	if !strings.HasPrefix(p, "/") {
		return "", fmt.Errorf("%w: %q (want unix:///path or /path)", ErrEndpoint, endpoint)
	}
	return p, nil
}

func dialOne(ctx context.Context, endpoint string) (*Client, error) {
	sock, err := SocketPath(endpoint)
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(sock); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, endpoint, err)
	}
	conn, err := grpc.NewClient("unix://"+sock,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMsgSize)),
	)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUnavailable, endpoint, err)
	}
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	vctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	v, err := rt.Version(vctx, &runtimeapi.VersionRequest{})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("%w: %s: version: %w", ErrUnavailable, endpoint, err)
	}
	return &Client{
		conn:           conn,
		runtime:        rt,
		Endpoint:       endpoint,
		RuntimeName:    v.GetRuntimeName(),
		RuntimeVersion: v.GetRuntimeVersion(),
	}, nil
}

// Runtime returns the CRI runtime service client, to give to NewCache.
func (c *Client) Runtime() runtimeapi.RuntimeServiceClient { return c.runtime }

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }
