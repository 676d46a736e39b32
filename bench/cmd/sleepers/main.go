// Command sleepers starts -n sleeping processes (busybox sleep) inside the
// cgroup -cgroup and exits, leaving them running: the benchmark guest uses
// it to give an OOM report a task dump of 10,000 rows. Starting them from Go
// (clone with CLONE_VFORK, then exec) is much faster under qemu TCG than a
// shell loop.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/oomwatch/oomwatch/pkg/envflag"
)

// options are sleepers' flags.
type options struct {
	n           int
	cgroup      string
	oomScoreAdj int
	sleep       string
}

// AddFlags registers the flags on fs.
func (o *options) AddFlags(fs *flag.FlagSet) {
	fs.IntVar(&o.n, "n", 10000, "processes to start")
	fs.StringVar(&o.cgroup, "cgroup", "", "cgroup v2 directory to start them in (required)")
	fs.IntVar(&o.oomScoreAdj, "oom-score-adj", 0, "their oom_score_adj")
	fs.StringVar(&o.sleep, "sleep", "/bin/busybox", "the busybox binary whose sleep applet they run")
}

// Validate checks the flag values.
func (o *options) Validate() error {
	if o.n < 1 || o.cgroup == "" {
		return errors.New("-n must be >= 1 and -cgroup is required")
	}
	return nil
}

func main() {
	var o options
	fs := flag.NewFlagSet("sleepers", flag.ContinueOnError)
	o.AddFlags(fs)
	if err := envflag.Parse(fs, os.Args[1:], os.Getenv); err != nil {
		os.Exit(2)
	}
	if err := o.Validate(); err != nil {
		fmt.Fprintln(os.Stderr, "sleepers:", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "sleepers:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	// Children inherit the cgroup and oom_score_adj of their parent.
	if err := os.WriteFile(filepath.Join(o.cgroup, "cgroup.procs"), []byte(strconv.Itoa(os.Getpid())), 0); err != nil {
		return fmt.Errorf("join cgroup: %w", err)
	}
	if err := os.WriteFile("/proc/self/oom_score_adj", []byte(strconv.Itoa(o.oomScoreAdj)), 0); err != nil {
		return fmt.Errorf("set oom_score_adj: %w", err)
	}
	null, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer null.Close()
	attr := &syscall.ProcAttr{Files: []uintptr{null.Fd(), null.Fd(), null.Fd()},
		Sys: &syscall.SysProcAttr{Setsid: true}}
	for i := range o.n {
		if _, err := syscall.ForkExec(o.sleep, []string{"sleep", "3600"}, attr); err != nil {
			return fmt.Errorf("start sleeper %d: %w", i, err)
		}
	}
	fmt.Printf("started %d sleepers in %s\n", o.n, o.cgroup)
	return nil
}
