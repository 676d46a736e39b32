package pg_test

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"
	logtest "github.com/sirupsen/logrus/hooks/test"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestPutRacedByAnotherWriter: a batch whose event another transaction
// stores between the batch's look-up and its COPY (an agent that moved to
// another replica sent it there too) is stored by the insert that skips
// stored IDs: that event a duplicate, the others stored, nothing lost, no
// error, also across the insert's statements (copies of one ID on both
// sides of a statement's end). The other writer's row goes in without a
// row ID, as an older aggregator's would, and takes one from the same
// identity.
func TestPutRacedByAnotherWriter(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	logger, hook := logtest.NewNullLogger()
	logger.SetLevel(logrus.DebugLevel)
	s, err := pg.Open(ctx, url, logrus.NewEntry(logger))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Put(ctx, []*pb.Event{oom(1, 0), oom(2, 0)}); err != nil {
		t.Fatal(err)
	}

	other := oom(7, 0)
	other.GetOom().Kind = "node"
	rec, err := store.Encode(other, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	r := rec.Row()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `INSERT INTO events (id, node, boot_id, type, seq, time, received, kind, collateral, verdict, memcg, rev, seen, refs, data)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
		r.ID, r.Node, r.BootID, r.Type, r.Seq, r.Time, r.Received, r.Kind, r.Collateral, r.Verdict, r.Memcg, r.Revision, r.Seen, r.Refs, r.Data); err != nil {
		t.Fatal(err)
	}

	type result struct {
		res []store.PutResult
		err error
	}
	done := make(chan result, 1)
	batch := []*pb.Event{oom(6, 0), oom(7, 0), oom(8, 0)}
	for i := int64(1000); i <= 1300; i++ {
		batch = append(batch, oom(i, time.Hour), oom(i, time.Hour))
	}
	go func() {
		res, err := s.Put(ctx, batch)
		done <- result{res, err}
	}()
	// The COPY waits on the uncommitted row's ID; then it commits. (Asked
	// on another connection: within c's transaction the view of
	// pg_stat_activity would stay as it was first read.)
	watch, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer watch.Close(ctx)
	deadline := time.Now().Add(20 * time.Second)
	for {
		var waiting int
		if err := watch.QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query ILIKE 'copy%events%'`).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the batch's COPY never waited on the other writer's row")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	got := <-done
	if got.err != nil {
		t.Fatalf("put: %v", got.err)
	}
	want := []store.PutResult{{Stored: true}, {Duplicate: true}, {Stored: true}}
	for range 301 {
		want = append(want, store.PutResult{Stored: true}, store.PutResult{Duplicate: true})
	}
	if !slices.Equal(got.res, want) {
		t.Fatalf("put %+v, want %+v", got.res, want)
	}
	if !slices.ContainsFunc(hook.AllEntries(), func(e *logrus.Entry) bool { return e.Message == "batch copied again by insert" }) {
		t.Error("the batch was not stored again by insert")
	}
	e, err := s.Get(ctx, r.ID)
	if err != nil || e.GetOom().GetKind() != "node" {
		t.Fatalf("get %s: %v, %v: want the other writer's", r.ID, e, err)
	}
	evs, _, err := s.List(ctx, &pb.EventFilter{Until: timestamppb.New(time.Date(2026, 3, 1, 12, 1, 0, 0, time.UTC))}, 100, "")
	if err != nil || len(evs) != 5 {
		t.Fatalf("listed %d (%v), want 5", len(evs), err)
	}
	// The numbers drawn for COPY and by the identity never collide, and
	// list in the order they were drawn, newest first at one time: 7 took
	// its number before the batch.
	var seqs []int64
	for _, e := range evs {
		seqs = append(seqs, e.GetSeq())
	}
	if !slices.Equal(seqs, []int64{8, 6, 7, 2, 1}) {
		t.Errorf("listed seqs %v, want 8 6 7 2 1", seqs)
	}
	if n, err := count(ctx, c); err != nil || n != 5+301 {
		t.Errorf("%d events stored (%v), want %d", n, err, 5+301)
	}
}

func count(ctx context.Context, c *pgx.Conn) (int, error) {
	var n int
	err := c.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n)
	return n, err
}
