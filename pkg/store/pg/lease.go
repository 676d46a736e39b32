package pg

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// LeaseState is what Lease found.
type LeaseState struct {
	// Held: this Store holds the lease until its TTL has passed, by the
	// database's clock, unless it renews it.
	Held bool
	// Taken: it was held by another holder, or by nobody, before this
	// call (only when Held). PreviousRenewal is then the previous
	// holder's last renewal (zero when there was none): work done by
	// holders is done up to about that time.
	Taken           bool
	PreviousRenewal time.Time
}

// Lease takes or renews the lease name for ttl: of all the Stores (each
// replica's) that ask, one holds it at a time, until it has not renewed it
// for ttl or has released it. Times are the database's, so replicas' clocks
// do not matter.
func (s *Store) Lease(ctx context.Context, name string, ttl time.Duration) (LeaseState, error) {
	if ttl <= 0 {
		return LeaseState{}, errors.New("lease: ttl must be positive")
	}
	// The CTE reads the row as it was before the upsert (one snapshot).
	var (
		holder  *string
		renewed *int64
		got     bool
	)
	err := s.pool.QueryRow(ctx, `
WITH clock AS (SELECT (extract(epoch FROM clock_timestamp()) * 1e9)::bigint AS now),
old AS (SELECT holder, renewed FROM leases WHERE name = $1),
up AS (
	INSERT INTO leases (name, holder, renewed, expires)
	SELECT $1, $2, now, now + $3 FROM clock
	ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, renewed = EXCLUDED.renewed, expires = EXCLUDED.expires
	WHERE leases.holder = EXCLUDED.holder OR leases.expires < EXCLUDED.renewed
	RETURNING 1
)
SELECT (SELECT holder FROM old), (SELECT renewed FROM old), EXISTS (SELECT 1 FROM up)`,
		name, s.writer, ttl.Nanoseconds()).Scan(&holder, &renewed, &got)
	if err != nil {
		return LeaseState{}, fmt.Errorf("lease %s: %w", name, err)
	}
	st := LeaseState{Held: got}
	if got && (holder == nil || *holder != s.writer) {
		st.Taken = true
		if renewed != nil {
			st.PreviousRenewal = time.Unix(0, *renewed)
		}
	}
	return st, nil
}

// Release gives up the lease name if this Store holds it, so that another
// replica takes it at its next try rather than after the TTL. The last
// renewal is kept (LeaseState.PreviousRenewal).
func (s *Store) Release(ctx context.Context, name string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE leases SET expires = 0 WHERE name = $1 AND holder = $2`, name, s.writer); err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
