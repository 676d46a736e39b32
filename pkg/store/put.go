package store

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// PutResult is what Put did with one event.
type PutResult struct {
	// Stored: the event is new and now stored.
	Stored bool
	// Duplicate: an event with the same identity and the same or a higher
	// revision was already stored (a replay); the stored one is kept.
	Duplicate bool
	// Updated: an event with the same identity and a lower revision was
	// stored; this one replaced it (an oom-child story with more kills, a
	// warning's update or resolution).
	Updated bool
}

// Reference kinds of the refs table.
const (
	refNamespace = 1
	refPod       = 2 // pod name or UID
	refContainer = 3
)

type ref struct {
	k int
	v string
}

// hash is the reference's key in the refs table: FNV-1a (64 bit) of its
// kind and value. It is stored, so it must never change.
func (r ref) hash() int64 {
	h := fnv.New64a()
	h.Write([]byte{byte(r.k)})
	h.Write([]byte(r.v))
	return int64(h.Sum64())
}

// workloads returns the workloads an event touches: an OOM kill's
// victims, trigger, top consumers and culprit; an exit's workload and
// culprit; a warning's workload (none for the node's).
func workloads(e *pb.Event) []*pb.Workload {
	var out []*pb.Workload
	switch p := e.GetPayload().(type) {
	case *pb.Event_Oom:
		for _, v := range p.Oom.GetVictims() {
			out = append(out, v.GetWorkload())
		}
		out = append(out, p.Oom.GetTrigger().GetWorkload())
		for _, v := range p.Oom.GetTopConsumers() {
			out = append(out, v.GetWorkload())
		}
		out = append(out, p.Oom.GetCulprit().GetWorkload())
	case *pb.Event_Exit:
		out = append(out, p.Exit.GetWorkload(), p.Exit.GetCulprit().GetWorkload())
	case *pb.Event_Warning:
		out = append(out, p.Warning.GetWorkload())
	}
	return out
}

// refsOf returns the distinct references of an event.
func refsOf(e *pb.Event) []ref {
	var out []ref
	add := func(k int, v string) {
		if v == "" {
			return
		}
		for _, r := range out {
			if r.k == k && r.v == v {
				return
			}
		}
		out = append(out, ref{k, v})
	}
	for _, w := range workloads(e) {
		if w == nil {
			continue
		}
		add(refNamespace, w.GetNamespace())
		add(refPod, w.GetPodName())
		add(refPod, w.GetPodUid())
		add(refContainer, w.GetContainerName())
	}
	return out
}

// columns are an event's indexed fields.
type columns struct {
	kind       string
	collateral bool
	verdict    string
	// memcg is a limit kill's limited cgroup ("" when not known, and for
	// every other event): it separates the incidents of unrelated limits.
	memcg string
}

func columnsOf(e *pb.Event) columns {
	switch p := e.GetPayload().(type) {
	case *pb.Event_Oom:
		// The collateral column is the verdict's yes: an older agent's
		// bool is read by today's rule (wire.Verdict).
		c := columns{kind: wire.Kind(p.Oom), collateral: wire.Verdict(p.Oom) == analysis.CollateralYes}
		if c.kind == "limit" {
			c.memcg = p.Oom.GetOomMemcg()
			if v := p.Oom.GetVictims(); c.memcg == "" && len(v) > 0 && v[0].GetWorkload().GetCgroup() != "" {
				// The limit is not known but the victim is placed (a
				// rate-limited kill no full report explains): the story of
				// its own cgroup, which is its container's limit's when
				// that was the one hit, never another container's.
				c.memcg = v[0].GetWorkload().GetCgroup()
			}
		}
		return c
	case *pb.Event_Exit:
		return columns{collateral: wire.ExitVerdict(p.Exit) == analysis.CollateralYes, verdict: wire.Why(p.Exit)}
	case *pb.Event_Warning:
		// The kind column holds the warning's kind word, the verdict column
		// its state: "open" or "resolved".
		return columns{kind: vocab.WarningKind(p.Warning.GetWarningKind()), verdict: warningState(p.Warning)}
	}
	return columns{}
}

// Warning states as the verdict column holds them.
const (
	stateOpen     = "open"
	stateResolved = "resolved"
)

