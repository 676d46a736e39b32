// Package aggregator is the aggregator service, its binary a thin main
// over it. Its gRPC side: IngestService takes the
// agents' event streams and acknowledges each event once it is durably
// committed (many streams share each commit); QueryService lists, gets and
// watches events and groups them into incidents; the standard health
// service reports SERVING. Shutdown stops accepting, finishes what is in
// flight and never loses an acknowledged event.
package aggregator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sync/semaphore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/keepalive"

	"github.com/oomwatch/oomwatch/pkg/metrics"
	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Store is what the server needs of the event database (package store).
type Store interface {
	PutRecords(ctx context.Context, recs []*store.Record) ([]store.PutResult, error)
	List(ctx context.Context, f *pb.EventFilter, pageSize int, pageToken string) ([]*pb.Event, string, error)
	Get(ctx context.Context, id string) (*pb.Event, error)
	Incidents(ctx context.Context, f *pb.EventFilter, gap time.Duration, pageSize int, pageToken string) ([]*pb.Incident, string, error)
}

// Follower is a store that other replicas write to as well (package
// store/pg): Follow hands publish the events they commit, in each one's
// commit order, until ctx ends, and calls ready once every commit from then
// on is sure to be handed on; while wanted says no, it skips the commits
// notified meanwhile without reading them. A Server over a Follower feeds
// those events to its watchers and live pages as it does its own, and
// reads them only while it has watchers or OnFollowed wants them; a store
// that is not one (SQLite) has this Server as its only writer.
type Follower interface {
	Follow(ctx context.Context, ready func(), wanted func() bool, publish func([]*pb.Event)) error
}

// FollowStartTimeout bounds how long Serve waits for a Follower to be
// ready before it serves anyway (watchers then miss other replicas'
// commits until it is, and say so in the log).
const FollowStartTimeout = 15 * time.Second

