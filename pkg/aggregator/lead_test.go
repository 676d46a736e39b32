package aggregator

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	"github.com/oomwatch/oomwatch/pkg/transport"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// fakeEvents is a Kubernetes API server that only creates Events: a name
// created before is refused (409), as the real one does.
type fakeEvents struct {
	mu       sync.Mutex
	created  map[string]int
	attempts int
}

func (f *fakeEvents) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/events") {
		http.Error(w, "not faked", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	// JSON or protobuf, as the client chose.
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
	ev, ok := obj.(*corev1.Event)
	if err != nil || !ok {
		http.Error(w, fmt.Sprintf("not an Event: %v", err), http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.attempts++
	w.Header().Set("Content-Type", "application/json")
	if f.created[ev.Name] > 0 {
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"AlreadyExists","code":409,"details":{"name":%q,"kind":"events"}}`, ev.Name)
		return
	}
	f.created[ev.Name]++
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"kind":"Event","apiVersion":"v1","metadata":{"name":%q}}`, ev.Name)
}

func (f *fakeEvents) counts() (created, attempts int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.created), f.attempts
}

// kubeConfig writes a kubeconfig for the API server at url.
func kubeConfig(t *testing.T, url string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: %q}}]
users: [{name: u, user: {}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`, url)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestReplicasKubeEventsOnce: two aggregators on one PostgreSQL database,
// each ingesting its own agents' kills, write each kill's Kubernetes Event
// once: only the leader writes, for both. When the leader dies holding
// the lease (another holder that never renews), the kills stored while
// nobody led get their Events from the replica that takes the lease over.
func TestReplicasKubeEventsOnce(t *testing.T) {
	leaderTTL, leaderInterval = 900*time.Millisecond, 150*time.Millisecond
	t.Cleanup(func() { leaderTTL, leaderInterval = LeaderTTL, LeaderInterval })
	url := pgtest.DB(t)
	api := &fakeEvents{created: map[string]int{}}
	apiSrv := httptest.NewServer(api)
	defer apiSrv.Close()
	kc := kubeConfig(t, apiSrv.URL)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var aggs []*Aggregator
	var dones []chan error
	for range 2 {
		o := Options{Listen: "127.0.0.1:0", DB: url, LogLevel: "info", KubeEvents: true, KubeConfig: kc,
			Transport: transport.Options{Insecure: true}}
		if err := o.Validate(); err != nil {
			t.Fatal(err)
		}
		agg, err := NewAggregator(ctx, o, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- agg.Run(ctx) }()
		aggs, dones = append(aggs, agg), append(dones, done)
	}
	defer func() {
		cancel()
		for _, d := range dones {
			<-d
		}
	}()
	leaders := func() int {
		n := 0
		for _, a := range aggs {
			if a.lead.Leading() {
				n++
			}
		}
		return n
	}
	waitFor(t, func() bool { return leaders() == 1 })

	send := func(a *Aggregator, node string, from, n int) {
		t.Helper()
		conn, err := grpc.NewClient(a.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		e := &env{}
		ag := e.agent(t, ctx, conn, node)
		var evs []*pb.Event
		for i := from; i < from+n; i++ {
			evs = append(evs, oom(node, int64(i), "shop", fmt.Sprintf("cart-%d", i)))
		}
		if err := ag.send(evs...); err != nil {
			t.Fatal(err)
		}
		if _, err := ag.acks(n); err != nil {
			t.Fatal(err)
		}
	}
	send(aggs[0], "node-a", 0, 6)
	send(aggs[1], "node-b", 0, 6)
	waitFor(t, func() bool { c, _ := api.counts(); return c == 12 })
	time.Sleep(300 * time.Millisecond)
	if c, n := api.counts(); c != 12 || n != 12 {
		t.Fatalf("%d Events created in %d attempts, want 12 in 12: only the leader writes", c, n)
	}

	// The leader dies holding the lease: it is another holder's now, and
	// renewed never again.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE leases SET holder = 'crashed',
		renewed = (extract(epoch FROM clock_timestamp()) * 1e9)::bigint,
		expires = (extract(epoch FROM clock_timestamp()) * 1e9)::bigint + $1`, leaderTTL.Nanoseconds()); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return leaders() == 0 })
	send(aggs[0], "node-a", 6, 4)
	send(aggs[1], "node-b", 6, 4)
	if c, _ := api.counts(); c != 12 {
		t.Fatalf("%d Events while nobody led, want 12", c)
	}
	waitFor(t, func() bool { return leaders() == 1 })
	waitFor(t, func() bool { c, _ := api.counts(); return c == 20 })
}