func warningState(m *pb.MemoryWarning) string {
	if m.GetState() == pb.WarningState_WARNING_STATE_OPEN {
		return stateOpen
	}
	return stateResolved
}

// rowTime is an event's place in time, the events table's time column:
// its Event.time, except for a warning, whose revisions each carry the
// time they were made: a warning stays where it opened (since), so that a
// revision replaces it in place and "newest first" lists warnings by when
// they opened.
func rowTime(e *pb.Event) time.Time {
	if w := e.GetWarning(); w != nil && w.GetSince() != nil {
		return w.GetSince().AsTime()
	}
	return e.GetTime().AsTime()
}

// stmtCache keeps the writer's prepared statements, keyed by their text:
// Put inserts many rows per statement, and each row count is its own
// statement.
type stmtCache struct {
	mu   sync.Mutex
	conn *sql.Conn
	m    map[string]*sql.Stmt
}

func (c *stmtCache) get(ctx context.Context, query string) (*sql.Stmt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if st := c.m[query]; st != nil {
		return st, nil
	}
	st, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	if c.m == nil {
		c.m = map[string]*sql.Stmt{}
	}
	c.m[query] = st
	return st, nil
}

func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for _, st := range c.m {
		errs = append(errs, st.Close())
	}
	c.m = nil
	return errors.Join(errs...)
}

// Rows per INSERT statement: fewer statements mean less per-statement
// work in database/sql and the driver, which dominated Put's profile.
const (
	eventsPerInsert = 64
	refsPerInsert   = 250
)

// insertSQL returns an INSERT of n rows of width columns.
func insertSQL(head string, width, n int, tail string) string {
	row := "(?" + strings.Repeat(",?", width-1) + ")"
	return head + " VALUES " + row + strings.Repeat(","+row, n-1) + tail
}

// Record is an event encoded for the database: its protobuf bytes, keys
// and references. Encoding needs no database, so a caller with many
// goroutines can do it in parallel before PutRecords.
type Record struct {
	event               *pb.Event
	id, node, boot, typ string
	seq, t, received    int64
	rev                 int64
	// seen is the event's own time, which for a warning differs from t.
	seen int64
	cols columns
	data []byte
	refs []int64
}

// Event returns the event encoded (with Id and Received set), nil after
// Release.
func (r *Record) Event() *pb.Event { return r.event }

// Release drops the decoded event, so that a record waiting for its commit
// holds only what PutRecords stores (Footprint); Decoded reads the event
// again from those bytes.
func (r *Record) Release() { r.event = nil }

// Decoded returns the event encoded, or after Release the event decoded
// again from its stored bytes (a new message each call).
func (r *Record) Decoded() (*pb.Event, error) {
	if r.event != nil {
		return r.event, nil
	}
	return decode(r.data)
}

// recordOverhead is about what a Record holds besides its variable parts:
// the struct, the headers of its strings and slices, allocation slack.
const recordOverhead = 320

// Footprint is about the bytes a released record holds in memory.
func (r *Record) Footprint() int {
	n := recordOverhead + cap(r.data) + 8*cap(r.refs) + len(r.id) + len(r.node) + len(r.boot)
	return n + len(r.cols.kind) + len(r.cols.verdict) + len(r.cols.memcg)
}

// Encode prepares an event for PutRecords. It sets the event's Id and
// Received; the event must not change afterwards.
func Encode(e *pb.Event, received time.Time) (*Record, error) {
	return EncodeWire(e, nil, received)
}

