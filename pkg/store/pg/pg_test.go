package pg_test

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	"github.com/oomwatch/oomwatch/pkg/store/storetest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func open(t *testing.T, url string) *pg.Store {
	t.Helper()
	s, err := pg.Open(context.Background(), url, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestConformance runs the backends' suite on PostgreSQL.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Backend { return open(t, pgtest.DB(t)) })
}

func oom(seq int64, at time.Duration) *pb.Event {
	return &pb.Event{Node: "node-a", BootId: "boot-1", Seq: seq, Time: timestamppb.New(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(at)),
		Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "limit", Victims: []*pb.Process{{Pid: 1, Comm: "worker",
			Workload: &pb.Workload{Namespace: "shop", PodName: "cart", ContainerName: "api"}}}}}}
}

// Replicas starting at once on a new database: one creates the schema,
// the others wait for it under the lock and find it done; all share the
// page-token key, so a token of one is good on another.
func TestConcurrentOpen(t *testing.T) {
	url := pgtest.DB(t)
	const replicas = 5
	stores := make([]*pg.Store, replicas)
	errs := make(chan error, replicas)
	for i := range replicas {
		go func() {
			s, err := pg.Open(context.Background(), url, quietLog())
			stores[i] = s
			errs <- err
		}()
	}
	for range replicas {
		if err := <-errs; err != nil {
			t.Fatalf("concurrent Open: %v", err)
		}
	}
	for _, s := range stores {
		t.Cleanup(func() { s.Close() })
	}
	ctx := context.Background()
	if _, err := stores[0].Put(ctx, []*pb.Event{oom(1, 0), oom(2, time.Second)}); err != nil {
		t.Fatal(err)
	}
	_, tok, err := stores[1].List(ctx, nil, 1, "")
	if err != nil || tok == "" {
		t.Fatalf("first page: %q %v", tok, err)
	}
	page, _, err := stores[2].List(ctx, nil, 1, tok)
	if err != nil || len(page) != 1 || page[0].GetSeq() != 1 {
		t.Fatalf("another replica's token: %v %v", page, err)
	}
}

// Page tokens and deduplication survive a restart of the aggregator.
func TestReopen(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	s, err := pg.Open(ctx, url, quietLog())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(ctx, []*pb.Event{oom(1, 0), oom(2, time.Second)}); err != nil {
		t.Fatal(err)
	}
	_, tok, err := s.List(ctx, nil, 1, "")
	if err != nil || tok == "" {
		t.Fatal(tok, err)
	}
	s.Close()
	if _, err := s.Get(ctx, "x"); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Get after Close = %v, want ErrClosed", err)
	}
	if _, err := s.Put(ctx, []*pb.Event{oom(3, 0)}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Put after Close = %v, want ErrClosed", err)
	}
	s2 := open(t, url)
	page, _, err := s2.List(ctx, nil, 1, tok)
	if err != nil || len(page) != 1 || page[0].GetSeq() != 1 {
		t.Fatalf("token after reopen: %v %v", page, err)
	}
	res, err := s2.Put(ctx, []*pb.Event{oom(1, 0)})
	if err != nil || !res[0].Duplicate {
		t.Fatalf("dedup after reopen: %+v %v", res, err)
	}
}

// A database written by a newer oomwatch is refused, not downgraded.
func TestSchemaTooNew(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	open(t, url).Close()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `UPDATE schema_version SET version = 99`); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Open(ctx, url, quietLog()); !errors.Is(err, store.ErrSchemaTooNew) {
		t.Fatalf("Open = %v, want ErrSchemaTooNew", err)
	}
}

