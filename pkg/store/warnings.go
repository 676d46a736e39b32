package store

import (
	"context"
	"fmt"
	"time"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// OpenWarnings returns the warnings open at now (state open, latest
// revision within WarningStale): how many of each kind (by its word), and
// the warnings themselves, at most max of them (the most recently
// refreshed), for the at-risk gauges. Both come from the partial index of
// open warnings.
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
		WHERE type = 'warning' AND verdict = 'open' AND seen >= ?1 ORDER BY seen DESC LIMIT ?2`, cut, max)
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
