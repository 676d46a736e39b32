package vm

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
)

// BuildTags are the build tags oomwatch's binaries are built with, the
// Makefile's TAGS: grpcnotrace leaves gRPC's unused tracing (and the
// html/template it imports) out of them.
const BuildTags = "grpcnotrace"

// BuildStatic builds the Go main package pkg (an import path, e.g.
// "github.com/oomwatch/oomwatch/test/e2e/hog") as a static binary
// (CGO_ENABLED=0) into dir and returns its path, ready to be put in a guest.
// It runs the go command found on PATH, which go test puts there.
func BuildStatic(ctx context.Context, dir, pkg string) (string, error) {
	out := filepath.Join(dir, path.Base(pkg))
	cmd := exec.CommandContext(ctx, "go", "build", "-tags", BuildTags, "-trimpath", "-ldflags=-s -w", "-o", out, pkg)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %w: %s", pkg, err, tail(b, 2000))
	}
	return out, nil
}
