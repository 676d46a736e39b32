package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestDeps checks that the agent, built with the Makefile's tags, links none
// of the packages that once made up a quarter of its binary and of its RSS:
// html/template (through gRPC's tracing) keeps every exported method of
// every linked type, since templates call methods by name; client_golang
// (pkg/nodemetrics writes the agent's metrics) brought procfs, expvar and
// its protobuf exposition.
func TestDeps(t *testing.T) {
	if testing.Short() {
		t.Skip("runs go list")
	}
	mk, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^TAGS\s*:=\s*(\S+)\s*$`).FindSubmatch(mk)
	if m == nil {
		t.Fatal("no TAGS in the Makefile")
	}
	out, err := exec.Command("go", "list", "-tags", string(m[1]), "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	deps := strings.Fields(string(out))
	for _, bad := range []string{"text/template", "html/template", "golang.org/x/net/trace",
		"github.com/prometheus/client_golang/prometheus", "github.com/prometheus/procfs", "expvar"} {
		for _, d := range deps {
			if d == bad {
				t.Errorf("the agent links %s", bad)
			}
		}
	}
}
