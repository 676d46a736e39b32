package aggregator

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	corev1client "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/oomwatch/oomwatch/pkg/connlimit"
	"github.com/oomwatch/oomwatch/pkg/kubeevents"
	"github.com/oomwatch/oomwatch/pkg/metrics"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/store/pg"
	"github.com/oomwatch/oomwatch/pkg/transport"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Options are the aggregator's flags. Each is also read from
// OOMWATCH_<NAME> (upper case, '-' as '_'), e.g. OOMWATCH_LISTEN.
type Options struct {
	Listen string
	DB     string
	// Retention is how long events are kept (by event time); 0 keeps them
	// forever.
	Retention time.Duration
	// MaxEventsPerSecond and MaxEventsBurst limit each identity (Config).
	MaxEventsPerSecond float64
	MaxEventsBurst     int
	// MaxClockSkew is how far in the future an event's time may be.
	MaxClockSkew time.Duration
	LogLevel     string
	Transport    transport.Options
	// AgentIdentity accepts a client certificate shared by all agents.
	AgentIdentity string
	// MetricsAddr serves Prometheus /metrics, /healthz and /readyz
	// (plaintext, for probes) when set.
	MetricsAddr string
	// HTTPAddr serves the web UI when set, with the same TLS and token as
	// gRPC.
	HTTPAddr string
	// KubeEvents writes Kubernetes Events for OOM kills (in-cluster
	// credentials, or KubeConfig).
	KubeEvents bool
	KubeConfig string
	// Limits bound what clients can make the aggregator hold.
	Limits Limits
}

// AddFlags registers the options on fs, with their defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Listen, "listen", ":7443", "gRPC listen address")
	fs.StringVar(&o.DB, "db", "/var/lib/oomwatch/oomwatch.db", "SQLite database file (created when missing), or a PostgreSQL database URL (postgres://user:password@host:5432/database?sslmode=verify-full) (aggregator migrate -h: how to copy an SQLite history into PostgreSQL)")
	o.Retention = 30 * 24 * time.Hour
	fs.Var((*days)(&o.Retention), "retention", "how long events are kept, e.g. 30d or 72h; 0 keeps them forever")
	fs.Float64Var(&o.MaxEventsPerSecond, "max-events-per-second", 100, "events per second each authenticated identity may send (a certificate or token; one shared by every agent is one identity; without authentication, each node) (0: no limit); a sender over it is told to back off")
	fs.IntVar(&o.MaxEventsBurst, "max-events-burst", 0, "events a node may send at once above the rate (default: 10 s of the rate, at least 100)")
	fs.DurationVar(&o.MaxClockSkew, "max-clock-skew", DefaultMaxClockSkew, "how far past the aggregator's clock an event's time may be; an event further in the future is refused")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.AgentIdentity, "agent-identity", "", "with mutual TLS: a client certificate name (CN or DNS SAN) that has the agent role and may send events for any node, for one certificate shared by every agent (default: each agent's certificate must name its node)")
	fs.StringVar(&o.MetricsAddr, "metrics-addr", "", "serve Prometheus /metrics, /healthz (liveness) and /readyz (readiness: the database answers) on this address (plaintext; off when empty)")
	fs.StringVar(&o.HTTPAddr, "http-addr", "", "serve the web UI on this address, with the gRPC listener's TLS and token (off when empty)")
	fs.BoolVar(&o.KubeEvents, "kube-events", false, "write Kubernetes Events on the victim's Pod and, for node-level kills, on the Node, and for newly opened warnings MemoryNearLimit (Pod) and NodeMemoryLow (Node) (needs the RBAC in deploy/)")
	fs.StringVar(&o.KubeConfig, "kubeconfig", "", "kubeconfig for --kube-events (default: in-cluster credentials)")
	o.Transport.AddFlags(fs)
	o.Transport.AddServerFlags(fs)
	o.addLimitFlags(fs)
}

// Validate checks the options.
func (o *Options) Validate() error {
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return fmt.Errorf("--listen %q: %w", o.Listen, err)
	}
	if o.HTTPAddr != "" {
		if _, _, err := net.SplitHostPort(o.HTTPAddr); err != nil {
			return fmt.Errorf("--http-addr %q: %w", o.HTTPAddr, err)
		}
	}
	if o.DB == "" {
		return errors.New("--db must not be empty")
	}
	if pg.IsURL(o.DB) {
		if err := pg.CheckURL(o.DB); err != nil {
			return fmt.Errorf("--db: %w", err)
		}
	}
	if o.Retention < 0 {
		return errors.New("--retention must not be negative")
	}
	if o.MaxClockSkew < 0 {
		return errors.New("--max-clock-skew must not be negative")
	}
	if o.MaxEventsPerSecond < 0 || o.MaxEventsBurst < 0 {
		return errors.New("--max-events-per-second and --max-events-burst must not be negative")
	}
	if err := o.Limits.validate(); err != nil {
		return err
	}
	if _, err := logrus.ParseLevel(o.LogLevel); err != nil {
		return fmt.Errorf("--log-level: %w", err)
	}
	if err := o.Transport.ValidateServer(); err != nil {
		return err
	}
	return nil
}

