// Package migration copies an aggregator's SQLite event history into a
// PostgreSQL database: `aggregator migrate --from oomwatch.db --to
// postgres://...`, for moving a single-replica install to the replicated
// one (deploy-ha/). Every stored event is copied as it is stored (its
// latest revision, its received time, its bytes) in the order it was
// stored, in batches of one transaction each. PostgreSQL deduplicates by
// event ID, so a copy run again stores nothing twice, and one that
// stopped (the database went away, the pod was killed) is resumed by
// running it again: what was committed stays, what was not is copied.
package migration

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg"
)

// DefaultBatch is how many events one transaction copies by default.
const DefaultBatch = 500

// progressEvery is how many events apart the copy's progress is logged.
const progressEvery = 10000

// maxBatch bounds --batch: PostgreSQL takes each column of a batch as one
// array parameter, and a batch is held in memory.
const maxBatch = 10000

// Options are the flags of `aggregator migrate`. Each is also read from
// OOMWATCH_<NAME>, e.g. OOMWATCH_TO, so that the database URL and its
// password can come from a Secret rather than the command line.
type Options struct {
	// From is the SQLite database file, To the PostgreSQL URL.
	From, To string
	// Batch is how many events one transaction copies.
	Batch    int
	LogLevel string
}

// AddFlags registers the options on fs, with their defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.From, "from", "", "the SQLite database file of the aggregator to copy (read-only; never changed)")
	fs.StringVar(&o.To, "to", "", "the PostgreSQL database URL to copy into (postgres://user:password@host:5432/database?sslmode=verify-full); better from OOMWATCH_TO than on the command line")
	fs.IntVar(&o.Batch, "batch", DefaultBatch, "events copied per transaction")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
}

// Validate checks the options. It never repeats --to, which holds a
// password.
func (o *Options) Validate() error {
	switch {
	case o.From == "":
		return errors.New("--from (the SQLite database file) is required")
	case o.To == "":
		return errors.New("--to (the PostgreSQL database URL) is required")
	case pg.IsURL(o.From):
		return errors.New("--from must be the SQLite database file, not a PostgreSQL URL")
	case !pg.IsURL(o.To):
		return errors.New("--to must be a PostgreSQL URL (postgres:// or postgresql://): migrate copies SQLite into PostgreSQL only")
	case o.Batch < 1 || o.Batch > maxBatch:
		return fmt.Errorf("--batch %d: want 1 to %d", o.Batch, maxBatch)
	}
	if err := pg.CheckURL(o.To); err != nil {
		return fmt.Errorf("--to: %w", err)
	}
	if _, err := logrus.ParseLevel(o.LogLevel); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	return nil
}

// Counts are what a copy did with the events it read.
type Counts struct {
	// Read from the SQLite history.
	Read int64
	// Copied: new in PostgreSQL.
	Copied int64
	// Updated: PostgreSQL held an older revision, which this one replaced.
	Updated int64
	// Present: PostgreSQL held it already, at this revision or a newer
	// one (an earlier run's copy, or an agent's re-send to a replica).
	Present int64
}

// String is the counts as the command prints them.
func (c Counts) String() string {
	return fmt.Sprintf("read %d, copied %d, updated %d, already present %d", c.Read, c.Copied, c.Updated, c.Present)
}

// Source is what events are copied from: a store.History.
type Source interface {
	Next(ctx context.Context, after int64, n int) ([]*store.Record, int64, error)
}

// Importer is what events are copied into: a pg.Store, whose Import
// stores them as received, without announcing them to the replicas.
type Importer interface {
	Import(ctx context.Context, recs []*store.Record) ([]store.PutResult, error)
}

// Copy copies every event of src into dst, batch events per transaction at
// most, in src's order, and returns the counts. progress, when set, is
// called after each transaction with the counts so far. On an error, what
// the counts say was copied is committed; the error says so.
func Copy(ctx context.Context, src Source, dst Importer, batch int, progress func(Counts), log *logrus.Entry) (Counts, error) {
	var c Counts
	var after int64
	for {
		recs, next, err := src.Next(ctx, after, batch)
		if err != nil {
			return c, fmt.Errorf("copy stopped reading the SQLite history (%s, all committed): %w", c, err)
		}
		if len(recs) == 0 {
			return c, nil
		}
		for len(recs) > 0 {
			n := distinctTimes(recs)
			res, err := dst.Import(ctx, recs[:n])
			if err != nil {
				return c, fmt.Errorf("copy stopped (%s, all committed: run it again to copy the rest): %w", c, err)
			}
			for i, r := range res {
				switch {
				case r.Stored:
					c.Copied++
				case r.Updated:
					c.Updated++
				default:
					c.Present++
				}
				if recs[i].Event() == nil {
					log.WithField("id", recs[i].Row().ID).Warn("copied an event whose stored bytes cannot be decoded, as it was stored")
				}
			}
			c.Read += int64(n)
			recs = recs[n:]
			if progress != nil {
				progress(c)
			}
		}
		after = next
	}
}

// distinctTimes is the length of the longest prefix of recs whose times
// differ. A batch is stored in the order of its IDs, and events of the
// same time are listed in the order they were stored: such events go in
// separate transactions, so that PostgreSQL lists them in the SQLite
// history's order.
func distinctTimes(recs []*store.Record) int {
	seen := make(map[int64]bool, len(recs))
	for i, r := range recs {
		t := r.Row().Time
		if seen[t] {
			return i
		}
		seen[t] = true
	}
	return len(recs)
}

// Run copies the SQLite history o.From into the PostgreSQL database o.To
// (creating its schema when new), logging progress, and writes the
// counts to out.
func Run(ctx context.Context, o Options, out io.Writer, log *logrus.Entry) (Counts, error) {
	src, err := store.OpenHistory(ctx, o.From)
	if err != nil {
		return Counts{}, fmt.Errorf("--from: %w", err)
	}
	defer src.Close()
	total, err := src.Count(ctx)
	if err != nil {
		return Counts{}, fmt.Errorf("--from: %w", err)
	}
	dst, err := pg.Open(ctx, o.To, log.WithField("component", "store"))
	if err != nil {
		return Counts{}, fmt.Errorf("--to: %w", err)
	}
	defer dst.Close()
	fmt.Fprintf(out, "copying %d events from %s into PostgreSQL\n", total, o.From)
	var logged int64
	c, err := Copy(ctx, src, dst, o.Batch, func(c Counts) {
		entry := log.WithFields(logrus.Fields{"read": c.Read, "of": total, "copied": c.Copied, "updated": c.Updated, "present": c.Present})
		if c.Read-logged < progressEvery {
			entry.Debug("batch committed")
			return
		}
		logged = c.Read
		entry.Info("copying")
	}, log)
	fmt.Fprintln(out, c)
	return c, err
}
