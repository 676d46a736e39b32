package store

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Backend is an event database: the SQLite Store of this package, or the
// PostgreSQL one of package store/pg. Both behave alike, as the suite of
// package store/storetest asserts.
type Backend interface {
	// Put encodes and stores events (see Store.Put).
	Put(ctx context.Context, events []*pb.Event) ([]PutResult, error)
	// PutRecords stores encoded events in one transaction (group commit):
	// when it returns nil they are durably committed, when it returns an
	// error none is stored.
	PutRecords(ctx context.Context, recs []*Record) ([]PutResult, error)
	// Get returns the event with this ID, or ErrNotFound.
	Get(ctx context.Context, id string) (*pb.Event, error)
	// List pages through the events matching a filter, newest first.
	List(ctx context.Context, f *pb.EventFilter, pageSize int, pageToken string) ([]*pb.Event, string, error)
	// Incidents pages through the incidents of the OOM kills matching a
	// filter, newest first.
	Incidents(ctx context.Context, f *pb.EventFilter, gap time.Duration, pageSize int, pageToken string) ([]*pb.Incident, string, error)
	// IncidentOf returns the incident of one OOM kill.
	IncidentOf(ctx context.Context, id string, gap time.Duration) (*IncidentKills, error)
	// OpenWarnings counts and returns the warnings open at now.
	OpenWarnings(ctx context.Context, now time.Time, max int) (map[string]int64, []*pb.Event, error)
	// Prune deletes the events older than olderThan.
	Prune(ctx context.Context, olderThan time.Time) (int64, error)
	// Close releases the database.
	Close() error
}

var _ Backend = (*Store)(nil)

// Row is a Record as a backend stores it: one row of the events table and
// the hashes of the workload references it is found by.
type Row struct {
	// ID is the event's identity, node/boot_id/type/seq, unique.
	ID     string
	Node   string
	BootID string
	// Type is eventid.TypeOf the event.
	Type string
	Seq  int64
	// Time is the event's place in time in Unix ns (a warning's opening
	// time), Received when it was received.
	Time     int64
	Received int64
	// Revision replaces a stored event of the same ID and a lower one
	// (exits and warnings only, at the same Time).
	Revision int64
	// Seen is the event's own time in Unix ns: a warning's latest revision.
	Seen int64
	// Kind is an OOM kill's kind or a warning's kind word; Verdict an
	// exit's verdict or a warning's state; Memcg a limit kill's limited
	// cgroup; Collateral the verdict's yes.
	Kind       string
	Collateral bool
	Verdict    string
	Memcg      string
	// Data is the event as the data column keeps it: protobuf, compressed
	// when large (see pack); Decode reads it.
	Data []byte
	// Refs are the hashes of the namespaces, pods and containers the event
	// touches (see RefHashes).
	Refs []int64
}

// Row returns the record's row.
func (r *Record) Row() Row {
	return Row{ID: r.id, Node: r.node, BootID: r.boot, Type: r.typ, Seq: r.seq, Time: r.t, Received: r.received,
		Revision: r.rev, Seen: r.seen, Kind: r.cols.kind, Collateral: r.cols.collateral, Verdict: r.cols.verdict,
		Memcg: r.cols.memcg, Data: r.data, Refs: r.refs}
}

// Updatable reports whether a stored copy of the row's event may be
// replaced by this one when its revision is higher: only exits (oom-child
// stories) and warnings with a revision are; a kernel report, once
// stored, is evidence and stays as it came.
func (r Row) Updatable() bool {
	return r.Revision > 0 && (r.Type == eventid.TypeExit || r.Type == eventid.TypeWarning)
}

// RefHashes returns the hashes of a filter's workload references, the
// most selective first (pod, container, namespace), for those it names.
// A backend finds the events of each by its references table; a hash
// collision can only add candidates, which MatchesAt rules out.
func RefHashes(f *pb.EventFilter) []int64 {
	var out []int64
	for _, r := range []ref{{refPod, f.GetPod()}, {refContainer, f.GetContainer()}, {refNamespace, f.GetNamespace()}} {
		if r.v != "" {
			out = append(out, r.hash())
		}
	}
	return out
}

