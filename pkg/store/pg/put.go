package pg

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Put stores events in one transaction and returns what it did with each,
// in order, as store.Store.Put does: it sets each event's Id and Received
// (now); an identity already stored is a duplicate, unless the event is an
// exit or a warning of a higher revision at the same place in time, which
// replaces the stored one (Updated). When Put returns nil the events are
// committed; when it returns an error none is stored.
func (s *Store) Put(ctx context.Context, events []*pb.Event) ([]store.PutResult, error) {
	now := time.Now()
	recs := make([]*store.Record, len(events))
	for i, e := range events {
		r, err := store.Encode(e, now)
		if err != nil {
			return nil, fmt.Errorf("put event %d: %w", i, err)
		}
		recs[i] = r
	}
	return s.PutRecords(ctx, recs)
}

// PutRecords is Put of encoded events: one transaction for the batch
// (group commit), committed (and so flushed to PostgreSQL's WAL) before it
// returns nil.
func (s *Store) PutRecords(ctx context.Context, recs []*store.Record) ([]store.PutResult, error) {
	return s.put(ctx, recs, true)
}

// Import is PutRecords of events copied from another database (an SQLite
// history, see package migration), announcing nothing: they are history,
// not news, so the replicas following this database (Follow) do not hand
// them to their watchers. Like the rows of an oomwatch that predates
// Follow, they have no writer.
func (s *Store) Import(ctx context.Context, recs []*store.Record) ([]store.PutResult, error) {
	return s.put(ctx, recs, false)
}

// put stores recs in one transaction; when announced, as this Store's next
// commit, announced to the followers.
func (s *Store) put(ctx context.Context, recs []*store.Record, announced bool) ([]store.PutResult, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	rows := make([]store.Row, len(recs))
	for i, r := range recs {
		rows[i] = r.Row()
	}
	// Rows are written in ID order (stable: copies of one ID keep theirs),
	// so that two batches racing for the same IDs wait on each other's
	// rows in one order and never deadlock.
	order := make([]int, len(rows))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(rows[a].ID, rows[b].ID) })

	// One commit at a time, numbered: another replica that has read
	// this writer's commit n has read every commit before it.
	s.wmu.Lock()
	defer s.wmu.Unlock()
	var w writerSeq
	if announced {
		s.wseq++
		w = writerSeq{writer: s.writer, seq: s.wseq}
	}

	var out []store.PutResult
	tx := func(copied bool) func(pgx.Tx) error {
		return func(tx pgx.Tx) error {
			var err error
			out, err = putTx(ctx, tx, rows, order, w, copied)
			if err != nil || !announced || !slices.ContainsFunc(out, func(r store.PutResult) bool { return r.Stored || r.Updated }) {
				return err
			}
			return announce(ctx, tx, w)
		}
	}
	err := s.inTx(ctx, pgx.TxOptions{}, tx(true))
	if conflicted(err) {
		// Another replica stored one of these events after this one
		// looked (an agent that moved to it sent it again): the insert
		// that skips what is stored settles it.
		s.log.WithError(err).Debug("batch copied again by insert")
		err = s.inTx(ctx, pgx.TxOptions{}, tx(false))
	}
	if err != nil {
		if announced && len(s.unsure) < maxUnsure {
			s.unsure = append(s.unsure, w.seq)
		}
		return nil, fmt.Errorf("put: %w", err)
	}
	if len(s.unsure) > 0 {
		// The database answers again: the outcome of the failed commits
		// is settled.
		select {
		case s.recheck <- struct{}{}:
		default:
		}
	}
	return out, nil
}

