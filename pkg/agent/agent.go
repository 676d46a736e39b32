package agent

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	"google.golang.org/grpc"

	"github.com/oomwatch/oomwatch/pkg/checkpoint"
	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/enrich"
	"github.com/oomwatch/oomwatch/pkg/exits"
	"github.com/oomwatch/oomwatch/pkg/kubepods"
	"github.com/oomwatch/oomwatch/pkg/proc"
	"github.com/oomwatch/oomwatch/pkg/sample"
	"github.com/oomwatch/oomwatch/pkg/sender"
	"github.com/oomwatch/oomwatch/pkg/spool"
	"github.com/oomwatch/oomwatch/pkg/transport"
	"github.com/oomwatch/oomwatch/pkg/version"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Agent is a running node agent.
type Agent struct {
	opts   Options
	log    *logrus.Entry
	proc   proc.FS
	bootID string
	spool  *spool.Spool
	outbox *Outbox
	conn   *grpc.ClientConn
	sender *sender.Sender
	// connected tells whether a stream to the aggregator is up.
	connected atomic.Bool
	// checkpointErrors counts failed checkpoint saves.
	checkpointErrors atomic.Int64
	// Source, when set, replaces /dev/kmsg (tests, synthetic loads).
	Source func(ctx context.Context, after int64, out chan<- devkmsg.Item) error
	// Enricher adds runtime names and cgroup figures; nil leaves events as
	// the kernel described them.
	Enricher Enricher
	// SampleRound, when set, is told of every sampling round (metrics).
	SampleRound func(SampleRound)
}

// New prepares an agent: it reads the boot ID, the checkpoint and the
// spool, and connects (lazily) to the aggregator. Corrupt state is reported
// and what is readable kept.
func New(opts Options, log *logrus.Entry) (*Agent, error) {
	a := &Agent{opts: opts, log: log, proc: proc.New(opts.Proc)}
	a.proc.CgroupRoot = opts.CgroupRoot
	var err error
	if a.bootID, err = a.proc.BootID(); err != nil {
		return nil, err
	}
	sp, rec, err := spool.Open(filepath.Join(opts.StateDir, "spool"),
		spool.Options{MaxEvents: opts.SpoolMaxEvents, MaxBytes: opts.SpoolMaxBytes}, log.WithField("component", "spool"))
	if err != nil {
		return nil, fmt.Errorf("open spool: %w", err)
	}
	a.spool = sp
	if err := rec.Err(); err != nil {
		log.WithError(err).Error("the spool was corrupt: kept every readable event")
	}
	if rec.Events > 0 {
		log.WithField("events", rec.Events).Info("replaying events not yet acknowledged")
	}
	if rec.WriteErr != nil {
		log.WithError(rec.WriteErr).Error("the state directory refuses writes: events are kept in memory and sent directly until it takes them again")
	}
	a.outbox = NewOutbox(sp, OutboxOptions{Node: opts.NodeName, BootID: a.bootID,
		MaxEvents: opts.MemoryQueueEvents, MaxBytes: opts.MemoryQueueBytes}, log.WithField("component", "outbox"))
	dial, err := transport.DialOptions(opts.Transport, "")
	if err != nil {
		sp.Close()
		return nil, err
	}
	a.conn, err = transport.NewClient(opts.Server, dial...)
	if err != nil {
		sp.Close()
		return nil, fmt.Errorf("aggregator %s: %w", opts.Server, err)
	}
	if opts.SyntheticKills > 0 {
		a.Source = SyntheticSource(opts.NodeName, opts.SyntheticKills, opts.SyntheticRate)
		log.WithField("kills", opts.SyntheticKills).Warn("reading synthetic OOM reports, not the kernel log")
	}
	a.sender = sender.New(sender.Config{Conn: a.conn, Node: opts.NodeName, BootID: a.bootID, Version: version.String()},
		a.outbox, log.WithField("component", "sender"))
	a.sender.Connected = a.connected.Store
	return a, nil
}

// BootID returns the boot the agent reads.
func (a *Agent) BootID() string { return a.bootID }

// Spool returns the agent's spool (for metrics).
func (a *Agent) Spool() *spool.Spool { return a.spool }

// Sender returns the agent's sender (for metrics).
func (a *Agent) Sender() *sender.Sender { return a.sender }

