package pg_test

import (
	"context"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestImportIsNotNews: events Imported are stored (deduplicated as Put's)
// with the received time they came with, but a replica following the
// database is not handed them; what is Put afterwards it is.
func TestImportIsNotNews(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	importer, replica := open(t, url), open(t, url)
	f := follow(t, replica)
	received := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC)
	var recs []*store.Record
	for i := range int64(3) {
		r, err := store.Encode(oom(i, time.Duration(i)*time.Second), received)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	for round, want := range []store.PutResult{{Stored: true}, {Duplicate: true}} {
		res, err := importer.Import(ctx, recs)
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range res {
			if r != want {
				t.Fatalf("round %d, event %d: %+v, want %+v", round, i, r, want)
			}
		}
	}
	got, err := replica.Get(ctx, recs[1].Row().ID)
	if err != nil || !got.GetReceived().AsTime().Equal(received) {
		t.Fatalf("Get = %v, %v; want it received at %v", got, err, received)
	}
	if _, err := importer.Put(ctx, []*pb.Event{oom(9, 9*time.Second)}); err != nil {
		t.Fatal(err)
	}
	// The Put is handed on; had the imports been announced, they would
	// have come first.
	waitEvents(t, f, 1)
	time.Sleep(200 * time.Millisecond)
	evs, _ := f.snapshot()
	checkOnceInOrder(t, evs, []int64{9})
}
