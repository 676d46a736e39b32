// Package command is what oomwatch's daemons (the agent and the
// aggregator) do around their work: read their options from the command
// line and the OOMWATCH_* variables and check them, saying what is wrong;
// log as JSON; and run until SIGINT or SIGTERM.
package command

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/envflag"
)

// Options are a daemon's options.
type Options interface {
	AddFlags(fs *flag.FlagSet)
	Validate() error
}

// Exit codes of the daemons.
const (
	ExitOK    = 0
	ExitError = 1 // the daemon stopped on an error
	ExitUsage = 2 // bad flags, variables or option values
)

// Parse reads opts from args, then from the OOMWATCH_* variables getenv
// reads, calls defaults (when set) for what other sources fill in, and
// validates. Every problem is written to stderr once, prefixed with name.
// It returns flag.ErrHelp for -h.
func Parse(name string, opts Options, args []string, getenv func(string) string, stderr io.Writer, defaults func()) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr) // the flag package writes its own errors and the usage there
	opts.AddFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	err := envflag.FromEnv(fs, getenv)
	if err == nil {
		if defaults != nil {
			defaults()
		}
		err = opts.Validate()
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	return err
}

// ExitCode is the exit code for Parse's error.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	default:
		return ExitUsage
	}
}

// Logger returns the daemons' logger: JSON lines with RFC 3339 times, at
// level (Validate has checked it; an unknown one logs at info).
func Logger(level string) *logrus.Logger {
	l := logrus.New()
	l.SetFormatter(&logrus.JSONFormatter{TimestampFormat: time.RFC3339Nano})
	lv, err := logrus.ParseLevel(level)
	if err != nil {
		lv = logrus.InfoLevel
	}
	l.SetLevel(lv)
	return l
}

// Run runs fn until it returns, with a context that SIGINT and SIGTERM
// end, and returns the exit code: ExitError after logging what stopped
// it.
func Run(log *logrus.Entry, name string, fn func(ctx context.Context) error) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := fn(ctx); err != nil {
		log.WithError(err).Error(name + " stopped")
		return ExitError
	}
	return ExitOK
}

// GCPercent sets the garbage collector's target (the heap's growth, in
// percent of what the last collection kept, before the next one) unless
// the GOGC variable, read through getenv, sets it already: an operator's
// GOGC wins. It returns the target now in force (-1: collection off).
func GCPercent(getenv func(string) string, percent int) int {
	if getenv("GOGC") != "" {
		cur := debug.SetGCPercent(100)
		debug.SetGCPercent(cur)
		return cur
	}
	debug.SetGCPercent(percent)
	return percent
}
