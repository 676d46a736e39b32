// Package kubepods reads what only the Kubernetes API knows of the pods on
// this node: their memory requests. Kubelet never passes requests to the
// container runtime, yet kubelet's own eviction order, and so the fair
// ranking of memory holders, is usage over request. The agent lists its
// node's pods (one LIST with a field selector, served from the API
// server's cache) only when an OOM report asks, and keeps the answer for a
// short while.
package kubepods

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/oomwatch/oomwatch/pkg/quantity"

	"github.com/sirupsen/logrus"
)

// In-cluster defaults: the service account's files and the API server's
// environment variables, as every pod gets them.
const (
	ServiceAccountToken = "/var/run/secrets/kubernetes.io/serviceaccount/token"
	ServiceAccountCA    = "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt"
)

// ErrNoServer is returned by InCluster outside a cluster.
var ErrNoServer = errors.New("no Kubernetes API server: KUBERNETES_SERVICE_HOST is not set")

// ErrBadResponse is wrapped by List for an answer that is not a pod list.
var ErrBadResponse = errors.New("unexpected answer from the Kubernetes API")

// maxListBytes bounds a pod list read: a node runs at most a few hundred
// pods of a few KiB each.
const maxListBytes = 64 << 20

// Container is one container's memory request and limit (bytes, 0 when
// not set).
type Container struct {
	Name         string
	RequestBytes int64
	LimitBytes   int64
}

// Pod is what the API says of one pod.
type Pod struct {
	UID, Namespace, Name string
	// Containers by name, init containers included.
	Containers map[string]Container
	// ContainerIDs maps runtime container IDs (current and last
	// terminated, without the "containerd://" scheme) to container names.
	ContainerIDs map[string]string
	// RequestBytes is the pod's request as kubelet's eviction computes it:
	// the sum of its containers' requests (or the largest init container's,
	// when larger) plus the pod overhead.
	RequestBytes  int64
	OverheadBytes int64
}

// Lister lists the pods of one node.
type Lister interface {
	List(ctx context.Context) ([]Pod, error)
}

// Client lists a node's pods from the API server over HTTP(S).
type Client struct {
	base      *url.URL
	node      string
	tokenFile string
	http      *http.Client
}

// Config says how to reach the API server.
type Config struct {
	// Server is the API server's URL: https://host:port, or http:// for a
	// local proxy (kubectl proxy).
	Server string
	// TokenFile holds a bearer token, read at every request (service
	// account tokens rotate). Empty sends none.
	TokenFile string
	// CAFile verifies the server; empty uses the system's roots.
	CAFile string
	// Node is the node whose pods are listed.
	Node string
}

// InCluster returns the Config every pod of a cluster can use.
func InCluster(node string) (Config, error) {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" {
		return Config{}, ErrNoServer
	}
	if port == "" {
		port = "443"
	}
	return Config{Server: "https://" + net.JoinHostPort(host, port), TokenFile: ServiceAccountToken,
		CAFile: ServiceAccountCA, Node: node}, nil
}

// ParseServer checks an API server URL: https://host:port, or http:// for
// a local proxy.
func ParseServer(server string) (*url.URL, error) {
	u, err := url.Parse(server)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("the Kubernetes API server %q: want https://host:port (or http:// for a local proxy)", server)
	}
	return u, nil
}

