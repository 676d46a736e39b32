// Command fillstore fills a new oomwatch database through pkg/store (an
// SQLite file) or pkg/store/pg (a PostgreSQL URL, an empty database) with
// the events of the query hook (bench.QueryEvents), in large batches, the
// next batch encoded while the last one commits, and prints the
// database's size in bytes. It is built static and run by
// bench.QueryLatency, so that the bench module itself does not build
// SQLite.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/bench"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func main() {
	qc := bench.QueryFull
	fs := flag.NewFlagSet("fillstore", flag.ExitOnError)
	repoRoot := fs.String("repo-root", "..", "the oomwatch repository root (for bench.KillCapture)")
	db := fs.String("db", "", "database to create (a file), or to fill (postgres://...)")
	fs.IntVar(&qc.Events, "events", qc.Events, "events to store")
	fs.IntVar(&qc.Cluster.Nodes, "nodes", qc.Cluster.Nodes, "nodes")
	fs.IntVar(&qc.Cluster.Namespaces, "namespaces", qc.Cluster.Namespaces, "namespaces")
	fs.IntVar(&qc.Cluster.Pods, "pods", qc.Cluster.Pods, "pods")
	fs.DurationVar(&qc.Span, "span", qc.Span, "time the events span")
	end := fs.String("end", "", "time of the last event, RFC 3339 (default now)")
	batch := fs.Int("batch", 20_000, "events per transaction")
	_ = fs.Parse(os.Args[1:])
	if err := run(*repoRoot, *db, *end, *batch, qc); err != nil {
		fmt.Fprintln(os.Stderr, "fillstore:", err)
		os.Exit(1)
	}
}

func run(repoRoot, db, end string, batch int, qc bench.QueryConfig) error {
	if db == "" {
		return errors.New("-db is required")
	}
	last := time.Now()
	if end != "" {
		var err error
		if last, err = time.Parse(time.RFC3339Nano, end); err != nil {
			return fmt.Errorf("-end: %w", err)
		}
	}
	quiet := logrus.New()
	quiet.SetOutput(io.Discard)
	ctx := context.Background()
	var st putter
	if pg.IsURL(db) {
		s, err := pg.Open(ctx, db, logrus.NewEntry(quiet))
		if err != nil {
			return err
		}
		st = s
	} else {
		if _, err := os.Stat(db); err == nil {
			return fmt.Errorf("%s exists", db)
		}
		s, err := store.Open(ctx, db, logrus.NewEntry(quiet))
		if err != nil {
			return err
		}
		st = s
	}
	// Encoding (protobuf) on this goroutine, committing on the other.
	batches := make(chan []*store.Record, 1)
	done := make(chan error, 1)
	go func() {
		var err error
		for recs := range batches {
			if err == nil {
				_, err = st.PutRecords(ctx, recs)
			}
		}
		done <- err
	}()
	now := time.Now()
	genErr := bench.QueryEvents(repoRoot, qc, last.Add(-qc.Span), batch, func(evs []*pb.Event) error {
		recs := make([]*store.Record, len(evs))
		for i, e := range evs {
			r, err := store.Encode(e, now)
			if err != nil {
				return err
			}
			recs[i] = r
		}
		batches <- recs
		return nil
	})
	close(batches)
	if err := errors.Join(genErr, <-done, st.Close()); err != nil {
		return err
	}
	size, err := dbSize(ctx, db)
	if err != nil {
		return err
	}
	fmt.Println(size)
	return nil
}

// putter is what fillstore needs of a store.
type putter interface {
	PutRecords(ctx context.Context, recs []*store.Record) ([]store.PutResult, error)
	Close() error
}

// dbSize returns the size of the database: its files (SQLite: the
// database and its WAL), or what PostgreSQL reports, after a VACUUM
// ANALYZE, which the server's autovacuum would run on its own after so
// many inserts.
func dbSize(ctx context.Context, db string) (int64, error) {
	if !pg.IsURL(db) {
		var size int64
		for _, suffix := range []string{"", "-wal"} {
			if fi, err := os.Stat(db + suffix); err == nil {
				size += fi.Size()
			}
		}
		return size, nil
	}
	c, err := pgx.Connect(ctx, db)
	if err != nil {
		return 0, fmt.Errorf("size: %w", err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, "VACUUM ANALYZE"); err != nil {
		return 0, fmt.Errorf("vacuum: %w", err)
	}
	var size int64
	if err := c.QueryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&size); err != nil {
		return 0, fmt.Errorf("size: %w", err)
	}
	return size, nil
}
