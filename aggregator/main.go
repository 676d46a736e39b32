// Command aggregator is oomwatch's central service: it takes the OOM
// events every node agent streams, keeps them in SQLite (or PostgreSQL) and answers oomctl.
package main

import (
	"context"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/aggregator"
	"github.com/oomwatch/oomwatch/pkg/command"
)

func main() {
	var opts aggregator.Options
	if err := command.Parse("aggregator", &opts, os.Args[1:], os.Getenv, os.Stderr, nil); err != nil {
		os.Exit(command.ExitCode(err))
	}
	log := logrus.NewEntry(command.Logger(opts.LogLevel))
	opts.Transport.Describe(log)
	os.Exit(command.Run(log, "aggregator", func(ctx context.Context) error {
		agg, err := aggregator.NewAggregator(ctx, opts, log)
		if err != nil {
			return err
		}
		return agg.Run(ctx)
	}))
}
