package store

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/vocab"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Page sizes of List and Incidents.
const (
	// DefaultPageSize is used when the page size is 0.
	DefaultPageSize = 100
	// MaxPageSize bounds a page; larger sizes are reduced to it.
	MaxPageSize = 1000
)

// knownTypes are the event types a filter may name.
var knownTypes = []string{eventid.TypeOOM, eventid.TypeLoss, eventid.TypeExit, eventid.TypeWarning}

// WarningStale is wire.WarningStale: open_warnings_only leaves out an open
// warning not refreshed for that long.
const WarningStale = wire.WarningStale

// warningFilter reports whether f selects warnings only (warning_kinds or
// open_warnings_only imply the warning type).
func warningFilter(f *pb.EventFilter) bool {
	return len(f.GetWarningKinds()) > 0 || f.GetOpenWarningsOnly()
}

// ValidateFilter reports a filter the store cannot answer
// (ErrInvalidFilter). A nil filter matches everything.
func ValidateFilter(f *pb.EventFilter) error {
	if f == nil {
		return nil
	}
	for _, ts := range []struct {
		name string
		ok   bool
	}{{"since", f.Since == nil || f.Since.IsValid()}, {"until", f.Until == nil || f.Until.IsValid()},
		{"received_since", f.ReceivedSince == nil || f.ReceivedSince.IsValid()}} {
		if !ts.ok {
			return fmt.Errorf("%w: %s is not a valid timestamp", ErrInvalidFilter, ts.name)
		}
	}
	if f.Since != nil && f.Until != nil && f.Until.AsTime().Before(f.Since.AsTime()) {
		return fmt.Errorf("%w: until is before since", ErrInvalidFilter)
	}
	for _, t := range f.GetTypes() {
		if !slices.Contains(knownTypes, t) {
			return fmt.Errorf("%w: unknown type %q (want oom, loss, exit or warning)", ErrInvalidFilter, t)
		}
	}
	for _, k := range f.GetWarningKinds() {
		if vocab.WarningKind(k) == "unknown" {
			return fmt.Errorf("%w: unknown warning kind %d", ErrInvalidFilter, k)
		}
	}
	for _, v := range f.GetVerdicts() {
		if v == "" {
			return fmt.Errorf("%w: empty verdict", ErrInvalidFilter)
		}
	}
	return nil
}

// Matches is MatchesAt now.
func Matches(f *pb.EventFilter, e *pb.Event) bool {
	return MatchesAt(f, e, time.Now())
}

// MatchesAt reports whether an event passes a filter at time now, exactly
// as List selects: since is inclusive, until exclusive, both of the event's
// place in time (a warning's opening time, see rowTime); namespace, pod
// (name or UID) and container each match any workload the event touches;
// kind selects OOM kills, verdicts exits; warning_kinds selects warnings of
// those kinds, open_warnings_only warnings open and refreshed within
// WarningStale before now.
func MatchesAt(f *pb.EventFilter, e *pb.Event, now time.Time) bool {
	if f == nil {
		return true
	}
	t := rowTime(e)
	if f.Since != nil && t.Before(f.Since.AsTime()) {
		return false
	}
	if f.Until != nil && !t.Before(f.Until.AsTime()) {
		return false
	}
	if f.ReceivedSince != nil && e.GetReceived().AsTime().Before(f.ReceivedSince.AsTime()) {
		return false
	}
	if f.Node != "" && e.GetNode() != f.Node {
		return false
	}
	if len(f.Types) > 0 && !slices.Contains(f.Types, eventid.TypeOf(e)) {
		return false
	}
	c := columnsOf(e)
	if f.Kind != "" && (eventid.TypeOf(e) != eventid.TypeOOM || c.kind != f.Kind) {
		return false
	}
	if f.CollateralOnly && !c.collateral {
		return false
	}
	if len(f.Verdicts) > 0 && (eventid.TypeOf(e) != eventid.TypeExit || !slices.Contains(f.Verdicts, c.verdict)) {
		return false
	}
	if warningFilter(f) && eventid.TypeOf(e) != eventid.TypeWarning {
		return false
	}
	if len(f.WarningKinds) > 0 && !slices.Contains(f.WarningKinds, e.GetWarning().GetWarningKind()) {
		return false
	}
	if f.OpenWarningsOnly && (c.verdict != stateOpen || e.GetTime().AsTime().Before(now.Add(-WarningStale))) {
		return false
	}
	if f.Namespace == "" && f.Pod == "" && f.Container == "" {
		return true
	}
	refs := refsOf(e)
	has := func(k int, v string) bool {
		return v == "" || slices.Contains(refs, ref{k, v})
	}
	return has(refNamespace, f.Namespace) && has(refPod, f.Pod) && has(refContainer, f.Container)
}