// EncodeWire is Encode of an event decoded from wire, its protobuf
// encoding as received: the stored bytes are wire with Id and Received
// appended, which saves encoding the event again. An encoding that holds
// either field already (a later occurrence of a message field is merged
// into an earlier one, not put in its place), or nil wire, is encoded
// anew from e.
func EncodeWire(e *pb.Event, wire []byte, received time.Time) (*Record, error) {
	if err := checkIdentity(e); err != nil {
		return nil, err
	}
	e.Id = eventid.String(e)
	e.Received = timestamppb.New(received)
	var data []byte
	if wire != nil && !hasIDOrReceived(wire) {
		data = packWire(wire, e.Id, received)
	} else {
		raw, err := proto.Marshal(e)
		if err != nil {
			return nil, fmt.Errorf("encode %s: %w", e.Id, err)
		}
		data = pack(raw)
	}
	r := &Record{event: e, id: e.Id, node: e.GetNode(), boot: e.GetBootId(), typ: eventid.TypeOf(e), seq: e.GetSeq(), rev: e.GetRevision(),
		t: nanos(rowTime(e)), seen: nanos(e.GetTime().AsTime()), received: nanos(received), cols: columnsOf(e), data: data}
	for _, rf := range refsOf(e) {
		r.refs = append(r.refs, rf.hash())
	}
	return r, nil
}

// checkIdentity reports an event the store cannot key.
func checkIdentity(e *pb.Event) error {
	switch {
	case e == nil:
		return fmt.Errorf("%w: nil event", ErrInvalidEvent)
	case e.GetNode() == "" || e.GetBootId() == "":
		return fmt.Errorf("%w: node and boot_id are required", ErrInvalidEvent)
	case eventid.TypeOf(e) == "":
		return fmt.Errorf("%w: no payload", ErrInvalidEvent)
	case e.GetTime() == nil:
		return fmt.Errorf("%w: no time", ErrInvalidEvent)
	}
	return nil
}

// Put stores events in one transaction and returns what it did with each,
// in order. It sets each event's Id and Received (now). An event whose
// identity is already stored, by an earlier Put or earlier in events, is a
// duplicate, unless it is an exit or a warning with a higher revision: it
// then replaces the stored one (Updated), keeping its place in time (a
// warning's is its opening time, see rowTime). When Put returns nil the
// events are durably committed; when it returns an error none is stored.
func (s *Store) Put(ctx context.Context, events []*pb.Event) ([]PutResult, error) {
	now := time.Now()
	recs := make([]*Record, len(events))
	for i, e := range events {
		r, err := Encode(e, now)
		if err != nil {
			return nil, fmt.Errorf("put event %d: %w", i, err)
		}
		recs[i] = r
	}
	return s.PutRecords(ctx, recs)
}

// PutRecords is Put of encoded events.
func (s *Store) PutRecords(ctx context.Context, recs []*Record) ([]PutResult, error) {
	if len(recs) == 0 {
		return nil, nil
	}
	out := make([]PutResult, len(recs))
	err := s.inTx(ctx, func(*sql.Conn) error {
		// Events, many per statement; RETURNING names those inserted, the
		// others being duplicates. OR IGNORE rather than ON CONFLICT: no
		// row can abort the statement, so SQLite keeps no statement journal.
		inserted := make(map[string]int64, len(recs))
		ordered := byNode(recs)
		for lo := 0; lo < len(recs); lo += eventsPerInsert {
			hi := min(lo+eventsPerInsert, len(recs))
			st, err := s.stmts.get(ctx, insertSQL(`INSERT OR IGNORE INTO events
				(id, node, boot_id, type, seq, time, received, kind, collateral, verdict, data, rev, memcg, seen)`, 14, hi-lo,
				` RETURNING rowid, id`))
			if err != nil {
				return err
			}
			args := make([]any, 0, 14*(hi-lo))
			for _, r := range ordered[lo:hi] {
				args = append(args, r.id, r.node, r.boot, r.typ, r.seq, r.t, r.received,
					r.cols.kind, r.cols.collateral, r.cols.verdict, r.data, r.rev, r.cols.memcg, r.seen)
			}
			res, err := st.QueryContext(ctx, args...)
			if err != nil {
				return fmt.Errorf("insert events: %w", err)
			}
			for res.Next() {
				var rowid int64
				var id string
				if err := res.Scan(&rowid, &id); err != nil {
					res.Close()
					return fmt.Errorf("insert events: %w", err)
				}
				inserted[id] = rowid
			}
			err = res.Err()
			res.Close()
			if err != nil {
				return fmt.Errorf("insert events: %w", err)
			}
		}
		// References of the new events, inserted in key order.
		var refs []refRow
		for i, r := range recs {
			rowid, ok := inserted[r.id]
			if !ok {
				out[i] = PutResult{Duplicate: true}
				// Only exits (oom-child stories) and warnings (updates,
				// resolutions) are updated: a kernel report, once stored,
				// is evidence and stays as it came.
				if r.rev <= 0 || (r.typ != eventid.TypeExit && r.typ != eventid.TypeWarning) {
					continue
				}
				updated, err := s.update(ctx, r)
				if err != nil {
					return err
				}
				if updated == 0 {
					continue
				}
				out[i] = PutResult{Updated: true}
				rowid = updated
			} else {
				// A second copy in this batch is a duplicate of the first,
				// or, with a higher revision, its update.
				delete(inserted, r.id)
				out[i] = PutResult{Stored: true}
			}
			for _, h := range r.refs {
				refs = append(refs, refRow{h, r.t, rowid})
			}
		}
		return s.insertRefs(ctx, refs)
	})
	if err != nil {
		return nil, fmt.Errorf("put: %w", err)
	}
	return out, nil
}

