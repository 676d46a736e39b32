// Command aggregator is oomwatch's central service: it takes the OOM
// events every node agent streams, keeps them in SQLite (or PostgreSQL) and answers oomctl.
//
// `aggregator migrate --from oomwatch.db --to postgres://...` copies an
// SQLite history into PostgreSQL instead (package migration).
package main

import (
	"context"
	"os"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/aggregator"
	"github.com/oomwatch/oomwatch/pkg/command"
	"github.com/oomwatch/oomwatch/pkg/migration"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "migrate" {
		os.Exit(migrate(os.Args[2:]))
	}
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

// migrate runs `aggregator migrate` and returns its exit code.
func migrate(args []string) int {
	var opts migration.Options
	if err := command.Parse("aggregator migrate", &opts, args, os.Getenv, os.Stderr, nil); err != nil {
		return command.ExitCode(err)
	}
	log := logrus.NewEntry(command.Logger(opts.LogLevel))
	return command.Run(log, "aggregator migrate", func(ctx context.Context) error {
		_, err := migration.Run(ctx, opts, os.Stdout, log)
		return err
	})
}
