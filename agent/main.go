// Command agent is oomwatch's node agent: run as a DaemonSet, it reads the
// kernel log, explains every OOM kill and streams it to the aggregator.
package main

import (
	"context"
	"os"
	"runtime/debug"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/agent"
	"github.com/oomwatch/oomwatch/pkg/command"
	"github.com/oomwatch/oomwatch/pkg/hugepage"
	"github.com/oomwatch/oomwatch/pkg/nodemetrics"
)

// gcPercent is the agent's GOGC unless the environment sets one. Its live
// heap is small (~2 MiB idle) and bursts are rare, so collecting at half
// the default's growth costs little CPU and keeps ~0.8 MiB less resident
// memory idle, and less through a large report, under a tight memory
// limit.
const gcPercent = 50

func main() {
	command.GCPercent(os.Getenv, gcPercent)
	var opts agent.Options
	err := command.Parse("agent", &opts, os.Args[1:], os.Getenv, os.Stderr, func() {
		if opts.NodeName == "" {
			opts.NodeName = os.Getenv("NODE_NAME") // the downward API's, in deploy/agent.yaml
		}
	})
	if err != nil {
		os.Exit(command.ExitCode(err))
	}
	log := logrus.NewEntry(command.Logger(opts.LogLevel)).WithField("node", opts.NodeName)
	if hugepage.Err != nil {
		log.WithError(hugepage.Err).Warn("transparent huge pages left on: the agent's memory may grow by 2 MiB pages")
	}
	opts.Transport.Describe(log)
	os.Exit(command.Run(log, "agent", func(ctx context.Context) error { return run(ctx, opts, log) }))
}

func run(ctx context.Context, opts agent.Options, log *logrus.Entry) error {
	a, err := agent.New(opts, log)
	if err != nil {
		return err
	}
	// The process metrics are the agent's own, from its own /proc (opts.Proc
	// is the host's, for other processes).
	m := nodemetrics.NewAgent("/proc",
		func() float64 { return float64(a.Spool().Len()) },
		func() float64 { return float64(a.Sender().Stats().SendErrors) },
		func() float64 { return float64(a.Sender().Stats().Reconnects) })
	m.RegisterDurability(func() nodemetrics.Durability {
		o, sp := a.Outbox().Stats(), a.Spool().Stats()
		return nodemetrics.Durability{SpoolWritable: o.Writable, SpoolWriteErrors: o.WriteErrors, AckWriteErrors: sp.AckWriteErrors,
			CheckpointWriteErrors: a.CheckpointErrors(), MemoryQueueEvents: o.Held, MemoryQueued: o.Direct, MemoryDropped: o.Lost}
	})
	sampling := m.RegisterSampling()
	a.SampleRound = func(r agent.SampleRound) { sampling.Round(r.Took, r.Cgroups, r.Errors, r.Open) }
	if opts.MetricsAddr != "" {
		go func() {
			if err := nodemetrics.Serve(ctx, opts.MetricsAddr, m.Registry, log.WithField("component", "metrics")); err != nil {
				log.WithError(err).Error("metrics server stopped")
			}
		}()
	}
	// Quiet gives back to the system, at once, the memory the start's
	// backlog or a report took (a 10,000-task report takes several MiB);
	// the runtime would otherwise keep it for minutes, counted against
	// the agent's memory limit.
	return a.Run(ctx, agent.PipelineConfig{Observe: m.Observe, Records: func(n int) { m.RecordsRead.Add(float64(n)) }, Forged: m.RecordsForged.Inc,
		Quiet: debug.FreeOSMemory})
}
