package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/wire"
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

// IncidentOf returns the incident that holds the OOM kill with this event
// ID, grouped as Incidents groups kills with no filter: the kills of the
// same node and boot, each no more than gap (0: DefaultGap) after the one
// before. Its ID is that of Incidents, whichever of its kills id names.
// An ID of no event, or of an event that is not an OOM kill, is
// ErrNotFound.
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
	rows, err := tx.QueryContext(ctx, `SELECT rowid, time FROM events INDEXED BY events_node_time
		WHERE node = ?1 AND boot_id = ?2 AND type = 'oom' AND (time, rowid) < (?3, ?4)
		ORDER BY time DESC, rowid DESC`, node, boot, at.t, at.id)
	if err != nil {
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	start, err := incidentStart(rows, at, int64(gap))
	rows.Close()
	if err != nil {
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	rows, err = tx.QueryContext(ctx, `SELECT time, data FROM events INDEXED BY events_node_time
		WHERE node = ?1 AND boot_id = ?2 AND type = 'oom' AND (time, rowid) >= (?3, ?4)
		ORDER BY time, rowid`, node, boot, start.t, start.id)
	if err != nil {
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	defer rows.Close()
	out, err := incidentFrom(rows, start, int64(gap))
	if err != nil {
		return nil, fmt.Errorf("incident of %q: %w", id, err)
	}
	return out, nil
}

// IncidentStart walks back from the kill at to the first kill of its
// incident, as IncidentOf does: rows holds the earlier kills of at's node
// and boot, newest first by (time, row ID), each row being (row ID, time
// in Unix ns). The caller closes rows.
func IncidentStart(rows Rows, at Cursor, gap time.Duration) (Cursor, error) {
	c, err := incidentStart(rows, at.internal(), int64(gap))
	return exported(c), err
}

// IncidentFrom reads the kills of the incident that starts at start, as
// IncidentOf does: rows holds the kills of its node and boot from start
// on, oldest first by (time, row ID), each row being (time in Unix ns,
// event protobuf). The caller closes rows.
func IncidentFrom(rows Rows, start Cursor, gap time.Duration) (*IncidentKills, error) {
	return incidentFrom(rows, start.internal(), int64(gap))
}

// incidentStart walks back from a kill to the first kill of its incident.
func incidentStart(rows Rows, at cursor, gap int64) (cursor, error) {
	for rows.Next() {
		var c cursor
		if err := rows.Scan(&c.id, &c.t); err != nil {
			return cursor{}, err
		}
		if at.t-c.t > gap {
			break
		}
		at = c
	}
	return at, rows.Err()
}

// incidentFrom reads the kills of the incident that starts at start.
func incidentFrom(rows Rows, start cursor, gap int64) (*IncidentKills, error) {
	out := &IncidentKills{}
	kind := "limit"
	last := start.t
	for rows.Next() {
		var t int64
		var data []byte
		if err := rows.Scan(&t, &data); err != nil {
			return nil, err
		}
		if t-last > gap {
			break
		}
		if len(out.Kills) == MaxIncidentKills {
			out.Truncated = true
			break
		}
		last = t
		e, err := decode(data)
		if err != nil {
			return nil, err
		}
		if wire.Kind(e.GetOom()) == "node" {
			kind = "node"
		}
		out.Kills = append(out.Kills, e)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(out.Kills) == 0 {
		// The first kill was pruned between the two reads.
		return nil, ErrNotFound
	}
	out.Incident = incident(out.Kills, kind)
	return out, nil
}
