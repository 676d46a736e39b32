// Package store keeps the aggregator's events in an embedded SQLite
// database (modernc.org/sqlite, no cgo): each event's protobuf bytes plus
// indexed columns and a side table of the pods, namespaces and containers
// it touches, so that the queries oomctl asks are index lookups. Events are
// deduplicated by (node, boot_id, type, seq); once Put returns nil they
// survive a crash of the process and of the machine.
//
// Backend is what an event database does, and what the aggregator holds;
// package store/pg is the PostgreSQL one, built on this package's encoding,
// filters, page tokens and incident grouping, and package store/storetest
// the conformance suite both pass.
package store

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	_ "modernc.org/sqlite" // the "sqlite" database/sql driver
)

// Sentinel errors.
var (
	// ErrNotFound: no event has this ID.
	ErrNotFound = errors.New("event not found")
	// ErrBadPageToken: the page token is garbled, forged, or belongs to
	// another query.
	ErrBadPageToken = errors.New("invalid page token")
	// ErrInvalidFilter: the filter cannot be answered (unknown type, since
	// after until, ...).
	ErrInvalidFilter = errors.New("invalid filter")
	// ErrInvalidEvent: an event lacks what its identity needs.
	ErrInvalidEvent = errors.New("invalid event")
	// ErrSchemaTooNew: the database was written by a newer oomwatch.
	ErrSchemaTooNew = errors.New("database schema is newer than this binary")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
)

// readers bounds the connections that answer queries concurrently; WAL
// lets them read while the single writer commits.
const readers = 4

// Store is the event database. Its methods are safe for concurrent use.
type Store struct {
	log *logrus.Entry
	// w holds the single writer connection wc: SQLite has one writer at a
	// time, and one connection makes writes queue on wmu rather than spin
	// on SQLITE_BUSY. Its statements are prepared once on wc.
	w   *sql.DB
	wc  *sql.Conn
	wmu sync.Mutex
	// path is the database's file.
	path string
	// r answers queries.
	r *sql.DB
	// tok signs page tokens with a secret that lives in the database, so
	// that tokens stay valid across restarts.
	tok   Tokens
	stmts stmtCache
	// ck checkpoints the WAL into the database in the background, so that
	// commits do not (see checkpoints).
	ck       *sql.DB
	ckStop   chan struct{}
	ckDone   chan struct{}
	closeErr error
	closed   sync.Once
}

// Open opens (creating when missing) the database at path and brings its
// schema up to date.
func Open(ctx context.Context, path string, log *logrus.Entry) (*Store, error) {
	return openWith(ctx, path, log, checkpointPolicy{after: checkpointAfter, walBytes: walCheckpointBytes})
}

