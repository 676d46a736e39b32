package aggregator

import (
	"errors"
	"flag"
	"strconv"
	"syscall"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/connlimit"
)

// ErrNegativeLimit: a limit flag was given a negative value.
var ErrNegativeLimit = errors.New("limits must not be negative (0 takes the default)")

// addLimitFlags registers the Limits' flags (0 takes the default).
func (o *Options) addLimitFlags(fs *flag.FlagSet) {
	l, d := &o.Limits, DefaultLimits
	*l = d
	fs.IntVar(&l.MaxConnections, "max-connections", d.MaxConnections, "open gRPC connections at most; more are closed as they arrive")
	fs.IntVar(&l.MaxWebConnections, "max-web-connections", d.MaxWebConnections, "open web UI connections at most")
	fs.IntVar(&l.MaxMetricsConnections, "max-metrics-connections", d.MaxMetricsConnections, "open connections to --metrics-addr at most (kept apart, so probes answer while the others are flooded)")
	fs.Func("max-streams-per-connection", "concurrent gRPC streams per connection (HTTP/2 SETTINGS_MAX_CONCURRENT_STREAMS) (default 16)", func(s string) error {
		v, err := strconv.ParseUint(s, 10, 31)
		l.MaxStreamsPerConnection = uint32(v)
		return err
	})
	fs.IntVar(&l.MaxIngestStreamsPerIdentity, "max-ingest-streams-per-identity", d.MaxIngestStreamsPerIdentity, "ingest streams one identity (certificate, token) may hold open, with or without their Hello")
	fs.IntVar(&l.MaxIngestStreams, "max-ingest-streams", d.MaxIngestStreams, "ingest streams open at most, over all identities")
	fs.IntVar(&l.MaxWatchersPerIdentity, "max-watchers-per-identity", d.MaxWatchersPerIdentity, "Watch streams one identity may hold open")
	fs.IntVar(&l.MaxWatchers, "max-watchers", d.MaxWatchers, "Watch streams and web UI live pages open at most, in total")
	fs.DurationVar(&l.HelloTimeout, "hello-timeout", d.HelloTimeout, "an ingest stream that sends no Hello for this long is closed")
	fs.DurationVar(&l.HandshakeTimeout, "handshake-timeout", d.HandshakeTimeout, "a new connection's TLS and HTTP/2 handshake must finish within this")
	fs.DurationVar(&l.IdleTimeout, "idle-timeout", d.IdleTimeout, "a gRPC connection without any stream for this long is closed")
	fs.DurationVar(&l.MinPingInterval, "min-ping-interval", d.MinPingInterval, "clients pinging more often than this are disconnected")
	fs.Float64Var(&l.MaxEventsPerSecondPerIdentity, "max-events-per-second-per-identity", d.MaxEventsPerSecondPerIdentity, "events per second one identity may send over all the nodes it sends for (0: no limit)")
	fs.IntVar(&l.MaxEventsBurstPerIdentity, "max-events-burst-per-identity", d.MaxEventsBurstPerIdentity, "events one identity may send at once above its rate")
}

// validate checks the limits.
func (l *Limits) validate() error {
	for _, v := range []int{l.MaxConnections, l.MaxWebConnections, l.MaxMetricsConnections, l.MaxIngestStreamsPerIdentity,
		l.MaxIngestStreams, l.MaxWatchersPerIdentity, l.MaxWatchers, l.MaxEventsBurstPerIdentity} {
		if v < 0 {
			return ErrNegativeLimit
		}
	}
	if l.HelloTimeout < 0 || l.HandshakeTimeout < 0 || l.IdleTimeout < 0 || l.MinPingInterval < 0 || l.MaxEventsPerSecondPerIdentity < 0 {
		return ErrNegativeLimit
	}
	return nil
}

// fdReserve is what the process needs besides its listeners'
// connections: the database, its journal, the listeners, the log.
const fdReserve = 64

// checkFileLimit warns when the listeners' caps together exceed the open
// file limit: the caps would then not protect the probes' listener.
func checkFileLimit(o Options, log *logrus.Entry) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return
	}
	need := uint64(o.Limits.MaxConnections + fdReserve)
	if o.HTTPAddr != "" {
		need += uint64(o.Limits.MaxWebConnections)
	}
	if o.MetricsAddr != "" {
		need += uint64(o.Limits.MaxMetricsConnections)
	}
	if need > rl.Cur {
		log.WithFields(logrus.Fields{"open_files_limit": rl.Cur, "needed": need}).
			Warn("the connection caps exceed the open file limit: lower --max-connections or raise the limit")
	}
}

// registerLimitMetrics adds the limits' metrics to the registry:
// streams waiting for their Hello, refusals by limit, and each
// listener's open and refused connections.
func (a *Aggregator) registerLimitMetrics() {
	reg := a.metrics.Registry
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oomwatch_ingest_streams_awaiting_hello",
		Help: "Ingest streams open that sent no Hello yet (closed after --hello-timeout).",
	}, func() float64 { return float64(a.srv.LimitStats().AwaitingHello) }))
	for _, reason := range LimitReasons {
		reason := reason
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name:        "oomwatch_limit_refusals_total",
			Help:        "Streams, watchers and events refused by a limit, by limit.",
			ConstLabels: prometheus.Labels{"limit": reason},
		}, func() float64 { return float64(a.srv.LimitStats().Refused[reason]) }))
	}
	listeners := map[string]func() *connlimit.Listener{
		"grpc":    func() *connlimit.Listener { return a.grpcLis },
		"web":     func() *connlimit.Listener { return a.webCap },
		"metrics": func() *connlimit.Listener { return a.metricsLis },
	}
	for name, get := range listeners {
		get := get
		labels := prometheus.Labels{"listener": name}
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "oomwatch_connections_open", Help: "Connections open, by listener.", ConstLabels: labels,
		}, func() float64 {
			if l := get(); l != nil {
				return float64(l.Open())
			}
			return 0
		}))
		reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "oomwatch_connections_refused_total", Help: "Connections closed on arrival because their listener was at its cap, by listener.", ConstLabels: labels,
		}, func() float64 {
			if l := get(); l != nil {
				return float64(l.Refused())
			}
			return 0
		}))
	}
}

// registerReplicaMetrics registers what replicas on one database do
// together: whether this one holds the leader lease, and how many events
// the others stored that it handed to its watchers.
func (a *Aggregator) registerReplicaMetrics() {
	reg := a.metrics.Registry
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "oomwatch_aggregator_leader",
		Help: "1 when this replica does the once-only work (retention, Kubernetes Events): it holds the leader lease, or it is the only one.",
	}, func() float64 {
		if a.lead.Leading() {
			return 1
		}
		return 0
	}))
	reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "oomwatch_events_followed_total",
		Help: "Events other replicas stored or updated on the shared database that this one handed to its watchers.",
	}, func() float64 { return float64(a.followed.Load()) }))
}
