package aggregator

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc/peer"

	"github.com/oomwatch/oomwatch/pkg/transport"
)

// Limits bound what clients can make the aggregator hold, so that no
// client, authenticated or not, can exhaust its memory or file
// descriptors while honest agents are served. Zero values take the
// defaults (DefaultLimits).
//
// The defaults are sized from a measurement against the deployed memory
// limit (deploy/aggregator.yaml: 1 GiB, GOMEMLIMIT 768 MiB), made with the
// real binary and mutual TLS by test/security (TestMeasureCosts,
// OOMWATCH_MEASURE=1): an open connection costs 58 KiB, an idle Ingest
// stream (Hello sent) 21 KiB, an idle Watch stream 11 KiB. A connection
// may also hold its 64 KiB receive window of data not yet read. Worst
// case at the defaults, everything at once:
//
//	gRPC connections  4,000 x (58 + 64) KiB              = 477 MiB
//	ingest streams    4,000 x 21 KiB                     =  82 MiB
//	watchers            256 x 11 KiB + queues (16,384 x 8 B each)
//	                                                     =  35 MiB
//	the events watchers hold beyond the latest commit's
//	                  Config.WatchLagBytes               =  32 MiB
//	events in flight  Config.MaxInFlightBytes            =  64 MiB
//	web UI              128 x 58 KiB, metrics 32 x 58 KiB =   9 MiB
//	the process at rest                                  =  35 MiB
//	                                                     = 734 MiB
//
// which leaves ~34 MiB of the 768 MiB GOMEMLIMIT to the commit batches.
// SQLite's page caches (at most 192 MiB) are outside the Go heap, within
// the rest of the 1 GiB. Streams per connection (16) add
// nothing to it: the ingest and watch bounds hold whatever the
// connections. A cluster of more than 4,000 nodes raises MaxConnections
// and the ingest bounds and the memory limit by ~150 KiB per node.
type Limits struct {
	// MaxConnections caps the gRPC listener's open connections; past it
	// new connections are closed at once. Default 4,000.
	MaxConnections int
	// MaxWebConnections caps the web UI listener's. Default 128.
	MaxWebConnections int
	// MaxMetricsConnections caps the metrics and health listener's, which
	// is apart from the others so that probes answer while they are
	// flooded. Default 32.
	MaxMetricsConnections int
	// MaxStreamsPerConnection is HTTP/2's concurrent streams per
	// connection. Default 16 (an agent uses one, oomctl a few).
	MaxStreamsPerConnection uint32
	// MaxIngestStreamsPerIdentity bounds the Ingest streams one
	// authenticated identity holds open, Hello sent or not; past it a new
	// stream ends with codes.ResourceExhausted. MaxIngestStreams bounds
	// them over all identities. Defaults 4,000 both: the agents of the
	// deployment share one certificate.
	MaxIngestStreamsPerIdentity int
	MaxIngestStreams            int
	// MaxWatchersPerIdentity and MaxWatchers bound Watch streams per
	// identity and in total (web UI live pages count in the total).
	// Defaults 32 and 256.
	MaxWatchersPerIdentity int
	MaxWatchers            int
	// HelloTimeout is how long an Ingest stream may stay without its
	// Hello; then it ends with codes.DeadlineExceeded. Default 10 s.
	HelloTimeout time.Duration
	// HandshakeTimeout bounds a new connection's TLS and HTTP/2
	// handshake. Default 10 s.
	HandshakeTimeout time.Duration
	// IdleTimeout closes a gRPC connection without any stream for that
	// long. Default 5 min.
	IdleTimeout time.Duration
	// MinPingInterval is the shortest interval between a client's
	// keepalive pings; a client pinging faster is disconnected
	// (GOAWAY too_many_pings). Default 10 s.
	MinPingInterval time.Duration
	// MaxEventsPerSecondPerIdentity and MaxEventsBurstPerIdentity limit
	// the events of one authenticated identity across all the node names
	// it sends for, so that rotating node names in Hellos does not get
	// around the per-node rate. A rate of 0 is no limit (the zero Config's);
	// the aggregator's flags default to 2,000/s and a burst of 20,000.
	MaxEventsPerSecondPerIdentity float64
	MaxEventsBurstPerIdentity     int
}

// DefaultLimits are the limits' defaults (see Limits).
var DefaultLimits = Limits{
	MaxConnections:                4000,
	MaxWebConnections:             128,
	MaxMetricsConnections:         32,
	MaxStreamsPerConnection:       16,
	MaxIngestStreamsPerIdentity:   4000,
	MaxIngestStreams:              4000,
	MaxWatchersPerIdentity:        32,
	MaxWatchers:                   256,
	HelloTimeout:                  10 * time.Second,
	HandshakeTimeout:              10 * time.Second,
	IdleTimeout:                   5 * time.Minute,
	MinPingInterval:               10 * time.Second,
	MaxEventsPerSecondPerIdentity: 2000,
	MaxEventsBurstPerIdentity:     20000,
}