func openWith(ctx context.Context, path string, log *logrus.Entry, ckp checkpointPolicy) (*Store, error) {
	if path == "" {
		return nil, fmt.Errorf("open store: empty path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("open store: %w", err)
		}
	}
	// Durability: WAL with synchronous=FULL fsyncs the WAL on every commit,
	// so a committed Put survives a SIGKILL and a power cut alike. (NORMAL
	// in WAL mode would survive a SIGKILL, since the WAL sits in the page
	// cache, but not a power cut.) The group commit in package server makes
	// the cost one fsync per batch, not per event.
	q := url.Values{}
	// Pages of 16 KiB: an event's row (~2.8 kB for a large kill) fills a
	// 4 KiB page alone but shares a 16 KiB one with four others, and a
	// commit writes a quarter of the WAL frames (a pwrite for each frame's
	// header and page): with 1,000 agents streaming, the aggregator's CPU
	// per event -25%, the file -18%, bytes written +10% (BENCHMARKS.md).
	// It applies to a new database; one created before keeps its pages.
	// Each connection caches up to 32 MiB of pages; SQLite's memory is
	// outside GOMEMLIMIT's reach.
	q.Add("_pragma", "page_size(16384)")
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", "FULL")
	q.Set("_busy_timeout", "10000")
	q.Add("_pragma", "cache_size(-32768)")
	q.Add("_pragma", "temp_store(MEMORY)")
	q.Add("_pragma", fmt.Sprintf("journal_size_limit(%d)", ckp.journalLimit()))
	wq := cloneValues(q)
	wq.Add("_pragma", "wal_autocheckpoint(0)")
	w, err := sql.Open("sqlite", "file:"+path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	w.SetMaxOpenConns(1)
	wc, err := w.Conn(ctx)
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	s := &Store{log: log, path: path, w: w, wc: wc, stmts: stmtCache{conn: wc}}
	if err := s.migrate(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	rq := cloneValues(q)
	rq.Set("_query_only", "1")
	r, err := sql.Open("sqlite", "file:"+path+"?"+rq.Encode())
	if err != nil {
		w.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	r.SetMaxOpenConns(readers)
	r.SetMaxIdleConns(readers)
	r.SetConnMaxIdleTime(0)
	r.SetConnMaxLifetime(0)
	s.r = r
	if err := s.loadSecret(ctx); err != nil {
		s.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	ck, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	ck.SetMaxOpenConns(1)
	s.ck, s.ckStop, s.ckDone = ck, make(chan struct{}), make(chan struct{})
	go s.checkpoints(ckp)
	return s, nil
}

// The WAL is copied into the database (checkpointed) at most every
// checkpointAfter, or sooner once it has grown past walCheckpointBytes; it
// is looked at every checkpointTick. Each copy writes the newest version
// of every page the WAL holds, once: under a steady stream of commits the
// same index pages (each node's and pod's place in its index) are
// rewritten by every commit, so copying after several commits instead of
// after each writes them once for several (issue #19: the bytes written
// per event). What waits is bounded: a copy at least every two seconds,
// and a WAL of about walCheckpointBytes plus a commit at most.
const (
	checkpointTick     = 200 * time.Millisecond
	checkpointAfter    = 2 * time.Second
	walCheckpointBytes = 256 << 20
)

// checkpointPolicy is when the WAL is copied (Open's: checkpointAfter
// and walCheckpointBytes; tests shrink them).
type checkpointPolicy struct {
	after    time.Duration
	walBytes int64
}

// journalLimit is what a WAL's file is cut back to once copied: a
// quarter of walBytes, so that the file's size is the WAL's own whenever
// it exceeds walBytes (see checkpoints).
func (p checkpointPolicy) journalLimit() int64 { return p.walBytes / 4 }

// checkpoints copies the WAL into the database until Close. SQLite's
// automatic checkpoint runs inside the commit that crosses its threshold,
// on the single writer; here the copying happens beside the writer, and
// pages written by several commits are copied once. Each round copies
// what it can without blocking the writer, then, holding the writer
// briefly, the few frames committed meanwhile, so that the checkpoint is
// complete and the next commit starts the WAL over instead of growing it.
func (s *Store) checkpoints(p checkpointPolicy) {
	defer close(s.ckDone)
	t := time.NewTicker(checkpointTick)
	defer t.Stop()
	ctx := context.Background()
	last := time.Now()
	for {
		select {
		case <-s.ckStop:
			return
		case now := <-t.C:
			// A copied WAL is written over from its start and its file
			// cut back to journalLimit, so a file larger than walBytes
			// holds that much not yet copied.
			if now.Sub(last) < p.after && s.walSize() <= p.walBytes {
				continue
			}
			last = now
		}
		var busy, frames, copied int
		if err := s.ck.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied); err != nil {
			s.log.WithError(err).Warn("checkpoint failed")
			continue
		}
		if frames == 0 {
			continue
		}
		s.wmu.Lock()
		err := s.ck.QueryRowContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
		s.wmu.Unlock()
		if err != nil {
			s.log.WithError(err).Warn("checkpoint failed")
		}
	}
}

// walSize returns the size of the WAL's file (0 when there is none).
func (s *Store) walSize() int64 {
	fi, err := os.Stat(s.path + "-wal")
	if err != nil {
		return 0
	}
	return fi.Size()
}

func cloneValues(v url.Values) url.Values {
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

// Close closes the database. Puts committed before stay stored.
func (s *Store) Close() error {
	s.closed.Do(func() { s.closeErr = s.close() })
	return s.closeErr
}

func (s *Store) close() error {
	var errs []error
	if s.ck != nil {
		close(s.ckStop)
		<-s.ckDone
		errs = append(errs, s.ck.Close())
	}
	if s.r != nil {
		errs = append(errs, s.r.Close())
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	errs = append(errs, s.stmts.close())
	if s.wc != nil {
		errs = append(errs, s.wc.Close())
		s.wc = nil
	}
	if s.w != nil {
		errs = append(errs, s.w.Close())
		s.w = nil
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close store: %w", err)
	}
	return nil
}

// migrations are applied in order; the database's schema_version is how
// many have been. Append only: never edit one that has shipped.
var migrations = []string{
	// 1: events, their references to workloads, settings.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BLOB NOT NULL
) WITHOUT ROWID;

-- One row per event. rowid orders events stored at the same time; (time,
-- rowid) is the keyset of every listing.
CREATE TABLE events (
	rowid      INTEGER PRIMARY KEY,
	id         TEXT    NOT NULL UNIQUE, -- node/boot_id/type/seq
	node       TEXT    NOT NULL,
	boot_id    TEXT    NOT NULL,
	type       TEXT    NOT NULL,        -- oom, loss, exit
	seq        INTEGER NOT NULL,
	time       INTEGER NOT NULL,        -- Unix nanoseconds
	received   INTEGER NOT NULL,        -- Unix nanoseconds
	kind       TEXT    NOT NULL,        -- OOM kills: node, limit, ...
	collateral INTEGER NOT NULL,
	verdict    TEXT    NOT NULL,        -- exits: oom-limit, not-oom, ...
	data       BLOB    NOT NULL         -- the Event, protobuf
);
CREATE INDEX events_time      ON events(time);
CREATE INDEX events_node_time ON events(node, time);
-- Losses and exits by type; OOM kills, most events, read events_time.
CREATE INDEX events_type_time ON events(type, time) WHERE type <> 'oom';

-- The namespaces, pods (by name and by UID) and containers an event
-- touches, as 64-bit hashes of (kind, value) with the event's time, so that
-- "namespace X, newest first" is one range of the primary key. Integer keys
-- keep the table small and its inserts cheap; a hash collision can only
-- add candidates, which List checks against the event itself.
CREATE TABLE refs (
	h     INTEGER NOT NULL,
	time  INTEGER NOT NULL,
	event INTEGER NOT NULL,
	PRIMARY KEY (h, time, event)
) WITHOUT ROWID;
`,
	// 2: the revision of an event updated under its identity (oom-child
	// stories): a higher one replaces the stored event.
	`ALTER TABLE events ADD COLUMN rev INTEGER NOT NULL DEFAULT 0;`,
	// 3: the limited cgroup of a limit kill: limit kills of different
	// limited cgroups are separate incidents (stories) even when close in
	// time. Rows stored before keep '' and group as they did.
	`ALTER TABLE events ADD COLUMN memcg TEXT NOT NULL DEFAULT '';`,
	// 4: warnings (issue #17). seen is the time of the stored revision
	// (Event.time): a warning's row time is its opening time (since), which
	// never changes, and seen tells an open warning still refreshed by its
	// agent from a stale one. Rows stored before hold 0; only warnings read
	// it. The partial index answers "open now" without a scan.
	`ALTER TABLE events ADD COLUMN seen INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_open_warnings ON events(seen) WHERE type = 'warning' AND verdict = 'open';`,
	// 5: events' data may be compressed (see pack); the schema is
	// unchanged, but an older oomwatch, which cannot read such rows,
	// must refuse the database (ErrSchemaTooNew) rather than fail on
	// them.
	`SELECT 1;`,
	// 6: the same for data compressed with a dictionary (formatDict1).
	`SELECT 1;`,
}

// migrate creates the schema or brings it up to date.
func (s *Store) migrate(ctx context.Context) error {
	if _, err := s.wc.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("schema_version: %w", err)
	}
	var version int
	err := s.wc.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		if _, err := s.wc.ExecContext(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
			return fmt.Errorf("schema_version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("schema_version: %w", err)
	}
	if version > len(migrations) {
		return fmt.Errorf("%w: version %d, this binary knows %d", ErrSchemaTooNew, version, len(migrations))
	}
	for v := version; v < len(migrations); v++ {
		if err := s.inTx(ctx, func(c *sql.Conn) error {
			if _, err := c.ExecContext(ctx, migrations[v]); err != nil {
				return err
			}
			_, err := c.ExecContext(ctx, `UPDATE schema_version SET version = ?`, v+1)
			return err
		}); err != nil {
			return fmt.Errorf("migration %d: %w", v+1, err)
		}
		s.log.WithField("version", v+1).Info("database schema migrated")
	}
	return nil
}

// inTx runs f in a write transaction on the writer connection.
func (s *Store) inTx(ctx context.Context, f func(*sql.Conn) error) error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.wc == nil {
		return ErrClosed
	}
	if _, err := s.wc.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	if err := f(s.wc); err != nil {
		// Not ctx: a cancelled context must not keep the transaction open.
		if _, rerr := s.wc.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
			s.log.WithError(rerr).Error("rollback failed")
		}
		return err
	}
	if _, err := s.wc.ExecContext(context.Background(), "COMMIT"); err != nil {
		_, _ = s.wc.ExecContext(context.Background(), "ROLLBACK")
		return err
	}
	return nil
}

// loadSecret reads the page-token key, creating it on first use.
func (s *Store) loadSecret(ctx context.Context) error {
	var secret []byte
	err := s.wc.QueryRowContext(ctx, `SELECT value FROM meta WHERE key = 'page_token_key'`).Scan(&secret)
	if err == nil && len(secret) >= minSecret {
		s.tok = Tokens{secret: secret}
		return nil
	}
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("page token key: %w", err)
	}
	secret = make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("page token key: %w", err)
	}
	if _, err := s.wc.ExecContext(ctx, `INSERT OR REPLACE INTO meta (key, value) VALUES ('page_token_key', ?)`, secret); err != nil {
		return fmt.Errorf("page token key: %w", err)
	}
	s.tok = Tokens{secret: secret}
	return nil
}

// Prune deletes the events older than olderThan (by event time; a
// warning by its opening time and its latest revision's, both) and
// returns how many. It deletes in small transactions so that ingest is
// never blocked for long.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int64, error) {
	const batch = 1000
	cut := nanos(olderThan)
	var total int64
	for {
		var n int64
		err := s.inTx(ctx, func(c *sql.Conn) error {
			// seen: a warning is kept while its latest revision is
			// younger than the cut (a warning open for longer than the
			// retention); for other events seen is their time, or 0.
			rows, err := c.QueryContext(ctx, `SELECT rowid, time, data FROM events WHERE time < ?1 AND seen < ?1 ORDER BY time LIMIT ?2`, cut, batch)
			if err != nil {
				return err
			}
			type victim struct {
				rowid, t int64
				refs     []ref
			}
			var old []victim
			for rows.Next() {
				var v victim
				var data []byte
				if err := rows.Scan(&v.rowid, &v.t, &data); err != nil {
					rows.Close()
					return err
				}
				// The references are found again from the event itself, so
				// that refs needs no index by event. One that cannot be
				// decoded leaves its references behind; queries join them
				// on rowid and time, so they match nothing.
				if e, err := decode(data); err == nil {
					v.refs = refsOf(e)
				} else {
					s.log.WithError(err).WithField("rowid", v.rowid).Warn("pruning an undecodable event")
				}
				old = append(old, v)
			}
			err = rows.Err()
			rows.Close()
			if err != nil {
				return err
			}
			for _, v := range old {
				for _, r := range v.refs {
					if _, err := c.ExecContext(ctx, `DELETE FROM refs WHERE h = ? AND time = ? AND event = ?`, r.hash(), v.t, v.rowid); err != nil {
						return err
					}
				}
				if _, err := c.ExecContext(ctx, `DELETE FROM events WHERE rowid = ?`, v.rowid); err != nil {
					return err
				}
			}
			n = int64(len(old))
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		total += n
		if n < batch {
			return total, nil
		}
	}
}
