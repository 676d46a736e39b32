// Package cli implements oomctl, the command-line client: analyze a kernel
// log offline, and query, watch and explain the events an aggregator keeps.
//
// Its commands and flags are spelled as in kubectl (github.com/spf13/cobra):
// the flags every command shares (the aggregator's address, TLS, the
// output format) go anywhere on the line, a flag's long form takes two
// dashes (one still works, as in earlier releases), and every flag can
// also be set from its OOMWATCH_* variable (--server from OOMWATCH_SERVER).
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/oomwatch/oomwatch/pkg/envflag"
	"github.com/oomwatch/oomwatch/pkg/transport"
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

// globals are the flags of every command.
type globals struct {
	server    string
	transport transport.Options
	output    string
}

// Exit codes of oomctl.
const (
	exitOK    = 0
	exitError = 1 // the command failed
	exitUsage = 2 // bad command, flags or arguments
)

// Run runs oomctl with args (without the program name) and returns the
// process exit code.
func Run(ctx context.Context, io IO, args []string) int {
	if io.Getenv == nil {
		io.Getenv = os.Getenv
	}
	root := newRoot(io)
	root.SetArgs(longFlags(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	switch {
	case err == nil:
		return exitOK
	case errors.Is(err, ErrUsage):
		return exitUsage
	case isUsage(err):
		fmt.Fprintf(io.Stderr, "oomctl: %v\nRun '%s --help' for usage.\n", err, cmd.CommandPath())
		return exitUsage
	default:
		fmt.Fprintf(io.Stderr, "%s: %v\n", cmd.CommandPath(), err)
		return exitError
	}
}

// usageError marks an error of the command line (flags, arguments).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func isUsage(err error) bool {
	var u usageError
	// cobra words an unknown command and wrong arguments itself.
	return errors.As(err, &u) || strings.HasPrefix(err.Error(), "unknown command") ||
		strings.HasPrefix(err.Error(), "accepts ") || strings.HasPrefix(err.Error(), "requires ")
}

func newRoot(io IO) *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:   "oomctl",
		Short: "oomctl explains kernel OOM kills: offline from a kernel log, or from an oomwatch aggregator",
		Long: "oomctl explains kernel OOM kills: offline from a kernel log (analyze), or from the events an\n" +
			"oomwatch aggregator keeps (events, watch, incidents, explain), and what is at risk now (warnings).",
		SilenceErrors: true,
		SilenceUsage:  true,
		// Every flag not given on the line is read from its OOMWATCH_*
		// variable, the shared ones included.
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error { return fromEnv(cmd.Flags(), io.Getenv) },
	}
	root.SetIn(io.Stdin)
	root.SetOut(io.Stdout)
	root.SetErr(io.Stderr)
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	pf := root.PersistentFlags()
	pf.StringVar(&g.server, "server", "", "aggregator address host:port, or several replicas' addresses separated by commas")
	tfs := flag.NewFlagSet("transport", flag.ContinueOnError)
	g.transport.AddFlags(tfs)
	pf.AddGoFlagSet(tfs)
	pf.StringVarP(&g.output, "output", "o", "table", "output: table, wide (IDs in full) or json (one object per line)")
	root.AddCommand(analyzeCmd(io, g), eventsCmd(io, g), watchCmd(io, g), incidentsCmd(io, g), explainCmd(io, g), warningsCmd(io, g), versionCmd(io, g))
	root.CompletionOptions.HiddenDefaultCmd = false
	return root
}

// checkOutput validates -o.
func (g *globals) checkOutput() error {
	switch g.output {
	case "table", "wide", "json":
		return nil
	}
	return usageError{fmt.Errorf("-o must be table, wide or json, not %q", g.output)}
}

// fromEnv sets every flag of fs not given on the command line from its
// OOMWATCH_* variable.
func fromEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Changed || err != nil {
			return
		}
		if v := getenv(envflag.Name(f.Name)); v != "" {
			if e := fs.Set(f.Name, v); e != nil {
				err = usageError{fmt.Errorf("%s=%q: %w", envflag.Name(f.Name), v, e)}
			}
		}
	})
	return err
}

// longFlags rewrites "-since 2h", the single-dash long flags of earlier
// releases (Go's flag package), as "--since 2h"; one-letter flags and
// everything after "--" are left alone.
func longFlags(root *cobra.Command, args []string) []string {
	long := map[string]bool{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, fs := range []*pflag.FlagSet{c.Flags(), c.PersistentFlags()} {
			fs.VisitAll(func(f *pflag.Flag) { long[f.Name] = len(f.Name) > 1 })
		}
		for _, s := range c.Commands() {
			walk(s)
		}
	}
	walk(root)
	out := make([]string, len(args))
	copy(out, args)
	for i, a := range out {
		if a == "--" {
			break
		}
		if len(a) > 2 && a[0] == '-' && a[1] != '-' {
			name, _, _ := strings.Cut(a[1:], "=")
			if long[name] {
				out[i] = "-" + a
			}
		}
	}
	return out
}