// putTx stores rows in tx and returns what it did with each. Copied, the
// new events are found by looking the batch's IDs up first and written
// with COPY, which costs the client and the server far less than an
// INSERT of the same rows (arrays of 256 rows built, sent and taken apart
// again); an ID stored meanwhile by another transaction fails the COPY
// (conflicted). Not copied, an INSERT that skips stored IDs does it.
func putTx(ctx context.Context, tx pgx.Tx, rows []store.Row, order []int, w writerSeq, copied bool) ([]store.PutResult, error) {
	out := make([]store.PutResult, len(rows))
	// stored[i] is the row ID of row i when it is the first copy of its
	// ID, and new (row IDs start at 1); 0 for the others.
	stored := make([]int64, len(rows))
	if copied {
		fresh, err := copyEvents(ctx, tx, rows, order, w)
		if err != nil {
			return nil, err
		}
		for i, id := range fresh {
			stored[i] = id
		}
	} else {
		inserted, err := insertEvents(ctx, tx, rows, order, w)
		if err != nil {
			return nil, err
		}
		for _, i := range order {
			if id, ok := inserted[rows[i].ID]; ok {
				delete(inserted, rows[i].ID)
				stored[i] = id
			}
		}
	}
	// The later copies of an ID inserted by this batch, and those stored
	// before, are duplicates or, by a higher revision, updates: in batch
	// order per ID, so that the highest revision wins.
	var updates []int
	for _, i := range order {
		if stored[i] != 0 {
			out[i] = store.PutResult{Stored: true}
			continue
		}
		out[i] = store.PutResult{Duplicate: true}
		if rows[i].Updatable() {
			updates = append(updates, i)
		}
	}
	updated := make([]int64, len(rows))
	if err := updateEvents(ctx, tx, rows, updates, out, updated, w); err != nil {
		return nil, err
	}
	if copied {
		if err := copyRefs(ctx, tx, rows, stored); err != nil {
			return nil, err
		}
		stored = updated
	} else {
		for i, id := range updated {
			if id != 0 {
				stored[i] = id
			}
		}
	}
	if err := insertRefs(ctx, tx, rows, stored); err != nil {
		return nil, err
	}
	return out, nil
}

// conflicted reports whether err is a unique constraint's refusal: a
// copied batch held an ID that another transaction stored after the batch
// looked it up.
func conflicted(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// eventColumns are the columns copyEvents writes.
var eventColumns = []string{"rowid", "id", "node", "boot_id", "type", "seq", "time", "received", "kind", "collateral",
	"verdict", "memcg", "rev", "seen", "refs", "data", "writer", "wseq", "wpos"}

// copyEvents writes with COPY the first copy (in order) of each ID of rows
// that is not stored, and returns their new row IDs by their index in
// rows. The row IDs are drawn from the table's identity in order, so that
// rows stored at the same time are listed in that order, as an INSERT
// would number them.
func copyEvents(ctx context.Context, tx pgx.Tx, rows []store.Row, order []int, w writerSeq) (map[int]int64, error) {
	// order sorts the copies of an ID together: the first of each run
	// is the ID's first copy.
	var firsts []int
	ids := make([]string, 0, len(order))
	for j, i := range order {
		if j == 0 || rows[i].ID != rows[order[j-1]].ID {
			firsts, ids = append(firsts, i), append(ids, rows[i].ID)
		}
	}
	have, err := storedIDs(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	fresh := slices.DeleteFunc(firsts, func(i int) bool { return have[rows[i].ID] })
	if len(fresh) == 0 {
		return nil, nil
	}
	rowids, err := newRowIDs(ctx, tx, len(fresh))
	if err != nil {
		return nil, err
	}
	out := make(map[int]int64, len(fresh))
	n := 0
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if n == len(fresh) {
			return nil, nil
		}
		i := fresh[n]
		r := rows[i]
		out[i] = rowids[n]
		n++
		refs := r.Refs
		if refs == nil {
			refs = []int64{} // an empty array, not NULL
		}
		return []any{rowids[n-1], r.ID, r.Node, r.BootID, r.Type, r.Seq, r.Time, r.Received, r.Kind, r.Collateral,
			r.Verdict, r.Memcg, r.Revision, r.Seen, refs, r.Data, w.writer, w.seq, int32(i)}, nil
	})
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"events"}, eventColumns, src); err != nil {
		return nil, fmt.Errorf("copy events: %w", err)
	}
	return out, nil
}

// storedIDs returns which of ids are stored.
func storedIDs(ctx context.Context, tx pgx.Tx, ids []string) (map[string]bool, error) {
	res, err := tx.Query(ctx, `SELECT id FROM events WHERE id = ANY($1::text[])`, ids)
	if err != nil {
		return nil, fmt.Errorf("look up events: %w", err)
	}
	stored, err := pgx.CollectRows(res, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("look up events: %w", err)
	}
	have := make(map[string]bool, len(stored))
	for _, id := range stored {
		have[id] = true
	}
	return have, nil
}