// Bad URLs and unreachable servers are reported at Open, with the
// password never in the message.
func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name, url string
		bad       bool
	}{
		{name: "not postgres", url: "mysql://u@h/db", bad: true},
		{name: "garbled", url: "postgres://u:secret@h:notaport/db", bad: true},
		{name: "bad option", url: "postgres://u:secret@h/db?sslmode=sometimes", bad: true},
		{name: "no server", url: "postgres://u:secret@/db?host=" + t.TempDir() + "&connect_timeout=2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := pg.CheckURL(tc.url); (err != nil) != tc.bad {
				t.Errorf("CheckURL = %v, bad %v", err, tc.bad)
			}
			start := time.Now()
			s, err := pg.Open(ctx, tc.url, quietLog())
			if err == nil {
				s.Close()
				t.Fatal("Open succeeded")
			}
			if errors.Is(err, pg.ErrBadURL) != tc.bad {
				t.Errorf("Open = %v, ErrBadURL %v", err, tc.bad)
			}
			if d := time.Since(start); d > pg.ConnectTimeout+5*time.Second {
				t.Errorf("Open took %v", d)
			}
			if s := err.Error(); containsSecret(s) {
				t.Errorf("the password is in the error: %s", s)
			}
			t.Log(err)
		})
	}
}

func containsSecret(s string) bool {
	for i := 0; i+6 <= len(s); i++ {
		if s[i:i+6] == "secret" {
			return true
		}
	}
	return false
}

// Events' bytes stay in the row up to a page, and larger ones are
// compressed with LZ4 (migration 3): pgtest's server, Debian's, is built
// with it.
func TestDataStorage(t *testing.T) {
	url := pgtest.DB(t)
	ctx := context.Background()
	s := open(t, url)
	defer s.Close()
	if _, err := s.Put(ctx, []*pb.Event{oom(1, 0)}); err != nil {
		t.Fatal(err)
	}
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	var method string
	if err := c.QueryRow(ctx, `SELECT attcompression::text FROM pg_attribute
		WHERE attrelid = 'events'::regclass AND attname = 'data'`).Scan(&method); err != nil {
		t.Fatal(err)
	}
	if method != "l" {
		t.Errorf("events.data compression = %q, want l (LZ4)", method)
	}
	var opts []string
	if err := c.QueryRow(ctx, `SELECT reloptions FROM pg_class WHERE oid = 'events'::regclass`).Scan(&opts); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(opts, "toast_tuple_target=8160") {
		t.Errorf("events' options = %v, want toast_tuple_target=8160", opts)
	}
}

// Incidents reads kills through a cursor, in growing fetches: a filter
// with thousands of kills gives, page after page, exactly the incidents
// of the SQLite store over the same events, across fetch boundaries.
func TestIncidentsAcrossFetches(t *testing.T) {
	ctx := context.Background()
	p := open(t, pgtest.DB(t))
	lite, err := store.Open(ctx, filepath.Join(t.TempDir(), "oomwatch.db"), quietLog())
	if err != nil {
		t.Fatal(err)
	}
	defer lite.Close()
	// 3,000 kills on 7 nodes, 25 s apart: incidents of several kills,
	// whose groups straddle the fetches.
	var evs []*pb.Event
	for i := range 3000 {
		e := oom(int64(i), time.Duration(i)*25*time.Second)
		e.Node = "node-" + strconv.Itoa(i%7)
		evs = append(evs, e)
	}
	for _, put := range []func(context.Context, []*pb.Event) ([]store.PutResult, error){p.Put, lite.Put} {
		if _, err := put(ctx, evs); err != nil {
			t.Fatal(err)
		}
	}
	for _, size := range []int{50, 1000} {
		var ptok, ltok string
		for page := 0; ; page++ {
			pi, pnext, err := p.Incidents(ctx, nil, time.Minute, size, ptok)
			if err != nil {
				t.Fatal(err)
			}
			li, lnext, err := lite.Incidents(ctx, nil, time.Minute, size, ltok)
			if err != nil {
				t.Fatal(err)
			}
			if len(pi) != len(li) || (pnext == "") != (lnext == "") {
				t.Fatalf("size %d, page %d: %d incidents (more %v), SQLite %d (more %v)", size, page, len(pi), pnext != "", len(li), lnext != "")
			}
			for i := range pi {
				if !proto.Equal(pi[i], li[i]) {
					t.Fatalf("size %d, page %d, incident %d:\n%v\nSQLite:\n%v", size, page, i, pi[i], li[i])
				}
			}
			if pnext == "" {
				break
			}
			ptok, ltok = pnext, lnext
		}
	}
}
