package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
)

// ErrNotStore: a file is not an oomwatch SQLite event database.
var ErrNotStore = errors.New("not an oomwatch event database")

// History reads the events of an SQLite event database, read-only, in
// the order they were stored: what copying it into another backend needs
// (package migration). Each event is its stored revision, with the
// columns and bytes it was stored with.
type History struct {
	db *sql.DB
	// query reads a page of rows; columns that the database's schema
	// predates read as the value the migration that added them gives.
	query string
}

// OpenHistory opens the SQLite event database at path, read-only: it never
// creates, migrates or changes it. A missing file is an error that is
// fs.ErrNotExist; a file that is not SQLite, or an SQLite database that is
// not oomwatch's, one that is ErrNotStore; one written by a newer oomwatch
// one that is ErrSchemaTooNew.
func OpenHistory(ctx context.Context, path string) (*History, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("open history: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("open history %s: %w: not a regular file", path, ErrNotStore)
	}
	// mode=ro is SQLite's own: no write, no journal, no file created.
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=query_only(1)&_busy_timeout=10000")
	if err != nil {
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	h := &History{db: db}
	if err := h.check(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("open history %s: %w", path, err)
	}
	return h, nil
}

// check reads the schema version and builds the page query for it.
func (h *History) check(ctx context.Context) error {
	var tables int
	// A file that is not SQLite fails here ("file is not a database").
	if err := h.db.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name IN ('schema_version', 'events', 'refs', 'meta')`).Scan(&tables); err != nil {
		return fmt.Errorf("%w: %w", ErrNotStore, err)
	}
	if tables != 4 {
		return fmt.Errorf("%w: it lacks the tables schema_version, events, refs and meta", ErrNotStore)
	}
	var version int
	if err := h.db.QueryRowContext(ctx, `SELECT version FROM schema_version`).Scan(&version); err != nil {
		return fmt.Errorf("%w: schema version: %w", ErrNotStore, err)
	}
	switch {
	case version < 1:
		return fmt.Errorf("%w: schema version %d", ErrNotStore, version)
	case version > len(migrations):
		return fmt.Errorf("%w: version %d, this binary knows %d", ErrSchemaTooNew, version, len(migrations))
	}
	rev, memcg, seen := "0", "''", "0"
	if version >= 2 {
		rev = "rev"
	}
	if version >= 3 {
		memcg = "memcg"
	}
	if version >= 4 {
		seen = "seen"
	}
	h.query = `SELECT rowid, id, node, boot_id, type, seq, time, received, kind, collateral, verdict, data, ` +
		rev + `, ` + memcg + `, ` + seen + ` FROM events WHERE rowid > ? ORDER BY rowid LIMIT ?`
	return nil
}

// Count returns how many events the database holds.
func (h *History) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := h.db.QueryRowContext(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}

// Next returns up to n events stored after position after (0: from the
// first), in the order they were stored (the order in which the store's
// listings break ties of time), and the position of the last one; none at
// the end. Each is a Record for another backend's PutRecords, of the row
// as stored: the same ID, times (received included), revision, indexed
// columns and protobuf bytes. An event whose bytes cannot be decoded is
// returned as stored, with no Event and no references.
func (h *History) Next(ctx context.Context, after int64, n int) ([]*Record, int64, error) {
	rows, err := h.db.QueryContext(ctx, h.query, after, n)
	if err != nil {
		return nil, after, fmt.Errorf("read events: %w", err)
	}
	defer rows.Close()
	var out []*Record
	for rows.Next() {
		r := &Record{}
		if err := rows.Scan(&after, &r.id, &r.node, &r.boot, &r.typ, &r.seq, &r.t, &r.received, &r.cols.kind, &r.cols.collateral,
			&r.cols.verdict, &r.data, &r.rev, &r.cols.memcg, &r.seen); err != nil {
			return nil, after, fmt.Errorf("read events: %w", err)
		}
		if e, err := decode(r.data); err == nil {
			r.event = e
			for _, rf := range refsOf(e) {
				r.refs = append(r.refs, rf.hash())
			}
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("read events: %w", err)
	}
	return out, after, nil
}

// Close closes the database.
func (h *History) Close() error {
	if err := h.db.Close(); err != nil {
		return fmt.Errorf("close history: %w", err)
	}
	return nil
}
