// Package pg keeps the aggregator's events in PostgreSQL (github.com/jackc/pgx/v5),
// with the behaviour of the embedded SQLite store of package store: the same
// tables (events, with their protobuf bytes and indexed columns, and refs, the
// workload references they are found by), the same deduplication by event ID
// under a unique constraint, revisions that replace a stored exit or warning
// only when higher, one transaction per batch (group commit), the same
// filters, keyset pages and page tokens, and retention. The conformance suite
// of package store/storetest runs against both.
//
// The schema is versioned and migrated on start under an advisory lock, so
// that several aggregators starting at once on one database are safe.
package pg

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/store"
)

// ErrBadURL: the database URL cannot be parsed.
var ErrBadURL = errors.New("invalid PostgreSQL URL")

// IsURL reports whether a --db value names a PostgreSQL database
// (postgres:// or postgresql://) rather than an SQLite file.
func IsURL(db string) bool {
	return strings.HasPrefix(db, "postgres://") || strings.HasPrefix(db, "postgresql://")
}

// CheckURL reports a database URL that cannot be parsed (ErrBadURL).
func CheckURL(url string) error {
	_, err := parseURL(url)
	return err
}

func parseURL(url string) (*pgxpool.Config, error) {
	if !IsURL(url) {
		return nil, fmt.Errorf("%w: want postgres://user@host/database", ErrBadURL)
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		// pgx's message holds the URL with its password redacted.
		return nil, fmt.Errorf("%w: %w", ErrBadURL, err)
	}
	return cfg, nil
}

// ConnectTimeout bounds the first connection of Open when the context has
// no deadline: an unreachable database is reported, not waited for.
const ConnectTimeout = 15 * time.Second

// Store is the PostgreSQL event database. Its methods are safe for
// concurrent use, and several Stores (replicas) may share one database.
type Store struct {
	log    *logrus.Entry
	pool   *pgxpool.Pool
	tok    store.Tokens
	closed atomic.Bool
	// connCfg is what Follow's listening connection is made of.
	connCfg *pgx.ConnConfig
	// writer names this Store's commits, random per Open; wseq numbers
	// them. wmu serialises commits, so that they commit in wseq order.
	writer string
	wmu    sync.Mutex
	wseq   int64
	// unsure are this writer's commits that failed as far as it knows,
	// which the database may have committed all the same (the connection
	// lost during COMMIT, a crash after it): their events were not handed
	// to this replica's watchers, and a copy sent again is a duplicate.
	// Follow reads them once a later commit succeeds (recheck). Guarded
	// by wmu.
	unsure  []int64
	recheck chan struct{}
	// useCalls counts ShareUse calls, to forget old totals now and then.
	useCalls atomic.Int64
}

var _ store.Backend = (*Store)(nil)

// Open connects to the database at url (postgres://...), creates or
// migrates its schema, and reads the page-token key, creating it on the
// first start.
func Open(ctx context.Context, url string, log *logrus.Entry) (*Store, error) {
	cfg, err := parseURL(url)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	where := cfg.ConnConfig.Host
	if cfg.ConnConfig.Database != "" {
		where += "/" + cfg.ConnConfig.Database
	}
	pctx, cancel := ctx, context.CancelFunc(func() {})
	if _, ok := ctx.Deadline(); !ok {
		pctx, cancel = context.WithTimeout(ctx, ConnectTimeout)
	}
	err = pool.Ping(pctx)
	cancel()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: connect to PostgreSQL at %s: %w", where, err)
	}
	writer, err := newWriter()
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store: %w", err)
	}
	s := &Store{log: log, pool: pool, connCfg: cfg.ConnConfig.Copy(), writer: writer,
		recheck: make(chan struct{}, 1)}
	secret, err := s.migrate(ctx)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store at %s: %w", where, err)
	}
	if s.tok, err = store.NewTokens(secret); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store at %s: %w", where, err)
	}
	return s, nil
}

// Ping reports whether the database answers, through the pool (a dead
// pooled connection is found and replaced): what the aggregator's
// readiness probe asks, within its own deadline.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	if err := s.pool.Ping(ctx); err != nil {
		return fmt.Errorf("ping PostgreSQL: %w", err)
	}
	return nil
}

// Close closes the connections. Puts committed before stay stored.
func (s *Store) Close() error {
	if s.closed.CompareAndSwap(false, true) {
		s.pool.Close()
	}
	return nil
}

// migrationLock is the advisory lock key that serialises migrations of
// aggregators starting at once: "oomwatch" in ASCII.
const migrationLock = 0x6f6f6d7761746368

// migrations are applied in order; schema_version is how many have been.
// Append only: never edit one that has shipped.
var migrations = []string{
	// 1: events, their references to workloads, settings: the SQLite
	// schema at its version 4.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value BYTEA NOT NULL
);

