// Package metrics defines the aggregator's Prometheus metrics, named in the
// style of kube-state-metrics and cAdvisor (oomwatch_<noun>_<unit>_total),
// and serves them with health endpoints. The node agent's are in
// pkg/nodemetrics, written without client_golang.
package metrics

import (
	"context"
	"net"
	"net/http"
	"time"

	"github.com/oomwatch/oomwatch/pkg/command"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// KillLabels returns the labels of an OOM kill: kind, scope, the victim's
// namespace and QoS class ("" when unknown).
func KillLabels(k *pb.OOMKill) (kind, scope, namespace, qos string) { return wire.KillLabels(k) }

// Aggregator holds the aggregator's metrics.
type Aggregator struct {
	Registry        *prometheus.Registry
	Ingested        *prometheus.CounterVec
	Duplicates      prometheus.Counter
	Rejected        *prometheus.CounterVec
	IngestLatency   prometheus.Histogram
	OOMKills        *prometheus.CounterVec
	CollateralKills *prometheus.CounterVec
	RecordsLost     *prometheus.CounterVec
	// Verdicts counts OOM kills by collateral verdict.
	Verdicts *prometheus.CounterVec
	// Panics counts panics the aggregator caught, by where.
	Panics *prometheus.CounterVec
	// nodes and namespaces bound the label values agents choose.
	nodes, namespaces *bounded
}

// NewAggregator registers the aggregator's metrics; watchers and streams
// are read when scraped.
func NewAggregator(watchers, streams func() float64) *Aggregator {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := &Aggregator{
		Registry: reg,
		Ingested: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oomwatch_events_ingested_total",
			Help: "Events stored, by node and type (oom, loss, exit, warning; a warning once, when first stored).",
		}, []string{"node", "type"}),
		Duplicates: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "oomwatch_events_duplicate_total",
			Help: "Events received again (replays after reconnects) and not stored twice.",
		}),
		Rejected: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oomwatch_events_rejected_total",
			Help: "Events or streams refused, by reason.",
		}, []string{"reason"}),
		IngestLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "oomwatch_ingest_latency_seconds",
			Help:    "Time from the kill (the event's time) to its being stored at the aggregator.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300},
		}),
		OOMKills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oomwatch_oom_kills_total",
			Help: "OOM kills stored, by node, kind, limit scope, victim namespace and QoS class.",
		}, []string{"node", "kind", "scope", "namespace", "qos"}),
		CollateralKills: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oomwatch_collateral_kills_total",
			Help: "Collateral OOM kills stored, by node and victim namespace.",
		}, []string{"node", "namespace"}),
		RecordsLost: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "oomwatch_kernel_records_lost_total",
			Help: "Kernel log records (or spooled events) reported lost by agents, by node and cause.",
		}, []string{"node", "cause"}),
	}
	reg.MustRegister(m.Ingested, m.Duplicates, m.Rejected, m.IngestLatency, m.OOMKills, m.CollateralKills, m.RecordsLost,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "oomwatch_watchers", Help: "Live watch streams."}, watchers),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "oomwatch_ingest_streams", Help: "Connected agent streams."}, streams),
	)
	m.Verdicts = newVerdicts(reg)
	m.Panics = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oomwatch_panics_total",
		Help: "Panics caught by the aggregator (the request or the commit's hook failed; the process went on), by where.",
	}, []string{"where"})
	reg.MustRegister(m.Panics)
	m.nodes, m.namespaces = newBounded(MaxNodeValues), newBounded(MaxNamespaceValues)
	return m
}

// Stored counts one newly stored event: Count of its Summary.
func (m *Aggregator) Stored(ev *pb.Event, typ string, now time.Time) {
	m.Count(Summarize(ev, typ), now)
}

// Summary is what the metrics count of one event, taken when it arrives,
// so that the event itself need not be kept until its commit.
type Summary struct {
	node, typ string
	time      time.Time
	hasTime   bool
	// An OOM kill's labels and verdict.
	oom                         bool
	kind, scope, namespace, qos string
	collateral                  bool
	verdict                     string
	// A loss's cause and count.
	cause string
	lost  int64
}