// FilterTypes returns the event types a filter selects, sorted and
// without duplicates, nil for all of them. only, when set, narrows them
// to one type; empty reports a filter that then selects none.
func FilterTypes(f *pb.EventFilter, only string) (types []string, empty bool) {
	types = slices.Clone(f.GetTypes())
	if only != "" {
		if len(types) > 0 && !slices.Contains(types, only) {
			return nil, true
		}
		types = []string{only}
	}
	slices.Sort(types)
	types = slices.Compact(types)
	if len(types) == len(knownTypes) {
		types = nil
	}
	return types, false
}

// WarningsOnly reports whether f selects warnings only (warning_kinds or
// open_warnings_only imply the warning type).
func WarningsOnly(f *pb.EventFilter) bool { return warningFilter(f) }

// Nanos is t in Unix nanoseconds, clamped to what an int64 holds: the
// time columns of every backend.
func Nanos(t time.Time) int64 { return nanos(t) }

// PageSize applies the default and the bound to a requested page size.
func PageSize(n int) int { return pageSize(n) }

// Decode decodes a stored event.
func Decode(data []byte) (*pb.Event, error) { return decode(data) }

// Cursor is a position in the (time, row ID) order of events, newest
// first: what a page token holds.
type Cursor struct {
	// Time in Unix ns, ID the row ID.
	Time, ID int64
}

func (c Cursor) internal() cursor { return cursor{t: c.Time, id: c.ID} }

func exported(c cursor) Cursor { return Cursor{Time: c.t, ID: c.id} }

// minSecret is the shortest page-token key a store accepts.
const minSecret = 16

// Tokens makes and checks page tokens: signed with a secret each backend
// keeps in its database (so that they survive restarts, and are valid on
// every replica of one database), bound to their query.
type Tokens struct {
	secret []byte
}

// NewTokens returns the page tokens signed with secret, of at least 16
// bytes.
func NewTokens(secret []byte) (Tokens, error) {
	if len(secret) < minSecret {
		return Tokens{}, fmt.Errorf("page token key of %d bytes, want at least %d", len(secret), minSecret)
	}
	return Tokens{secret: slices.Clone(secret)}, nil
}

// Events returns the token of the List page after position c.
func (k Tokens) Events(f *pb.EventFilter, c Cursor) string {
	return k.token(tokenEvents, digest(f, 0), c.internal())
}

// ParseEvents returns the position of a List page token of the same
// filter, or an error that is ErrBadPageToken.
func (k Tokens) ParseEvents(f *pb.EventFilter, tok string) (Cursor, error) {
	c, err := k.parseToken(tokenEvents, digest(f, 0), tok)
	return exported(c), err
}

// Incidents returns the token of the Incidents page after the incident
// that ends at c.
func (k Tokens) Incidents(f *pb.EventFilter, gap time.Duration, c Cursor) string {
	return k.token(tokenIncidents, digest(f, int64(gap)), c.internal())
}

// ParseIncidents returns the position of an Incidents page token of the
// same filter and gap, or an error that is ErrBadPageToken.
func (k Tokens) ParseIncidents(f *pb.EventFilter, gap time.Duration, tok string) (Cursor, error) {
	c, err := k.parseToken(tokenIncidents, digest(f, int64(gap)), tok)
	return exported(c), err
}

// ResumeAt is the newest kill time an Incidents page after the incident
// ending at c reads: gap above c, so that the kills of the incidents
// already returned are recognised as theirs.
func ResumeAt(c Cursor, gap time.Duration) int64 {
	top := c.Time
	if top < maxTime.UnixNano()-int64(gap) {
		top += int64(gap)
	}
	return top
}
