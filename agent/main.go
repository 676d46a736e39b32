// Command agent is oomwatch's node agent: run as a DaemonSet, it reads the
// kernel log, explains every OOM kill and streams it to the aggregator.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/agent"
	"github.com/oomwatch/oomwatch/pkg/envflag"
	"github.com/oomwatch/oomwatch/pkg/metrics"
)

func main() {
	var opts agent.Options
	fs := flag.NewFlagSet("agent", flag.ContinueOnError)
	opts.AddFlags(fs)
	if err := envflag.Parse(fs, os.Args[1:], os.Getenv); err != nil {
		os.Exit(2)
	}
	if opts.NodeName == "" {
		opts.NodeName = os.Getenv("NODE_NAME")
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "agent:", err)
		os.Exit(2)
	}
	logger := logrus.New()
	logger.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	level, _ := logrus.ParseLevel(opts.LogLevel)
	logger.SetLevel(level)
	log := logrus.NewEntry(logger).WithField("node", opts.NodeName)
	opts.Transport.Describe(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, opts, log); err != nil {
		log.WithError(err).Error("agent stopped")
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, opts agent.Options, log *logrus.Entry) error {
	a, err := agent.New(opts, log)
	if err != nil {
		return err
	}
	m := metrics.NewAgent(
		func() float64 { return float64(a.Spool().Len()) },
		func() float64 { return float64(a.Sender().Stats().SendErrors) },
		func() float64 { return float64(a.Sender().Stats().Reconnects) })
	m.RegisterDurability(func() metrics.Durability {
		o, sp := a.Outbox().Stats(), a.Spool().Stats()
		return metrics.Durability{SpoolWritable: o.Writable, SpoolWriteErrors: o.WriteErrors, AckWriteErrors: sp.AckWriteErrors,
			CheckpointWriteErrors: a.CheckpointErrors(), MemoryQueueEvents: o.Held, MemoryQueued: o.Direct, MemoryDropped: o.Lost}
	})
	if opts.MetricsAddr != "" {
		go func() {
			if err := metrics.Serve(ctx, opts.MetricsAddr, m.Registry, nil, log.WithField("component", "metrics")); err != nil {
				log.WithError(err).Error("metrics server stopped")
			}
		}()
	}
	return a.Run(ctx, agent.PipelineConfig{Observe: m.Observe, Records: m.RecordsRead.Inc})
}
