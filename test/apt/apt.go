// Package apt installs the Debian packages the system tests need, with
// apt-get, as root: the README's `make test` on a fresh machine installs
// what it uses instead of skipping the tests that need it.
package apt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// ErrNotRoot: a package is missing and installing it needs root.
var ErrNotRoot = errors.New("installing Debian packages needs root")

// Install installs pkgs without their recommendations. When the install
// fails (the package lists missing or stale), it runs apt-get update once
// and tries again.
func Install(ctx context.Context, pkgs ...string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("apt-get install %s: %w", strings.Join(pkgs, " "), ErrNotRoot)
	}
	install := append([]string{"install", "-y", "-q", "--no-install-recommends"}, pkgs...)
	if err := Run(ctx, install...); err == nil {
		return nil
	}
	if err := Run(ctx, "update", "-q"); err != nil {
		return err
	}
	return Run(ctx, install...)
}

// Run runs apt-get non-interactively with args. Test packages run in
// parallel under `go test ./...` and may run apt at the same time: it
// waits for dpkg's lock, and retries while apt says another process holds
// one of its locks.
func Run(ctx context.Context, args ...string) error {
	args = append([]string{"-o", "DPkg::Lock::Timeout=300"}, args...)
	for attempt := 0; ; attempt++ {
		cmd := exec.CommandContext(ctx, "apt-get", args...)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err == nil {
			return nil
		}
		// apt reports a held lock only in words.
		if attempt < 60 && bytes.Contains(out, []byte("Could not get lock")) {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(5 * time.Second):
				continue
			}
		}
		if len(out) > 2000 {
			out = out[len(out)-2000:]
		}
		return fmt.Errorf("apt-get %s: %w\n%s", strings.Join(args, " "), err, out)
	}
}
