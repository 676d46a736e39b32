package store

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// DefaultGap separates incidents when the caller gives none.
const DefaultGap = 60 * time.Second

// kill is one OOM kill as the incident scan reads it.
type kill struct {
	rowid, t   int64
	node, boot string
	kind       string
	collateral bool
	memcg      string
}

// story is what a kill's incident is grouped by: its node and boot, and
// for a limit kill its limited cgroup: limit kills of unrelated limits
// close in time are separate stories, never each other's collateral.
func (k kill) story() string {
	if k.kind == "limit" && k.memcg != "" {
		return k.node + "\x00" + k.boot + "\x00" + k.memcg
	}
	return k.nodeStory()
}

// nodeStory is the story of a node's node-level kills, and of limit kills
// whose limited cgroup is not known (events of agents before the limited
// cgroup was stored, reports cut short): they group per node, as before.
func (k kill) nodeStory() string { return k.node + "\x00" + k.boot }

// KillGroup is an incident found by GroupKills: its kills, newest first.
type KillGroup struct {
	key    string
	kills  []kill
	closed bool
	// unknownOnly: every kill so far is a limit kill whose limited cgroup
	// is not known (a storm's bare kill lines seen before its report).
	unknownOnly bool
}

func (b *KillGroup) earliest() int64 { return b.kills[len(b.kills)-1].t }
func (b *KillGroup) end() cursor     { return cursor{t: b.kills[0].t, id: b.kills[0].rowid} }

// End is the position of the group's last kill: the position of the
// incident in a listing, which a page token of Incidents holds.
func (b *KillGroup) End() Cursor { return exported(b.end()) }

// IDs are the row IDs of the group's kills.
func (b *KillGroup) IDs() []int64 {
	out := make([]int64, len(b.kills))
	for i, k := range b.kills {
		out[i] = k.rowid
	}
	return out
}

// Incidents groups the OOM kills matching f into incidents: per node and
// boot, ordered by time, a kill more than gap (0: DefaultGap) after the
// previous one starts a new incident. Incidents come newest first, by
// their last kill, a page at a time as in List.
//
// The kills are read newest first and the scan stops once the page is
// full: an incident is complete as soon as the scan is more than gap
// older than its earliest kill. A page token resumes the scan gap above
// the previous page's last incident, so that the kills of incidents
// already returned are recognised as theirs.
func (s *Store) Incidents(ctx context.Context, f *pb.EventFilter, gap time.Duration, size int, pageToken string) ([]*pb.Incident, string, error) {
	if err := ValidateFilter(f); err != nil {
		return nil, "", err
	}
	if gap < 0 {
		return nil, "", fmt.Errorf("%w: negative gap", ErrInvalidFilter)
	}
	if gap == 0 {
		gap = DefaultGap
	}
	size = pageSize(size)
	dig := digest(f, int64(gap))
	q := scan{f: f, cols: "e.rowid, e.time, e.node, e.boot_id, e.kind, e.collateral, e.memcg", onlyType: eventid.TypeOOM}
	var after *cursor
	if pageToken != "" {
		c, err := s.tok.parseToken(tokenIncidents, dig, pageToken)
		if err != nil {
			return nil, "", err
		}
		after = &c
		top := ResumeAt(exported(c), gap)
		q.notAfter = &top
	}
	stmt, args, empty := q.sql()
	if empty {
		return nil, "", nil
	}
	// One read transaction: the page's events are read from the same
	// snapshot the grouping saw.
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, "", fmt.Errorf("incidents: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	rows, err := tx.QueryContext(ctx, stmt, args...)
	if err != nil {
		return nil, "", fmt.Errorf("incidents: %w", err)
	}
	page, more, err := group(rows, int64(gap), size, after)
	rows.Close()
	if err != nil {
		return nil, "", fmt.Errorf("incidents: %w", err)
	}
	out, err := s.assemble(ctx, tx, page)
	if err != nil {
		return nil, "", fmt.Errorf("incidents: %w", err)
	}
	next := ""
	if more {
		next = s.tok.token(tokenIncidents, dig, page[len(page)-1].end())
	}
	return out, next, nil
}

// Rows is a result set being read: *sql.Rows, or a PostgreSQL driver's
// rows.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
}

