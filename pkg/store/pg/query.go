package pg

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// scan describes one query over events, newest first, as the SQLite
// store's scan does.
type scan struct {
	f    *pb.EventFilter
	cols string
	// before: only events strictly older than this position.
	before *store.Cursor
	// notAfter: only events at or before this time (Unix ns).
	notAfter *int64
	// onlyType narrows to one event type on top of the filter's.
	onlyType string
	// limit: 0 for none.
	limit int
	// now is when open_warnings_only is judged.
	now time.Time
}

// sql builds the statement. empty reports a filter that matches nothing.
// The most selective workload reference, when the filter names one, drives
// the query from the refs primary key, (h, time, event), which yields
// events newest first with no sort; otherwise one of the events indexes
// does, as PostgreSQL's planner chooses.
func (q scan) sql() (stmt string, args []any, empty bool) {
	f := q.f
	if f == nil {
		f = &pb.EventFilter{}
	}
	types, empty := store.FilterTypes(f, q.onlyType)
	if empty {
		return "", nil, true
	}
	arg := func(a any) string {
		args = append(args, a)
		return fmt.Sprintf("$%d", len(args))
	}
	var where []string
	var b strings.Builder
	tcol, idcol := "e.time", "e.rowid"
	refs := store.RefHashes(f)
	if len(refs) > 0 {
		tcol, idcol = "r.time", "r.event"
		fmt.Fprintf(&b, "SELECT %s FROM refs r JOIN events e ON e.rowid = r.event AND e.time = r.time", q.cols)
		where = append(where, "r.h = "+arg(refs[0]))
	} else {
		fmt.Fprintf(&b, "SELECT %s FROM events e", q.cols)
	}
	if f.GetNode() != "" {
		where = append(where, "e.node = "+arg(f.GetNode()))
	}
	switch len(types) {
	case 0:
	case 1:
		where = append(where, "e.type = "+arg(types[0]))
	default:
		where = append(where, "e.type = ANY("+arg(types)+"::text[])")
	}
	if f.Since != nil {
		where = append(where, tcol+" >= "+arg(store.Nanos(f.Since.AsTime())))
	}
	if f.Until != nil {
		where = append(where, tcol+" < "+arg(store.Nanos(f.Until.AsTime())))
	}
	if f.ReceivedSince != nil {
		where = append(where, "e.received >= "+arg(store.Nanos(f.ReceivedSince.AsTime())))
	}
	if q.notAfter != nil {
		where = append(where, tcol+" <= "+arg(*q.notAfter))
	}
	if q.before != nil {
		where = append(where, fmt.Sprintf("(%s, %s) < (%s, %s)", tcol, idcol, arg(q.before.Time), arg(q.before.ID)))
	}
	if f.GetKind() != "" {
		where = append(where, "e.type = 'oom'", "e.kind = "+arg(f.GetKind()))
	}
	if f.GetCollateralOnly() {
		where = append(where, "e.collateral")
	}
	if len(f.GetVerdicts()) > 0 {
		// Warnings keep their state in the verdict column.
		where = append(where, "e.type = 'exit'", "e.verdict = ANY("+arg(f.GetVerdicts())+"::text[])")
	}
	if store.WarningsOnly(f) {
		where = append(where, "e.type = 'warning'")
	}
	if len(f.GetWarningKinds()) > 0 {
		words := make([]string, len(f.GetWarningKinds()))
		for i, k := range f.GetWarningKinds() {
			words[i] = vocab.WarningKind(k)
		}
		where = append(where, "e.kind = ANY("+arg(words)+"::text[])")
	}
	if f.GetOpenWarningsOnly() {
		now := q.now
		if now.IsZero() {
			now = time.Now()
		}
		// Literals, so that the planner sees the partial index applies.
		where = append(where, "e.type = 'warning'", "e.verdict = 'open'", "e.seen >= "+arg(store.Nanos(now.Add(-store.WarningStale))))
	}
	for _, h := range refs[min(1, len(refs)):] {
		where = append(where, fmt.Sprintf("EXISTS (SELECT 1 FROM refs x WHERE x.h = %s AND x.time = e.time AND x.event = e.rowid)", arg(h)))
	}
	if len(where) > 0 {
		b.WriteString(" WHERE ")
		b.WriteString(strings.Join(where, " AND "))
	}
	fmt.Fprintf(&b, " ORDER BY %s DESC, %s DESC", tcol, idcol)
	if q.limit > 0 {
		b.WriteString(" LIMIT " + arg(q.limit))
	}
	return b.String(), args, false
}

