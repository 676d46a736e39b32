// Package nodemetrics defines the node agent's Prometheus metrics (the
// same names, labels and help as the aggregator's pkg/metrics style:
// oomwatch_<noun>_<unit>_total) and serves them with a health endpoint.
//
// They are written with pkg/promtext rather than client_golang, which the
// aggregator uses: the agent runs on every node under a tight memory
// limit, and client_golang was 0.6 MB of its binary, all of it resident.
// Nothing here may import client_golang, nor pkg/metrics, which does.
package nodemetrics

import (
	"context"
	"net"
	"net/http"

	"github.com/oomwatch/oomwatch/pkg/command"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/promtext"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Agent holds the node agent's metrics.
type Agent struct {
	Registry        *promtext.Registry
	OOMKills        *promtext.CounterVec
	CollateralKills *promtext.CounterVec
	RecordsRead     *promtext.Counter
	RecordsLost     *promtext.Counter
	// RecordsForged counts records userspace wrote to /dev/kmsg that
	// imitate an OOM report (never taken as one).
	RecordsForged *promtext.Counter
	SpoolDropped  *promtext.Counter
	// Attributions counts OOM kills by how their victim was placed.
	Attributions *promtext.CounterVec
	// Verdicts counts OOM kills by collateral verdict.
	Verdicts *promtext.CounterVec
}

// NewAgent registers the agent's metrics, with the Go runtime's and the
// process's (read from procRoot, normally /proc). spoolDepth, sendErrors
// and reconnects are read when scraped.
func NewAgent(procRoot string, spoolDepth func() float64, sendErrors, reconnects func() float64) *Agent {
	reg := promtext.NewRegistry()
	reg.Register(promtext.GoCollector())
	reg.Register(promtext.ProcessCollector(procRoot))
	m := &Agent{
		Registry: reg,
		OOMKills: reg.NewCounterVec("oomwatch_oom_kills_total",
			"OOM kills seen in the kernel log, by kind (node, limit, ...), limit scope, victim namespace and QoS class.",
			"kind", "scope", "namespace", "qos"),
		CollateralKills: reg.NewCounterVec("oomwatch_collateral_kills_total",
			"OOM kills whose victim was not the workload that held the memory, by victim namespace.", "namespace"),
		RecordsRead: reg.NewCounter("oomwatch_kernel_records_read_total", "Kernel log records read from /dev/kmsg."),
		RecordsLost: reg.NewCounter("oomwatch_kernel_records_lost_total",
			"Kernel log records overwritten before they were read (log buffer overflow)."),
		RecordsForged: reg.NewCounter("oomwatch_kernel_records_forged_total",
			"Kernel log records written by userspace (facility other than the kernel's) that imitate an OOM report; they are ignored."),
		SpoolDropped: reg.NewCounter("oomwatch_spool_dropped_events_total",
			"Events dropped because the spool was full while the aggregator was unreachable."),
	}
	reg.NewGaugeFunc("oomwatch_spool_events", "Events spooled on disk and not yet acknowledged by the aggregator.", spoolDepth)
	reg.NewCounterFunc("oomwatch_send_errors_total", "Streams to the aggregator that ended in an error.", sendErrors)
	reg.NewCounterFunc("oomwatch_stream_reconnects_total", "Reconnections of the stream to the aggregator.", reconnects)
	m.Attributions = reg.NewCounterVec("oomwatch_kill_attributions_total",
		"OOM kills by how the victim's workload was found: report, proc, pid-cache, oom-kill-counter, unattributed "+
			"(the kernel rate-limits its reports; a rising unattributed count means kills nobody can place).", "by")
	m.Verdicts = reg.NewCounterVec("oomwatch_collateral_verdicts_total",
		"OOM kills by collateral verdict: yes (another workload held the memory), no, unknown (not enough known to say).", "verdict")
	return m
}

// Observe counts one event the agent produced.
func (m *Agent) Observe(ev *pb.Event) {
	switch {
	case ev.GetOom() != nil:
		k := ev.GetOom()
		kind, scope, ns, qos := wire.KillLabels(k)
		m.OOMKills.WithLabelValues(kind, scope, ns, qos).Inc()
		if by := k.GetAttributedBy(); by != "" {
			m.Attributions.WithLabelValues(by).Inc()
		}
		if k.GetCollateral() {
			m.CollateralKills.WithLabelValues(ns).Inc()
		}
		m.Verdicts.WithLabelValues(wire.Verdict(k)).Inc()
	case ev.GetLoss() != nil:
		l := ev.GetLoss()
		if l.GetCause() == "kernel-gap" {
			m.RecordsLost.Add(float64(l.GetLost()))
		} else {
			m.SpoolDropped.Add(float64(l.GetLost()))
		}
	}
}

// Serve serves /metrics, /healthz and /readyz (both always "ok": the
// agent's liveness is its process) on addr until ctx ends.
func Serve(ctx context.Context, addr string, reg *promtext.Registry, log *logrus.Entry) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	return ServeListener(ctx, ln, reg, log)
}

// ServeListener is Serve on an open listener.
func ServeListener(ctx context.Context, ln net.Listener, reg *promtext.Registry, log *logrus.Entry) error {
	mux := http.NewServeMux()
	mux.Handle("/metrics", reg.Handler())
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok\n")) })
	mux.Handle("/healthz", ok)
	mux.Handle("/readyz", ok)
	return command.ServeHTTP(ctx, ln, mux, log)
}
