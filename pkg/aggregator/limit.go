package aggregator

import (
	"context"
	"sync"
	"time"

	"github.com/oomwatch/oomwatch/pkg/transport"
)

// limitKey is what the event rate is limited by: the caller's
// authenticated identity, so that an identity shared by many agents (a
// token, a shared certificate) shares one rate however many node names it
// claims. Only a caller authenticated by nothing (a server without TLS
// client certificates or tokens) is limited by the node it claims.
func limitKey(ctx context.Context, node string) string {
	if p, ok := transport.Caller(ctx); ok && !p.Anonymous() {
		return p.Name
	}
	return "node:" + node
}

// limiter is a token bucket per key (limitKey): rate events per second,
// up to burst at once. A key over its rate is refused; others are not
// affected.
type limiter struct {
	rate, burst float64
	now         func() time.Time
	mu          sync.Mutex
	buckets     map[string]*bucket
}

type bucket struct {
	tokens float64
	last   time.Time
	// used counts the tokens taken since the bucket began (shared with
	// other replicas, see shareUse).
	used int64
}

// maxBuckets bounds the nodes tracked; past it, full (idle) buckets are
// forgotten, which changes nothing since a new bucket starts full.
const maxBuckets = 20000

func newLimiter(rate float64, burst int, now func() time.Time) *limiter {
	if burst < 1 {
		burst = 1
	}
	return &limiter{rate: rate, burst: float64(burst), now: now, buckets: map[string]*bucket{}}
}

// allow takes one token of node's bucket. A rate of 0 allows everything.
func (l *limiter) allow(node string) bool {
	if l == nil || l.rate <= 0 {
		return true
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(node, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	b.used++
	return true
}

// bucketLocked returns key's bucket, refilled to now, making it.
func (l *limiter) bucketLocked(key string, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxBuckets {
			l.forgetIdle(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	return b
}

// used returns each bucket's tokens taken since it began.
func (l *limiter) used() map[string]int64 {
	if l == nil || l.rate <= 0 {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]int64, len(l.buckets))
	for k, b := range l.buckets {
		if b.used > 0 {
			out[k] = b.used
		}
	}
	return out
}

// charge takes n tokens from key's bucket for events other replicas
// admitted under it, down to -burst (so that a key is never refused for
// longer than two bursts' refill).
func (l *limiter) charge(key string, n int64) {
	if l == nil || l.rate <= 0 || n <= 0 {
		return
	}
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.bucketLocked(key, now)
	b.tokens = max(-l.burst, b.tokens-float64(n))
}

func (l *limiter) forgetIdle(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst {
			delete(l.buckets, k)
		}
	}
}
