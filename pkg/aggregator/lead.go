package aggregator

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/store/pg"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Leaser is a store several replicas share that grants leases (package
// store/pg). Over one, only the replica holding LeaderLease does the work
// that must happen once: retention and Kubernetes Events. Over a store
// that is not one (SQLite), the one aggregator always does it.
type Leaser interface {
	Lease(ctx context.Context, name string, ttl time.Duration) (pg.LeaseState, error)
	Release(ctx context.Context, name string) error
}

// The lease on the once-only work: its name, how long it lasts unrenewed
// and how often its holder renews it (and the others ask for it).
const (
	LeaderLease    = "leader"
	LeaderTTL      = 15 * time.Second
	LeaderInterval = 5 * time.Second
)

// leaderCatchUpMax is the most events a new leader reads to write the
// Kubernetes Events the previous one may have left.
const leaderCatchUpMax = 10000

// leaderTTL and leaderInterval are the lease's timing (tests shorten them).
var (
	leaderTTL      = LeaderTTL
	leaderInterval = LeaderInterval
)

// leadership is this replica's part in the lease: whether it holds it.
type leadership struct {
	ls  Leaser
	log *logrus.Entry
	// elected, when set, is called when this replica becomes the leader,
	// with the time from which the once-only work may not have been done.
	elected func(ctx context.Context, since time.Time)
	leading atomic.Bool
	// lastRenewal is this replica's last successful renewal (its clock).
	lastRenewal time.Time
	// won is signalled when this replica becomes the leader.
	won chan struct{}
}

// newLeadership returns this replica's part in the lease of ls.
func newLeadership(ls Leaser, log *logrus.Entry, elected func(context.Context, time.Time)) *leadership {
	return &leadership{ls: ls, log: log, elected: elected, won: make(chan struct{}, 1)}
}

// Won is signalled when this replica becomes the leader (nil, never, for
// the only aggregator: it always leads).
func (l *leadership) Won() <-chan struct{} {
	if l == nil {
		return nil
	}
	return l.won
}

// Leading reports whether this replica does the once-only work now.
func (l *leadership) Leading() bool { return l == nil || l.leading.Load() }

// run takes and renews the lease every leaderInterval until ctx ends, then
// releases it so that another replica takes over at once.
func (l *leadership) run(ctx context.Context) {
	t := time.NewTicker(leaderInterval)
	defer t.Stop()
	for {
		l.try(ctx)
		select {
		case <-ctx.Done():
			if l.leading.Swap(false) {
				rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				if err := l.ls.Release(rctx, LeaderLease); err != nil {
					l.log.WithError(err).Warn("could not release the leader lease; another replica takes it when it lapses")
				}
				cancel()
			}
			return
		case <-t.C:
		}
	}
}

// try asks for the lease once. A replica that cannot reach the database
// stops leading (it cannot tell whether another has taken over).
func (l *leadership) try(ctx context.Context) {
	st, err := l.ls.Lease(ctx, LeaderLease, leaderTTL)
	if err != nil {
		if ctx.Err() == nil {
			l.log.WithError(err).Warn("cannot renew the leader lease")
		}
		if l.leading.Swap(false) {
			l.log.Warn("no longer the leader: retention and Kubernetes Events are left to the replica that takes the lease")
		}
		return
	}
	was := l.leading.Swap(st.Held)
	switch {
	case st.Held && !was:
		since := l.lastRenewal
		if st.Taken {
			since = st.PreviousRenewal
		}
		l.log.WithField("previous_renewal", since).Info("leader: this replica does retention and Kubernetes Events")
		if l.elected != nil {
			l.elected(ctx, since)
		}
		select {
		case l.won <- struct{}{}:
		default:
		}
	case !st.Held && was:
		l.log.Info("no longer the leader: another replica holds the lease")
	}
	if st.Held {
		l.lastRenewal = time.Now()
	}
}

// catchUpKubeEvents queues the Kubernetes Events of the OOM kills and
// warnings received since two renewals before since (the previous
// leader's last renewal: it had queued those received before), oldest
// first. Those the previous leader had written are refused by the API
// server as existing, by name. A zero since (no leader before) writes
// none.
func (a *Aggregator) catchUpKubeEvents(ctx context.Context, since time.Time) {
	if a.kubeq == nil || since.IsZero() {
		return
	}
	f := &pb.EventFilter{Types: []string{eventid.TypeOOM, eventid.TypeWarning},
		ReceivedSince: timestamppb.New(since.Add(-2 * leaderInterval))}
	var evs []*pb.Event
	token := ""
	for len(evs) < leaderCatchUpMax {
		page, next, err := a.st.List(ctx, f, 500, token)
		if err != nil {
			a.log.WithError(err).Warn("cannot list the events the previous leader may not have written Kubernetes Events for")
			return
		}
		evs = append(evs, page...)
		if next == "" {
			break
		}
		token = next
	}
	slices.Reverse(evs)
	a.log.WithField("events", len(evs)).Info("writing the Kubernetes Events the previous leader may have left")
	go func() {
		for _, ev := range evs {
			select {
			case a.kubeq <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
}