// Config tunes a Server. Zero values take the defaults.
type Config struct {
	// MaxEventsPerSecond is the sustained event rate of each
	// authenticated identity (transport.Caller; a shared agent token or
	// certificate is one identity, a per-node certificate one per node;
	// without authentication, each claimed node); past it a stream is
	// ended with codes.ResourceExhausted. 0: no limit.
	MaxEventsPerSecond float64
	// MaxEventsBurst is how many events a node may send at once above
	// the rate (a reconnecting agent replays its spool). Default: 10 s of
	// the rate, at least 100.
	MaxEventsBurst int
	// BatchWait is how long a commit waits for more events after the
	// first; BatchMax is how many events it takes at most. Defaults 2 ms
	// and 16,384 (bigger commits amortise the pages every commit
	// rewrites; WatchBuffer holds a commit's worth).
	BatchWait time.Duration
	BatchMax  int
	// StreamWindow bounds the events of one stream received and not yet
	// acknowledged; past it the server stops reading that stream (flow
	// control pushes back on the agent). Default 1,024.
	StreamWindow int
	// MaxInFlight and MaxInFlightBytes bound the events of all streams
	// together that are taken and not yet committed, in number and in the
	// memory they hold (store.Record.Footprint: a taken event keeps its
	// stored bytes only, not its decoded form): a thousand agents
	// replaying their spools at once must not hold a thousand stream
	// windows of events in memory, nor a few agents a few thousand events
	// of a megabyte. Past either, streams wait (and flow control pushes
	// back on the agents). Defaults 32,768 and 64 MiB: the real 5.6 kB
	// kill holds ~2 kB, so the bytes bind first (~30,000 of those), and
	// under load a commit takes ~9,000-10,000 events while as many wait
	// for the next: each index page a commit rewrites is shared by more
	// events (BENCHMARKS.md: 11.6-12.9 kB written per event, against
	// 14.0-15.8 with commits of ~6,000).
	MaxInFlight      int
	MaxInFlightBytes int64
	// WatchBuffer bounds the events queued for one watcher; a watcher that
	// falls further behind is disconnected. Default 16,384, or BatchMax
	// when larger (it must hold a commit's worth).
	WatchBuffer int
	// WatchLagBytes bounds the memory (heapSize) of the events committed,
	// and taken by some watcher, since the oldest commit a watcher still
	// holds events of, queued or being sent; past it the watchers holding
	// the oldest are disconnected. So the decoded events that slow or
	// stalled watchers keep, shared or not, hold at most this beyond the
	// latest commit's. Default 32 MiB: ~3,300 real kills of 5.6 kB, which
	// decode to ~9-10 kB (1.6-2.3 times their encoded size).
	WatchLagBytes int64
	// AgentIdentity, when set, is a certificate name (CN or DNS SAN) that
	// may send events for any node: a client certificate shared by every
	// agent. Empty: each agent's certificate must name its node.
	AgentIdentity string
	// Limits bound connections, streams, watchers and events per
	// identity (see Limits).
	Limits Limits
	// MaxClockSkew is how far past the aggregator's clock an event's time
	// may be. Default DefaultMaxClockSkew.
	MaxClockSkew time.Duration
	// OnStored, when set, is told of every newly stored event after its
	// commit (metrics, Kubernetes Events): its metrics summary, and the
	// event on asking (Stored.Event). It must not block for long; a panic
	// in it is caught and counted (PanicCommit).
	OnStored func(st Stored)
	// OnFollowed, when set, is told of the events other replicas stored
	// or updated (a Follower store), once each is handed to the watchers.
	OnFollowed func(evs []*pb.Event)
	// FollowWanted, when set, says whether OnFollowed wants other
	// replicas' events now, watchers aside (see Follower).
	FollowWanted func() bool
	// OnDuplicate and OnReject, when set, are told of every event
	// acknowledged as a duplicate and every refused event or stream (by
	// reason, one of the Reject* constants); OnPanic of every panic caught.
	OnDuplicate func()
	OnReject    func(reason string)
	OnPanic     func(where string)
	// ShutdownTimeout bounds the graceful part of shutdown. Default 10 s.
	ShutdownTimeout time.Duration
	// GRPCOptions are added to the gRPC server's (transport credentials
	// and interceptors, from package transport).
	GRPCOptions []grpc.ServerOption
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.MaxEventsBurst <= 0 {
		c.MaxEventsBurst = max(100, int(10*c.MaxEventsPerSecond))
	}
	if c.BatchWait <= 0 {
		c.BatchWait = 2 * time.Millisecond
	}
	if c.BatchMax <= 0 {
		c.BatchMax = 16384
	}
	if c.StreamWindow <= 0 {
		c.StreamWindow = 1024
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = 32768
	}
	if c.MaxInFlightBytes <= 0 {
		c.MaxInFlightBytes = 64 << 20
	}
	if c.WatchBuffer <= 0 {
		// A commit's worth at least: publish offers a commit at once.
		c.WatchBuffer = max(16384, c.BatchMax)
	}
	if c.WatchLagBytes <= 0 {
		c.WatchLagBytes = 32 << 20
	}
	if c.ShutdownTimeout <= 0 {
		c.ShutdownTimeout = 10 * time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	c.Limits.defaults()
	if c.MaxClockSkew <= 0 {
		c.MaxClockSkew = DefaultMaxClockSkew
	}
}

// Reasons an event or stream is rejected, the keys of Stats.Rejected.
const (
	RejectHello      = "invalid-hello"
	RejectPermission = "permission-denied"
	RejectInvalid    = "invalid-event"
	RejectWrongNode  = "wrong-node"
	RejectFlood      = "rate-limited"
)

// Stats are the server's counters since it started.
type Stats struct {
	// Ingested counts events newly stored; Duplicates replays of stored
	// ones; Updated events that replaced an older revision of themselves.
	// All were acknowledged.
	Ingested, Duplicates, Updated uint64
	// Commits counts store transactions.
	Commits uint64
	// Rejected counts refused streams and events by reason (Reject...).
	Rejected map[string]uint64
	// Streams and Watchers are open now.
	Streams, Watchers int64
	// Panics counts panics caught, by where (Panic*).
	Panics map[string]uint64
	// WatchersDropped counts watchers disconnected for falling behind.
	WatchersDropped uint64
}

// ErrServed: Serve was called twice.
var ErrServed = errors.New("server already served")

// Server serves the oomwatch gRPC API over a Store.
type Server struct {
	pb.UnimplementedIngestServiceServer
	pb.UnimplementedQueryServiceServer

	cfg    Config
	log    *logrus.Entry
	st     Store
	commit *committer
	// inflight holds each event taken and not yet committed: its
	// ticket's weight (see weigh).
	inflight *semaphore.Weighted
	hub      *hub
	limiter  *limiter
	// idLimiter is the event rate of each identity over all its nodes.
	idLimiter *limiter
	// ingestQuota and watchQuota count streams and watchers per identity.
	ingestQuota, watchQuota *quota
	limits                  limitCounters
	health                  *health.Server

	// draining is closed when shutdown begins: streams acknowledge what
	// they took and end, watchers end.
	draining chan struct{}
	// readers tracks the goroutines reading ingest streams, which may
	// still hand events to the committer.
	readers sync.WaitGroup
	served  atomic.Bool

	ingested, duplicates, updated, commits, watchersDropped atomic.Uint64
	streams, watchers                                       atomic.Int64
	rejectedMu                                              sync.Mutex
	rejected                                                map[string]uint64
	panicsMu                                                sync.Mutex
	panics                                                  map[string]uint64
}

// New returns a Server over st. It does not own st: the caller closes it
// after Serve returns.
func New(st Store, cfg Config, log *logrus.Entry) *Server {
	cfg.defaults()
	s := &Server{
		cfg:         cfg,
		log:         log,
		st:          st,
		hub:         newHub(cfg.Now, cfg.WatchLagBytes),
		limiter:     newLimiter(cfg.MaxEventsPerSecond, cfg.MaxEventsBurst, cfg.Now),
		idLimiter:   newLimiter(cfg.Limits.MaxEventsPerSecondPerIdentity, cfg.Limits.MaxEventsBurstPerIdentity, cfg.Now),
		ingestQuota: newQuota(cfg.Limits.MaxIngestStreamsPerIdentity, cfg.Limits.MaxIngestStreams),
		watchQuota:  newQuota(cfg.Limits.MaxWatchersPerIdentity, cfg.Limits.MaxWatchers),
		health:      health.NewServer(),
		draining:    make(chan struct{}),
		rejected:    map[string]uint64{},
		panics:      map[string]uint64{},
		inflight:    semaphore.NewWeighted(cfg.MaxInFlightBytes),
	}
	s.commit = newCommitter(st, cfg.BatchWait, cfg.BatchMax, s.committed, log)
	return s
}

// Stats returns the counters.
func (s *Server) Stats() Stats {
	s.rejectedMu.Lock()
	rej := maps.Clone(s.rejected)
	s.rejectedMu.Unlock()
	s.panicsMu.Lock()
	panics := maps.Clone(s.panics)
	s.panicsMu.Unlock()
	return Stats{
		Ingested:        s.ingested.Load(),
		Duplicates:      s.duplicates.Load(),
		Updated:         s.updated.Load(),
		Commits:         s.commits.Load(),
		Rejected:        rej,
		Panics:          panics,
		Streams:         s.streams.Load(),
		Watchers:        s.watchers.Load(),
		WatchersDropped: s.watchersDropped.Load(),
	}
}

// LimitStats returns what the limits did.
func (s *Server) LimitStats() LimitStats { return s.limits.stats() }

func (s *Server) reject(reason string) {
	s.rejectedMu.Lock()
	s.rejected[reason]++
	s.rejectedMu.Unlock()
	if s.cfg.OnReject != nil {
		s.afterCommit(func() { s.cfg.OnReject(reason) })
	}
}

// committed is told of every commit: it counts, feeds the watchers and
// frees the batch's in-flight weight.
func (s *Server) committed(batch []*ticket) {
	defer func() {
		for _, t := range batch {
			s.inflight.Release(t.weight)
		}
	}()
	s.commits.Add(1)
	var stored, updated []*ticket
	for _, t := range batch {
		switch {
		case t.err != nil:
		case t.res.Duplicate:
			s.duplicates.Add(1)
			if s.cfg.OnDuplicate != nil {
				s.afterCommit(s.cfg.OnDuplicate)
			}
		case t.res.Stored:
			s.ingested.Add(1)
			stored = append(stored, t)
		case t.res.Updated:
			s.updated.Add(1)
			updated = append(updated, t)
		}
	}
	// Watchers see updates as events again (same ID, higher revision);
	// OnStored (metrics, Kubernetes Events) sees each event once. The
	// events are decoded again only for watchers and for OnStored's
	// asking.
	if s.hub.watched() {
		evs := make([]*pb.Event, 0, len(stored)+len(updated))
		for _, t := range append(slices.Clip(stored), updated...) {
			if e, err := t.event(); err == nil {
				evs = append(evs, e)
			} else {
				s.log.WithError(err).WithField("id", t.rec.Row().ID).Error("committed event not decodable; not sent to watchers")
			}
		}
		s.hub.publish(evs)
	}
	if s.cfg.OnStored != nil {
		for _, t := range stored {
			s.afterCommit(func() { s.cfg.OnStored(Stored{Summary: t.sum, t: t}) })
		}
	}
}

// Stored is a newly stored event, as OnStored is told of it.
type Stored struct {
	// Summary is what the metrics count of it.
	Summary metrics.Summary
	t       *ticket
}

// Event returns the event as stored, decoded again from its stored bytes
// (once per event, whoever asks). Valid only during OnStored.
func (s Stored) Event() (*pb.Event, error) { return s.t.event() }

// Serve serves on lis until ctx ends, then shuts down gracefully: health
// turns NOT_SERVING, no new connection is accepted, each ingest stream
// acknowledges the events it had taken (after their commit) and ends with
// codes.Unavailable, watchers end, in-flight queries finish (for at most
// ShutdownTimeout), and the last commits complete. It returns nil after a
// clean shutdown.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	if s.served.Swap(true) {
		return ErrServed
	}
	opts := append([]grpc.ServerOption{
		grpc.MaxRecvMsgSize(MaxMessageBytes),
		// Fixed 64 KiB receive windows: gRPC's default grows each stream's
		// window to several MiB under load, and with a thousand agents
		// that is gigabytes buffered ahead of the committer.
		grpc.InitialWindowSize(64 << 10),
		grpc.InitialConnWindowSize(64 << 10),
		// Agents keep idle streams open for days: ping them to notice dead
		// peers, and let them ping us, but not faster than MinPingInterval
		// (a faster client is sent GOAWAY). A connection without any
		// stream is closed after IdleTimeout.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 2 * time.Minute, Timeout: 20 * time.Second, MaxConnectionIdle: s.cfg.Limits.IdleTimeout}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: s.cfg.Limits.MinPingInterval, PermitWithoutStream: true}),
		grpc.MaxConcurrentStreams(s.cfg.Limits.MaxStreamsPerConnection),
		grpc.ConnectionTimeout(s.cfg.Limits.HandshakeTimeout),
	}, s.cfg.GRPCOptions...)
	opts = append(opts, decodeOptions()...)
	opts = append(opts, s.guardOptions()...)
	gs := grpc.NewServer(opts...)
	pb.RegisterIngestServiceServer(gs, s)
	pb.RegisterQueryServiceServer(gs, s)
	healthpb.RegisterHealthServer(gs, s.health)
	for _, name := range []string{"", pb.IngestService_ServiceDesc.ServiceName, pb.QueryService_ServiceDesc.ServiceName} {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}

	commitDone := make(chan struct{})
	go func() {
		s.commit.run()
		close(commitDone)
	}()
	stopFollow, followDone := s.follow(ctx)
	shareCtx, stopShare := context.WithCancel(ctx)
	shareDone := make(chan struct{})
	go func() {
		defer close(shareDone)
		if sh, ok := s.st.(UseSharer); ok && (s.limiter.rate > 0 || s.idLimiter.rate > 0) {
			s.shareUse(shareCtx, sh)
		}
	}()
	served := make(chan error, 1)
	go func() { served <- gs.Serve(lis) }()
	s.log.WithField("addr", lis.Addr().String()).Info("serving")

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-served:
		serveErr = fmt.Errorf("serve: %w", serveErr)
	}

	s.log.Info("shutting down")
	s.health.Shutdown()
	close(s.draining)
	stopped := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(s.cfg.ShutdownTimeout):
		s.log.Warn("graceful stop timed out; closing the remaining connections")
		gs.Stop()
		<-stopped
	}
	// Every watcher has ended: other replicas' commits have no reader.
	stopFollow()
	<-followDone
	stopShare()
	<-shareDone
	// Every handler has returned; the readers follow as their streams end.
	s.readers.Wait()
	s.commit.stop()
	<-commitDone
	s.log.WithFields(logrus.Fields{"ingested": s.ingested.Load(), "duplicates": s.duplicates.Load()}).Info("stopped")
	return serveErr
}

