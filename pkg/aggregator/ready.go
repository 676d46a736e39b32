package aggregator

import (
	"context"
	"errors"
)

// Pinger is a store that can say whether its database answers: the
// PostgreSQL one (package store/pg), over the network. A store that is
// not one (SQLite, in the process) is ready once open.
type Pinger interface {
	Ping(ctx context.Context) error
}

// errDBUnreachable is what /readyz says when the database does not answer:
// short, and without the database's address (the metrics port is
// plaintext); the log has the cause.
var errDBUnreachable = errors.New("database unreachable")

// ready decides the readiness probe (/readyz on --metrics-addr): whether
// the store's database answers within ctx. Liveness (/healthz) does not
// ask it: a database outage makes every replica unready, and restarting
// them all would not bring it back. A change either way is logged once.
func (a *Aggregator) ready(ctx context.Context) error {
	p, ok := a.st.(Pinger)
	if !ok {
		return nil
	}
	err := p.Ping(ctx)
	if down := err != nil; a.dbDown.Swap(down) != down {
		if down {
			a.log.WithError(err).Warn("the database does not answer: not ready")
		} else {
			a.log.Info("the database answers again: ready")
		}
	}
	if err != nil {
		return errDBUnreachable
	}
	return nil
}
