// Command demo runs the end-to-end scenarios in a real kernel under qemu and
// prints what `oomctl incidents` and `oomctl events` show for each: the
// whole product in one command, without a cluster. It installs qemu and
// the kernel when they are missing (as root).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/test/e2e/scenario"
	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

func main() {
	only := flag.String("scenario", "", "run only this scenario (default: all)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, *only); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		stop()
		os.Exit(1)
	}
}

func run(ctx context.Context, only string) error {
	logf := func(f string, a ...any) { fmt.Fprintf(os.Stderr, "demo: "+f+"\n", a...) }
	assets, err := vm.EnsureAssets(ctx, logf)
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "oomwatch-demo")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	files := map[string]vm.File{}
	for name, pkg := range scenario.Binaries() {
		p, err := vm.BuildStatic(ctx, filepath.Join(dir, name), pkg)
		if err != nil {
			return fmt.Errorf("build %s: %w", name, err)
		}
		files["/bin/"+name] = vm.File{HostPath: p}
	}
	fmt.Printf("Kernel: %s (qemu %s)\n\n", assets.KernelPackage, assets.QEMUVersion)
	for _, sc := range scenario.All() {
		if only != "" && sc.Name != only {
			continue
		}
		fmt.Printf("=== %s: %s\n", sc.Name, sc.Description)
		mem := sc.MemoryMB
		if mem == 0 {
			mem = 384
		}
		start := time.Now()
		res, err := vm.Run(ctx, vm.Config{Assets: assets, Files: files, Script: scenario.GuestScript(sc),
			Cmdline: sc.Cmdline, MemoryMB: mem, DiskMB: sc.DiskMB, CPUs: 2, Timeout: 5 * time.Minute})
		if err != nil {
			return fmt.Errorf("%s: %w", sc.Name, err)
		}
		for _, f := range []string{"incidents.txt", "events.txt"} {
			b, err := res.File(f)
			if err != nil {
				return fmt.Errorf("%s: %w", sc.Name, err)
			}
			cmd := "oomctl " + strings.TrimSuffix(f, ".txt")
			fmt.Printf("$ %s\n%s\n", cmd, limitLines(string(b), 12))
		}
		fmt.Printf("(%s in %v)\n\n", sc.Name, time.Since(start).Round(100*time.Millisecond))
	}
	return nil
}

// limitLines keeps the first n lines (a storm has hundreds).
func limitLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) <= n {
		return strings.Join(lines, "\n")
	}
	return strings.Join(lines[:n], "\n") + fmt.Sprintf("\n... (%d more lines)", len(lines)-n)
}
