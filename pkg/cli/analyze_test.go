package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func TestMain(m *testing.M) {
	time.Local = time.UTC
	os.Exit(m.Run())
}

func run(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), IO{Stdin: strings.NewReader(stdin), Stdout: &out, Stderr: &errb,
		Getenv: func(string) string { return "" }}, args)
	return out.String(), errb.String(), code
}

const fixtures = "../analysis/testdata/"

func TestAnalyzeTable(t *testing.T) {
	out, errOut, code := run(t, "", "analyze", fixtures+"debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"TIME", "CULPRIT",
		"pod:0f1e2d3c/e0e1e2e3e4e5 (besteffort) hog[94]",
		"yes", "pod:f0e1d2c3/000011112222 (guaranteed) hog[96] 179.0 MiB",
		"2 kills: 2 node-level, 0 limit-level, 1 collateral",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// analyze -o json prints each report as the API's event, offline (no
// node, boot or ID), its raw kernel lines only with --lines.
func TestAnalyzeJSONStreamsOneEventPerReport(t *testing.T) {
	files, _ := filepath.Glob(fixtures + "*.kmsg")
	var want []*pb.Event
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		_, err = analysis.ReadLogYear(f, 0, analysis.StreamOptions{Hold: time.Minute}, func(e analysis.Event) {
			want = append(want, wire.FromAnalysis("", "", e))
		})
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(want) != 3 {
		t.Fatalf("the fixtures hold %d reports, want 3", len(want))
	}
	for _, withLines := range []bool{false, true} {
		args := append([]string{"analyze", "-o", "json"}, files...)
		if withLines {
			args = append(args, "--lines")
		}
		out, errOut, code := run(t, "", args...)
		if code != 0 {
			t.Fatalf("exit %d: %s", code, errOut)
		}
		got, err := clitest.ReadEvents(strings.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("--lines=%v: %d events, want %d:\n%s", withLines, len(got), len(want), out)
		}
		for i, w := range want {
			w = proto.Clone(w).(*pb.Event)
			if len(w.GetOom().GetLines()) == 0 {
				t.Fatalf("report %d has no lines", i)
			}
			if !withLines {
				w.GetOom().Lines, w.GetOom().LinesDropped = nil, 0
			}
			if !proto.Equal(got[i], w) {
				t.Errorf("--lines=%v: event %d\n%v\nwant\n%v", withLines, i, got[i], w)
			}
		}
		if n := strings.Count(out, `,"oom":{"kind":"`); n != len(want) || strings.Contains(out, `"node":"`) || strings.Contains(out, `"id":"`) {
			t.Errorf("--lines=%v: %d kills in\n%s", withLines, n, out)
		}
	}
}

// A kernel log read as text may hold bytes that are not UTF-8 (/dev/kmsg
// escapes them, dmesg does not): they print as U+FFFD, as encoding/json
// printed them, instead of failing protojson.
func TestAnalyzeJSONInvalidUTF8(t *testing.T) {
	in := "[ 1.0] h\xffg invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0\n" +
		"[ 1.1] Memory cgroup out of memory: Killed process 7 (h\xffg) total-vm:1kB, anon-rss:2048kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:500\n"
	out, errOut, code := run(t, in, "analyze", "-o", "json", "--lines", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	evs, err := clitest.ReadEvents(strings.NewReader(out))
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d events (%v):\n%s", len(evs), err, out)
	}
	o := evs[0].GetOom()
	if v := o.GetVictims(); len(v) != 1 || v[0].GetComm() != "h\uFFFDg" || !strings.HasPrefix(o.GetLines()[0], "h\uFFFDg invoked") {
		t.Errorf("kill %v", o)
	}
}

func TestAnalyzeStdinAndMixedRenderings(t *testing.T) {
	in := "[ 1.0] hog invoked oom-killer: gfp_mask=0x0, order=0, oom_score_adj=0\n" +
		"Nov 27 05:12:01 h kernel: [ 1.1] oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/burstable/pod0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0/e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff,task_memcg=/kubepods/burstable/pod0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0/e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff,task=hog,pid=7,uid=0\n" +
		"6,9,1200000,-;Memory cgroup out of memory: Killed process 7 (hog) total-vm:1kB, anon-rss:2048kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:500\n"
	out, errOut, code := run(t, in, "analyze", "-o", "json", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	evs, err := clitest.ReadEvents(strings.NewReader(out))
	if err != nil || len(evs) != 1 {
		t.Fatalf("%d events (%v):\n%s", len(evs), err, out)
	}
	e := wire.ToAnalysis(evs[0])
	if e.Kind != "limit" || e.LimitScope != "container" || e.Victims[0].PodUID != "0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b0" || e.Victims[0].QoS != "burstable" {
		t.Fatalf("got %+v", e)
	}
	if !strings.Contains(out, `"oom_kind":"OOM_KIND_LIMIT"`) || !strings.Contains(out, `"scope":"LIMIT_SCOPE_CONTAINER"`) {
		t.Errorf("enums not by name:\n%s", out)
	}
}

func TestAnalyzeErrors(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	os.WriteFile(bin, []byte("\x7fELF\x00\x00\x01binary"), 0o644)
	text := filepath.Join(dir, "text")
	os.WriteFile(text, []byte("root:x:0:0:root:/root:/bin/bash\nhello world\n"), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"missing file", []string{"analyze", filepath.Join(dir, "nope")}, 1, "no such file"},
		{"binary", []string{"analyze", bin}, 1, "binary"},
		{"not a kernel log", []string{"analyze", text}, 1, "no kernel log records found"},
		{"bad output", []string{"analyze", "-o", "xml", text}, 2, "-o must be"},
		{"bad flag", []string{"analyze", "--nope"}, 2, "unknown flag: --nope"},
		{"bad boot time", []string{"analyze", "-boot-time", "yesterday", text}, 2, "boot-time"},
		{"unknown command", []string{"frobnicate"}, 2, "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, code := run(t, "", tt.args...)
			if code != tt.code || !strings.Contains(errOut, tt.want) {
				t.Fatalf("exit %d, stderr %q; want exit %d containing %q", code, errOut, tt.code, tt.want)
			}
		})
	}
}

func TestAnalyzeKeepsEarlierFilesOutputOnError(t *testing.T) {
	out, errOut, code := run(t, "", "analyze", "-o", "json", fixtures+"debian-6.1-kmsg-v2-systemd-container-limit.kmsg", "/nonexistent")
	if code != 1 || !strings.Contains(out, `"oom":{"kind":"limit"`) || !strings.Contains(errOut, "/nonexistent") {
		t.Fatalf("exit %d out %q err %q", code, out, errOut)
	}
}

// A line over the reader's bound (a corrupted file, a binary blob pasted in)
// is skipped with a warning; the reports before and after it are read.
func TestAnalyzeSkipsOverlongLine(t *testing.T) {
	b, err := os.ReadFile(fixtures + "debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg")
	if err != nil {
		t.Fatal(err)
	}
	long := strings.Repeat("x", 200<<10)
	in := long + "\n" + string(b) + "\n" + long + "\n" + long
	out, errOut, code := run(t, in, "analyze", "-")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "2 kills: 2 node-level") {
		t.Errorf("reports after the long line lost:\n%s", out)
	}
	if n := strings.Count(errOut, "warning: standard input: line "); n != 3 ||
		!strings.Contains(errOut, "line 1 (204800 bytes, more than 65536) skipped") {
		t.Errorf("want 3 warnings naming the lines, got:\n%s", errOut)
	}
}

