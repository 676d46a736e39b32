package store

import (
	"context"
	"fmt"
	"time"

	"github.com/oomwatch/oomwatch/pkg/vocab"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// OpenWarnings returns the warnings open at now (state open, latest
// revision within WarningStale): how many of each kind (by its word), and
// the warnings themselves, at most max of them, for the at-risk gauges.
// When more are open, those read are of the most urgent kinds first
// (forecasts, then near-limit and limit-reclaim, then the rest, as
// metrics.Rank orders them), each kind's most recently refreshed first.
// Both come from the partial index of open warnings; the order sorts the
// open warnings only.
func (s *Store) OpenWarnings(ctx context.Context, now time.Time, max int) (map[string]int64, []*pb.Event, error) {
	cut := nanos(now.Add(-WarningStale))
	rows, err := s.r.QueryContext(ctx, `SELECT kind, count(*) FROM events INDEXED BY events_open_warnings
		WHERE type = 'warning' AND verdict = 'open' AND seen >= ?1 GROUP BY kind`, cut)
	if err != nil {
		return nil, nil, fmt.Errorf("open warnings: %w", err)
	}
	counts := map[string]int64{}
	for rows.Next() {
		var kind string
		var n int64
		if err := rows.Scan(&kind, &n); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("open warnings: %w", err)
		}
		counts[kind] = n
	}
	err = rows.Err()
	rows.Close()
	if err != nil {
		return nil, nil, fmt.Errorf("open warnings: %w", err)
	}
	rows, err = s.r.QueryContext(ctx, `SELECT data FROM events INDEXED BY events_open_warnings
		WHERE type = 'warning' AND verdict = 'open' AND seen >= ?1
		ORDER BY CASE kind WHEN ?3 THEN 0 WHEN ?4 THEN 1 WHEN ?5 THEN 1 ELSE 2 END, seen DESC LIMIT ?2`, cut, max,
		vocab.WarningKind(pb.WarningKind_WARNING_KIND_FORECAST), vocab.WarningKind(pb.WarningKind_WARNING_KIND_NEAR_LIMIT),
		vocab.WarningKind(pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM))
	if err != nil {
		return nil, nil, fmt.Errorf("open warnings: %w", err)
	}
	defer rows.Close()
	var out []*pb.Event
	for rows.Next() {
		var data []byte
		if err := rows.Scan(&data); err != nil {
			return nil, nil, fmt.Errorf("open warnings: %w", err)
		}
		e, err := decode(data)
		if err != nil {
			return nil, nil, fmt.Errorf("open warnings: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("open warnings: %w", err)
	}
	return counts, out, nil
}
