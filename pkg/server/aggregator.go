package server

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/transport"
)

// Options are the aggregator's flags. Each is also read from
// OOMWATCH_<NAME> (upper case, '-' as '_'), e.g. OOMWATCH_LISTEN.
type Options struct {
	Listen string
	DB     string
	// Retention is how long events are kept (by event time); 0 keeps them
	// forever.
	Retention time.Duration
	// MaxEventsPerSecond and MaxEventsBurst limit each node (Config).
	MaxEventsPerSecond float64
	MaxEventsBurst     int
	LogLevel           string
	Transport          transport.Options
	// Later: --metrics-addr (Prometheus) and --http-addr (web UI).
}

// AddFlags registers the options on fs, with their defaults.
func (o *Options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.Listen, "listen", ":7443", "gRPC listen address")
	fs.StringVar(&o.DB, "db", "/var/lib/oomwatch/oomwatch.db", "SQLite database file (created when missing)")
	o.Retention = 30 * 24 * time.Hour
	fs.Var((*days)(&o.Retention), "retention", "how long events are kept, e.g. 30d or 72h; 0 keeps them forever")
	fs.Float64Var(&o.MaxEventsPerSecond, "max-events-per-second", 100, "events per second each node may send (0: no limit); a node over it is told to back off")
	fs.IntVar(&o.MaxEventsBurst, "max-events-burst", 0, "events a node may send at once above the rate (default: 10 s of the rate, at least 100)")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	o.Transport.AddFlags(fs)
}

// Validate checks the options.
func (o *Options) Validate() error {
	if _, _, err := net.SplitHostPort(o.Listen); err != nil {
		return fmt.Errorf("--listen %q: %w", o.Listen, err)
	}
	if o.DB == "" {
		return errors.New("--db must not be empty")
	}
	if o.Retention < 0 {
		return errors.New("--retention must not be negative")
	}
	if o.MaxEventsPerSecond < 0 || o.MaxEventsBurst < 0 {
		return errors.New("--max-events-per-second and --max-events-burst must not be negative")
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
	opts Options
	log  *logrus.Entry
	st   *store.Store
	srv  *Server
	lis  net.Listener
}

// NewAggregator opens the store and the listener of valid options.
func NewAggregator(ctx context.Context, o Options, log *logrus.Entry) (*Aggregator, error) {
	grpcOpts, err := transport.ServerOptions(o.Transport)
	if err != nil {
		return nil, fmt.Errorf("transport: %w", err)
	}
	st, err := store.Open(ctx, o.DB, log.WithField("component", "store"))
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", o.Listen)
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("listen: %w", err)
	}
	srv := New(st, Config{
		MaxEventsPerSecond: o.MaxEventsPerSecond,
		MaxEventsBurst:     o.MaxEventsBurst,
		GRPCOptions:        grpcOpts,
	}, log)
	return &Aggregator{opts: o, log: log, st: st, srv: srv, lis: lis}, nil
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
	if a.opts.Retention > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a.pruneLoop(pruneCtx)
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
		}
	}
}
