package kubepods

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

const (
	etlUID  = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
	cartUID = "1b2c3d4e-5f60-4b7c-9d8e-0f1a2b3c4d5e"
	etlID   = "aaaa000000000000000000000000000000000000000000000000000000000001"
	etlOld  = "aaaa000000000000000000000000000000000000000000000000000000000000"
	sideID  = "aaaa000000000000000000000000000000000000000000000000000000000002"
	cartID  = "bbbb000000000000000000000000000000000000000000000000000000000001"
)

func mem(s string) corev1.ResourceList {
	return corev1.ResourceList{corev1.ResourceMemory: resource.MustParse(s)}
}

// nodePods is a core/v1 PodList as the API server encodes it.
func nodePods(t *testing.T) []byte {
	t.Helper()
	always := corev1.ContainerRestartPolicyAlways
	l := corev1.PodList{
		TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
		Items: []corev1.Pod{
			{
				ObjectMeta: metav1.ObjectMeta{UID: types.UID(etlUID), Namespace: "batch", Name: "etl-2"},
				Spec: corev1.PodSpec{
					NodeName: "node-1",
					InitContainers: []corev1.Container{
						{Name: "migrate", Resources: corev1.ResourceRequirements{Requests: mem("1Gi")}},
						{Name: "proxy", RestartPolicy: &always, Resources: corev1.ResourceRequirements{Requests: mem("64Mi")}},
					},
					Containers: []corev1.Container{
						{Name: "etl", Resources: corev1.ResourceRequirements{Requests: mem("512Mi"), Limits: mem("2Gi")}},
					},
					Overhead: mem("10Mi"),
				},
				Status: corev1.PodStatus{
					ContainerStatuses: []corev1.ContainerStatus{{
						Name: "etl", ContainerID: "containerd://" + etlID,
						LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
							ExitCode: 137, Reason: "OOMKilled", ContainerID: "containerd://" + etlOld}},
					}},
					InitContainerStatuses: []corev1.ContainerStatus{{Name: "proxy", ContainerID: "containerd://" + sideID}},
				},
			},
			{
				ObjectMeta: metav1.ObjectMeta{UID: types.UID(cartUID), Namespace: "shop", Name: "cart-7d9"},
				Spec: corev1.PodSpec{NodeName: "node-1", Containers: []corev1.Container{
					{Name: "api"},
					// Only a limit: Kubernetes defaults the request to it.
					{Name: "cache", Resources: corev1.ResourceRequirements{Limits: mem("128Mi")}},
				}},
				Status: corev1.PodStatus{ContainerStatuses: []corev1.ContainerStatus{
					{Name: "api", ContainerID: "cri-o://" + cartID},
				}},
			},
		},
	}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestDecode(t *testing.T) {
	pods, err := Decode(strings.NewReader(string(nodePods(t))))
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 {
		t.Fatalf("%d pods, want 2", len(pods))
	}
	etl, cart := pods[0], pods[1]
	const mi = 1 << 20
	// max(512 Mi + 64 Mi sidecar, 1 Gi init + 0 sidecars before it) + 10 Mi overhead.
	if etl.RequestBytes != 1024*mi+10*mi {
		t.Errorf("etl request %d MiB, want 1034", etl.RequestBytes/mi)
	}
	if c := etl.Containers["etl"]; c.RequestBytes != 512*mi || c.LimitBytes != 2048*mi {
		t.Errorf("etl container %+v", c)
	}
	for id, name := range map[string]string{etlID: "etl", etlOld: "etl", sideID: "proxy"} {
		if etl.ContainerIDs[id] != name {
			t.Errorf("container %s… = %q, want %q", id[:8], etl.ContainerIDs[id], name)
		}
	}
	if cart.Namespace != "shop" || cart.Name != "cart-7d9" || cart.ContainerIDs[cartID] != "api" {
		t.Errorf("cart %+v", cart)
	}
	if cart.RequestBytes != 128*mi || cart.Containers["api"].RequestBytes != 0 {
		t.Errorf("cart request %d, api %d", cart.RequestBytes, cart.Containers["api"].RequestBytes)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, body := range map[string]string{
		"not json":    "<html>",
		"status":      `{"kind":"Status","status":"Failure","message":"forbidden"}`,
		"empty":       "",
		"wrong items": `{"kind":"PodList","items":{}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := Decode(strings.NewReader(body)); !errors.Is(err, ErrBadResponse) {
				t.Fatalf("err %v, want ErrBadResponse", err)
			}
		})
	}
	// A bad quantity loses that figure only.
	pods, err := Decode(strings.NewReader(`{"kind":"PodList","items":[{"metadata":{"uid":"u","name":"p","namespace":"n"},"spec":{"containers":[{"name":"c","resources":{"requests":{"memory":"lots"}}}]}}]}`))
	if err != nil || len(pods) != 1 || pods[0].Name != "p" || pods[0].RequestBytes != 0 {
		t.Fatalf("pods %+v err %v", pods, err)
	}
}

// apiServer serves PodLists like the API server, over TLS, checking the
// token and the field selector.
func apiServer(t *testing.T, body []byte) (*httptest.Server, Config, *int) {
	t.Helper()
	dir := t.TempDir()
	token := filepath.Join(dir, "token")
	if err := os.WriteFile(token, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := new(int)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		*calls++
		mu.Unlock()
		switch {
		case r.Header.Get("Authorization") != "Bearer s3cret":
			http.Error(w, `{"kind":"Status","message":"Unauthorized"}`, http.StatusUnauthorized)
		case r.URL.Path != "/api/v1/pods" || r.URL.Query().Get("fieldSelector") != "spec.nodeName=node-1":
			http.Error(w, "bad request "+r.URL.String(), http.StatusBadRequest)
		default:
			_, _ = w.Write(body)
		}
	}))
	t.Cleanup(srv.Close)
	ca := filepath.Join(dir, "ca.crt")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	if err := os.WriteFile(ca, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	return srv, Config{Server: srv.URL, TokenFile: token, CAFile: ca, Node: "node-1"}, calls
}

func TestClientList(t *testing.T) {
	_, cfg, _ := apiServer(t, nodePods(t))
	c, err := NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	pods, err := c.List(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 || pods[0].Name != "etl-2" {
		t.Fatalf("pods %+v", pods)
	}

	t.Run("wrong token", func(t *testing.T) {
		bad := cfg
		bad.TokenFile = filepath.Join(t.TempDir(), "token")
		_ = os.WriteFile(bad.TokenFile, []byte("nope"), 0o600)
		c, _ := NewClient(bad)
		if _, err := c.List(context.Background()); !errors.Is(err, ErrBadResponse) || !strings.Contains(err.Error(), "401") {
			t.Fatalf("err %v", err)
		}
	})
	t.Run("unknown CA", func(t *testing.T) {
		bad := cfg
		bad.CAFile = ""
		c, _ := NewClient(bad)
		if _, err := c.List(context.Background()); err == nil {
			t.Fatal("a server outside the system roots was trusted")
		}
	})
	for _, bad := range []Config{{Server: "ftp://x", Node: "n"}, {Server: "https://", Node: "n"}, {Server: "https://x:1"}, {Server: "https://x:1", Node: "n", CAFile: "/nonexistent"}} {
		if _, err := NewClient(bad); err == nil {
			t.Errorf("NewClient(%+v) accepted", bad)
		}
	}
}

func TestInCluster(t *testing.T) {
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := InCluster("n"); !errors.Is(err, ErrNoServer) {
		t.Fatalf("err %v", err)
	}
	t.Setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
	t.Setenv("KUBERNETES_SERVICE_PORT", "6443")
	cfg, err := InCluster("n")
	if err != nil || cfg.Server != "https://[fd00::1]:6443" || cfg.TokenFile != ServiceAccountToken {
		t.Fatalf("cfg %+v err %v", cfg, err)
	}
}

// fakeLister is a Lister whose answer the test sets.
type fakeLister struct {
	mu    sync.Mutex
	pods  []Pod
	err   error
	calls int
}

func (f *fakeLister) List(context.Context) ([]Pod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	return append([]Pod(nil), f.pods...), f.err
}

func (f *fakeLister) set(pods []Pod, err error) {
	f.mu.Lock()
	f.pods, f.err = pods, err
	f.mu.Unlock()
}

func TestCache(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	pods, err := Decode(strings.NewReader(string(nodePods(t))))
	if err != nil {
		t.Fatal(err)
	}
	etl, cart := pods[0], pods[1]
	l := &fakeLister{pods: []Pod{etl}}
	log, hook := test.NewNullLogger()
	c := NewCache(l, logrus.NewEntry(log), CacheOptions{Now: clock})

	if n, ok := c.MemoryRequest(etlUID, etlOld); !ok || n != 512<<20 {
		t.Fatalf("etl container request %d %v", n, ok)
	}
	if n, ok := c.MemoryRequest(etlUID, ""); !ok || n != etl.RequestBytes {
		t.Fatalf("etl pod request %d %v", n, ok)
	}
	if l.calls != 1 {
		t.Fatalf("%d listings, want 1", l.calls)
	}
	// A miss within MissAge does not list again; after it, it does.
	if _, ok := c.Pod(context.Background(), cartUID); ok {
		t.Fatal("cart found before it was listed")
	}
	l.set([]Pod{etl, cart}, nil)
	now = now.Add(3 * time.Second)
	if p, ok := c.Pod(context.Background(), cartUID); !ok || p.ContainerIDs[cartID] != "api" {
		t.Fatalf("cart api %q %v", p.ContainerIDs[cartID], ok)
	}
	if l.calls != 2 {
		t.Fatalf("%d listings, want 2", l.calls)
	}
	// Unknown container of a known pod.
	if _, ok := c.MemoryRequest(cartUID, "ffff"); ok {
		t.Fatal("an unknown container had a request")
	}
	// The API fails: the pods deleted since stay answered, the failure
	// is said once and listing backs off.
	l.set(nil, errors.New("connection refused"))
	now = now.Add(time.Minute)
	if _, ok := c.Pod(context.Background(), etlUID); !ok {
		t.Fatal("etl lost when the API failed")
	}
	calls := l.calls
	now = now.Add(time.Second)
	c.Pod(context.Background(), "unknown")
	if l.calls != calls {
		t.Fatal("listed again while backing off")
	}
	warnings := 0
	for _, e := range hook.AllEntries() {
		if e.Level == logrus.WarnLevel {
			warnings++
		}
	}
	if warnings != 1 {
		t.Fatalf("%d warnings, want 1", warnings)
	}
	// Back: etl was deleted; it is kept for Keep, then forgotten.
	l.set([]Pod{cart}, nil)
	now = now.Add(31 * time.Second)
	if _, ok := c.Pod(context.Background(), etlUID); !ok {
		t.Fatal("a pod deleted a minute ago was forgotten")
	}
	now = now.Add(11 * time.Minute)
	if _, ok := c.Pod(context.Background(), etlUID); ok {
		t.Fatal("a pod deleted 12 minutes ago is still answered")
	}
}