-- One row per event. rowid orders events stored at the same time; (time,
-- rowid) is the keyset of every listing.
CREATE TABLE events (
	rowid      BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	id         TEXT    NOT NULL,        -- node/boot_id/type/seq
	node       TEXT    NOT NULL,
	boot_id    TEXT    NOT NULL,
	type       TEXT    NOT NULL,        -- oom, loss, exit, warning
	seq        BIGINT  NOT NULL,
	time       BIGINT  NOT NULL,        -- Unix ns; a warning's opening time
	received   BIGINT  NOT NULL,        -- Unix ns
	kind       TEXT    NOT NULL,        -- OOM kills: node, limit; warnings: their kind
	collateral BOOLEAN NOT NULL,
	verdict    TEXT    NOT NULL,        -- exits: oom-limit, ...; warnings: open, resolved
	memcg      TEXT    NOT NULL,        -- a limit kill's limited cgroup
	rev        BIGINT  NOT NULL,        -- a higher one replaces the row
	seen       BIGINT  NOT NULL,        -- Unix ns of the stored revision
	refs       BIGINT[] NOT NULL,       -- hashes of the refs rows of every revision, for retention
	data       BYTEA   NOT NULL,        -- the Event, protobuf
	CONSTRAINT events_id UNIQUE (id)
);
CREATE INDEX events_time ON events (time, rowid);
CREATE INDEX events_node_time ON events (node, time, rowid);
CREATE INDEX events_type_time ON events (type, time, rowid) WHERE type <> 'oom';
CREATE INDEX events_open_warnings ON events (seen) WHERE type = 'warning' AND verdict = 'open';

-- The namespaces, pods and containers an event touches, as hashes of
-- (kind, value) (store.RefHashes) with the event's time, so that
-- "namespace X, newest first" is one range of the primary key.
CREATE TABLE refs (
	h     BIGINT NOT NULL,
	time  BIGINT NOT NULL,
	event BIGINT NOT NULL,
	PRIMARY KEY (h, time, event)
);
`,
	// 2: the writer of each row (a Store, that is one replica's run), the
	// number of its commit that stored or last updated the row and the
	// row's place in that commit's batch, so that other replicas find
	// what it committed, in order (see Follow); writers holds each
	// writer's last commit.
	`
ALTER TABLE events ADD COLUMN writer TEXT NOT NULL DEFAULT '', ADD COLUMN wseq BIGINT NOT NULL DEFAULT 0,
	ADD COLUMN wpos INTEGER NOT NULL DEFAULT 0;
CREATE INDEX events_writer ON events (writer, wseq, wpos);
CREATE TABLE writers (
	writer  TEXT PRIMARY KEY,
	seq     BIGINT NOT NULL,
	updated BIGINT NOT NULL   -- Unix ns of its last commit, for retention
);
`,
	// 3: leases on work that one replica does for all (see Lease).
	`