// GroupKills groups OOM kills into incidents as Incidents does. rows holds
// the kills newest first, by (time, row ID), each row being (row ID, time
// in Unix ns, node, boot ID, kind, collateral, limited cgroup); when a
// page token was given (after, from ParseIncidents), only kills at or
// below the after position plus gap. It returns up to size incidents
// ending before after, newest first, and whether more follow. The caller
// closes rows.
func GroupKills(rows Rows, gap time.Duration, size int, after *Cursor) ([]*KillGroup, bool, error) {
	var a *cursor
	if after != nil {
		c := after.internal()
		a = &c
	}
	return group(rows, int64(gap), size, a)
}

// group returns up to size incidents of the kills of rows ending before
// after, and whether more follow.
func group(rows Rows, gap int64, size int, after *cursor) ([]*KillGroup, bool, error) {
	open := map[string]*KillGroup{}
	// lastLimit is, per node and boot, the limit story a kill last joined.
	lastLimit := map[string]*KillGroup{}
	var queue, page []*KillGroup
	// release hands out the oldest-discovered incident (whose end is the
	// newest) when nothing older can join it; it reports a full page.
	release := func(now int64, all bool) bool {
		for len(queue) > 0 {
			h := queue[0]
			if !all && !h.closed && h.earliest()-now <= gap {
				return false
			}
			h.closed = true
			queue = queue[1:]
			if open[h.key] == h {
				delete(open, h.key)
			}
			if lastLimit[h.kills[0].nodeStory()] == h {
				delete(lastLimit, h.kills[0].nodeStory())
			}
			if after != nil {
				if e := h.end(); e.t > after.t || (e.t == after.t && e.id >= after.id) {
					continue // returned by an earlier page
				}
			}
			page = append(page, h)
			if len(page) > size {
				return true
			}
		}
		return false
	}
	for rows.Next() {
		var k kill
		if err := rows.Scan(&k.rowid, &k.t, &k.node, &k.boot, &k.kind, &k.collateral, &k.memcg); err != nil {
			return nil, false, err
		}
		if release(k.t, false) {
			return page[:size], true, nil
		}
		key := k.story()
		b := open[key]
		nb := k.nodeStory()
		unknown := k.kind == "limit" && k.memcg == ""
		switch {
		case unknown:
			// The node's nearest limit story, when one is open: a storm's
			// bare kill lines belong to the limit its reports name.
			if l := lastLimit[nb]; l != nil && !l.closed && l.earliest()-k.t <= gap {
				b = l
			}
		case k.kind == "limit" && b == nil:
			// Kills of an unknown limit seen just before (in time: after)
			// this one's report: its storm's bare kill lines.
			if l := open[nb]; l != nil && l.unknownOnly && !l.closed && l.earliest()-k.t <= gap {
				delete(open, nb)
				l.key, l.unknownOnly, b = key, false, l
				open[key] = l
			}
		}
		if b != nil && !b.closed {
			if b.earliest()-k.t <= gap {
				b.kills = append(b.kills, k)
				b.unknownOnly = b.unknownOnly && unknown
				if k.kind == "limit" && b.key != nb {
					lastLimit[nb] = b
				}
				continue
			}
			b.closed = true
		}
		b = &KillGroup{key: key, kills: []kill{k}, unknownOnly: unknown}
		open[key] = b
		if k.kind == "limit" && key != nb {
			lastLimit[nb] = b
		}
		queue = append(queue, b)
	}
	if err := rows.Err(); err != nil {
		return nil, false, err
	}
	if release(0, true) {
		return page[:size], true, nil
	}
	return page, false, nil
}