// days is a duration flag that also takes whole days ("30d").
type days time.Duration

// String implements flag.Value.
func (d *days) String() string {
	if d == nil {
		return ""
	}
	v := time.Duration(*d)
	if v != 0 && v%(24*time.Hour) == 0 {
		return strconv.FormatInt(int64(v/(24*time.Hour)), 10) + "d"
	}
	return v.String()
}

// Set implements flag.Value.
func (d *days) Set(s string) error {
	if n, ok := strings.CutSuffix(s, "d"); ok {
		v, err := strconv.ParseUint(n, 10, 16)
		if err != nil {
			return fmt.Errorf("%q: want a number of days like 30d or a duration like 72h", s)
		}
		*d = days(time.Duration(v) * 24 * time.Hour)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("%q: want a number of days like 30d or a duration like 72h", s)
	}
	*d = days(v)
	return nil
}

// PruneInterval is how often the aggregator deletes expired events.
const PruneInterval = time.Hour

// Aggregator is the aggregator process: its store, its gRPC server and
// the retention loop.
type Aggregator struct {
	opts    Options
	log     *logrus.Entry
	st      store.Backend
	srv     *Server
	lis     net.Listener
	metrics *metrics.Aggregator
	kube    *kubeevents.Writer
	kubeq   chan *pb.Event
	// web serves the web UI on webLis, when --http-addr is set.
	web    *http.Server
	webLis net.Listener
	// grpcLis, webCap and metricsLis cap their listeners' connections.
	grpcLis, webCap, metricsLis *connlimit.Listener
	// lead is this replica's part in the leader lease over a store that
	// several share; nil (always leading) over one that is not.
	lead *leadership
	// followed counts the events other replicas stored or updated that
	// this one handed to its watchers.
	followed atomic.Int64
	// dbDown is the readiness probe's last answer about the database.
	dbDown atomic.Bool
}

// NewAggregator opens the store and the listener of valid options.
func NewAggregator(ctx context.Context, o Options, log *logrus.Entry) (*Aggregator, error) {
	if o.AgentIdentity != "" {
		o.Transport.AgentNames = append(o.Transport.AgentNames, o.AgentIdentity)
	}
	grpcOpts, err := transport.ServerOptions(o.Transport)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	st, err := OpenStore(ctx, o.DB, log.WithField("component", "store"))
	if err != nil {
		return nil, err
	}
	o.Limits.defaults()
	checkFileLimit(o, log)
	raw, err := net.Listen("tcp", o.Listen)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	lis, err := connlimit.New(raw, o.Limits.MaxConnections)
	if err != nil {
		st.Close()
		raw.Close()
		return nil, fmt.Errorf("--max-connections: %w", err)
	}
	a := &Aggregator{opts: o, log: log, st: st, lis: lis, grpcLis: lis}
	if ls, ok := st.(Leaser); ok {
		a.lead = newLeadership(ls, log.WithField("component", "leader"), a.catchUpKubeEvents)
	}
	if o.KubeEvents {
		client, err := kubeClient(o.KubeConfig)
		if err != nil {
			st.Close()
			lis.Close()
			return nil, fmt.Errorf("--kube-events: %w", err)
		}
		a.kube = kubeevents.New(client, kubeevents.Options{}, log.WithField("component", "kube-events"))
		a.kubeq = make(chan *pb.Event, 1024)
	}
	a.metrics = metrics.NewAggregator(
		func() float64 { return float64(a.srv.Stats().Watchers) },
		func() float64 { return float64(a.srv.Stats().Streams) })
	// The at-risk gauges read the store's open warnings when scraped.
	a.metrics.Registry.MustRegister(metrics.NewAtRisk(st.OpenWarnings))
	a.srv = New(st, Config{
		MaxEventsPerSecond: o.MaxEventsPerSecond,
		MaxEventsBurst:     o.MaxEventsBurst,
		MaxClockSkew:       o.MaxClockSkew,
		GRPCOptions:        grpcOpts,
		AgentIdentity:      o.AgentIdentity,
		Limits:             o.Limits,
		OnStored:           a.stored,
		OnFollowed:         a.followedEvents,
		FollowWanted:       func() bool { return a.kubeq != nil && a.lead.Leading() },
		OnDuplicate:        a.metrics.Duplicates.Inc,
		OnReject:           func(reason string) { a.metrics.Rejected.WithLabelValues(reason).Inc() },
		OnPanic:            func(where string) { a.metrics.Panics.WithLabelValues(where).Inc() },
	}, log)
	if o.HTTPAddr != "" {
		if err := a.newWeb(); err != nil {
			st.Close()
			lis.Close()
			return nil, fmt.Errorf("--http-addr: %w", err)
		}
	}
	a.registerLimitMetrics()
	a.registerReplicaMetrics()
	return a, nil
}

