package aggregator

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestIngestTwoServersOnePostgres: two servers (replicas to be) on one
// PostgreSQL database, each sent every event of several agents at once
// (an agent that reconnected to the other mid-stream replays what it had
// sent): every event is acknowledged by both, stored once, and told Stored
// on exactly one of them.
func TestIngestTwoServersOnePostgres(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	var envs []*env
	var stores []*pg.Store
	for range 2 {
		st, err := pg.Open(ctx, url, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		stores = append(stores, st)
		envs = append(envs, serve(t, st, Config{}))
	}
	const nodes, perNode = 4, 100
	var mu sync.Mutex
	stored, dups := 0, 0
	var wg sync.WaitGroup
	errs := make(chan error, 2*nodes)
	for n := range nodes {
		node := fmt.Sprintf("node-%d", n)
		var evs []*pb.Event
		for i := range perNode {
			evs = append(evs, oom(node, int64(i), "shop", fmt.Sprintf("cart-%d", i%7)))
		}
		for _, e := range envs {
			a := e.agent(t, ctx, e.dial(t), node)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := a.send(evs...); err != nil {
					errs <- err
					return
				}
				acks, err := a.acks(len(evs))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				defer mu.Unlock()
				for _, ack := range acks {
					if ack.GetDuplicate() {
						dups++
					} else {
						stored++
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if stored != nodes*perNode || dups != nodes*perNode {
		t.Fatalf("%d acknowledged as stored and %d as duplicates, want %d each", stored, dups, nodes*perNode)
	}
	var ids []string
	tok := ""
	for {
		evs, next, err := stores[1].List(ctx, nil, store.MaxPageSize, tok)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range evs {
			ids = append(ids, e.GetId())
		}
		if next == "" {
			break
		}
		tok = next
	}
	if len(ids) != nodes*perNode {
		t.Fatalf("%d stored, want %d", len(ids), nodes*perNode)
	}
}

// replicas runs a server per config on one new PostgreSQL database.
func replicas(t *testing.T, cfgs ...Config) (string, []*env) {
	t.Helper()
	url := pgtest.DB(t)
	var envs []*env
	for _, cfg := range cfgs {
		st, err := pg.Open(context.Background(), url, quietLog())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		envs = append(envs, serve(t, st, cfg))
	}
	return url, envs
}

// watched receives a watch's events into a channel until it ends, then
// sends its error and closes the channel.
func watched(w grpc.ServerStreamingClient[pb.WatchResponse]) (<-chan *pb.Event, <-chan error) {
	evs, end := make(chan *pb.Event, 100000), make(chan error, 1)
	go func() {
		defer close(evs)
		for {
			r, err := w.Recv()
			if err != nil {
				end <- err
				return
			}
			evs <- r.GetEvent()
		}
	}()
	return evs, end
}

// collect takes n events from evs, then makes sure no more come for a
// moment, and checks that each is there once and each node's in order.
func collect(t *testing.T, evs <-chan *pb.Event, n int) []*pb.Event {
	t.Helper()
	var got []*pb.Event
	timeout := time.After(30 * time.Second)
	for len(got) < n {
		select {
		case e, ok := <-evs:
			if !ok {
				t.Fatalf("watch ended after %d events, want %d", len(got), n)
			}
			got = append(got, e)
		case <-timeout:
			t.Fatalf("watched %d events, want %d", len(got), n)
		}
	}
	select {
	case e := <-evs:
		if e != nil {
			t.Fatalf("watched %s more than the %d events", e.GetId(), n)
		}
	case <-time.After(300 * time.Millisecond):
	}
	ids := map[string]bool{}
	last := map[string]int64{}
	for _, e := range got {
		if ids[e.GetId()] {
			t.Fatalf("watched %s twice", e.GetId())
		}
		ids[e.GetId()] = true
		if s, ok := last[e.GetNode()]; ok && e.GetSeq() <= s {
			t.Fatalf("watched %s after seq %d of its node: not in commit order", e.GetId(), s)
		}
		last[e.GetNode()] = e.GetSeq()
	}
	return got
}

// ingest sends evs on a new stream of e and waits for their acks.
func ingest(t *testing.T, ctx context.Context, e *env, conn *grpc.ClientConn, node string, evs []*pb.Event) {
	t.Helper()
	a := e.agent(t, ctx, conn, node)
	if err := a.send(evs...); err != nil {
		t.Fatal(err)
	}
	if acks, err := a.acks(len(evs)); err != nil {
		t.Fatalf("%d acks: %v", len(acks), err)
	}
}

// TestWatchAcrossReplicas: a watcher and a web UI live feed on replica B
// see the events ingested through replica A and through B, each once,
// each node's in order; a watcher on A sees them too.
func TestWatchAcrossReplicas(t *testing.T) {
	_, envs := replicas(t, Config{}, Config{})
	a, b := envs[0], envs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connA, connB := a.dial(t), b.dial(t)
	wB, err := pb.NewQueryServiceClient(connB).Watch(ctx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	wA, err := pb.NewQueryServiceClient(connA).Watch(ctx, &pb.WatchRequest{Filter: &pb.EventFilter{Namespace: "shop"}})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := b.srv.Subscribe(&pb.EventFilter{Node: "node-a"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	waitFor(t, func() bool { return b.srv.Stats().Watchers == 2 && a.srv.Stats().Watchers == 1 })
	evsB, _ := watched(wB)
	evsA, _ := watched(wA)

	const n = 30
	var fromA, fromB []*pb.Event
	for i := range n {
		fromA = append(fromA, oom("node-a", int64(i), "shop", fmt.Sprintf("cart-%d", i)))
		fromB = append(fromB, oom("node-b", int64(i), "bank", fmt.Sprintf("vault-%d", i)))
	}
	// In several commits each, interleaved.
	for i := 0; i < n; i += 10 {
		ingest(t, ctx, a, connA, "node-a", fromA[i:i+10])
		ingest(t, ctx, b, connB, "node-b", fromB[i:i+10])
	}
	// An agent that moved to B replays what A stored: not news.
	ingest(t, ctx, b, connB, "node-a", fromA[:5])

	collect(t, evsB, 2*n)
	if got := collect(t, evsA, n); got[0].GetNode() != "node-a" {
		t.Fatalf("watcher of shop on A got %s", got[0].GetId())
	}
	var live []*pb.Event
	for len(live) < n {
		select {
		case <-sub.Ready():
			live = append(live, sub.Take()...)
		case <-time.After(30 * time.Second):
			t.Fatalf("live feed got %d events, want %d", len(live), n)
		}
	}
	if len(live) != n {
		t.Fatalf("live feed got %d events, want %d", len(live), n)
	}
}

// TestWatchAcrossReplicasListenerKilled: the replicas' listening
// connections are killed (pg_terminate_backend) again and again while
// events are ingested through A: B's watcher still gets every one once,
// in order.
func TestWatchAcrossReplicasListenerKilled(t *testing.T) {
	url, envs := replicas(t, Config{}, Config{})
	a, b := envs[0], envs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	connA := a.dial(t)
	w, err := pb.NewQueryServiceClient(b.dial(t)).Watch(ctx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.srv.Stats().Watchers == 1 })
	evs, _ := watched(w)
	const rounds, per = 20, 10
	killed := 0
	ag := a.agent(t, ctx, connA, "node-a")
	for r := range rounds {
		if r%4 == 1 {
			killed += pgtest.Terminate(t, url, pg.ListenerName)
		}
		for i := range per {
			if err := ag.send(oom("node-a", int64(r*per+i), "shop", "cart")); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := ag.acks(per); err != nil {
			t.Fatal(err)
		}
	}
	if killed < 5 {
		t.Fatalf("killed %d listening connections, want at least 5", killed)
	}
	collect(t, evs, rounds*per)
}

// TestFloodAcrossReplicas: a flood of commits through A does not make B
// hold them for a watcher on B that does not read: B drops it with
// ResourceExhausted, as for its own commits, while ingest goes on and a
// watcher that reads gets everything.
func TestFloodAcrossReplicas(t *testing.T) {
	_, envs := replicas(t, Config{BatchMax: 100}, Config{WatchBuffer: 500})
	a, b := envs[0], envs[1]
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	slowConn := b.dial(t, b.creds[0], grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	slow, err := pb.NewQueryServiceClient(slowConn).Watch(ctx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := pb.NewQueryServiceClient(b.dial(t)).Watch(ctx, &pb.WatchRequest{})
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return b.srv.Stats().Watchers == 2 })
	fastEvs, _ := watched(fast)

	const n = 3000
	floodBigKills(t, a.agent(t, ctx, a.dial(t), "node-a"), n)
	waitFor(t, func() bool { return b.srv.Stats().WatchersDropped == 1 })
	got := 0
	for {
		if _, err = slow.Recv(); err != nil {
			break
		}
		got++
	}
	if status.Code(err) != codes.ResourceExhausted || got >= n {
		t.Fatalf("slow watcher got %d events then %v; want fewer than %d then ResourceExhausted", got, err, n)
	}
	collect(t, fastEvs, n)
}
