package cli

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestTermSafe(t *testing.T) {
	for in, want := range map[string]string{
		"plain hog[42]":         "plain hog[42]",
		"ev\x1b[31mil":          `ev\x1b[31mil`,
		"bell\a and del\x7f":    `bell\x07 and del\x7f`,
		"csi \u009b2J":          `csi \xc2\x9b2J`,
		"tab\tand\nnewline":     "tab\tand\nnewline",
		"é 中 ✂":                 "é 中 ✂",
		"raw \xff byte":         "raw \xff byte",
		"osc \x1b]0;title\x07x": `osc \x1b]0;title\x07x`,
	} {
		if got := termSafe(in); got != want {
			t.Errorf("termSafe(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestAnalyzeEscapesTerminalControls plays a log whose task renamed
// itself with terminal controls (prctl(PR_SET_NAME) takes any bytes, and a
// raw console log keeps them): the table shows them escaped, JSON as JSON
// escapes, and neither writes a control byte.
func TestAnalyzeEscapesTerminalControls(t *testing.T) {
	log := "[    1.000000] ev\x1b]0;pwned\x07il invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n" +
		"[    1.000001] Out of memory: Killed process 42 (ev\x1b[2Jil) total-vm:1kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB\n" +
		"[    2.000000] \x1b[31mx\u009b invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n"
	out, errOut, code := run(t, log, "analyze")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, s := range []string{out, errOut} {
		if strings.ContainsAny(s, "\x1b\x07\u009b") {
			t.Errorf("control bytes written: %q", s)
		}
	}
	if !strings.Contains(out, `ev\x1b[2Jil[42]`) || !strings.Contains(errOut, `\x1b[31mx\xc2\x9b invoked the OOM killer`) {
		t.Errorf("out %q\nstderr %q", out, errOut)
	}
	out, _, code = run(t, log, "analyze", "-o", "json")
	var ev map[string]any
	if code != 0 || strings.Contains(out, "\x1b") || json.Unmarshal([]byte(strings.SplitN(out, "\n", 2)[0]), &ev) != nil {
		t.Errorf("json: exit %d: %q", code, out)
	}
}

// TestAnalyzeNamesReportsWithoutKill: a report whose kill line is not in
// the copy is said on standard error, with its time and trigger.
func TestAnalyzeNamesReportsWithoutKill(t *testing.T) {
	log := "[29925.426000] nfsd invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0\n" +
		"[29925.426001] CPU: 1 PID: 1874 Comm: nfsd Not tainted 6.1.0 #1\n"
	_, errOut, code := run(t, log, "analyze")
	if code != 0 || !strings.Contains(errOut, "an OOM report without a kill line at +29925.426s (uptime), nfsd (pid 1874) invoked the OOM killer") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

func TestTermWriter(t *testing.T) {
	var b strings.Builder
	w := termWriter{&b}
	if n, err := w.Write([]byte("reason: x\u009b2J y\n")); err != nil || n != len("reason: x\u009b2J y\n") {
		t.Fatalf("%d, %v", n, err)
	}
	if b.String() != "reason: x\\xc2\\x9b2J y\n" {
		t.Errorf("%q", b.String())
	}
}