// stored counts a stored event and, on the leader, queues it for the
// Kubernetes Events writer.
func (a *Aggregator) stored(st Stored) {
	a.metrics.Count(st.Summary, time.Now())
	if a.kubeq != nil && a.lead.Leading() {
		ev, err := st.Event()
		if err != nil {
			a.log.WithError(err).Error("stored event not decodable; no Kubernetes Event")
			return
		}
		a.queueKubeEvent(ev)
	}
}

// followedEvents takes the events other replicas stored or updated: the
// leader writes their Kubernetes Events (an update's again, refused by
// name as existing).
func (a *Aggregator) followedEvents(evs []*pb.Event) {
	a.followed.Add(int64(len(evs)))
	if a.kubeq == nil || !a.lead.Leading() {
		return
	}
	for _, ev := range evs {
		a.queueKubeEvent(ev)
	}
}

// queueKubeEvent queues an event for the Kubernetes Events writer,
// dropping it (counted) when the writer is far behind: the API server
// must never slow ingest.
func (a *Aggregator) queueKubeEvent(ev *pb.Event) {
	select {
	case a.kubeq <- ev:
	default:
		a.metrics.Rejected.WithLabelValues("kube-events-queue-full").Inc()
	}
}

// OpenStore opens the event database --db names: PostgreSQL for a
// postgres:// or postgresql:// URL, else the SQLite file at that path.
func OpenStore(ctx context.Context, db string, log *logrus.Entry) (store.Backend, error) {
	// Never a nil *Store in a non-nil Backend.
	if pg.IsURL(db) {
		st, err := pg.Open(ctx, db, log)
		if err != nil {
			return nil, err
		}
		return st, nil
	}
	st, err := store.Open(ctx, db, log)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// kubeClient builds a Kubernetes client from a kubeconfig, or in-cluster.
func kubeClient(path string) (corev1client.EventsGetter, error) {
	var cfg *rest.Config
	var err error
	if path != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", path)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, err
	}
	return corev1client.NewForConfig(cfg)
}

// Server returns the gRPC server (for its Stats).
func (a *Aggregator) Server() *Server { return a.srv }

// Addr returns the address listened on.
func (a *Aggregator) Addr() net.Addr { return a.lis.Addr() }

// Run serves until ctx ends, prunes expired events every PruneInterval,
// then shuts down gracefully and closes the store.
func (a *Aggregator) Run(ctx context.Context) error {
	pruneCtx, stopPrune := context.WithCancel(ctx)
	var wg sync.WaitGroup
	if a.lead != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.lead.run(pruneCtx)
		}()
	}
	if a.opts.Retention > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.pruneLoop(pruneCtx)
		}()
	}
	if a.opts.MetricsAddr != "" {
		raw, err := net.Listen("tcp", a.opts.MetricsAddr)
		if err != nil {
			stopPrune()
			wg.Wait()
			return errors.Join(fmt.Errorf("--metrics-addr: %w", err), a.st.Close())
		}
		// Its own cap, apart from the gRPC and web listeners': a flood of
		// those leaves the probes their connections.
		a.metricsLis, _ = connlimit.New(raw, a.opts.Limits.MaxMetricsConnections)
		wg.Add(1)
		go func() {
			defer wg.Done()
			healthy := func() error {
				if ctx.Err() != nil {
					return errors.New("shutting down")
				}
				return nil
			}
			if err := metrics.ServeProbes(pruneCtx, a.metricsLis, a.metrics.Registry, metrics.Probes{Live: healthy, Ready: a.ready}, a.log.WithField("component", "metrics")); err != nil {
				a.log.WithError(err).Error("metrics server stopped")
			}
		}()
	}
	if a.web != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := a.serveWeb(ctx); err != nil {
				a.log.WithError(err).Error("web UI server stopped")
			}
		}()
	}
	if a.kube != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-pruneCtx.Done():
					return
				case ev := <-a.kubeq:
					if err := a.kube.Handle(pruneCtx, ev); err != nil {
						a.log.WithError(err).Warn("cannot write the Kubernetes Event")
					}
				}
			}
		}()
	}
	err := a.srv.Serve(ctx, a.lis)
	stopPrune()
	wg.Wait()
	if cerr := a.st.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	return err
}

func (a *Aggregator) pruneLoop(ctx context.Context) {
	t := time.NewTicker(PruneInterval)
	defer t.Stop()
	for {
		if !a.lead.Leading() {
			// Another replica holds the lease and prunes for all; this
			// one prunes once it takes the lease.
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			case <-a.lead.Won():
			}
			continue
		}
		cut := time.Now().Add(-a.opts.Retention)
		n, err := a.st.Prune(ctx, cut)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			a.log.WithError(err).Error("pruning expired events failed")
		case n > 0:
			a.log.WithFields(logrus.Fields{"deleted": n, "older_than": cut.Format(time.RFC3339)}).Info("expired events pruned")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-a.lead.Won():
		}
	}
}