// Outbox returns what stands in front of the spool (for metrics).
func (a *Agent) Outbox() *Outbox { return a.outbox }

// CheckpointErrors returns how many checkpoint saves failed.
func (a *Agent) CheckpointErrors() int64 { return a.checkpointErrors.Load() }

// countingCheck counts a checkpointer's failures.
type countingCheck struct {
	Checkpointer
	errs *atomic.Int64
}

func (c countingCheck) Save(seq int64) error {
	err := c.Checkpointer.Save(seq)
	if err != nil {
		c.errs.Add(1)
	}
	return err
}

// Run reads, spools and sends until ctx ends. It returns nil on a clean
// shutdown.
func (a *Agent) Run(ctx context.Context, hooks PipelineConfig) error {
	defer a.conn.Close()
	defer a.spool.Close()
	cp, err := checkpoint.Load(a.opts.StateDir)
	switch {
	case errors.Is(err, checkpoint.ErrCorrupt):
		a.log.WithError(err).Error("the checkpoint was corrupt: reading the whole kernel log buffer again (the aggregator drops what it already has)")
	case err != nil:
		// An I/O error is a fault of the disk, not a reason to stop.
		a.log.WithError(err).Error("cannot read the checkpoint: reading the whole kernel log buffer again (the aggregator drops what it already has)")
	}
	after := cp.After(a.bootID)
	if cp.BootID != "" && cp.BootID != a.bootID {
		a.log.WithFields(logrus.Fields{"previous_boot": cp.BootID, "boot": a.bootID}).Info("the node rebooted: reading the new boot's kernel log from its start")
	}
	a.log.WithFields(logrus.Fields{"node": a.opts.NodeName, "boot_id": a.bootID, "after_seq": after, "server": a.opts.Server}).Info("agent starting")

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cfg := hooks
	cfg.Node, cfg.BootID, cfg.Proc = a.opts.NodeName, a.bootID, a.proc
	cfg.Sink = a.outbox
	cfg.Check = countingCheck{checkpoint.Recorder{Dir: a.opts.StateDir, BootID: a.bootID}, &a.checkpointErrors}
	cfg.Recent = a.opts.Recent
	if cfg.Counters == nil && a.Source == nil {
		cfg.Counters = ContainerCounters(a.opts.CgroupRoot)
	}
	var joiner *exits.Joiner
	if a.Enricher != nil {
		cfg.Enricher = a.Enricher
	} else {
		var rt enrich.Runtime
		if !a.opts.NoCRI {
			names := &runtimeNames{endpoint: a.opts.CRIEndpoint, log: a.log.WithField("component", "cri")}
			// Container exits with a signal are joined with the kernel's
			// OOM kills of that container into an exit verdict.
			joiner = exits.New(a.outbox, names, a.log.WithField("component", "exits"),
				exits.Options{Node: a.opts.NodeName, BootID: a.bootID})
			names.onExit = joiner.Exit
			go names.run(ctx)
			rt = names
		}
		var specs enrich.Specs
		if pods := a.kubePods(); pods != nil {
			specs = pods
			if cfg.Requests == nil {
				cfg.Requests = pods
			}
		}
		cfg.Enricher = enrich.New(a.opts.CgroupRoot, rt, specs)
	}
	if joiner != nil {
		observe := cfg.Observe
		cfg.Observe = func(ev *pb.Event) {
			joiner.OOM(ev)
			if observe != nil {
				observe(ev)
			}
		}
	}
	warnings := a.warnings(cfg)
	if warnings != nil {
		cfg.Warnings = warnings
	}
	pipe := NewPipeline(cfg, a.log.WithField("component", "pipeline"))

	var wg sync.WaitGroup
	errs := make(chan error, 8)
	run := func(name string, f func() error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
				cancel()
			}
		}()
	}
	if a.Source != nil {
		items := make(chan devkmsg.Item, 4096)
		run("kernel log", func() error { return a.Source(ctx, after, items) })
		run("pipeline", func() error {
			err := pipe.Run(ctx, items)
			if err == nil && ctx.Err() == nil {
				return errors.New("the kernel log source stopped")
			}
			return err
		})
	} else {
		// The pipeline reads kmsgparser's channel itself: no goroutine
		// and no channel of ours between the kernel and the Assembler.
		run("kernel log", func() error {
			r, err := devkmsg.New(a.log.WithField("component", "kmsg"), devkmsg.Options{After: after, Device: a.opts.KmsgDevice}).Open(ctx)
			if err != nil {
				return err
			}
			defer r.Close()
			return pipe.RunReader(ctx, r)
		})
	}
	run("sender", func() error { return a.sender.Run(ctx) })
	run("outbox", func() error { return a.outbox.Run(ctx) })
	run("drops", func() error { return a.reportDrops(ctx) })
	if joiner != nil {
		run("exits", func() error { return joiner.Run(ctx) })
	}
	if warnings != nil {
		run("warnings", func() error { return warnings.Run(ctx) })
	}
	wg.Wait()
	close(errs)
	var first error
	for err := range errs {
		if first == nil {
			first = err
		}
	}
	return first
}