// byNode returns recs grouped by node, each node's in their order in recs
// (which keeps an agent's events in the order it sent them, and so their
// rowids). Inserted in that order, one node's rows go one after another
// into the indexes that begin with the node (the identity's and
// events_node_time), which touches each of their pages once per commit,
// while it is in the CPU's cache, instead of walking the whole index at
// random: the store's CPU per event fell by 15-18% in
// BenchmarkPutCommits.
func byNode(recs []*Record) []*Record {
	out := slices.Clone(recs)
	slices.SortStableFunc(out, func(a, b *Record) int { return strings.Compare(a.node, b.node) })
	return out
}

// refRow is a row of refs.
type refRow struct{ h, t, event int64 }

// insertRefs inserts rows into refs in the order of its key, for the
// reason byNode gives.
func (s *Store) insertRefs(ctx context.Context, rows []refRow) error {
	slices.SortFunc(rows, func(a, b refRow) int {
		return cmp.Or(cmp.Compare(a.h, b.h), cmp.Compare(a.t, b.t), cmp.Compare(a.event, b.event))
	})
	args := make([]any, 0, 3*min(len(rows), refsPerInsert))
	for lo := 0; lo < len(rows); lo += refsPerInsert {
		hi := min(lo+refsPerInsert, len(rows))
		st, err := s.stmts.get(ctx, insertSQL(`INSERT OR IGNORE INTO refs (h, time, event)`, 3, hi-lo, ""))
		if err != nil {
			return err
		}
		args = args[:0]
		for _, r := range rows[lo:hi] {
			args = append(args, r.h, r.t, r.event)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert refs: %w", err)
		}
	}
	return nil
}

// update replaces the stored event of r's identity when r's revision is
// higher, and returns its rowid (0: the stored one is as new or newer).
// The event keeps its time: its references stay valid, new ones are added.
func (s *Store) update(ctx context.Context, r *Record) (int64, error) {
	st, err := s.stmts.get(ctx, `UPDATE events SET received = ?, kind = ?, collateral = ?, verdict = ?, data = ?, rev = ?, memcg = ?, seen = ?
		WHERE id = ? AND rev < ? AND time = ? RETURNING rowid`)
	if err != nil {
		return 0, err
	}
	var rowid int64
	err = st.QueryRowContext(ctx, r.received, r.cols.kind, r.cols.collateral, r.cols.verdict, r.data, r.rev, r.cols.memcg, r.seen,
		r.id, r.rev, r.t).Scan(&rowid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("update event %s: %w", r.id, err)
	}
	return rowid, nil
}

// Get returns the event with this ID, or ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (*pb.Event, error) {
	var data []byte
	err := s.r.QueryRowContext(ctx, `SELECT data FROM events WHERE id = ?`, id).Scan(&data)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%q: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", id, err)
	}
	return decode(data)
}

func decode(data []byte) (*pb.Event, error) {
	data, err := unpack(data)
	if err != nil {
		return nil, fmt.Errorf("decode stored event: %w", err)
	}
	e := &pb.Event{}
	if err := proto.Unmarshal(data, e); err != nil {
		return nil, fmt.Errorf("decode stored event: %w", err)
	}
	return e, nil
}
