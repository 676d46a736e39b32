// Package cli implements oomctl, the command-line client: analyze a kernel
// log offline, and query, watch and explain the events an aggregator keeps.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
)

// ErrUsage reports bad arguments; the message has already been printed.
var ErrUsage = errors.New("usage error")

// IO is where a command reads and writes.
type IO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads the environment (OOMWATCH_SERVER, ...).
	Getenv func(string) string
}

type command struct {
	summary string
	run     func(ctx context.Context, io IO, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"analyze":   {"analyze a kernel log (files or - for stdin) and explain every OOM kill", runAnalyze},
		"events":    {"list the OOM kills, losses and exits the aggregator keeps, newest first", runEvents},
		"watch":     {"print new events as the aggregator stores them", runWatch},
		"incidents": {"list memory-pressure incidents: kills on a node close together in time", runIncidents},
		"explain":   {"tell the story of a pod's recent container exits: OOM kill or not, whose memory, kernel lines", runExplain},
	}
}

// Run runs oomctl with args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, io IO, args []string) int {
	if io.Getenv == nil {
		io.Getenv = os.Getenv
	}
	cmds := commands()
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(io.Stderr, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(io.Stderr, "oomctl: unknown command %q\n", args[0])
		usage(io.Stderr, cmds)
		return 2
	}
	if err := cmd.run(ctx, io, args[1:]); err != nil {
		if errors.Is(err, ErrUsage) || errors.Is(err, flag.ErrHelp) {
			return 2
		}
		fmt.Fprintf(io.Stderr, "oomctl %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: oomctl COMMAND [flags] [args]\n\ncommands:")
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nRun 'oomctl COMMAND -h' for a command's flags.")
}

// newFlagSet returns a flag set that reports errors to io.Stderr.
func newFlagSet(io IO, name string) *flag.FlagSet {
	fs := flag.NewFlagSet("oomctl "+name, flag.ContinueOnError)
	fs.SetOutput(io.Stderr)
	return fs
}

// parseFlags parses args, allowing flags after positional arguments.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}
