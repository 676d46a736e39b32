// Command kmsgflood runs inside the benchmark's qemu guest: it floods the
// kernel log through /dev/kmsg and times a raw read(2) loop, oomwatch's
// live path and cAdvisor's OOM parser reading it all back (bench.Flood),
// then writes the passes, as JSON, to -out.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/oomwatch/oomwatch/bench"
	"github.com/oomwatch/oomwatch/pkg/envflag"
)

// options are kmsgflood's flags.
type options struct {
	out     string
	records int
	rounds  int
}

// AddFlags registers the flags on fs.
func (o *options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.out, "out", "", "file to write the passes to (JSON)")
	fs.IntVar(&o.records, "records", bench.FloodRecords, "records to write to /dev/kmsg")
	fs.IntVar(&o.rounds, "rounds", bench.FloodRounds, "passes of each reader, interleaved")
}

// Validate checks the flag values.
func (o *options) Validate() error {
	if o.out == "" {
		return errors.New("-out is required")
	}
	if o.records < 1 || o.rounds < 1 {
		return errors.New("-records and -rounds must be >= 1")
	}
	return nil
}

func main() {
	var o options
	fs := flag.NewFlagSet("kmsgflood", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := envflag.Parse(fs, os.Args[1:], os.Getenv); err != nil {
		os.Exit(2)
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "kmsgflood:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "kmsgflood:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	res, err := bench.Flood(ctx, o.records, o.rounds)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(res, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(o.out, b, 0o644)
}