// warnings returns the sampling loop of --sample-interval, nil when it is
// off or cannot run (said once: kills are reported all the same).
func (a *Agent) warnings(cfg PipelineConfig) *Warnings {
	if a.opts.SampleInterval <= 0 {
		return nil
	}
	log := a.log.WithField("component", "warnings")
	// Options.Validate has checked both.
	wc, err := a.opts.WarnConfig()
	if err != nil {
		log.WithError(err).Error("no memory warnings")
		return nil
	}
	ev, err := a.opts.Eviction()
	if err != nil {
		log.WithError(err).Error("no memory warnings")
		return nil
	}
	namer, _ := cfg.Enricher.(Namer)
	w, err := NewWarnings(WarningsConfig{Node: a.opts.NodeName, BootID: a.bootID,
		Sample: sample.Config{CgroupRoot: a.opts.CgroupRoot, ProcRoot: a.opts.Proc}, Warn: wc,
		Interval: a.opts.SampleInterval, Eviction: ev, Sink: a.outbox, Namer: namer, Round: a.SampleRound}, log)
	if err != nil {
		log.WithError(err).Error("cannot sample the cgroups: no memory warnings (OOM kills are reported all the same)")
		return nil
	}
	return w
}

// kubePods returns the cache of this node's pod specs, or nil when the
// Kubernetes API is off or unreachable by configuration (said once).
func (a *Agent) kubePods() *kubepods.Cache {
	if a.opts.NoKubeAPI {
		return nil
	}
	log := a.log.WithField("component", "kube-api")
	cfg, err := a.opts.KubeConfig()
	if err == nil {
		var c *kubepods.Client
		if c, err = kubepods.NewClient(cfg); err == nil {
			log.WithField("server", cfg.Server).Info("memory requests from the Kubernetes API, listed when an OOM kill needs them")
			return kubepods.NewCache(c, log, kubepods.CacheOptions{})
		}
	}
	log.WithError(err).Warn("no Kubernetes API: memory requests unknown, culprits ranked by usage alone")
	return nil
}

// dropsEvery is how often spool overflows are looked for: a loss report
// may wait that long, an idle agent wakes no more often for it.
const dropsEvery = 5 * time.Second

// reportDrops turns spool overflows into loss events for the aggregator.
func (a *Agent) reportDrops(ctx context.Context) error {
	t := time.NewTicker(dropsEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		// Report drops when the aggregator is reachable: a loss event
		// spooled while it is not would itself take the place of a kill.
		if !a.connected.Load() {
			continue
		}
		r, err := a.spool.TakeDropped(ctx, func(r spool.DropReport) *pb.Event {
			now := time.Now()
			return r.Loss(a.opts.NodeName, a.bootID, now.UnixNano(), now)
		})
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.WithError(err).Warn("cannot report dropped events yet")
			continue
		}
		if r.Count > 0 {
			a.log.WithField("dropped", r.Count).Error("the spool was full: the oldest events were dropped; reported to the aggregator as a loss")
		}
		r, err = a.outbox.TakeLost(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			a.log.WithError(err).Warn("cannot report lost events yet")
			continue
		}
		if r.Count > 0 {
			a.log.WithField("lost", r.Count).Error("events that could be neither spooled nor kept in memory were reported to the aggregator as a loss")
		}
	}
}

// The exits Joiner's updates of an oom-child story wait until the outbox no
// longer holds the previous revision.
var _ exits.Holder = (*Outbox)(nil)
