package aggregator

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/oomwatch/oomwatch/pkg/transport"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestSubscribe checks the web UI's feed: it gets the committed events of
// its filter; one that overflows is dropped and counted, and ingest goes
// on; shutdown closes it and refuses new ones.
func TestSubscribe(t *testing.T) {
	e := start(t, Config{BatchMax: 100})
	conn := e.dial(t)
	ctx := context.Background()
	if _, err := e.srv.Subscribe(&pb.EventFilter{Types: []string{"bogus"}}, 0); err == nil {
		t.Fatal("a bad filter was accepted")
	}
	sub, err := e.srv.Subscribe(&pb.EventFilter{Node: "node-a"}, 100)
	if err != nil {
		t.Fatal(err)
	}
	small, err := e.srv.Subscribe(nil, 3)
	if err != nil {
		t.Fatal(err)
	}
	if n := e.srv.Stats().Watchers; n != 2 {
		t.Fatalf("%d watchers, want 2", n)
	}
	a, b := e.agent(t, ctx, conn, "node-a"), e.agent(t, ctx, conn, "node-b")
	for i := range 5 {
		if err := b.send(oom("node-b", int64(i), "shop", "cart-1")); err != nil {
			t.Fatal(err)
		}
		if err := a.send(oom("node-a", int64(i), "shop", "cart-1")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := a.acks(5); err != nil {
		t.Fatal(err)
	}
	if _, err := b.acks(5); err != nil {
		t.Fatal(err)
	}
	var got []string
	for len(got) < 5 {
		select {
		case <-sub.Ready():
			for _, ev := range sub.Take() {
				got = append(got, ev.GetId())
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v, want 5 events of node-a", got)
		}
	}
	for _, id := range got {
		if !strings.HasPrefix(id, "node-a/") {
			t.Fatalf("the feed of node-a got %s", id)
		}
	}
	// Ten events do not fit in three: the small feed is behind, the
	// others are served.
	select {
	case <-small.Behind():
	case <-time.After(10 * time.Second):
		t.Fatal("the small feed did not fall behind")
	}
	if len(small.Take()) != 0 {
		t.Fatal("a feed behind still holds events")
	}
	small.Close()
	small.Close()
	if s := e.srv.Stats(); s.Watchers != 1 || s.WatchersDropped != 1 {
		t.Fatalf("stats %+v, want 1 watcher and 1 dropped", s)
	}

	e.shutdown(t)
	select {
	case <-sub.Closing():
	default:
		t.Fatal("shutdown did not close the feed")
	}
	sub.Close()
	if _, err := e.srv.Subscribe(nil, 0); !errors.Is(err, ErrShuttingDown) {
		t.Fatalf("Subscribe while shutting down: %v", err)
	}
}

func TestHTTPAddrOption(t *testing.T) {
	for _, tc := range []struct {
		args []string
		ok   bool
		addr string
	}{
		{args: []string{"--insecure"}, ok: true},
		{args: []string{"--insecure", "--http-addr=:8080"}, ok: true, addr: ":8080"},
		{args: []string{"--insecure", "--http-addr=8080"}},
	} {
		o, err := parse(tc.args, map[string]string{})
		if (err == nil) != tc.ok || (err == nil && o.HTTPAddr != tc.addr) {
			t.Errorf("%v: %+v, %v", tc.args, o.HTTPAddr, err)
		}
	}
	o, err := parse([]string{"--insecure"}, map[string]string{"OOMWATCH_HTTP_ADDR": "127.0.0.1:9999"})
	if err != nil || o.HTTPAddr != "127.0.0.1:9999" {
		t.Errorf("from the environment: %q %v", o.HTTPAddr, err)
	}
}

// TestAggregatorWeb runs the aggregator with the web UI behind a token:
// the pages ask for it (a browser's Basic prompt), show what agents send,
// stream it live, and shutdown ends a live page rather than waiting on it.
func TestAggregatorWeb(t *testing.T) {
	tr := transport.Options{Insecure: true, Token: "s3cret"}
	o := Options{Listen: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", DB: filepath.Join(t.TempDir(), "oomwatch.db"), LogLevel: "info", Transport: tr}
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	agg, err := NewAggregator(ctx, o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- agg.Run(ctx) }()
	base := "http://" + agg.HTTPAddr().String()

	get := func(path string, auth bool) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", base+path, nil)
		if auth {
			req.SetBasicAuth("sre", "s3cret")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get("/", false); code != http.StatusUnauthorized {
		t.Fatalf("without the token: status %d", code)
	}
	if code, body := get("/", true); code != http.StatusOK || !strings.Contains(body, "No incidents.") {
		t.Fatalf("empty: status %d\n%s", code, body)
	}

	// A live page, open while an agent sends a kill.
	req, _ := http.NewRequest("GET", base+"/live?node=node-a", nil)
	req.Header.Set("Authorization", "Bearer s3cret")
	live, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer live.Body.Close()
	if live.StatusCode != http.StatusOK {
		t.Fatalf("live: status %d", live.StatusCode)
	}
	lines := make(chan string, 100)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(live.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	waitFor(t, func() bool { return agg.Server().Stats().Watchers == 1 })

	dial, err := transport.DialOptions(tr, "")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(agg.Addr().String(), dial...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ev := oom("node-a", 7, "shop", "cart-1")
	st, err := pb.NewIngestServiceClient(conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: "node-a", BootId: boot}}})
	_ = st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: ev}})
	if _, err := st.Recv(); err != nil {
		t.Fatal(err)
	}
	for l := range lines {
		if strings.HasPrefix(l, "data: ") {
			if !strings.Contains(l, `"id":"node-a/`+boot+`/oom/7"`) {
				t.Fatalf("live message %s", l)
			}
			break
		}
	}
	if code, body := get("/", true); code != http.StatusOK || !strings.Contains(body, "/incidents/node-a/"+boot+"/7") || !strings.Contains(body, "shop/cart-1 › api") {
		t.Fatalf("after a kill: status %d\n%s", code, body)
	}
	if code, _ := get("/incidents/node-a/"+boot+"/7", true); code != http.StatusOK {
		t.Fatalf("incident page: status %d", code)
	}

	// Shutdown with the live page still open.
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return with a live page open")
	}
	for range lines {
	}
	if _, err := http.Get(base + "/"); err == nil {
		t.Fatal("the web UI still answers after shutdown")
	}
}

func TestAggregatorWithoutWeb(t *testing.T) {
	o := Options{Listen: "127.0.0.1:0", DB: filepath.Join(t.TempDir(), "oomwatch.db"), LogLevel: "info", Transport: transport.Options{Insecure: true}}
	agg, err := NewAggregator(context.Background(), o, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if agg.HTTPAddr() != nil {
		t.Fatalf("web UI on %v without --http-addr", agg.HTTPAddr())
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := agg.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// TLS that cannot load is refused at start.
	o.HTTPAddr, o.Transport = "127.0.0.1:0", transport.Options{CertFile: "missing.pem", KeyFile: "missing.key"}
	o.DB = filepath.Join(t.TempDir(), "other.db")
	if _, err := NewAggregator(context.Background(), o, quietLog()); err == nil {
		t.Fatal("missing certificate accepted")
	}
}