// follow starts feeding the watchers the commits of the other replicas
// when the store is a Follower, and waits (at most FollowStartTimeout)
// until it is ready, so that a watcher's start (wire.WatchStartHeader)
// holds for every replica's commits. Calling stop ends it; done is closed
// once it has.
func (s *Server) follow(ctx context.Context) (stop context.CancelFunc, done <-chan struct{}) {
	fl, ok := s.st.(Follower)
	finished := make(chan struct{})
	if !ok {
		close(finished)
		return func() {}, finished
	}
	// Not ctx: watchers are served until the gRPC server has stopped.
	fctx, cancel := context.WithCancel(context.Background())
	ready := make(chan struct{})
	var once sync.Once
	go func() {
		defer close(finished)
		publish := func(evs []*pb.Event) {
			s.hub.publish(evs)
			if s.cfg.OnFollowed != nil {
				s.cfg.OnFollowed(evs)
			}
		}
		// Another replica's commit costs this one a read and a decode of
		// every event: only while someone is to see them.
		wanted := func() bool {
			return s.hub.watched() || (s.cfg.FollowWanted != nil && s.cfg.FollowWanted())
		}
		if err := fl.Follow(fctx, func() { once.Do(func() { close(ready) }) }, wanted, publish); err != nil {
			s.log.WithError(err).Error("stopped following the other replicas' commits: watchers see this replica's only")
		}
	}()
	timer := time.NewTimer(FollowStartTimeout)
	defer timer.Stop()
	select {
	case <-ready:
	case <-finished:
	case <-ctx.Done():
	case <-timer.C:
		s.log.Warn("not yet following the other replicas' commits; serving anyway")
	}
	return cancel, finished
}

// isDraining reports whether shutdown has begun.
func (s *Server) isDraining() bool {
	select {
	case <-s.draining:
		return true
	default:
		return false
	}
}
