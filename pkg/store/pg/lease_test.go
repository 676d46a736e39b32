package pg_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/store/pg"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestLease: one holder at a time; it renews; another takes the lease once
// it has lapsed, or at once when released, and learns the last renewal.
func TestLease(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	a, b := open(t, url), open(t, url)
	const ttl = 400 * time.Millisecond
	lease := func(s *pg.Store) pg.LeaseState {
		t.Helper()
		st, err := s.Lease(ctx, "retention", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	if st := lease(a); !st.Held || !st.Taken || !st.PreviousRenewal.IsZero() {
		t.Fatalf("first lease: %+v", st)
	}
	if st := lease(b); st.Held {
		t.Fatalf("b took a held lease: %+v", st)
	}
	if st := lease(a); !st.Held || st.Taken {
		t.Fatalf("renewal: %+v", st)
	}
	if st, err := b.Lease(ctx, "other", ttl); err != nil || !st.Held {
		t.Fatalf("another lease's name: %+v %v", st, err)
	}
	renewedAt := time.Now()
	time.Sleep(ttl + 200*time.Millisecond)
	st := lease(b)
	if !st.Held || !st.Taken {
		t.Fatalf("b after a's lease lapsed: %+v", st)
	}
	if d := st.PreviousRenewal.Sub(renewedAt); d < -5*time.Second || d > 5*time.Second {
		t.Fatalf("previous renewal %v, a renewed at about %v", st.PreviousRenewal, renewedAt)
	}
	if st := lease(a); st.Held {
		t.Fatalf("a kept a lease b took: %+v", st)
	}
	if err := b.Release(ctx, "retention"); err != nil {
		t.Fatal(err)
	}
	if err := a.Release(ctx, "retention"); err != nil { // not its: no effect
		t.Fatal(err)
	}
	if st := lease(a); !st.Held || !st.Taken || st.PreviousRenewal.IsZero() {
		t.Fatalf("a after b released: %+v", st)
	}
	if _, err := a.Lease(ctx, "x", 0); err == nil {
		t.Fatal("a zero TTL was taken")
	}
}

// TestLeaseContended: eight replicas asking at once, over and over: never
// two holders at one time.
func TestLeaseContended(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	var stores []*pg.Store
	for range 8 {
		stores = append(stores, open(t, url))
	}
	const ttl = 150 * time.Millisecond
	var (
		holding  atomic.Int32
		overlaps atomic.Int32
		held     atomic.Int32
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(2 * time.Second)
	for _, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				st, err := s.Lease(ctx, "kube-events", ttl)
				if err != nil {
					t.Error(err)
					return
				}
				if st.Held {
					held.Add(1)
					if holding.Add(1) > 1 {
						overlaps.Add(1)
					}
					// Work well inside the TTL, then give it up.
					time.Sleep(ttl / 5)
					holding.Add(-1)
					if err := s.Release(ctx, "kube-events"); err != nil {
						t.Error(err)
						return
					}
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	if overlaps.Load() > 0 {
		t.Fatalf("%d times two replicas held the lease at once", overlaps.Load())
	}
	if held.Load() < 5 {
		t.Fatalf("the lease was held only %d times", held.Load())
	}
}

// TestRestartedServer: a Store outlives its server crashing and starting
// again: what was committed before is there, and once the server is back
// puts succeed again (a put may fail while its connection is found dead).
func TestRestartedServer(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	s := open(t, url)
	if _, err := s.Put(ctx, []*pb.Event{oom(1, 0)}); err != nil {
		t.Fatal(err)
	}
	pgtest.Restart(t, 500*time.Millisecond)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := s.Put(ctx, []*pb.Event{oom(2, 0)})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("put after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, id := range []string{"node-a/boot-1/oom/1", "node-a/boot-1/oom/2"} {
		if _, err := s.Get(ctx, id); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
}

// TestShareUse: each replica sees the others' totals, not its own, the
// latest of each; too many keys at once are refused.
func TestShareUse(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	a, b := open(t, url), open(t, url)
	if got, err := a.ShareUse(ctx, map[string]int64{"e:node:x": 5, "i:agent": 7}); err != nil || len(got) != 0 {
		t.Fatalf("a alone: %v %v", got, err)
	}
	if _, err := a.ShareUse(ctx, map[string]int64{"e:node:x": 9}); err != nil {
		t.Fatal(err)
	}
	got, err := b.ShareUse(ctx, map[string]int64{"e:node:x": 1})
	if err != nil {
		t.Fatal(err)
	}
	totals := map[string]int64{}
	for _, u := range got {
		totals[u.Key] = u.Total
	}
	if len(got) != 2 || totals["e:node:x"] != 9 || totals["i:agent"] != 7 {
		t.Fatalf("b sees %+v, want a's totals 9 and 7", got)
	}
	got, err = a.ShareUse(ctx, nil)
	if err != nil || len(got) != 1 || got[0].Total != 1 {
		t.Fatalf("a sees %+v %v, want b's 1", got, err)
	}
	many := map[string]int64{}
	for i := range pg.MaxUseKeys + 1 {
		many[fmt.Sprint(i)] = 1
	}
	if _, err := a.ShareUse(ctx, many); err == nil {
		t.Fatal("too many keys were taken")
	}
}

// TestPutChunks: a batch larger than one INSERT's chunk, with copies of
// one ID on both sides of a chunk's end, stores each ID once and tells the
// first copy Stored, the others Duplicate. It goes in by COPY; the insert
// takes such a batch in TestPutRacedByAnotherWriter.
func TestPutChunks(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	s := open(t, url)
	// IDs sort as strings: seq 1000..1300, each twice, then 1000 thrice.
	var evs []*pb.Event
	for i := int64(1000); i <= 1300; i++ {
		evs = append(evs, oom(i, 0), oom(i, 0))
	}
	evs = append(evs, oom(1000, 0))
	res, err := s.Put(ctx, evs)
	if err != nil {
		t.Fatal(err)
	}
	stored := map[int64]int{}
	for i, r := range res {
		seq := evs[i].GetSeq()
		if r.Stored {
			stored[seq]++
		} else if !r.Duplicate {
			t.Fatalf("event %d (seq %d): %+v", i, seq, r)
		}
	}
	if len(stored) != 301 {
		t.Fatalf("%d IDs stored, want 301", len(stored))
	}
	for seq, n := range stored {
		if n != 1 {
			t.Fatalf("seq %d stored %d times", seq, n)
		}
	}
	evsOut, _, err := s.List(ctx, nil, 1000, "")
	if err != nil || len(evsOut) != 301 {
		t.Fatalf("listed %d (%v), want 301", len(evsOut), err)
	}
}
