package aggregator

import (
	"context"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/store/pg"
)

// UseSharer is a store several replicas share that exchanges what each
// admitted under its event rate limits (package store/pg). Over one, a
// Server charges its limits with what the other replicas admitted, so that
// an identity spread over several replicas gets its rate once, within the
// bound docs/aggregator.md states, not once per replica.
type UseSharer interface {
	ShareUse(ctx context.Context, own map[string]int64) ([]pg.Use, error)
}

// ShareInterval is how often a replica exchanges its use of the rates.
const ShareInterval = time.Second

// shareInterval is ShareInterval (tests shorten it).
var shareInterval = ShareInterval

// shareForget is how long a replica's total is remembered after it was
// last seen.
const shareForget = 10 * time.Minute

// Keys of the shared use: the node-or-identity limit, and the identity one.
const (
	shareNode     = "e:"
	shareIdentity = "i:"
)

// seenUse is the last total seen of one replica under one key.
type seenUse struct {
	total int64
	at    time.Time
}

// shareUse exchanges this Server's use of its event rate limits with the
// other replicas every shareInterval until ctx ends.
func (s *Server) shareUse(ctx context.Context, sh UseSharer) {
	published := map[string]int64{}
	seen := map[[2]string]seenUse{}
	t := time.NewTicker(shareInterval)
	defer t.Stop()
	var failing bool
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		current := map[string]int64{}
		for k, n := range s.limiter.used() {
			current[shareNode+k] = n
		}
		for k, n := range s.idLimiter.used() {
			current[shareIdentity+k] = n
		}
		own := map[string]int64{}
		for k, n := range current {
			if published[k] != n && len(own) < pg.MaxUseKeys {
				own[k] = n
			}
		}
		uses, err := sh.ShareUse(ctx, own)
		if err != nil {
			if ctx.Err() == nil && !failing {
				s.log.WithError(err).Warn("cannot share the event rates' use with the other replicas: each limits on its own until it can")
			}
			failing = true
			continue
		}
		if failing {
			s.log.Info("sharing the event rates' use with the other replicas again")
			failing = false
		}
		// Only what is still counted: a forgotten bucket starts again.
		for k := range published {
			if _, ok := current[k]; !ok {
				delete(published, k)
			}
		}
		for k, n := range own {
			published[k] = n
		}
		for _, u := range uses {
			id := [2]string{u.Key, u.Writer}
			prev, ok := seen[id]
			seen[id] = seenUse{total: u.Total, at: now}
			// The first sight of a replica's total, or a smaller one (its
			// bucket began again), is where counting starts.
			if !ok || u.Total <= prev.total {
				continue
			}
			delta := u.Total - prev.total
			if k, ok := strings.CutPrefix(u.Key, shareNode); ok {
				s.limiter.charge(k, delta)
			} else if k, ok := strings.CutPrefix(u.Key, shareIdentity); ok {
				s.idLimiter.charge(k, delta)
			}
		}
		for id, u := range seen {
			if now.Sub(u.at) > shareForget {
				delete(seen, id)
			}
		}
	}
}
