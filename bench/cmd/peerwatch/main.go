// Command peerwatch runs inside the benchmark's qemu guest: it reads the
// real /dev/kmsg with oomwatch's live path, cAdvisor's OOM parser and NPD's
// OOMKilling rule side by side (bench.StartLive) until -stop appears, then
// writes what each reported, as JSON, to -out.
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
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/bench"
	"github.com/oomwatch/oomwatch/pkg/envflag"
)

// options are peerwatch's flags.
type options struct {
	out  string
	stop string
}

// AddFlags registers the flags on fs.
func (o *options) AddFlags(fs *flag.FlagSet) {
	fs.StringVar(&o.out, "out", "", "file to write the findings to (JSON)")
	fs.StringVar(&o.stop, "stop", "", "stop and write the findings once this file exists")
}

// Validate checks the flag values.
func (o *options) Validate() error {
	if o.out == "" || o.stop == "" {
		return errors.New("-out and -stop are required")
	}
	return nil
}

func main() {
	var o options
	fs := flag.NewFlagSet("peerwatch", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := envflag.Parse(fs, os.Args[1:], os.Getenv); err != nil {
		os.Exit(2)
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "peerwatch:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o); err != nil {
		fmt.Fprintln(os.Stderr, "peerwatch:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, o options) error {
	logger := logrus.New()
	logger.SetFormatter(&logrus.JSONFormatter{})
	live, err := bench.StartLive(ctx, logrus.NewEntry(logger))
	if err != nil {
		return err
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, err := os.Stat(o.stop); err == nil {
			break
		}
		select {
		case <-ctx.Done():
		case <-tick.C:
			continue
		}
		break
	}
	b, err := json.Marshal(live.Stop())
	if err != nil {
		return err
	}
	// Written whole, then renamed: the script waits for the name.
	tmp := o.out + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, o.out)
}
