package pg_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/store/pg"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// followed collects what Follow hands on.
type followed struct {
	mu      sync.Mutex
	evs     []*pb.Event
	biggest int
}

func (f *followed) publish(evs []*pb.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.evs = append(f.evs, evs...)
	f.biggest = max(f.biggest, len(evs))
}

func (f *followed) snapshot() ([]*pb.Event, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*pb.Event(nil), f.evs...), f.biggest
}

// follow runs st.Follow until the test ends and waits until it is ready.
func follow(t *testing.T, st *pg.Store) *followed {
	t.Helper()
	return followWanted(t, st, nil)
}

// followWanted is follow with Follow's wanted.
func followWanted(t *testing.T, st *pg.Store, wanted func() bool) *followed {
	t.Helper()
	f := &followed{}
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- st.Follow(ctx, func() { close(ready) }, wanted, f.publish) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Follow: %v", err)
		}
	})
	select {
	case <-ready:
	case err := <-done:
		t.Fatalf("Follow returned before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Follow not ready")
	}
	return f
}

// waitEvents waits until f holds n events and returns them.
func waitEvents(t *testing.T, f *followed, n int) []*pb.Event {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		evs, _ := f.snapshot()
		if len(evs) >= n || time.Now().After(deadline) {
			return evs
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// checkOnceInOrder fails unless evs are the events of seqs want, in that
// order, each once.
func checkOnceInOrder(t *testing.T, evs []*pb.Event, want []int64) {
	t.Helper()
	if len(evs) != len(want) {
		t.Fatalf("followed %d events, want %d", len(evs), len(want))
	}
	for i, e := range evs {
		if e.GetSeq() != want[i] {
			t.Fatalf("event %d is seq %d, want %d (not once each in commit order)", i, e.GetSeq(), want[i])
		}
	}
}

func seqs(from, to int64) []int64 {
	var out []int64
	for i := from; i < to; i++ {
		out = append(out, i)
	}
	return out
}

// TestFollowOtherWriters: a Store follows what another Store on the same
// database commits after it started, in commit order, once each, and not
// what was there before nor what it commits itself.
func TestFollowOtherWriters(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	a, b := open(t, url), open(t, url)
	if _, err := a.Put(ctx, []*pb.Event{oom(0, 0)}); err != nil {
		t.Fatal(err)
	}
	f := follow(t, b)
	for i := int64(1); i < 31; i += 3 {
		if _, err := a.Put(ctx, []*pb.Event{oom(i, 0), oom(i+1, 0), oom(i+2, 0)}); err != nil {
			t.Fatal(err)
		}
		// b's own and duplicates are not news.
		if _, err := b.Put(ctx, []*pb.Event{oom(1000+i, 0), oom(i, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	// A writer that starts after b followed: all its commits are new.
	c := open(t, url)
	if _, err := c.Put(ctx, []*pb.Event{oom(31, 0)}); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, f, 31)
	time.Sleep(200 * time.Millisecond)
	evs, _ := f.snapshot()
	checkOnceInOrder(t, evs, seqs(1, 32))
	for _, e := range evs {
		if e.GetId() == "" || e.GetReceived() == nil {
			t.Fatalf("followed %v without its ID and received time", e)
		}
	}
}

// TestFollowListenerKilled: the listening connection killed again and
// again while the other writer commits (some commits land while no
// connection listens): every event is still handed on once, in order.
func TestFollowListenerKilled(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	a, b := open(t, url), open(t, url)
	f := follow(t, b)
	const commits, per = 40, 5
	killed := 0
	for i := range commits {
		if i%5 == 2 {
			killed += pgtest.Terminate(t, url, pg.ListenerName)
		}
		var evs []*pb.Event
		for j := range per {
			evs = append(evs, oom(int64(i*per+j), 0))
		}
		if _, err := a.Put(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	if killed < 4 {
		t.Fatalf("killed %d listening connections, want at least 4", killed)
	}
	waitEvents(t, f, commits*per)
	time.Sleep(200 * time.Millisecond)
	evs, _ := f.snapshot()
	checkOnceInOrder(t, evs, seqs(0, commits*per))
}

// TestFollowPages: a commit bigger than a page is handed on a page at a
// time (what a follower far behind holds is bounded), all of it, once.
func TestFollowPages(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	a, b := open(t, url), open(t, url)
	f := follow(t, b)
	n := 3*pg.FollowPage + 7
	var evs []*pb.Event
	for i := range n {
		evs = append(evs, oom(int64(i), 0))
	}
	if _, err := a.Put(ctx, evs); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, f, n)
	time.Sleep(200 * time.Millisecond)
	got, biggest := f.snapshot()
	// One commit, handed on in the order of its batch.
	checkOnceInOrder(t, got, seqs(0, int64(n)))
	if biggest > pg.FollowPage {
		t.Fatalf("handed on %d events at once, want at most %d", biggest, pg.FollowPage)
	}
}

// TestFollowUpdates: a revision stored by one writer over another's event
// is handed on again, as the local watchers see it.
func TestFollowUpdates(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	a, b, c := open(t, url), open(t, url), open(t, url)
	f := follow(t, b)
	w := func(rev int64) *pb.Event {
		since := oom(0, 0).GetTime()
		return &pb.Event{Node: "node-a", BootId: "boot-1", Seq: 7, Revision: rev, Time: timestamppb.New(since.AsTime().Add(time.Duration(rev) * time.Second)),
			Payload: &pb.Event_Warning{Warning: &pb.MemoryWarning{WarningKind: pb.WarningKind_WARNING_KIND_NODE_LOW,
				State: pb.WarningState_WARNING_STATE_OPEN, Since: since}}}
	}
	if _, err := a.Put(ctx, []*pb.Event{w(1)}); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, f, 1)
	res, err := c.Put(ctx, []*pb.Event{w(2)})
	if err != nil || !res[0].Updated {
		t.Fatalf("update: %v %v", res, err)
	}
	got := waitEvents(t, f, 2)
	if len(got) != 2 || got[0].GetRevision() != 1 || got[1].GetRevision() != 2 {
		t.Fatalf("followed %v, want revisions 1 and 2", got)
	}
	if got[0].GetId() != got[1].GetId() {
		t.Fatalf("revisions of different events: %s, %s", got[0].GetId(), got[1].GetId())
	}
}

// sql runs statements on the database directly.
func sql(t *testing.T, url string, stmts ...string) {
	t.Helper()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, s := range stmts {
		if _, err := c.Exec(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
}

// TestMigrateToWriters: a database of schema 1 with events gains the
// writer columns; its old events stay found and are not handed on as
// new; what is committed after is.
func TestMigrateToWriters(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	old := open(t, url)
	if _, err := old.Put(ctx, []*pb.Event{oom(1, 0), oom(2, 0)}); err != nil {
		t.Fatal(err)
	}
	old.Close()
	// Back to schema 1, as an older oomwatch left it.
	sql(t, url, `DROP TABLE rate_use`, `DROP TABLE leases`, `DROP TABLE writers`, `ALTER TABLE events DROP COLUMN writer, DROP COLUMN wseq, DROP COLUMN wpos`,
		`UPDATE schema_version SET version = 1`)
	a, b := open(t, url), open(t, url)
	if _, err := b.Get(ctx, "node-a/boot-1/oom/1"); err != nil {
		t.Fatalf("an event stored before the migration: %v", err)
	}
	f := follow(t, b)
	if _, err := a.Put(ctx, []*pb.Event{oom(2, 0), oom(3, 0)}); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, f, 1)
	time.Sleep(200 * time.Millisecond)
	evs, _ := f.snapshot()
	checkOnceInOrder(t, evs, []int64{3})
}

// TestPruneWriters: retention forgets a writer silent since its cut once
// none of its rows is left (not one with rows, not itself); should it
// commit again, a follower that started meanwhile hands on its new rows
// only.
func TestPruneWriters(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	a, b, c := open(t, url), open(t, url), open(t, url)
	// a's event is old, c's new; b prunes.
	if _, err := a.Put(ctx, []*pb.Event{oom(1, 0)}); err != nil {
		t.Fatal(err)
	}
	base := oom(0, 0).GetTime().AsTime()
	if _, err := c.Put(ctx, []*pb.Event{oom(2, time.Since(base))}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, []*pb.Event{oom(3, time.Since(base))}); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		t.Helper()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		var n int
		if err := conn.QueryRow(ctx, `SELECT count(*) FROM writers`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	// a's event goes; every commit is newer than the cut: no writer is
	// forgotten.
	n, err := b.Prune(ctx, time.Now().Add(-time.Hour))
	if err != nil || n != 1 {
		t.Fatalf("Prune = %d, %v; want 1", n, err)
	}
	if w := count(); w != 3 {
		t.Fatalf("%d writers after a prune of an old event, want 3", w)
	}
	// Every writer silent since the cut: a, without rows, is forgotten;
	// c keeps a row, b prunes.
	sql(t, url, `UPDATE writers SET updated = 0`)
	if _, err := b.Prune(ctx, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if w := count(); w != 2 {
		t.Fatalf("%d writers after a prune past their commits, want 2 (b's and c's)", w)
	}
	f := follow(t, open(t, url))
	if _, err := a.Put(ctx, []*pb.Event{oom(4, 0)}); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, f, 1)
	time.Sleep(200 * time.Millisecond)
	evs, _ := f.snapshot()
	checkOnceInOrder(t, evs, []int64{4})
}

// TestFollowUnwanted: while nobody wants them, other writers' commits are
// passed over unread; once wanted again, the commits after are read, and
// none before.
func TestFollowUnwanted(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	a, b := open(t, url), open(t, url)
	var wanted atomic.Bool
	f := followWanted(t, b, wanted.Load)
	for i := int64(1); i <= 5; i++ {
		if _, err := a.Put(ctx, []*pb.Event{oom(i, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	// The notifications are passed over: wait until the follower is
	// past them (a page of nothing read), then want the next ones.
	time.Sleep(500 * time.Millisecond)
	if evs, _ := f.snapshot(); len(evs) != 0 {
		t.Fatalf("%d events read while unwanted", len(evs))
	}
	wanted.Store(true)
	for i := int64(6); i <= 8; i++ {
		if _, err := a.Put(ctx, []*pb.Event{oom(i, 0)}); err != nil {
			t.Fatal(err)
		}
	}
	waitEvents(t, f, 3)
	time.Sleep(200 * time.Millisecond)
	evs, _ := f.snapshot()
	checkOnceInOrder(t, evs, seqs(6, 9))
}

// TestFollowUnsureCommits: the events of a commit this writer took for
// failed, but that the database committed, reach its own follower (its
// watchers) once a later commit succeeds; other commits of its own do not.
func TestFollowUnsureCommits(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	s := open(t, url)
	f := follow(t, s)
	// Commit 1 stored events 1 and 2; say its outcome was lost.
	if _, err := s.Put(ctx, []*pb.Event{oom(1, 0), oom(2, 0)}); err != nil {
		t.Fatal(err)
	}
	pg.MarkUnsure(s, 1)
	if _, err := s.Put(ctx, []*pb.Event{oom(3, 0)}); err != nil {
		t.Fatal(err)
	}
	waitEvents(t, f, 2)
	time.Sleep(200 * time.Millisecond)
	evs, _ := f.snapshot()
	checkOnceInOrder(t, evs, seqs(1, 3))
}
