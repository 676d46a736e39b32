package aggregator

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// fakeStore records the batches put, and fails them when err is set.
type fakeStore struct {
	Store
	mu      sync.Mutex
	batches []int
	err     error
}

func (f *fakeStore) PutRecords(_ context.Context, recs []*store.Record) ([]store.PutResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.batches = append(f.batches, len(recs))
	if f.err != nil {
		return nil, f.err
	}
	out := make([]store.PutResult, len(recs))
	for i, r := range recs {
		seq := r.Row().Seq
		out[i] = store.PutResult{Stored: seq%2 == 0, Duplicate: seq%2 == 1}
	}
	return out, nil
}

func TestCommitter(t *testing.T) {
	tests := []struct {
		name    string
		wait    time.Duration
		max     int
		events  int
		err     error
		batches []int
	}{
		{name: "one commit for concurrent events", wait: time.Second, max: 100, events: 10, batches: []int{10}},
		{name: "bounded batches", wait: time.Second, max: 4, events: 10, batches: []int{4, 4, 2}},
		{name: "failure reaches every ticket", wait: time.Second, max: 100, events: 3, err: errors.New("disk full"), batches: []int{3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &fakeStore{err: tt.err}
			var committed [][]*ticket
			c := newCommitter(fs, tt.wait, tt.max, func(b []*ticket) { committed = append(committed, b) }, quietLog())
			done := make(chan struct{})
			go func() { c.run(); close(done) }()
			var tickets []*ticket
			for i := range tt.events {
				tk := newTicket(record(t, oom("node-a", int64(i), "shop", "cart-1")))
				tickets = append(tickets, tk)
				if err := c.submit(context.Background(), tk); err != nil {
					t.Fatal(err)
				}
			}
			// The last partial batch waits for more until stop.
			if tt.events%tt.max != 0 {
				time.Sleep(20 * time.Millisecond)
			}
			c.stop()
			<-done
			if len(fs.batches) != len(tt.batches) {
				t.Fatalf("batches %v, want %v", fs.batches, tt.batches)
			}
			for i := range tt.batches {
				if fs.batches[i] != tt.batches[i] {
					t.Fatalf("batches %v, want %v", fs.batches, tt.batches)
				}
			}
			for i, tk := range tickets {
				select {
				case <-tk.done:
				default:
					t.Fatalf("ticket %d not completed", i)
				}
				if !errors.Is(tk.err, tt.err) {
					t.Fatalf("ticket %d err %v, want %v", i, tk.err, tt.err)
				}
				if tt.err == nil && tk.res.Duplicate != (i%2 == 1) {
					t.Fatalf("ticket %d result %+v", i, tk.res)
				}
			}
			if len(committed) != len(tt.batches) {
				t.Fatalf("after called %d times", len(committed))
			}
			if err := c.submit(context.Background(), newTicket(record(t, oom("node-a", 0, "", "")))); !errors.Is(err, errCommitterStopped) {
				t.Fatalf("submit after stop: %v", err)
			}
		})
	}
}

// TestStoreFailure: when commits fail, nothing is acknowledged and the
// stream ends with codes.Unavailable, so that the agent sends again.
func TestStoreFailure(t *testing.T) {
	e := serve(t, &fakeStore{err: errors.New("disk full")}, Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a := e.agent(t, ctx, e.dial(t), "node-a")
	if err := a.send(oom("node-a", 1, "shop", "cart-1")); err != nil {
		t.Fatal(err)
	}
	acks, err := a.acks(1)
	if len(acks) != 0 || status.Code(err) != codes.Unavailable {
		t.Fatalf("%d acks, %v", len(acks), err)
	}
}

func record(t *testing.T, e *pb.Event) *store.Record {
	t.Helper()
	r, err := store.Encode(e, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return r
}
