// Command oomctl analyzes kernel OOM kills: offline from a kernel log, or
// from the events an oomwatch aggregator keeps.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/oomwatch/oomwatch/pkg/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Run(ctx, cli.IO{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Getenv: os.Getenv}, os.Args[1:])
	stop()
	os.Exit(code)
}