// --tz places timestamps that carry no zone (syslog, dmesg -T): the log of
// a node in Shanghai read on a machine elsewhere.
func TestAnalyzeTimeZone(t *testing.T) {
	const log = "May  8 14:05:27 doris-03 kernel: Memory cgroup out of memory: Killed process 18177 (palo_be) total-vm:1kB, anon-rss:1kB, file-rss:0kB\n"
	for _, tz := range []string{"Asia/Shanghai", "+08:00", "+0800", "+8"} {
		out, errOut, code := run(t, log, "analyze", "--year", "2020", "--tz", tz)
		if code != 0 || !strings.Contains(out, "2020-05-08T06:05:27Z") {
			t.Errorf("--tz %s: exit %d, %s%s", tz, code, out, errOut)
		}
	}
	if out, _, _ := run(t, log, "analyze", "--year", "2020"); !strings.Contains(out, "2020-05-08T14:05:27Z") {
		t.Errorf("without --tz (this machine's zone, UTC here): %s", out)
	}
	for _, bad := range []string{"Mars/Base", "+25:00", "+08:61", "+", "-1:2:3"} {
		if _, errOut, code := run(t, log, "analyze", "--tz", bad); code != 2 || !strings.Contains(errOut, "--tz") {
			t.Errorf("--tz %q: exit %d, %s", bad, code, errOut)
		}
	}
}
