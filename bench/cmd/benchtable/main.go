// Command benchtable runs oomwatch's comparison with its peers side by side
// in one process (testing.Benchmark) and prints one table: the throughput
// and allocations of each parser on each input, what each could tell about
// the kills, the real-kernel rows from a qemu guest, and the verdict on each
// target. bench/run.sh runs it; see BENCHMARKS.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/oomwatch/oomwatch/bench"
	"github.com/oomwatch/oomwatch/pkg/envflag"
)

// options are benchtable's flags.
type options struct {
	short     bool
	compare   bool
	rounds    int
	benchTime time.Duration
	hooks     string
	out       string
	repoRoot  string
	artifacts string
}

// AddFlags registers the flags on fs.
func (o *options) AddFlags(fs *flag.FlagSet) {
	fs.BoolVar(&o.short, "short", false, "small inputs and one round: only proves the comparison runs (CI)")
	fs.BoolVar(&o.compare, "compare", true, "run the throughput comparison (false: only the hooks)")
	fs.IntVar(&o.rounds, "rounds", 3, "times each benchmark runs, interleaved; the median is kept")
	fs.DurationVar(&o.benchTime, "benchtime", time.Second, "minimum time per benchmark run (testing's -benchtime)")
	fs.StringVar(&o.hooks, "hooks", "detect-vm,footprint,ingest,query,kmsg-flood,e2e-latency",
		"comma-separated hooks to run besides the throughput comparison: "+strings.Join(hookNames(), ", ")+", or none")
	fs.StringVar(&o.out, "out", "", "also write the table to this file")
	fs.StringVar(&o.repoRoot, "repo-root", "..", "the oomwatch repository root (to build the guest binaries of the VM hooks)")
	fs.StringVar(&o.artifacts, "artifacts", "", "keep what the VM hooks bring back (console, exports) under this directory")
}

// Validate checks the flag values.
func (o *options) Validate() error {
	if o.rounds < 1 {
		return errors.New("-rounds must be >= 1")
	}
	if o.benchTime <= 0 {
		return errors.New("-benchtime must be > 0")
	}
	for _, h := range o.selectedHooks() {
		if !slices.Contains(hookNames(), h) {
			return fmt.Errorf("-hooks: unknown hook %q", h)
		}
	}
	return nil
}

func (o *options) selectedHooks() []string {
	if o.hooks == "" || o.hooks == "none" {
		return nil
	}
	return strings.Split(o.hooks, ",")
}

func hookNames() []string {
	var n []string
	for _, h := range bench.Hooks() {
		n = append(n, h.Name)
	}
	return n
}

func main() {
	var o options
	fs := flag.NewFlagSet("benchtable", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := envflag.Parse(fs, os.Args[1:], os.Getenv); err != nil {
		os.Exit(2)
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, o, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, o options, stdout, stderr io.Writer) error {
	if o.short {
		o.rounds = 1
	}
	if err := bench.SetBenchTime(o.benchTime); err != nil {
		return err
	}
	root, err := filepath.Abs(o.repoRoot)
	if err != nil {
		return err
	}
	var inputs []*bench.Input
	t := &bench.Table{}
	if o.compare {
		fmt.Fprintln(stderr, "generating inputs...")
		inputs = bench.Inputs(o.short)
		t = bench.Compare(bench.CompareConfig{Inputs: inputs, Parsers: bench.Parsers(), Rounds: o.rounds, Progress: stderr})
	}

	selected := o.selectedHooks()
	// In a short run (CI's smoke test) a hook that fails fails the run,
	// once the table is printed: its rows must not rot unseen.
	var hookErrs []error
	cfg := bench.HookConfig{Short: o.short, RepoRoot: root, ArtifactDir: o.artifacts, Log: stderr}
	if slices.Contains(selected, "detect-vm") {
		if err := bench.DetectVM(ctx, cfg, t); err != nil {
			t.Notes = append(t.Notes, "real-kernel rows missing: "+err.Error())
		}
	}
	if len(inputs) > 0 {
		t.Judge(inputs, inputs[0].Name)
	}
	for _, h := range bench.Hooks() {
		if h.Run == nil {
			continue
		}
		if !slices.Contains(selected, h.Name) {
			t.Targets = append(t.Targets, bench.Measurement{Name: h.Name, Value: "not run (-hooks)", Target: h.Target, Verdict: bench.VerdictNotMeasured})
			continue
		}
		ms, err := h.Run(ctx, cfg)
		if err != nil {
			hookErrs = append(hookErrs, fmt.Errorf("hook %s: %w", h.Name, err))
			t.Targets = append(t.Targets, bench.Measurement{Name: h.Name, Value: err.Error(), Target: h.Target, Verdict: bench.VerdictNotMeasured})
			continue
		}
		t.Targets = append(t.Targets, ms...)
	}
	t.Notes = append(t.Notes, bench.Notes()...)

	w := stdout
	if o.out != "" {
		f, err := os.Create(o.out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = io.MultiWriter(stdout, f)
	}
	t.Print(w)
	if o.short {
		return errors.Join(hookErrs...)
	}
	return nil
}
