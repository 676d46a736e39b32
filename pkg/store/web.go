package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// MaxIncidentKills bounds the kills IncidentOf reads: an OOM storm that
// lasts for hours is cut there, and says so.
const MaxIncidentKills = 5000

// IncidentKills is one incident with its kills, as the web UI shows it.
type IncidentKills struct {
	Incident *pb.Incident
	// Kills are the incident's OOM kills, oldest first.
	Kills []*pb.Event
	// Truncated: the incident had more than MaxIncidentKills kills; the
	// incident and Kills describe the first MaxIncidentKills.
	Truncated bool
}

// MaxIncidentChain bounds the kills IncidentOf groups: the chain of a
// node and boot's kills, each no more than the gap after the one before,
// around the kill asked for. Past it, the chain is taken for one incident,
// cut at MaxIncidentKills (Truncated).
const MaxIncidentChain = 20 * MaxIncidentKills

// IncidentOf returns the incident that holds the OOM kill with this event
// ID, exactly as Incidents groups kills with no filter: by story, within
// the chain of kills of the same node and boot, each no more than gap (0:
// DefaultGap) after the one before. Its ID is that of Incidents, whichever
// of its kills id names. An ID of no event, or of an event that is not an
// OOM kill, is ErrNotFound.
func (s *Store) IncidentOf(ctx context.Context, id string, gap time.Duration) (*IncidentKills, error) {
	if gap < 0 {
		return nil, fmt.Errorf("%w: negative gap", ErrInvalidFilter)
	}
	if gap == 0 {
		gap = DefaultGap
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	defer func() { _ = tx.Rollback() }()

	var node, boot, typ string
	var at cursor
	err = tx.QueryRowContext(ctx, `SELECT rowid, time, node, boot_id, type FROM events WHERE id = ?`, id).
		Scan(&at.id, &at.t, &node, &boot, &typ)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return nil, fmt.Errorf("%q: %w", id, ErrNotFound)
	case err != nil:
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	case typ != eventid.TypeOOM:
		return nil, fmt.Errorf("%q is not an OOM kill: %w", id, ErrNotFound)
	}
	chain := NewKillChain(exported(at), gap)
	rows, err := tx.QueryContext(ctx, `SELECT rowid, time, node, boot_id, kind, collateral, memcg
		FROM events INDEXED BY events_node_time
		WHERE node = ?1 AND boot_id = ?2 AND type = 'oom' AND (time, rowid) < (?3, ?4)
		ORDER BY time DESC, rowid DESC`, node, boot, at.t, at.id)
	if err != nil {
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	err = chain.ReadBefore(rows)
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	if !chain.Full() {
		rows, err = tx.QueryContext(ctx, `SELECT rowid, time, node, boot_id, kind, collateral, memcg
			FROM events INDEXED BY events_node_time
			WHERE node = ?1 AND boot_id = ?2 AND type = 'oom' AND (time, rowid) >= (?3, ?4)
			ORDER BY time, rowid LIMIT ?5`, node, boot, at.t, at.id, MaxIncidentChain+1)
		if err != nil {
			return nil, fmt.Errorf("incident of %q: %w", id, err)
		}
		err = chain.ReadFrom(rows)
		rows.Close()
		if err != nil {
			return nil, fmt.Errorf("incident of %q: %w", id, err)
		}
	}
	g, truncated, err := chain.Group()
	if err != nil {
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	events, err := eventsByRowID(ctx, tx, g.IDs())
	if err != nil {
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	out, err := IncidentOfGroup(g, truncated, events)
	if err != nil {
		return nil, fmt.Errorf("%q: %w", id, err)
	}
	return out, nil
}

// KillChain is the chain of OOM kills around one kill, as IncidentOf
// reads it: the kills of its node and boot, each no more than the gap
// after the one before. No kill outside it can be in the kill's incident,
// so grouping the chain as Incidents groups kills finds that incident.
type KillChain struct {
	at  cursor
	gap int64
	// before are the chain's kills before at, newest first; after are at
	// and the kills after it, oldest first.
	before, after []kill
	// full: the chain has more than MaxIncidentChain kills; before (when
	// it overflowed) holds only its oldest.
	full bool
}

// NewKillChain starts the chain around the kill at.
func NewKillChain(at Cursor, gap time.Duration) *KillChain {
	return &KillChain{at: at.internal(), gap: int64(gap)}
}

// ReadBefore reads the chain's kills before at: rows holds the kills of
// at's node and boot before it, newest first by (time, row ID), each row
// being (row ID, time in Unix ns, node, boot ID, kind, collateral, limited
// cgroup), as GroupKills reads them. Past MaxIncidentChain kills it reads
// on to the chain's first kill, keeping only the oldest MaxIncidentKills.
// The caller closes rows.
func (c *KillChain) ReadBefore(rows Rows) error {
	last := c.at.t
	for rows.Next() {
		var k kill
		if err := rows.Scan(&k.rowid, &k.t, &k.node, &k.boot, &k.kind, &k.collateral, &k.memcg); err != nil {
			return err
		}
		if last-k.t > c.gap {
			break
		}
		last = k.t
		c.before = append(c.before, k)
		if len(c.before) > MaxIncidentChain {
			c.full = true
		}
		if c.full && len(c.before) >= 2*MaxIncidentKills {
			// Newest first: the oldest are the last ones.
			n := copy(c.before, c.before[len(c.before)-MaxIncidentKills:])
			c.before = c.before[:n]
		}
	}
	return rows.Err()
}

// Full reports a chain of more than MaxIncidentChain kills: the kills from
// at on need not be read.
func (c *KillChain) Full() bool { return c.full }

// ReadFrom reads the kill at and the chain's kills after it: rows holds the
// kills of at's node and boot from at on, oldest first by (time, row ID),
// each row as in ReadBefore. It reads no more than MaxIncidentChain kills
// in all. The caller closes rows.
func (c *KillChain) ReadFrom(rows Rows) error {
	last := c.at.t
	for !c.full && rows.Next() {
		var k kill
		if err := rows.Scan(&k.rowid, &k.t, &k.node, &k.boot, &k.kind, &k.collateral, &k.memcg); err != nil {
			return err
		}
		if k.t-last > c.gap {
			break
		}
		last = k.t
		c.after = append(c.after, k)
		if len(c.before)+len(c.after) > MaxIncidentChain {
			c.full = true
		}
	}
	return rows.Err()
}

// Group returns the incident of the chain that holds the kill at, as
// Incidents groups kills, cut to its oldest MaxIncidentKills kills, and
// whether it was cut. A chain longer than MaxIncidentChain is taken for one
// incident. A kill at that the chain does not hold (pruned between the
// reads) is ErrNotFound.
func (c *KillChain) Group() (*KillGroup, bool, error) {
	// Newest first, as group reads kills.
	kills := make([]kill, 0, len(c.before)+len(c.after))
	for i := len(c.after) - 1; i >= 0; i-- {
		kills = append(kills, c.after[i])
	}
	kills = append(kills, c.before...)
	var g *KillGroup
	if c.full {
		g = &KillGroup{kills: kills}
	} else {
		groups, _, err := group(&killRows{kills: kills}, c.gap, len(kills), nil)
		if err != nil {
			return nil, false, err
		}
		for _, h := range groups {
			if slices.ContainsFunc(h.kills, func(k kill) bool { return k.rowid == c.at.id }) {
				g = h
				break
			}
		}
	}
	if g == nil || len(g.kills) == 0 {
		return nil, false, ErrNotFound
	}
	if n := len(g.kills); n > MaxIncidentKills {
		return &KillGroup{key: g.key, kills: g.kills[n-MaxIncidentKills:]}, true, nil
	}
	return g, false, nil
}

// IncidentOfGroup builds the incident of a group from Group, its kills'
// events by row ID, as BuildIncidents does for Incidents. A group none of
// whose events remain (pruned between the reads) is ErrNotFound.
func IncidentOfGroup(g *KillGroup, truncated bool, events map[int64]*pb.Event) (*IncidentKills, error) {
	built := BuildIncidents([]*KillGroup{g}, events)
	if len(built) == 0 {
		return nil, ErrNotFound
	}
	out := &IncidentKills{Incident: built[0], Truncated: truncated}
	for i := len(g.kills) - 1; i >= 0; i-- {
		if e := events[g.kills[i].rowid]; e != nil {
			out.Kills = append(out.Kills, e)
		}
	}
	return out, nil
}

// killRows reads kills from a slice, newest first, as group reads rows of
// the incident scan.
type killRows struct {
	kills []kill
	i     int
}

func (r *killRows) Next() bool {
	if r.i >= len(r.kills) {
		return false
	}
	r.i++
	return true
}

func (r *killRows) Scan(dest ...any) error {
	if r.i == 0 || len(dest) != 7 {
		return errors.New("kill rows: scan out of place")
	}
	id, ok0 := dest[0].(*int64)
	t, ok1 := dest[1].(*int64)
	node, ok2 := dest[2].(*string)
	boot, ok3 := dest[3].(*string)
	kind, ok4 := dest[4].(*string)
	coll, ok5 := dest[5].(*bool)
	memcg, ok6 := dest[6].(*string)
	if !ok0 || !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || !ok6 {
		return errors.New("kill rows: scan into unexpected types")
	}
	k := r.kills[r.i-1]
	*id, *t, *node, *boot, *kind, *coll, *memcg = k.rowid, k.t, k.node, k.boot, k.kind, k.collateral, k.memcg
	return nil
}

func (r *killRows) Err() error { return nil }
