// Command fillstore fills a new oomwatch database through pkg/store with
// the events of the query hook (bench.QueryEvents), in large batches, the
// next batch encoded while the last one commits. It is built static and
// run by bench.QueryLatency, so that the bench module itself does not
// build SQLite.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/bench"
	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func main() {
	qc := bench.QueryFull
	fs := flag.NewFlagSet("fillstore", flag.ExitOnError)
	repoRoot := fs.String("repo-root", "..", "the oomwatch repository root (for bench.KillCapture)")
	db := fs.String("db", "", "database to create")
	fs.IntVar(&qc.Events, "events", qc.Events, "events to store")
	fs.IntVar(&qc.Cluster.Nodes, "nodes", qc.Cluster.Nodes, "nodes")
	fs.IntVar(&qc.Cluster.Namespaces, "namespaces", qc.Cluster.Namespaces, "namespaces")
	fs.IntVar(&qc.Cluster.Pods, "pods", qc.Cluster.Pods, "pods")
	fs.DurationVar(&qc.Span, "span", qc.Span, "time the events span")
	end := fs.String("end", "", "time of the last event, RFC 3339 (default now)")
	_ = fs.Parse(os.Args[1:])
	if err := run(*repoRoot, *db, *end, qc); err != nil {
		fmt.Fprintln(os.Stderr, "fillstore:", err)
		os.Exit(1)
	}
}

func run(repoRoot, db, end string, qc bench.QueryConfig) error {
	if db == "" {
		return errors.New("-db is required")
	}
	if _, err := os.Stat(db); err == nil {
		return fmt.Errorf("%s exists", db)
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
	st, err := store.Open(ctx, db, logrus.NewEntry(quiet))
	if err != nil {
		return err
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
	genErr := bench.QueryEvents(repoRoot, qc, last.Add(-qc.Span), 20_000, func(evs []*pb.Event) error {
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
	return errors.Join(genErr, <-done, st.Close())
}
