package aggregator

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/store/pg"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// floodWindow is how many events floodFor sends before it reads their
// acknowledgements.
const floodWindow = 25

// floodFor sends events for node to e as fast as it acknowledges them for
// d, opening a new stream whenever one is ended for the rate, and returns
// how many were stored. seqs start at from.
func floodFor(t *testing.T, e *env, node string, from int64, d time.Duration) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	conn := e.dial(t)
	defer conn.Close()
	var stored int64
	seq := from
	for ctx.Err() == nil {
		a := e.agent(t, context.Background(), conn, node)
		for ctx.Err() == nil {
			// A window of events at a time, as an agent sends them.
			var evs []*pb.Event
			for i := range floodWindow {
				evs = append(evs, oom(node, seq+int64(i), "shop", "cart"))
			}
			if err := a.send(evs...); err != nil {
				break
			}
			acks, err := a.acks(len(evs))
			for _, ack := range acks {
				if !ack.GetDuplicate() {
					stored++
				}
			}
			seq += int64(len(acks))
			if err != nil {
				if status.Code(err) != codes.ResourceExhausted {
					t.Errorf("stream: %v", err)
					return stored
				}
				break
			}
		}
		_ = a.st.CloseSend()
		time.Sleep(20 * time.Millisecond)
	}
	return stored
}

// TestRateAcrossReplicas: one node's agents flooding three replicas at
// once get the node's rate about once, not three times: each replica
// charges its bucket with what the others admitted (ShareUse). The bound
// is the rate over the time, its burst, and for each other replica its
// burst and what it admits in one exchange.
func TestRateAcrossReplicas(t *testing.T) {
	shareInterval = 100 * time.Millisecond
	t.Cleanup(func() { shareInterval = ShareInterval })
	url := pgtest.DB(t)
	const (
		rate     = 100
		burst    = 100
		replicas = 3
		d        = 4 * time.Second
	)
	run := func(t *testing.T, cfg Config) int64 {
		var envs []*env
		for range replicas {
			st, err := pg.Open(context.Background(), url, quietLog())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { st.Close() })
			envs = append(envs, serve(t, st, cfg))
		}
		var total atomic.Int64
		var wg sync.WaitGroup
		for i, e := range envs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				total.Add(floodFor(t, e, "node-flood", int64(i)*1_000_000, d))
			}()
		}
		wg.Wait()
		for _, e := range envs {
			e.shutdown(t)
		}
		return total.Load()
	}
	shared := run(t, Config{MaxEventsPerSecond: rate, MaxEventsBurst: burst})
	bound := rate*d.Seconds() + burst + (replicas-1)*(burst+rate*0.3)
	t.Logf("one node flooding %d replicas for %v at %d/s, burst %d: %d stored (bound %.0f; on its own, each replica would allow %.0f)",
		replicas, d, rate, burst, shared, bound, replicas*(rate*d.Seconds()+burst))
	if float64(shared) > bound {
		t.Fatalf("%d events stored, over the bound %.0f", shared, bound)
	}
	if float64(shared) < rate*d.Seconds()*0.8 {
		t.Fatalf("%d events stored: the shared rate starves the node", shared)
	}
}