// newRowIDs draws n row IDs from the events table's identity, ascending.
func newRowIDs(ctx context.Context, tx pgx.Tx, n int) ([]int64, error) {
	res, err := tx.Query(ctx, `SELECT nextval(pg_get_serial_sequence('events', 'rowid')) FROM generate_series(1, $1)`, n)
	if err != nil {
		return nil, fmt.Errorf("number events: %w", err)
	}
	ids, err := pgx.CollectRows(res, pgx.RowTo[int64])
	if err != nil {
		return nil, fmt.Errorf("number events: %w", err)
	}
	if len(ids) != n {
		return nil, fmt.Errorf("number events: %d row IDs for %d events", len(ids), n)
	}
	slices.Sort(ids)
	return ids, nil
}

// copyRefs writes with COPY the references of the new rows (stored[i]
// their row ID, 0 for the others). A row's hashes are distinct (two
// references that hash alike are one), so that the primary key holds.
func copyRefs(ctx context.Context, tx pgx.Tx, rows []store.Row, stored []int64) error {
	var refs [][]any
	for i, r := range rows {
		if stored[i] == 0 {
			continue
		}
		for j, h := range r.Refs {
			if !slices.Contains(r.Refs[:j], h) {
				refs = append(refs, []any{h, r.Time, stored[i]})
			}
		}
	}
	if len(refs) == 0 {
		return nil
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"refs"}, []string{"h", "time", "event"}, pgx.CopyFromRows(refs)); err != nil {
		return fmt.Errorf("copy refs: %w", err)
	}
	return nil
}

// maxUnsure bounds the failed commits remembered for Follow to read again
// (a database down for long fails every commit; beyond it, a watcher of
// this replica may miss events a lost COMMIT stored, and say nothing).
const maxUnsure = 1024

// giveBackUnsure remembers again commits takeUnsure returned, which could
// not be read; the next successful commit has them read again.
func (s *Store) giveBackUnsure(seqs []int64) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.unsure = append(s.unsure, seqs[:min(len(seqs), maxUnsure-len(s.unsure))]...)
}

// takeUnsure returns the commits that failed as far as this writer knows,
// and forgets them.
func (s *Store) takeUnsure() []int64 {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	out := s.unsure
	s.unsure = nil
	return out
}

// insertChunk is how many rows one INSERT statement of insertEvents takes.
// A commit of 2,000 5.6 kB events in one statement is an 11 MB message that
// the server allocates afresh (page faults) for every commit; chunks of
// this size cost a few more round trips and far less of the server.
const insertChunk = 256

// insertEvents inserts the rows in order, a statement per insertChunk
// rows, and returns the row IDs of those inserted by their event ID: the
// first copy of each ID not stored before (a later copy, in the same
// statement or a later one, conflicts with it).
func insertEvents(ctx context.Context, tx pgx.Tx, rows []store.Row, order []int, w writerSeq) (map[string]int64, error) {
	inserted := make(map[string]int64, len(order))
	for len(order) > 0 {
		n := min(len(order), insertChunk)
		got, err := insertEventsOnce(ctx, tx, rows, order[:n], w)
		if err != nil {
			return nil, err
		}
		for id, rowid := range got {
			inserted[id] = rowid
		}
		order = order[n:]
	}
	return inserted, nil
}

