// Command aggregator is oomwatch's central service: it takes the OOM
// events every node agent streams, keeps them in SQLite and answers oomctl.
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

	"github.com/oomwatch/oomwatch/pkg/envflag"
	"github.com/oomwatch/oomwatch/pkg/server"
)

func main() {
	var opts server.Options
	fs := flag.NewFlagSet("aggregator", flag.ContinueOnError)
	opts.AddFlags(fs)
	if err := envflag.Parse(fs, os.Args[1:], os.Getenv); err != nil {
		fmt.Fprintln(os.Stderr, "aggregator:", err)
		os.Exit(2)
	}
	if err := opts.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "aggregator:", err)
		os.Exit(2)
	}
	logger := logrus.New()
	logger.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	level, _ := logrus.ParseLevel(opts.LogLevel)
	logger.SetLevel(level)
	log := logrus.NewEntry(logger)
	opts.Transport.Describe(log)

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	agg, err := server.NewAggregator(ctx, opts, log)
	if err == nil {
		err = agg.Run(ctx)
	}
	if err != nil {
		log.WithError(err).Error("aggregator stopped")
		stop()
		os.Exit(1)
	}
}
