package pg

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Use is one replica's running total of events admitted under one rate
// limit key.
type Use struct {
	Key, Writer string
	Total       int64
}

// UseRecent is how long a replica's total stays visible to the others
// after its last change; UseForget is when it is deleted.
const (
	UseRecent = 10 * time.Second
	UseForget = time.Hour
)

// MaxUseKeys bounds the keys one ShareUse publishes.
const MaxUseKeys = 50000

// ShareUse publishes this Store's running totals of own (only those that
// changed since the last call need be given) and returns the other
// replicas' totals that changed within UseRecent, so that each replica
// charges its rate limits with what the others admitted (package
// aggregator). Totals a replica has not changed for UseForget are deleted.
func (s *Store) ShareUse(ctx context.Context, own map[string]int64) ([]Use, error) {
	if len(own) > MaxUseKeys {
		return nil, fmt.Errorf("share use: %d keys, at most %d", len(own), MaxUseKeys)
	}
	keys, totals := make([]string, 0, len(own)), make([]int64, 0, len(own))
	for k, n := range own {
		keys, totals = append(keys, k), append(totals, n)
	}
	var out []Use
	err := s.inTx(ctx, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if len(keys) > 0 {
			if _, err := tx.Exec(ctx, `
INSERT INTO rate_use (key, writer, total, updated)
SELECT k, $3, n, (extract(epoch FROM clock_timestamp()) * 1e9)::bigint FROM unnest($1::text[], $2::bigint[]) AS u(k, n)
ON CONFLICT (key, writer) DO UPDATE SET total = EXCLUDED.total, updated = EXCLUDED.updated`,
				keys, totals, s.writer); err != nil {
				return fmt.Errorf("publish: %w", err)
			}
		}
		rows, err := tx.Query(ctx, `
SELECT key, writer, total FROM rate_use
WHERE writer <> $1 AND updated > (extract(epoch FROM clock_timestamp()) * 1e9)::bigint - $2`,
			s.writer, UseRecent.Nanoseconds())
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var u Use
			if err := rows.Scan(&u.Key, &u.Writer, &u.Total); err != nil {
				return fmt.Errorf("read: %w", err)
			}
			out = append(out, u)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, fmt.Errorf("share use: %w", err)
	}
	if s.useCalls.Add(1)%60 == 0 {
		if _, err := s.pool.Exec(ctx, `DELETE FROM rate_use WHERE updated < (extract(epoch FROM clock_timestamp()) * 1e9)::bigint - $1`,
			UseForget.Nanoseconds()); err != nil {
			return out, fmt.Errorf("share use: forget: %w", err)
		}
	}
	return out, nil
}
