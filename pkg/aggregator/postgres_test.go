package aggregator

import (
	"context"
	"fmt"
	"sync"
	"testing"

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