// assemble reads the events of the incidents and builds them.
func (s *Store) assemble(ctx context.Context, tx *sql.Tx, page []*KillGroup) ([]*pb.Incident, error) {
	var ids []int64
	for _, b := range page {
		ids = append(ids, b.IDs()...)
	}
	events, err := eventsByRowID(ctx, tx, ids)
	if err != nil {
		return nil, err
	}
	return BuildIncidents(page, events), nil
}

// eventsByRowID reads events by row ID.
func eventsByRowID(ctx context.Context, tx *sql.Tx, ids []int64) (map[int64]*pb.Event, error) {
	events := make(map[int64]*pb.Event, len(ids))
	const chunk = 500
	for len(ids) > 0 {
		n := min(chunk, len(ids))
		args := make([]any, n)
		for i, id := range ids[:n] {
			args[i] = id
		}
		ids = ids[n:]
		rows, err := tx.QueryContext(ctx, `SELECT rowid, data FROM events WHERE rowid IN (?`+strings.Repeat(",?", n-1)+`)`, args...)
		if err != nil {
			return nil, err
		}
		for rows.Next() {
			var id int64
			var data []byte
			if err := rows.Scan(&id, &data); err != nil {
				rows.Close()
				return nil, err
			}
			e, err := decode(data)
			if err != nil {
				rows.Close()
				return nil, err
			}
			events[id] = e
		}
		err = rows.Err()
		rows.Close()
		if err != nil {
			return nil, err
		}
	}
	return events, nil
}

// BuildIncidents builds the incidents of groups from their kills' events
// by row ID.
func BuildIncidents(page []*KillGroup, events map[int64]*pb.Event) []*pb.Incident {
	out := make([]*pb.Incident, 0, len(page))
	for _, b := range page {
		// Oldest kill first.
		var evs []*pb.Event
		kind := "limit"
		for i := len(b.kills) - 1; i >= 0; i-- {
			k := b.kills[i]
			if k.kind == "node" {
				kind = "node"
			}
			if e := events[k.rowid]; e != nil {
				evs = append(evs, e)
			}
		}
		if len(evs) == 0 {
			continue
		}
		out = append(out, incident(evs, kind))
	}
	return out
}

// incident builds an incident from its kills, oldest first.
func incident(evs []*pb.Event, kind string) *pb.Incident {
	first, last := evs[0], evs[len(evs)-1]
	in := &pb.Incident{
		Id:      eventid.ID{Node: first.GetNode(), BootID: first.GetBootId(), Type: eventid.TypeIncident, Seq: first.GetSeq()}.String(),
		Node:    first.GetNode(),
		BootId:  first.GetBootId(),
		Start:   timestamppb.New(first.GetTime().AsTime()),
		End:     timestamppb.New(last.GetTime().AsTime()),
		Kind:    kind,
		OomKind: wire.KindToPB(kind),
		Kills:   int32(len(evs)),
		Trigger: first.GetOom().GetTrigger(),
	}
	for _, e := range evs {
		if k := e.GetOom(); wire.Kind(k) == "limit" && k.GetOomMemcg() != "" {
			in.LimitedCgroup = k.GetOomMemcg()
			break
		}
	}
	bestRSS := int64(-1)
	for _, e := range evs {
		k := e.GetOom()
		in.EventIds = append(in.EventIds, e.GetId())
		switch wire.Verdict(k) {
		case analysis.CollateralYes:
			in.Collateral++
		case analysis.CollateralUnknown:
			in.CollateralUnknown++
		}
		if v := k.GetVictims(); len(v) > 0 {
			in.Victims = append(in.Victims, v[0])
		}
		if c := k.GetCulprit(); c != nil {
			rss := int64(-1)
			if c.RssBytes != nil {
				rss = c.GetRssBytes()
			}
			if in.Culprit == nil || rss > bestRSS {
				in.Culprit, bestRSS = c, rss
			}
		}
	}
	return in
}