func (l *Limits) defaults() {
	d := DefaultLimits
	setInt := func(v *int, def int) {
		if *v <= 0 {
			*v = def
		}
	}
	setDur := func(v *time.Duration, def time.Duration) {
		if *v <= 0 {
			*v = def
		}
	}
	setInt(&l.MaxConnections, d.MaxConnections)
	setInt(&l.MaxWebConnections, d.MaxWebConnections)
	setInt(&l.MaxMetricsConnections, d.MaxMetricsConnections)
	if l.MaxStreamsPerConnection == 0 {
		l.MaxStreamsPerConnection = d.MaxStreamsPerConnection
	}
	setInt(&l.MaxIngestStreamsPerIdentity, d.MaxIngestStreamsPerIdentity)
	setInt(&l.MaxIngestStreams, d.MaxIngestStreams)
	setInt(&l.MaxWatchersPerIdentity, d.MaxWatchersPerIdentity)
	setInt(&l.MaxWatchers, d.MaxWatchers)
	setDur(&l.HelloTimeout, d.HelloTimeout)
	setDur(&l.HandshakeTimeout, d.HandshakeTimeout)
	setDur(&l.IdleTimeout, d.IdleTimeout)
	setDur(&l.MinPingInterval, d.MinPingInterval)
	if l.MaxEventsBurstPerIdentity <= 0 {
		l.MaxEventsBurstPerIdentity = max(d.MaxEventsBurstPerIdentity, int(10*l.MaxEventsPerSecondPerIdentity))
	}
}

// Reasons a limit refused something, the keys of LimitStats.Refused.
const (
	LimitIngestPerIdentity = "ingest-streams-per-identity"
	LimitIngestTotal       = "ingest-streams-total"
	LimitWatchPerIdentity  = "watchers-per-identity"
	LimitWatchTotal        = "watchers-total"
	LimitHelloTimeout      = "hello-timeout"
	LimitEventsPerIdentity = "events-per-identity"
	LimitEventsPerNode     = "events-per-node"
)

// LimitReasons lists the Limit... reasons, for metrics.
var LimitReasons = []string{LimitIngestPerIdentity, LimitIngestTotal, LimitWatchPerIdentity, LimitWatchTotal, LimitHelloTimeout, LimitEventsPerIdentity, LimitEventsPerNode}

// LimitStats are what the limits did.
type LimitStats struct {
	// AwaitingHello counts Ingest streams open now that sent no Hello yet.
	AwaitingHello int64
	// Refused counts refusals by reason (Limit...).
	Refused map[string]uint64
}

// limitCounters counts refusals by reason.
type limitCounters struct {
	awaitingHello atomic.Int64
	mu            sync.Mutex
	refused       map[string]uint64
}

func (c *limitCounters) refuse(reason string) {
	c.mu.Lock()
	if c.refused == nil {
		c.refused = map[string]uint64{}
	}
	c.refused[reason]++
	c.mu.Unlock()
}

func (c *limitCounters) stats() LimitStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := LimitStats{AwaitingHello: c.awaitingHello.Load(), Refused: map[string]uint64{}}
	for _, r := range LimitReasons {
		out.Refused[r] = c.refused[r]
	}
	return out
}

// quota counts what each identity holds (streams, watchers), up to a
// per-identity cap and, when total > 0, a cap over all identities.
type quota struct {
	per, total int
	mu         sync.Mutex
	held       map[string]int
	sum        int
}

func newQuota(per, total int) *quota {
	return &quota{per: per, total: total, held: map[string]int{}}
}

// acquire takes one slot for id. It returns "" on success, else which
// cap was hit: "identity" or "total".
func (q *quota) acquire(id string) string {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held[id] >= q.per {
		return "identity"
	}
	if q.total > 0 && q.sum >= q.total {
		return "total"
	}
	q.held[id]++
	q.sum++
	return ""
}

// acquireTotal takes a slot counted only in the total (web UI live
// pages, whose identity the HTTP layer checked).
func (q *quota) acquireTotal() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.total > 0 && q.sum >= q.total {
		return false
	}
	q.sum++
	return true
}

func (q *quota) releaseTotal() {
	q.mu.Lock()
	q.sum--
	q.mu.Unlock()
}

func (q *quota) release(id string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.held[id]--; q.held[id] <= 0 {
		delete(q.held, id)
	}
	q.sum--
}

// principal names the caller that per-identity limits are keyed on: the
// authenticated principal (transport.Caller: a client certificate or a
// token; every holder of a shared token or certificate is one identity);
// for a caller authenticated by nothing, its peer's IP address, which it
// cannot rotate as it could a name it claims.
func principal(ctx context.Context) string {
	if p, ok := transport.Caller(ctx); ok && !p.Anonymous() {
		return p.Name
	}
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		if host, _, err := net.SplitHostPort(p.Addr.String()); err == nil {
			return "addr:" + host
		}
		return "addr:" + p.Addr.String()
	}
	return "unknown"
}