// nanos is t in Unix nanoseconds, clamped to what an int64 holds.
func nanos(t time.Time) int64 {
	switch {
	case t.Before(minTime):
		return math.MinInt64
	case t.After(maxTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minTime = time.Unix(0, math.MinInt64)
	maxTime = time.Unix(0, math.MaxInt64)
)

// cursor is a position in the (time, rowid) order of events, newest first.
type cursor struct {
	t, id int64
}

// scan describes one query over events, newest first.
type scan struct {
	f    *pb.EventFilter
	cols string
	// before: only events strictly older than this position.
	before *cursor
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
//
// The plan is chosen here rather than left to SQLite: the most selective
// workload reference (pod, then container, then namespace) drives the
// query from the refs primary key, (hash, time, event), which yields
// events newest first with no sort; without one, open_warnings_only reads
// the partial index of open warnings (a few per cgroup at most, sorted by
// time: walking all warnings newest first for the open ones among them
// took 100 ms over 100,000 warnings, BenchmarkListOpenWarnings), and
// otherwise the node, type or time index of events does. Other conditions
// filter the rows so found.
func (q scan) sql() (stmt string, args []any, empty bool) {
	f := q.f
	if f == nil {
		f = &pb.EventFilter{}
	}
	types, empty := FilterTypes(f, q.onlyType)
	if empty {
		return "", nil, true
	}

	var where []string
	arg := func(a any) string {
		args = append(args, a)
		return fmt.Sprintf("?%d", len(args))
	}
	var b strings.Builder
	var tcol, idcol string
	refs := RefHashes(f) // the most selective first
	if len(refs) > 0 {
		tcol, idcol = "r.time", "r.event"
		// CROSS JOIN makes SQLite keep refs as the outer loop.
		fmt.Fprintf(&b, "SELECT %s FROM refs r CROSS JOIN events e ON e.rowid = r.event AND e.time = r.time", q.cols)
		where = append(where, "r.h = "+arg(refs[0]))
	} else {
		tcol, idcol = "e.time", "e.rowid"
		index := "events_time"
		switch {
		case f.GetOpenWarningsOnly():
			// The conditions of the partial index are added below, as
			// literals, so that SQLite sees it applies.
			index = "events_open_warnings"
		case f.GetNode() != "":
			index = "events_node_time"
		case len(types) == 1 && types[0] != eventid.TypeOOM:
			index = "events_type_time"
			// Spelled out so that SQLite sees the partial index applies.
			where = append(where, "e.type <> 'oom'")
		}
		fmt.Fprintf(&b, "SELECT %s FROM events e INDEXED BY %s", q.cols, index)
	}
	if f.GetNode() != "" {
		where = append(where, "e.node = "+arg(f.GetNode()))
	}
	switch len(types) {
	case 0:
	case 1:
		where = append(where, "e.type = "+arg(types[0]))
	default:
		ph := make([]string, len(types))
		for i, t := range types {
			ph[i] = arg(t)
		}
		where = append(where, "e.type IN ("+strings.Join(ph, ",")+")")
	}
	if f.Since != nil {
		where = append(where, tcol+" >= "+arg(nanos(f.Since.AsTime())))
	}
	if f.Until != nil {
		where = append(where, tcol+" < "+arg(nanos(f.Until.AsTime())))
	}
	if f.ReceivedSince != nil {
		// No index: a watcher's catch-up after an outage, rare.
		where = append(where, "e.received >= "+arg(nanos(f.ReceivedSince.AsTime())))
	}
	if q.notAfter != nil {
		where = append(where, tcol+" <= "+arg(*q.notAfter))
	}
	if q.before != nil {
		where = append(where, fmt.Sprintf("(%s, %s) < (%s, %s)", tcol, idcol, arg(q.before.t), arg(q.before.id)))
	}
	if f.GetKind() != "" {
		where = append(where, "e.type = 'oom'", "e.kind = "+arg(f.GetKind()))
	}
	if f.GetCollateralOnly() {
		where = append(where, "e.collateral = 1")
	}
	if len(f.GetVerdicts()) > 0 {
		ph := make([]string, len(f.GetVerdicts()))
		for i, v := range f.GetVerdicts() {
			ph[i] = arg(v)
		}
		// Warnings keep their state in the verdict column.
		where = append(where, "e.type = 'exit'", "e.verdict IN ("+strings.Join(ph, ",")+")")
	}
	if warningFilter(f) {
		where = append(where, "e.type = 'warning'")
	}
	if len(f.GetWarningKinds()) > 0 {
		ph := make([]string, len(f.GetWarningKinds()))
		for i, k := range f.GetWarningKinds() {
			ph[i] = arg(vocab.WarningKind(k))
		}
		where = append(where, "e.kind IN ("+strings.Join(ph, ",")+")")
	}
	if f.GetOpenWarningsOnly() {
		now := q.now
		if now.IsZero() {
			now = time.Now()
		}
		where = append(where, "e.verdict = 'open'", "e.seen >= "+arg(nanos(now.Add(-WarningStale))))
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

// Page token kinds: a token of one query is refused by the other.
const (
	tokenEvents    = 'E'
	tokenIncidents = 'I'
)

const tokenVersion = 1

// digest binds a page token to its query: the filter and anything else
// that shapes the pages.
func digest(f *pb.EventFilter, extra int64) []byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(f)
	h := sha256.New()
	h.Write(b)
	_ = binary.Write(h, binary.BigEndian, extra)
	return h.Sum(nil)[:8]
}

// token encodes a position, signed with the store's secret so that a
// client can neither forge one nor reuse it for another query.
func (k Tokens) token(kind byte, dig []byte, c cursor) string {
	buf := make([]byte, 0, 2+8+16+16)
	buf = append(buf, tokenVersion, kind)
	buf = append(buf, dig...)
	buf = binary.BigEndian.AppendUint64(buf, uint64(c.t))
	buf = binary.BigEndian.AppendUint64(buf, uint64(c.id))
	m := hmac.New(sha256.New, k.secret)
	m.Write(buf)
	buf = m.Sum(buf)[:len(buf)+16]
	return base64.RawURLEncoding.EncodeToString(buf)
}

// parseToken decodes a token made by token for the same kind and digest.
func (k Tokens) parseToken(kind byte, dig []byte, tok string) (cursor, error) {
	buf, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil || len(buf) != 2+8+16+16 {
		return cursor{}, ErrBadPageToken
	}
	body, sig := buf[:len(buf)-16], buf[len(buf)-16:]
	m := hmac.New(sha256.New, k.secret)
	m.Write(body)
	if !hmac.Equal(m.Sum(nil)[:16], sig) {
		return cursor{}, ErrBadPageToken
	}
	if body[0] != tokenVersion || body[1] != kind || !hmac.Equal(body[2:10], dig) {
		return cursor{}, fmt.Errorf("%w: it belongs to another query", ErrBadPageToken)
	}
	return cursor{t: int64(binary.BigEndian.Uint64(body[10:18])), id: int64(binary.BigEndian.Uint64(body[18:26]))}, nil
}

// pageSize applies the defaults and bounds.
func pageSize(n int) int {
	switch {
	case n <= 0:
		return DefaultPageSize
	case n > MaxPageSize:
		return MaxPageSize
	}
	return n
}

// List returns the events matching f, newest first (by event time, then
// storage order), a page at a time: pageSize of them (0: DefaultPageSize,
// at most MaxPageSize) after the position pageToken names, and the token
// of the next page ("" after the last). Pages are a keyset: events stored
// meanwhile never shift them.
func (s *Store) List(ctx context.Context, f *pb.EventFilter, size int, pageToken string) ([]*pb.Event, string, error) {
	if err := ValidateFilter(f); err != nil {
		return nil, "", err
	}
	size = pageSize(size)
	dig := digest(f, 0)
	now := time.Now()
	q := scan{f: f, cols: "e.rowid, e.time, e.data", limit: size + 1, now: now}
	if pageToken != "" {
		c, err := s.tok.parseToken(tokenEvents, dig, pageToken)
		if err != nil {
			return nil, "", err
		}
		q.before = &c
	}
	stmt, args, empty := q.sql()
	if empty {
		return nil, "", nil
	}
	rows, err := s.r.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	defer rows.Close()
	var out []*pb.Event
	var last cursor
	scanned, more := 0, false
	for rows.Next() {
		if scanned == size {
			more = true
			break
		}
		scanned++
		var data []byte
		if err := rows.Scan(&last.id, &last.t, &data); err != nil {
			return nil, "", fmt.Errorf("list: %w", err)
		}
		e, err := decode(data)
		if err != nil {
			return nil, "", fmt.Errorf("list: %w", err)
		}
		// Only a hash collision in refs fails this.
		if MatchesAt(f, e, now) {
			out = append(out, e)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list: %w", err)
	}
	if !more {
		return out, "", nil
	}
	return out, s.tok.token(tokenEvents, dig, last), nil
}