// NewClient checks cfg and returns a Client.
func NewClient(cfg Config) (*Client, error) {
	u, err := ParseServer(cfg.Server)
	if err != nil {
		return nil, err
	}
	if cfg.Node == "" {
		return nil, errors.New("kubepods: no node name")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil
	if cfg.CAFile != "" {
		pem, err := os.ReadFile(cfg.CAFile)
		if err != nil {
			return nil, fmt.Errorf("the Kubernetes API CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("the Kubernetes API CA %s: no PEM certificate", cfg.CAFile)
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	return &Client{base: u, node: cfg.Node, tokenFile: cfg.TokenFile, http: &http.Client{Transport: tr}}, nil
}

// List lists the node's pods. The answer comes from the API server's watch
// cache (resourceVersion=0), which is cheap for the API server.
func (c *Client) List(ctx context.Context) ([]Pod, error) {
	u := *c.base
	u.Path = strings.TrimSuffix(u.Path, "/") + "/api/v1/pods"
	u.RawQuery = url.Values{"fieldSelector": {"spec.nodeName=" + c.node}, "resourceVersion": {"0"}}.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if c.tokenFile != "" {
		tok, err := os.ReadFile(c.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("the Kubernetes API token: %w", err)
		}
		req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("list pods: %w: %s: %s", ErrBadResponse, resp.Status, strings.TrimSpace(string(msg)))
	}
	return Decode(io.LimitReader(resp.Body, maxListBytes))
}

// The JSON of a core/v1 PodList, only the fields used.
type podList struct {
	Kind  string    `json:"kind"`
	Items []podJSON `json:"items"`
}

type podJSON struct {
	Metadata struct {
		UID       string `json:"uid"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"metadata"`
	Spec struct {
		Containers     []containerJSON   `json:"containers"`
		InitContainers []containerJSON   `json:"initContainers"`
		Overhead       map[string]string `json:"overhead"`
	} `json:"spec"`
	Status struct {
		ContainerStatuses     []statusJSON `json:"containerStatuses"`
		InitContainerStatuses []statusJSON `json:"initContainerStatuses"`
	} `json:"status"`
}

type containerJSON struct {
	Name      string `json:"name"`
	Resources struct {
		Requests map[string]string `json:"requests"`
		Limits   map[string]string `json:"limits"`
	} `json:"resources"`
	// RestartPolicy Always marks a sidecar (restartable init container),
	// which runs beside the app containers.
	RestartPolicy string `json:"restartPolicy"`
}

type statusJSON struct {
	Name        string `json:"name"`
	ContainerID string `json:"containerID"`
	LastState   struct {
		Terminated *struct {
			ContainerID string `json:"containerID"`
		} `json:"terminated"`
	} `json:"lastState"`
}

// Decode reads a core/v1 PodList in JSON. A pod whose quantities do not
// parse keeps the others; a body that is not a PodList is an error.
func Decode(r io.Reader) ([]Pod, error) {
	var l podList
	if err := json.NewDecoder(r).Decode(&l); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadResponse, err)
	}
	if l.Kind != "PodList" {
		return nil, fmt.Errorf("%w: kind %q, want PodList", ErrBadResponse, l.Kind)
	}
	out := make([]Pod, 0, len(l.Items))
	for _, it := range l.Items {
		if it.Metadata.UID == "" {
			continue
		}
		out = append(out, podOf(it))
	}
	return out, nil
}

func memory(m map[string]string) int64 {
	s, ok := m["memory"]
	if !ok {
		return 0
	}
	v, err := quantity.Parse(s)
	if err != nil {
		return 0
	}
	return max(v, 0)
}

func podOf(it podJSON) Pod {
	p := Pod{UID: it.Metadata.UID, Namespace: it.Metadata.Namespace, Name: it.Metadata.Name,
		Containers: map[string]Container{}, ContainerIDs: map[string]string{}}
	add := func(c containerJSON) Container {
		ct := Container{Name: c.Name, RequestBytes: memory(c.Resources.Requests), LimitBytes: memory(c.Resources.Limits)}
		// Kubernetes defaults a request to the limit when only the limit
		// is set.
		if ct.RequestBytes == 0 && ct.LimitBytes > 0 {
			if _, set := c.Resources.Requests["memory"]; !set {
				ct.RequestBytes = ct.LimitBytes
			}
		}
		p.Containers[c.Name] = ct
		return ct
	}
	var sum, sidecars, initMax int64
	for _, c := range it.Spec.Containers {
		sum += add(c).RequestBytes
	}
	// Kubelet's effective request: app containers plus sidecars, or the
	// largest init container (plus the sidecars started before it) when
	// that is larger.
	for _, c := range it.Spec.InitContainers {
		ct := add(c)
		if c.RestartPolicy == "Always" {
			sidecars += ct.RequestBytes
			continue
		}
		initMax = max(initMax, sidecars+ct.RequestBytes)
	}
	p.OverheadBytes = memory(it.Spec.Overhead)
	p.RequestBytes = max(sum+sidecars, initMax) + p.OverheadBytes
	for _, ss := range [][]statusJSON{it.Status.ContainerStatuses, it.Status.InitContainerStatuses} {
		for _, s := range ss {
			if id := stripScheme(s.ContainerID); id != "" {
				p.ContainerIDs[id] = s.Name
			}
			if t := s.LastState.Terminated; t != nil {
				if id := stripScheme(t.ContainerID); id != "" {
					p.ContainerIDs[id] = s.Name
				}
			}
		}
	}
	return p
}

// stripScheme turns "containerd://abc" into "abc".
func stripScheme(id string) string {
	if _, rest, ok := strings.Cut(id, "://"); ok {
		return rest
	}
	return id
}

// CacheOptions tune a Cache.
type CacheOptions struct {
	// MaxAge is how long a listing answers lookups. Default 30 s.
	MaxAge time.Duration
	// MissAge is how old a listing must be to be refreshed when a lookup
	// misses (a pod created since). Default 2 s.
	MissAge time.Duration
	// Backoff is how long after a failed listing no other is tried.
	// Default 30 s.
	Backoff time.Duration
	// Timeout bounds one listing. Default 3 s.
	Timeout time.Duration
	// Keep is how long a pod gone from the listings is still answered.
	// Default 10 min.
	Keep time.Duration
	// Now is the clock (tests).
	Now func() time.Time
}

// Cache answers lookups from the node's last pod listing, listing again
// when it is stale or misses a pod. Lookups never wait longer than one
// listing's timeout, and not at all while the API is backing off.
type Cache struct {
	lister Lister
	opts   CacheOptions
	log    *logrus.Entry

	mu      sync.Mutex
	pods    map[string]entry // by UID
	at      time.Time        // of the last successful listing
	failed  time.Time        // of the last failed listing
	warned  bool
	listed  bool
	listing bool
}

// entry is a pod and when a listing last showed it: a pod deleted right
// after its kill is still answered for Keep.
type entry struct {
	pod  Pod
	seen time.Time
}

// NewCache returns a Cache over lister.
func NewCache(lister Lister, log *logrus.Entry, opts CacheOptions) *Cache {
	if opts.MaxAge <= 0 {
		opts.MaxAge = 30 * time.Second
	}
	if opts.MissAge <= 0 {
		opts.MissAge = 2 * time.Second
	}
	if opts.Backoff <= 0 {
		opts.Backoff = 30 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 3 * time.Second
	}
	if opts.Keep <= 0 {
		opts.Keep = 10 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Cache{lister: lister, opts: opts, log: log}
}

// Pod returns the pod of a UID.
func (c *Cache) Pod(ctx context.Context, uid string) (Pod, bool) {
	if uid == "" {
		return Pod{}, false
	}
	c.mu.Lock()
	stale := !c.listed || c.opts.Now().Sub(c.at) > c.opts.MaxAge
	e, ok := c.pods[uid]
	miss := !ok && c.opts.Now().Sub(c.at) > c.opts.MissAge
	c.mu.Unlock()
	if stale || miss {
		c.refresh(ctx)
		c.mu.Lock()
		e, ok = c.pods[uid]
		c.mu.Unlock()
	}
	return e.pod, ok
}

// MemoryRequest returns the memory request of a container (containerID
// set) or of a whole pod (containerID empty), as kubelet's eviction
// counts it; ok is false when the API does not know the pod or the
// container.
func (c *Cache) MemoryRequest(podUID, containerID string) (int64, bool) {
	ctx, cancel := context.WithTimeout(context.Background(), c.opts.Timeout)
	defer cancel()
	p, ok := c.Pod(ctx, podUID)
	if !ok {
		return 0, false
	}
	if containerID == "" {
		return p.RequestBytes, true
	}
	name, ok := p.ContainerIDs[containerID]
	if !ok {
		return 0, false
	}
	return p.Containers[name].RequestBytes, true
}

func (c *Cache) refresh(ctx context.Context) {
	c.mu.Lock()
	now := c.opts.Now()
	if c.listing || (!c.failed.IsZero() && now.Sub(c.failed) < c.opts.Backoff) {
		c.mu.Unlock()
		return
	}
	c.listing = true
	c.mu.Unlock()

	ctx, cancel := context.WithTimeout(ctx, c.opts.Timeout)
	pods, err := c.lister.List(ctx)
	cancel()

	c.mu.Lock()
	defer c.mu.Unlock()
	c.listing = false
	if err != nil {
		c.failed = c.opts.Now()
		if !c.warned {
			c.warned = true
			c.log.WithError(err).Warn("cannot list this node's pods from the Kubernetes API: memory requests unknown (culprits ranked by usage alone); retrying when an OOM kill needs them")
		}
		return
	}
	if c.warned || !c.listed {
		c.log.WithField("pods", len(pods)).Info("listed this node's pods from the Kubernetes API")
	}
	c.warned, c.listed, c.failed = false, true, time.Time{}
	c.at = c.opts.Now()
	next := make(map[string]entry, len(pods))
	for uid, e := range c.pods {
		if c.at.Sub(e.seen) < c.opts.Keep {
			next[uid] = e
		}
	}
	for _, p := range pods {
		next[p.UID] = entry{pod: p, seen: c.at}
	}
	c.pods = next
}