// Summarize returns the Summary of ev, whose type (eventid.TypeOf) is typ.
func Summarize(ev *pb.Event, typ string) Summary {
	s := Summary{node: ev.GetNode(), typ: typ}
	if ev.Time != nil {
		s.time, s.hasTime = ev.Time.AsTime(), true
	}
	if k := ev.GetOom(); k != nil {
		s.oom = true
		s.kind, s.scope, s.namespace, s.qos = KillLabels(k)
		s.collateral = k.GetCollateral()
		s.verdict = wire.Verdict(k)
	} else if l := ev.GetLoss(); l != nil {
		s.cause, s.lost = l.GetCause(), l.GetLost()
	}
	return s
}

// Count counts one newly stored event. Label values an agent chooses are
// bounded: node and namespace to MaxNodeValues and MaxNamespaceValues
// distinct values, kind, scope, QoS and cause to the kernel's and
// kubelet's words; past that they are OtherLabel.
func (m *Aggregator) Count(s Summary, now time.Time) {
	node := m.nodes.value(s.node)
	m.Ingested.WithLabelValues(node, s.typ).Inc()
	if s.hasTime {
		m.IngestLatency.Observe(now.Sub(s.time).Seconds())
	}
	switch {
	case s.oom:
		kind, scope, qos := oneOf(s.kind, kinds...), oneOf(s.scope, scopes...), oneOf(s.qos, qoses...)
		ns := m.namespaces.value(s.namespace)
		m.OOMKills.WithLabelValues(node, kind, scope, ns, qos).Inc()
		if s.collateral {
			m.CollateralKills.WithLabelValues(node, ns).Inc()
		}
		if m.Verdicts != nil {
			m.Verdicts.WithLabelValues(s.verdict).Inc()
		}
	case s.lost > 0:
		cause := oneOf(s.cause, "kernel-gap", "spool-overflow", "spool-unwritable")
		m.RecordsLost.WithLabelValues(node, cause).Add(float64(s.lost))
	}
}

// Serve serves /metrics, /healthz and /readyz (the same as /healthz) on
// addr until ctx ends. healthy, when set, decides them.
func Serve(ctx context.Context, addr string, reg *prometheus.Registry, healthy func() error, log *logrus.Entry) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, reg, healthy, log)
}

// ServeListener is Serve on an open listener.
func ServeListener(ctx context.Context, ln net.Listener, reg *prometheus.Registry, healthy func() error, log *logrus.Entry) error {
	return ServeProbes(ctx, ln, reg, Probes{Live: healthy}, log)
}

// ReadyTimeout bounds one readiness check: a database that does not answer
// within it is not ready.
const ReadyTimeout = 2 * time.Second

// Probes decide the kubelet's probes. Liveness and readiness differ: a
// process that cannot reach its database is alive (restarting it would not
// bring the database back, and would restart every replica at once) but
// not ready (the Service sends its clients elsewhere).
type Probes struct {
	// Live decides /healthz; nil is always live.
	Live func() error
	// Ready decides /readyz, within ReadyTimeout; nil makes /readyz the
	// same as /healthz.
	Ready func(ctx context.Context) error
}

// ServeProbes serves /metrics, /healthz and /readyz on ln until ctx ends.
// A failing probe answers 503 with its error's text.
func ServeProbes(ctx context.Context, ln net.Listener, reg *prometheus.Registry, p Probes, log *logrus.Entry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	live := func(context.Context) error {
		if p.Live == nil {
			return nil
		}
		return p.Live()
	}
	ready := live
	if p.Ready != nil {
		ready = func(ctx context.Context) error {
			if err := live(ctx); err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, ReadyTimeout)
			defer cancel()
			return p.Ready(ctx)
		}
	}
	mux.Handle("/healthz", probe(live))
	mux.Handle("/readyz", probe(ready))
	return command.ServeHTTP(ctx, ln, mux, log)
}

// probe answers "ok" when check passes, else 503 with its error.
func probe(check func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := check(r.Context()); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
}
