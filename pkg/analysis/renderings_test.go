package analysis

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// renderings re-render a kernel log's records the ways journalctl and
// dmesg print them. boot is the machine's boot time, for the wall clock.
var renderings = map[string]func(b *strings.Builder, rec *kernlog.Record, boot time.Time){
	"journalctl -o json": func(b *strings.Builder, rec *kernlog.Record, boot time.Time) {
		msg, _ := json.Marshal(string(rec.Message))
		fmt.Fprintf(b, `{"__REALTIME_TIMESTAMP":"%d","_BOOT_ID":"5b8e0c1e9d2a4c1f8e0a1b2c3d4e5f60","_TRANSPORT":"kernel","PRIORITY":"%d","SYSLOG_FACILITY":"0","SYSLOG_IDENTIFIER":"kernel","_SOURCE_MONOTONIC_TIMESTAMP":"%d","MESSAGE":%s}`+"\n",
			boot.Add(rec.Mono).UnixMicro(), max(rec.Priority, 0)&7, rec.Mono.Microseconds(), msg)
	},
	"journalctl -o json-pretty": func(b *strings.Builder, rec *kernlog.Record, boot time.Time) {
		msg, _ := json.Marshal(string(rec.Message))
		fmt.Fprintf(b, "{\n\t\"__REALTIME_TIMESTAMP\" : \"%d\",\n\t\"_TRANSPORT\" : \"kernel\",\n\t\"_SOURCE_MONOTONIC_TIMESTAMP\" : \"%d\",\n\t\"MESSAGE\" : %s\n}\n",
			boot.Add(rec.Mono).UnixMicro(), rec.Mono.Microseconds(), msg)
	},
	"journalctl -o verbose": func(b *strings.Builder, rec *kernlog.Record, boot time.Time) {
		t := boot.Add(rec.Mono)
		fmt.Fprintf(b, "%s [s=1d8f87cf60064ba690c44490f14bb3e3;i=1;b=5b8e0c1e9d2a4c1f8e0a1b2c3d4e5f60;m=%x;t=%x;x=e5]\n    _TRANSPORT=kernel\n    MESSAGE=%s\n    _SOURCE_MONOTONIC_TIMESTAMP=%d\n",
			t.UTC().Format("Mon 2006-01-02 15:04:05.000000 MST"), rec.Mono.Microseconds(), t.UnixMicro(), rec.Message, rec.Mono.Microseconds())
	},
	"journalctl -o short-monotonic": func(b *strings.Builder, rec *kernlog.Record, _ time.Time) {
		fmt.Fprintf(b, "[%12.6f] node1 kernel: %s\n", rec.Mono.Seconds(), rec.Message)
	},
	"journalctl -o short-delta": func(b *strings.Builder, rec *kernlog.Record, _ time.Time) {
		fmt.Fprintf(b, "[%12.6f <%12.6f>] node1 kernel: %s\n", rec.Mono.Seconds(), 0.000012, rec.Message)
	},
	"journalctl -o short-full": func(b *strings.Builder, rec *kernlog.Record, boot time.Time) {
		fmt.Fprintf(b, "%s node1 kernel: %s\n", boot.Add(rec.Mono).UTC().Format("Mon 2006-01-02 15:04:05 MST"), rec.Message)
	},
	"journalctl -o short-unix": func(b *strings.Builder, rec *kernlog.Record, boot time.Time) {
		t := boot.Add(rec.Mono)
		fmt.Fprintf(b, "%d.%06d node1 kernel: %s\n", t.Unix(), t.Nanosecond()/1000, rec.Message)
	},
	"dmesg -T": func(b *strings.Builder, rec *kernlog.Record, boot time.Time) {
		fmt.Fprintf(b, "[%s] %s\n", boot.Add(rec.Mono).UTC().Format("Mon Jan _2 15:04:05 2006"), rec.Message)
	},
}

