package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Flags every command shares go anywhere on the line, as in kubectl; the
// single-dash long flags of earlier releases still work.
func TestGlobalFlagsAnywhere(t *testing.T) {
	addr := startAggregator(t, storyEvents(t))
	want, errOut, code := run(t, "", "events", "--server", addr, "--insecure", "-o", "wide")
	if code != 0 || !strings.Contains(want, "cart-7d9") {
		t.Fatalf("events: exit %d, %s\n%s", code, errOut, want)
	}
	for _, args := range [][]string{
		{"--server", addr, "events", "--insecure", "-o", "wide"},
		{"--server=" + addr, "--insecure", "-o", "wide", "events"},
		{"-o", "wide", "events", "--insecure", "--server", addr},
		{"events", "-server", addr, "-insecure", "-o", "wide"}, // an earlier release's spelling
	} {
		out, errOut, code := run(t, "", args...)
		if code != 0 || out != want {
			t.Errorf("%q: exit %d, %s\n%s\nwant\n%s", args, code, errOut, out, want)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		says string
	}{
		{[]string{"bogus"}, `unknown command "bogus"`},
		{[]string{"events", "--nope"}, "unknown flag: --nope"},
		{[]string{"events"}, "no aggregator: set --server or OOMWATCH_SERVER"},
		{[]string{"events", "stray", "--server", "127.0.0.1:1", "--insecure"}, `unknown command "stray"`},
		{[]string{"events", "--since", "yesterday", "--server", "127.0.0.1:1", "--insecure"}, "since"},
		{[]string{"version"}, "no aggregator"},
	} {
		_, errOut, code := run(t, "", tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.says) {
			t.Errorf("%q: exit %d, stderr %q; want 2 saying %q", tc.args, code, errOut, tc.says)
		}
	}
	out, _, code := run(t, "")
	if code != 0 || !strings.Contains(out, "analyze") || !strings.Contains(out, "completion") {
		t.Errorf("no arguments: exit %d, usage %q", code, out)
	}
}

func TestCompletion(t *testing.T) {
	for _, shell := range []string{"bash", "zsh"} {
		out, errOut, code := run(t, "", "completion", shell)
		if code != 0 || !strings.Contains(out, "oomctl") || len(out) < 1000 {
			t.Fatalf("completion %s: exit %d %s\n%.200s", shell, code, errOut, out)
		}
		if sh, err := exec.LookPath(shell); err == nil {
			f := filepath.Join(t.TempDir(), "oomctl."+shell)
			if err := os.WriteFile(f, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			if b, err := exec.Command(sh, "-n", f).CombinedOutput(); err != nil {
				t.Errorf("%s -n on the completion script: %v\n%s", shell, err, b)
			}
		}
	}
	// The completion lists the commands and the flags anywhere.
	out, _, _ := run(t, "", "__complete", "ev")
	if !strings.Contains(out, "events") {
		t.Errorf("completing ev: %q", out)
	}
	out, _, _ = run(t, "", "__complete", "events", "--ser")
	if !strings.Contains(out, "--server") {
		t.Errorf("completing events --ser: %q", out)
	}
}

func TestVersion(t *testing.T) {
	addr := startAggregator(t, nil)
	out, errOut, code := run(t, "", "version", "--server", addr, "--insecure")
	if code != 0 || !strings.Contains(out, "Client Version: dev") || !strings.Contains(out, "Server Version: dev") {
		t.Errorf("version: exit %d %s\n%s", code, errOut, out)
	}
	out, _, code = run(t, "", "version", "--client")
	if code != 0 || !strings.Contains(out, "Client Version: ") || strings.Contains(out, "Server") {
		t.Errorf("version --client: exit %d\n%s", code, out)
	}
	out, errOut, code = run(t, "", "--server", "127.0.0.1:1", "--insecure", "version")
	if code != 1 || !strings.Contains(out, "Client Version: ") || !strings.Contains(errOut, "server version") {
		t.Errorf("version, no aggregator listening: exit %d, %q %q", code, out, errOut)
	}
}
