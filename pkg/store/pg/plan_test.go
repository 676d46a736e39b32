package pg

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestQueryPlans checks that every filter shape can be answered from an
// index in its order, newest first, with no sort of the events: with
// sequential and bitmap scans off (a test database is too small for the
// planner to prefer an index on its own), the plan has no Sort node. Open
// warnings alone may sort, the few open ones (the partial index of open
// warnings, as in SQLite), or walk the warnings newest first: the planner
// chooses by the table's statistics.
func TestQueryPlans(t *testing.T) {
	url := pgtest.DB(t)
	l := logrus.New()
	l.SetOutput(io.Discard)
	s, err := Open(context.Background(), url, logrus.NewEntry(l))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	for _, set := range []string{"SET enable_seqscan = off", "SET enable_bitmapscan = off"} {
		if _, err := c.Exec(ctx, set); err != nil {
			t.Fatal(err)
		}
	}
	since := timestamppb.New(time.Now())
	for _, tc := range []struct {
		f       *pb.EventFilter
		maySort bool
	}{
		{f: nil},
		{f: &pb.EventFilter{Since: since}},
		{f: &pb.EventFilter{Namespace: "shop", Since: since}},
		{f: &pb.EventFilter{Namespace: "shop", Pod: "cart-1", Container: "api"}},
		{f: &pb.EventFilter{Container: "api", Kind: "node"}},
		{f: &pb.EventFilter{Node: "node-a", Since: since}},
		{f: &pb.EventFilter{Node: "node-a", Namespace: "shop"}},
		{f: &pb.EventFilter{Types: []string{"exit"}, Verdicts: []string{"oom-limit"}}},
		{f: &pb.EventFilter{Types: []string{"oom", "exit"}, CollateralOnly: true}},
		{f: &pb.EventFilter{Types: []string{"warning"}, WarningKinds: []pb.WarningKind{pb.WarningKind_WARNING_KIND_FORECAST}}},
		{f: &pb.EventFilter{OpenWarningsOnly: true}, maySort: true},
	} {
		for _, before := range []*store.Cursor{nil, {Time: 1, ID: 1}} {
			stmt, args, _ := scan{f: tc.f, cols: "e.rowid, e.time, e.data", limit: 10, before: before, now: time.Now()}.sql()
			rows, err := c.Query(ctx, "EXPLAIN "+stmt, args...)
			if err != nil {
				t.Fatalf("%v: %v", tc.f, err)
			}
			var plan []string
			for rows.Next() {
				var line string
				if err := rows.Scan(&line); err != nil {
					t.Fatal(err)
				}
				plan = append(plan, line)
			}
			rows.Close()
			p := strings.Join(plan, "\n")
			if strings.Contains(p, "Sort") && !tc.maySort {
				t.Errorf("filter %v: sorts the events:\n%s", tc.f, p)
			}
			if strings.Contains(p, "Seq Scan on events") {
				t.Errorf("filter %v: reads all events:\n%s", tc.f, p)
			}
		}
	}
}