// TestRenderingsAgree reads each shared fixture whose records all carry
// the kernel's monotonic time again in every rendering above, and checks
// that each gives the kills, victims, workloads and verdicts the
// original does: only the clocks differ.
func TestRenderingsAgree(t *testing.T) {
	boot := time.Date(2025, 12, 6, 5, 0, 0, 0, time.UTC)
	for _, name := range fixtures(t) {
		raw, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		rd := kernlog.NewReader(strings.NewReader(string(raw)))
		var recs []kernlog.Record
		monoOnly := true
		for rd.Next() {
			rec := *rd.Record()
			if rd.Format() == kernlog.FormatBare && (len(rec.Message) == 0 || rec.Message[0] == '#' || string(rec.Message) == "...") {
				continue // the fixture's notes and elisions
			}
			if !rec.HasMono {
				monoOnly = false
				break
			}
			rec.Message = append([]byte(nil), rec.Message...)
			recs = append(recs, rec)
		}
		if !monoOnly {
			continue
		}
		want := summarize(analyzeFile(t, name))
		for rname, render := range renderings {
			t.Run(name+"/"+rname, func(t *testing.T) {
				var b strings.Builder
				for i := range recs {
					render(&b, &recs[i], boot)
				}
				var evs []Event
				if _, err := ReadLogYear(strings.NewReader(b.String()), 2025, StreamOptions{Hold: time.Minute}, func(e Event) { evs = append(evs, e) }); err != nil {
					t.Fatal(err)
				}
				if got := summarize(evs); got != want {
					t.Errorf("events differ from the original rendering's\n got: %s\nwant: %s", got, want)
				}
			})
		}
	}
}

// summarize gives what every rendering must agree on.
func summarize(evs []Event) string {
	var b strings.Builder
	for _, e := range evs {
		fmt.Fprintf(&b, "[%s %s collateral=%s victims=", e.Kind, e.LimitScope, e.CollateralVerdict)
		for _, v := range e.Victims {
			fmt.Fprintf(&b, "%d:%s:%s ", v.PID, v.Comm, v.Workload.Cgroup)
		}
		if e.Culprit != nil {
			fmt.Fprintf(&b, "culprit=%d", e.Culprit.PID)
		}
		if e.Trigger != nil {
			fmt.Fprintf(&b, " trigger=%d", e.Trigger.PID)
		}
		fmt.Fprintf(&b, " top=%d] ", len(e.TopConsumers))
	}
	return b.String()
}

// TestJournalForgedRecord plays a pod that writes an OOM report to
// /dev/kmsg on a node whose kernel log is then exported from the journal:
// journald marks the record kernel-transport too, but keeps the writer's
// facility, so no kill is reported; the kernel's own record is.
func TestJournalForgedRecord(t *testing.T) {
	entry := func(facility int, msg string) string {
		m, _ := json.Marshal(msg)
		return fmt.Sprintf(`{"__REALTIME_TIMESTAMP":"1765003457652054","_TRANSPORT":"kernel","PRIORITY":"3","SYSLOG_FACILITY":"%d","_SOURCE_MONOTONIC_TIMESTAMP":"3457652054","MESSAGE":%s}`, facility, m)
	}
	const kill = "Out of memory: Killed process 10843 (prometheus-conf) total-vm:719984kB, anon-rss:5064kB, file-rss:0kB, shmem-rss:0kB, UID:1000 pgtables:108kB oom_score_adj:997"
	var evs []Event
	in := entry(1, "oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/,task=x,pid=10843,uid=0") +
		"\n" + entry(1, kill) + "\n"
	if _, err := ReadLog(strings.NewReader(in), StreamOptions{}, func(e Event) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 0 {
		t.Fatalf("a forged record reported: %+v", evs)
	}
	if _, err := ReadLog(strings.NewReader(entry(0, kill)), StreamOptions{}, func(e Event) { evs = append(evs, e) }); err != nil {
		t.Fatal(err)
	}
	if len(evs) != 1 || evs[0].Victims[0].PID != 10843 {
		t.Fatalf("the kernel's record: %+v", evs)
	}
}