// insertEventsOnce inserts the rows in order in one statement.
func insertEventsOnce(ctx context.Context, tx pgx.Tx, rows []store.Row, order []int, w writerSeq) (map[string]int64, error) {
	n := len(order)
	var (
		ids, nodes, boots, types, kinds, verdicts, memcgs = make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n), make([]string, n)
		seqs, times, received, revs, seen                 = make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n), make([]int64, n)
		collateral                                        = make([]bool, n)
		data                                              = make([][]byte, n)
		refs                                              = make([]string, n)
		pos                                               = make([]int32, n)
	)
	for j, i := range order {
		r := rows[i]
		ids[j], nodes[j], boots[j], types[j], kinds[j], verdicts[j], memcgs[j] = r.ID, r.Node, r.BootID, r.Type, r.Kind, r.Verdict, r.Memcg
		seqs[j], times[j], received[j], revs[j], seen[j] = r.Seq, r.Time, r.Received, r.Revision, r.Seen
		collateral[j], data[j], refs[j], pos[j] = r.Collateral, r.Data, intArray(r.Refs), int32(i)
	}
	// ON CONFLICT DO NOTHING skips both an ID stored before and a second
	// copy in this statement; RETURNING names the rows inserted.
	res, err := tx.Query(ctx, `
INSERT INTO events (id, node, boot_id, type, seq, time, received, kind, collateral, verdict, memcg, rev, seen, refs, data, writer, wseq, wpos)
SELECT id, node, boot_id, type, seq, time, received, kind, collateral, verdict, memcg, rev, seen, refs::bigint[], data, $16, $17, wpos
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::text[],
	$9::boolean[], $10::text[], $11::text[], $12::bigint[], $13::bigint[], $14::text[], $15::bytea[], $18::integer[])
	WITH ORDINALITY AS u(id, node, boot_id, type, seq, time, received, kind, collateral, verdict, memcg, rev, seen, refs, data, wpos, n)
ORDER BY n
ON CONFLICT (id) DO NOTHING
RETURNING rowid, id`,
		ids, nodes, boots, types, seqs, times, received, kinds, collateral, verdicts, memcgs, revs, seen, refs, data, w.writer, w.seq, pos)
	if err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	defer res.Close()
	inserted := make(map[string]int64, n)
	for res.Next() {
		var rowid int64
		var id string
		if err := res.Scan(&rowid, &id); err != nil {
			return nil, fmt.Errorf("insert events: %w", err)
		}
		inserted[id] = rowid
	}
	if err := res.Err(); err != nil {
		return nil, fmt.Errorf("insert events: %w", err)
	}
	return inserted, nil
}

// intArray is a PostgreSQL array literal of integers: the refs of one row
// travel as text, since a column of arrays of varying length cannot be one
// unnest argument.
func intArray(v []int64) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, x := range v {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprint(&b, x)
	}
	b.WriteByte('}')
	return b.String()
}

// updateEvents replaces the stored event of each row of updates whose
// revision is higher and whose place in time is the same, marking it
// Updated in out and its row ID in stored. The event keeps its time: its
// references stay valid; those of the new revision are added.
func updateEvents(ctx context.Context, tx pgx.Tx, rows []store.Row, updates []int, out []store.PutResult, stored []int64, w writerSeq) error {
	if len(updates) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, i := range updates {
		r := rows[i]
		b.Queue(`UPDATE events SET received = $1, kind = $2, collateral = $3, verdict = $4, data = $5, rev = $6, memcg = $7, seen = $8,
	refs = ARRAY(SELECT DISTINCT unnest(refs || $9::bigint[])), writer = $12, wseq = $13, wpos = $14
	WHERE id = $10 AND rev < $6 AND time = $11 RETURNING rowid`,
			r.Received, r.Kind, r.Collateral, r.Verdict, r.Data, r.Revision, r.Memcg, r.Seen, r.Refs, r.ID, r.Time, w.writer, w.seq, int32(i))
	}
	res := tx.SendBatch(ctx, b)
	for _, i := range updates {
		var rowid int64
		err := res.QueryRow().Scan(&rowid)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			continue
		case err != nil:
			res.Close()
			return fmt.Errorf("update event %s: %w", rows[i].ID, err)
		}
		out[i], stored[i] = store.PutResult{Updated: true}, rowid
	}
	if err := res.Close(); err != nil {
		return fmt.Errorf("update events: %w", err)
	}
	return nil
}

// insertRefs inserts the references of the rows stored or updated
// (stored[i] their row ID, 0 for the others).
func insertRefs(ctx context.Context, tx pgx.Tx, rows []store.Row, stored []int64) error {
	var hs, times, events []int64
	for i, r := range rows {
		if stored[i] == 0 {
			continue
		}
		for _, h := range r.Refs {
			hs, times, events = append(hs, h), append(times, r.Time), append(events, stored[i])
		}
	}
	if len(hs) == 0 {
		return nil
	}
	if _, err := tx.Exec(ctx, `INSERT INTO refs (h, time, event) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
		ON CONFLICT DO NOTHING`, hs, times, events); err != nil {
		return fmt.Errorf("insert refs: %w", err)
	}
	return nil
}

// Get returns the event with this ID, or store.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*pb.Event, error) {
	if s.closed.Load() {
		return nil, store.ErrClosed
	}
	var data []byte
	err := s.pool.QueryRow(ctx, `SELECT data FROM events WHERE id = $1`, id).Scan(&data)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, fmt.Errorf("%q: %w", id, store.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", id, err)
	}
	return store.Decode(data)
}