CREATE TABLE leases (
	name    TEXT PRIMARY KEY,
	holder  TEXT NOT NULL,
	renewed BIGINT NOT NULL,  -- Unix ns (the database's clock) of the holder's last renewal
	expires BIGINT NOT NULL   -- Unix ns (the database's clock); a release sets it to 0
);
`,
	// 4: each replica's use of the event rates, for limits that hold
	// across replicas (see ShareUse).
	`
CREATE TABLE rate_use (
	key     TEXT NOT NULL,
	writer  TEXT NOT NULL,
	total   BIGINT NOT NULL,  -- events admitted under key by writer since it opened
	updated BIGINT NOT NULL,  -- Unix ns (the database's clock)
	PRIMARY KEY (key, writer)
);
CREATE INDEX rate_use_updated ON rate_use (updated);
`,
	// 5: events' protobuf bytes kept in the row, uncompressed, up to a
	// page (as SQLite keeps them), instead of compressed with pglz and
	// moved to the TOAST table from 2 kB: at ingest pglz alone took ~18%
	// of the server's CPU (5.6 kB kills), and every event listed cost a
	// TOAST index lookup and its chunks. Larger events (a 10,000-task
	// report) are still moved out, compressed with LZ4, cheaper than
	// pglz. A server built without LZ4 (or older than 14) keeps pglz:
	// EXECUTE defers the statement's parsing to the block, where its
	// error is caught. Rows stored before stay as they are.
	`
DO $$
BEGIN
	EXECUTE 'ALTER TABLE events ALTER COLUMN data SET COMPRESSION lz4';
EXCEPTION WHEN feature_not_supported OR syntax_error THEN
	RAISE NOTICE 'events.data stays compressed with pglz: %', SQLERRM;
END
$$;
ALTER TABLE events SET (toast_tuple_target = 8160);
`,
	// 6: row IDs given by the inserting aggregator too, so that a batch
	// of new events is one COPY (see copyEvents); the identity still
	// numbers rows inserted without one.
	`
ALTER TABLE events ALTER COLUMN rowid SET GENERATED BY DEFAULT;
`,
	// 7: events' data may be compressed (see package store's pack); the
	// schema is unchanged, but an older oomwatch, which cannot read such
	// rows, must refuse to start on the database (ErrSchemaTooNew).
	`SELECT 1;`,
	// 8: the same for data compressed with a dictionary (package store's
	// formatDict1).
	`SELECT 1;`,
}

// migrate creates the schema or brings it up to date, in one transaction
// under the migration lock, and returns the page-token key.
func (s *Store) migrate(ctx context.Context) ([]byte, error) {
	var secret []byte
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Held until the transaction ends: a replica starting meanwhile
		// waits, then finds the schema up to date.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(migrationLock)); err != nil {
			return fmt.Errorf("migration lock: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)`); err != nil {
			return fmt.Errorf("schema_version: %w", err)
		}
		var version int
		err := tx.QueryRow(ctx, `SELECT version FROM schema_version`).Scan(&version)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version) VALUES (0)`); err != nil {
				return fmt.Errorf("schema_version: %w", err)
			}
		case err != nil:
			return fmt.Errorf("schema_version: %w", err)
		}
		if version > len(migrations) {
			return fmt.Errorf("%w: version %d, this binary knows %d", store.ErrSchemaTooNew, version, len(migrations))
		}
		for v := version; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			if _, err := tx.Exec(ctx, `UPDATE schema_version SET version = $1`, v+1); err != nil {
				return fmt.Errorf("migration %d: %w", v+1, err)
			}
			s.log.WithField("version", v+1).Info("database schema migrated")
		}
		key := make([]byte, 32)
		if _, err := rand.Read(key); err != nil {
			return fmt.Errorf("page token key: %w", err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('page_token_key', $1) ON CONFLICT (key) DO NOTHING`, key); err != nil {
			return fmt.Errorf("page token key: %w", err)
		}
		if err := tx.QueryRow(ctx, `SELECT value FROM meta WHERE key = 'page_token_key'`).Scan(&secret); err != nil {
			return fmt.Errorf("page token key: %w", err)
		}
		return nil
	})
	return secret, err
}

// retryable reports a transaction PostgreSQL aborted to break a deadlock
// or a serialization conflict: run again, it succeeds.
func retryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == "40P01" || pe.Code == "40001")
}

// inTx runs f in a transaction, again when PostgreSQL aborted it for a
// deadlock or a conflict.
func (s *Store) inTx(ctx context.Context, opts pgx.TxOptions, f func(pgx.Tx) error) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	const attempts = 5
	var err error
	for range attempts {
		err = pgx.BeginTxFunc(ctx, s.pool, opts, f)
		if !retryable(err) {
			return err
		}
		s.log.WithError(err).Debug("transaction retried")
	}
	return err
}

// Prune deletes the events older than olderThan (by event time; a warning
// by its opening time and its latest revision's, both) with their
// references, and returns how many. It deletes in small transactions so
// that ingest is never blocked for long.
func (s *Store) Prune(ctx context.Context, olderThan time.Time) (int64, error) {
	const batch = 1000
	cut := store.Nanos(olderThan)
	var total int64
	for {
		var n int64
		err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, `
WITH old AS (
	DELETE FROM events WHERE rowid IN (
		SELECT rowid FROM events WHERE time < $1 AND seen < $1 ORDER BY time LIMIT $2 FOR UPDATE SKIP LOCKED)
	RETURNING rowid, time, refs
), gone AS (
	DELETE FROM refs USING (SELECT rowid, time, unnest(refs) AS h FROM old) o
	WHERE refs.h = o.h AND refs.time = o.time AND refs.event = o.rowid
)
SELECT count(*) FROM old`, cut, batch).Scan(&n)
		})
		if err != nil {
			return total, fmt.Errorf("prune: %w", err)
		}
		total += n
		if n < batch {
			// Writers silent since the cut and whose rows are all gone:
			// should one commit again, a follower that does not know it
			// reads its rows from the first, and finds only new ones.
			if _, err := s.pool.Exec(ctx, `DELETE FROM writers w WHERE updated < $1 AND writer <> $2
				AND NOT EXISTS (SELECT 1 FROM events e WHERE e.writer = w.writer)`, cut, s.writer); err != nil {
				return total, fmt.Errorf("prune writers: %w", err)
			}
			return total, nil
		}
	}
}