// List returns the events matching f, newest first (by event time, then
// storage order), a page at a time, as store.Store.List does.
func (s *Store) List(ctx context.Context, f *pb.EventFilter, size int, pageToken string) ([]*pb.Event, string, error) {
	if err := store.ValidateFilter(f); err != nil {
		return nil, "", err
	}
	if s.closed.Load() {
		return nil, "", store.ErrClosed
	}
	size = store.PageSize(size)
	now := time.Now()
	q := scan{f: f, cols: "e.rowid, e.time, e.data", limit: size + 1, now: now}
	if pageToken != "" {
		c, err := s.tok.ParseEvents(f, pageToken)
		if err != nil {
			return nil, "", err
		}
		q.before = &c
	}
	stmt, args, empty := q.sql()
	if empty {
		return nil, "", nil
	}
	rows, err := s.pool.Query(ctx, stmt, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	var out []*pb.Event
	var last store.Cursor
	scanned, more := 0, false
	for rows.Next() {
		if scanned == size {
			more = true
			break
		}
		scanned++
		var data []byte
		if err := rows.Scan(&last.ID, &last.Time, &data); err != nil {
			return nil, "", fmt.Errorf("list: %w", err)
		}
		e, err := store.Decode(data)
		if err != nil {
			return nil, "", fmt.Errorf("list: %w", err)
		}
		// Only a hash collision in refs fails this.
		if store.MatchesAt(f, e, now) {
			out = append(out, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	if !more {
		return out, "", nil
	}
	return out, s.tok.Events(f, last), nil
}

// snapshot is a read-only transaction that sees one snapshot throughout.
var snapshot = pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}

// Incidents groups the OOM kills matching f into incidents, newest first,
// a page at a time, as store.Store.Incidents does.
func (s *Store) Incidents(ctx context.Context, f *pb.EventFilter, gap time.Duration, size int, pageToken string) ([]*pb.Incident, string, error) {
	if err := store.ValidateFilter(f); err != nil {
		return nil, "", err
	}
	if gap < 0 {
		return nil, "", fmt.Errorf("%w: negative gap", store.ErrInvalidFilter)
	}
	if gap == 0 {
		gap = store.DefaultGap
	}
	size = store.PageSize(size)
	q := scan{f: f, cols: "e.rowid, e.time, e.node, e.boot_id, e.kind, e.collateral, e.memcg", onlyType: eventid.TypeOOM}
	var after *store.Cursor
	if pageToken != "" {
		c, err := s.tok.ParseIncidents(f, gap, pageToken)
		if err != nil {
			return nil, "", err
		}
		after = &c
		top := store.ResumeAt(c, gap)
		q.notAfter = &top
	}
	if _, _, empty := q.sql(); empty {
		return nil, "", nil
	}
	var out []*pb.Incident
	next := ""
	err := s.inTx(ctx, snapshot, func(tx pgx.Tx) error {
		rows := readKeyset(ctx, tx, q)
		page, more, err := store.GroupKills(rows, gap, size, after)
		rows.Close()
		if err != nil {
			return err
		}
		var ids []int64
		for _, g := range page {
			ids = append(ids, g.IDs()...)
		}
		events, err := eventsByRowID(ctx, tx, ids)
		if err != nil {
			return err
		}
		out = store.BuildIncidents(page, events)
		if more {
			next = s.tok.Incidents(f, gap, page[len(page)-1].End())
		}
		return nil
	})
	if err != nil {
		return nil, "", fmt.Errorf("incidents: %w", err)
	}
	return out, next, nil
}

// Keyset reads of Incidents: the first reads a few more kills than a page
// of incidents usually holds, each next one twice as many, up to the most.
const (
	firstRead = 128
	maxRead   = 4096
)

// keysetRows reads the rows of a scan in growing reads, each a query
// with a LIMIT that goes on below the last row read (keyset): the server
// computes only about the rows read, in one round trip for most pages.
// A plain query of an unlimited statement is computed to its end however
// few rows the reader takes: Incidents stops once its page is full, often
// after a fraction of the kills of the filter. The scan's first two
// columns are the row ID and the time, the keyset.
type keysetRows struct {
	ctx  context.Context
	tx   pgx.Tx
	q    scan
	rows pgx.Rows
	// n counts the rows of the current read; last is the last one's
	// position.
	n    int
	last store.Cursor
	err  error
}

// readKeyset starts reading q in tx.
func readKeyset(ctx context.Context, tx pgx.Tx, q scan) *keysetRows {
	q.limit = firstRead
	return &keysetRows{ctx: ctx, tx: tx, q: q}
}

// Next implements store.Rows.
func (k *keysetRows) Next() bool {
	for k.err == nil {
		if k.rows != nil {
			if k.rows.Next() {
				k.n++
				return true
			}
			k.rows.Close()
			if k.err = k.rows.Err(); k.err != nil {
				return false
			}
			k.rows = nil
			if k.n < k.q.limit {
				return false // the last read
			}
			before := k.last
			k.q.before = &before
			k.q.limit = min(2*k.q.limit, maxRead)
		}
		stmt, args, empty := k.q.sql()
		if empty {
			return false
		}
		k.n = 0
		k.rows, k.err = k.tx.Query(k.ctx, stmt, args...)
	}
	return false
}

// Scan implements store.Rows; the first two of dest are *int64 (row ID,
// time).
func (k *keysetRows) Scan(dest ...any) error {
	if err := k.rows.Scan(dest...); err != nil {
		return err
	}
	id, ok1 := dest[0].(*int64)
	t, ok2 := dest[1].(*int64)
	if !ok1 || !ok2 {
		return fmt.Errorf("keyset scan: want *int64 row ID and time, got %T, %T", dest[0], dest[1])
	}
	k.last = store.Cursor{ID: *id, Time: *t}
	return nil
}

// Err implements store.Rows.
func (k *keysetRows) Err() error {
	return k.err
}

// Close ends the current read.
func (k *keysetRows) Close() {
	if k.rows != nil {
		k.rows.Close()
		k.rows = nil
	}
}

// eventsByRowID reads events by row ID.
func eventsByRowID(ctx context.Context, tx pgx.Tx, ids []int64) (map[int64]*pb.Event, error) {
	events := make(map[int64]*pb.Event, len(ids))
	if len(ids) == 0 {
		return events, nil
	}
	rows, err := tx.Query(ctx, `SELECT rowid, data FROM events WHERE rowid = ANY($1::bigint[])`, ids)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var data []byte
		if err := rows.Scan(&id, &data); err != nil {
			return nil, err
		}
		e, err := store.Decode(data)
		if err != nil {
			return nil, err
		}
		events[id] = e
	}
	return events, rows.Err()
}

// IncidentOf returns the incident that holds the OOM kill with this event
// ID, as store.Store.IncidentOf does.
func (s *Store) IncidentOf(ctx context.Context, id string, gap time.Duration) (*store.IncidentKills, error) {
	if gap < 0 {
		return nil, fmt.Errorf("%w: negative gap", store.ErrInvalidFilter)
	}
	if gap == 0 {
		gap = store.DefaultGap
	}
	var out *store.IncidentKills
	err := s.inTx(ctx, snapshot, func(tx pgx.Tx) error {
		var node, boot, typ string
		var at store.Cursor
		err := tx.QueryRow(ctx, `SELECT rowid, time, node, boot_id, type FROM events WHERE id = $1`, id).
			Scan(&at.ID, &at.Time, &node, &boot, &typ)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("%q: %w", id, store.ErrNotFound)
		case err != nil:
			return err
		case typ != eventid.TypeOOM:
			return fmt.Errorf("%q is not an OOM kill: %w", id, store.ErrNotFound)
		}
		chain := store.NewKillChain(at, gap)
		rows, err := tx.Query(ctx, `SELECT rowid, time, node, boot_id, kind, collateral, memcg FROM events
			WHERE node = $1 AND boot_id = $2 AND type = 'oom' AND (time, rowid) < ($3, $4)
			ORDER BY time DESC, rowid DESC`, node, boot, at.Time, at.ID)
		if err != nil {
			return err
		}
		err = chain.ReadBefore(rows)
		rows.Close()
		if err != nil {
			return err
		}
		if !chain.Full() {
			rows, err = tx.Query(ctx, `SELECT rowid, time, node, boot_id, kind, collateral, memcg FROM events
				WHERE node = $1 AND boot_id = $2 AND type = 'oom' AND (time, rowid) >= ($3, $4)
				ORDER BY time, rowid LIMIT $5`, node, boot, at.Time, at.ID, store.MaxIncidentChain+1)
			if err != nil {
				return err
			}
			err = chain.ReadFrom(rows)
			rows.Close()
			if err != nil {
				return err
			}
		}
		g, truncated, err := chain.Group()
		if err != nil {
			return fmt.Errorf("%q: %w", id, err)
		}
		events, err := eventsByRowID(ctx, tx, g.IDs())
		if err != nil {
			return err
		}
		out, err = store.IncidentOfGroup(g, truncated, events)
		if err != nil {
			return fmt.Errorf("%q: %w", id, err)
		}
		return nil
	})
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	return out, nil
}

// OpenWarnings returns the warnings open at now: how many of each kind,
// and at most max of them, the most urgent kinds first, as
// store.Store.OpenWarnings does.
func (s *Store) OpenWarnings(ctx context.Context, now time.Time, max int) (map[string]int64, []*pb.Event, error) {
	cut := store.Nanos(now.Add(-store.WarningStale))
	var counts map[string]int64
	var out []*pb.Event
	err := s.inTx(ctx, snapshot, func(tx pgx.Tx) error {
		counts, out = map[string]int64{}, nil
		rows, err := tx.Query(ctx, `SELECT kind, count(*) FROM events
			WHERE type = 'warning' AND verdict = 'open' AND seen >= $1 GROUP BY kind`, cut)
		if err != nil {
			return err
		}
		for rows.Next() {
			var kind string
			var n int64
			if err := rows.Scan(&kind, &n); err != nil {
				rows.Close()
				return err
			}
			counts[kind] = n
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = tx.Query(ctx, `SELECT data FROM events
			WHERE type = 'warning' AND verdict = 'open' AND seen >= $1
			ORDER BY CASE kind WHEN $3 THEN 0 WHEN $4 THEN 1 WHEN $5 THEN 1 ELSE 2 END, seen DESC LIMIT $2`, cut, max,
			vocab.WarningKind(pb.WarningKind_WARNING_KIND_FORECAST), vocab.WarningKind(pb.WarningKind_WARNING_KIND_NEAR_LIMIT),
			vocab.WarningKind(pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM))
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var data []byte
			if err := rows.Scan(&data); err != nil {
				return err
			}
			e, err := store.Decode(data)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, nil, fmt.Errorf("open warnings: %w", err)
	}
	return counts, out, nil
}
