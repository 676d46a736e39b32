package kernlog

import (
	"strings"
	"testing"
	"time"
)

// readAll reads in with a Reader and returns its records (messages
// copied), their formats, and the boots counted before each.
type readRec struct {
	rec    Record
	msg    string
	format Format
	boots  int
}

func readAll(t *testing.T, in string) []readRec {
	t.Helper()
	r := NewReader(strings.NewReader(in))
	r.Location = time.UTC
	var out []readRec
	for r.Next() {
		rec := *r.Record()
		out = append(out, readRec{rec: rec, msg: string(rec.Message), format: r.Format(), boots: r.Boots()})
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestReaderJournalJSON(t *testing.T) {
	const boot1, boot2 = "5b8e0c1e9d2a4c1f8e0a1b2c3d4e5f60", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	entry := func(boot, transport, facility, msg string) string {
		return `{"__CURSOR":"s=1;i=2","__REALTIME_TIMESTAMP":"1765003457652054","__MONOTONIC_TIMESTAMP":"3457652100","_BOOT_ID":"` + boot +
			`","_TRANSPORT":"` + transport + `","PRIORITY":"3","SYSLOG_FACILITY":"` + facility + `","SYSLOG_IDENTIFIER":"kernel",` +
			`"_SOURCE_MONOTONIC_TIMESTAMP":"3457652054","MESSAGE":` + msg + `}`
	}
	in := strings.Join([]string{
		entry(boot1, "kernel", "0", `"Out of memory: Killed process 10843 (prometheus-conf)"`),
		// Another program's entry: skipped.
		`{"__REALTIME_TIMESTAMP":"1765003457652099","_BOOT_ID":"` + boot1 + `","_TRANSPORT":"syslog","SYSLOG_IDENTIFIER":"sshd","MESSAGE":"Out of memory: Killed process 1 (x)"}`,
		// Escapes, and a trailing newline kept by journald.
		entry(boot1, "kernel", "0", `"a \"quoted\" \\ back\/slash \u00e9 \ud83d\ude00 tab\tend\n"`),
		// A message that is not UTF-8: the array of its bytes.
		entry(boot1, "kernel", "0", `[ 120, 255, 121 ]`),
		// json-seq and json-sse framing.
		"\x1e" + entry(boot1, "kernel", "0", `"seq"`),
		"data: " + entry(boot1, "kernel", "0", `"sse"`),
		"",
		// Written to /dev/kmsg by a process: its facility stays.
		entry(boot1, "kernel", "1", `"forged"`),
		// A JSON object that is not a journal entry, and a broken entry:
		// read as text, not lost.
		`{"message":"Out of memory: Killed process 5 (y)"}`,
		`{"__REALTIME_TIMESTAMP":"1","MESSAGE":"unterminated}`,
		entry(boot2, "kernel", "0", `"next boot"`),
	}, "\n")
	got := readAll(t, in)
	want := []struct {
		msg    string
		format Format
		prio   int
		boots  int
	}{
		{"Out of memory: Killed process 10843 (prometheus-conf)", FormatSyslog, 3, 0},
		{"a \"quoted\" \\ back/slash \u00e9 \U0001F600 tab\tend", FormatSyslog, 3, 0},
		{"x\xffy", FormatSyslog, 3, 0},
		{"seq", FormatSyslog, 3, 0},
		{"sse", FormatSyslog, 3, 0},
		{"forged", FormatSyslog, 1<<3 | 3, 0},
		{`{"message":"Out of memory: Killed process 5 (y)"}`, FormatBare, -1, 0},
		{`{"__REALTIME_TIMESTAMP":"1","MESSAGE":"unterminated}`, FormatBare, -1, 0},
		{"next boot", FormatSyslog, 3, 1},
	}
	if len(got) != len(want) {
		for _, g := range got {
			t.Logf("%v %q", g.format, g.msg)
		}
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		g := got[i]
		if g.msg != w.msg || g.format != w.format || g.rec.Priority != w.prio || g.boots != w.boots {
			t.Errorf("record %d = %q %v prio %d boots %d, want %q %v prio %d boots %d", i, g.msg, g.format, g.rec.Priority, g.boots,
				w.msg, w.format, w.prio, w.boots)
		}
	}
	first := got[0].rec
	if !first.HasMono || first.Mono != 3457652054*time.Microsecond || !first.Wall.Equal(time.UnixMicro(1765003457652054)) || first.Seq != NoSeq {
		t.Errorf("first record's clocks: %+v", first)
	}
}

func TestReaderJournalPretty(t *testing.T) {
	in := strings.Join([]string{
		"{",
		"\t\"__REALTIME_TIMESTAMP\" : \"1765003457652054\",",
		"\t\"_TRANSPORT\" : \"kernel\",",
		"\t\"PRIORITY\" : \"3\",",
		"\t\"SYSLOG_FACILITY\" : \"0\",",
		"\t\"_SOURCE_MONOTONIC_TIMESTAMP\" : \"3457652054\",",
		"\t\"MESSAGE\" : \"Out of memory: Killed process 10843 (prometheus-conf)\"",
		"}",
		"{",
		"\t\"_TRANSPORT\" : \"stdout\",",
		"\t\"MESSAGE\" : \"skipped\"",
		"}",
		// An opening brace, then text: the text is read as text.
		"{",
		"[ 12.5] Killed process 7 (x)",
	}, "\n")
	got := readAll(t, in)
	if len(got) != 2 || got[0].msg != "Out of memory: Killed process 10843 (prometheus-conf)" || got[0].rec.Priority != 3 ||
		got[0].rec.Mono != 3457652054*time.Microsecond || got[1].msg != "Killed process 7 (x)" || got[1].format != FormatDmesg {
		t.Fatalf("records %+v", got)
	}
}

func TestReaderBoots(t *testing.T) {
	in := strings.Join([]string{
		"-- Logs begin at Mon 2025-12-01 00:00:00 UTC, end at Sat 2025-12-06 06:44:20 UTC. --",
		"Sat 2025-12-06 06:44:17 UTC node1 kernel: a",
		"-- Boot 5b8e0c1e9d2a4c1f8e0a1b2c3d4e5f60 --",
		"Sat 2025-12-06 06:50:17 UTC node1 kernel: b",
		"-- Reboot --",
		"Sat 2025-12-06 06:55:17 UTC node1 kernel: c",
		"Dec  6 07:00:01 node1 kernel: [    0.000000] Linux version 6.1.0-41-amd64 (debian-kernel@lists.debian.org)",
		"-- No entries --",
	}, "\n")
	got := readAll(t, in)
	var msgs []string
	var boots []int
	for _, g := range got {
		msgs = append(msgs, g.msg)
		boots = append(boots, g.boots)
	}
	if strings.Join(msgs, "|") != "a|b|c|Linux version 6.1.0-41-amd64 (debian-kernel@lists.debian.org)" ||
		len(boots) != 4 || boots[0] != 0 || boots[1] != 1 || boots[2] != 2 || boots[3] != 3 {
		t.Fatalf("messages %q, boots %v", msgs, boots)
	}
}

func FuzzJournalLine(f *testing.F) {
	for _, s := range []string{
		`{"__REALTIME_TIMESTAMP":"1765003457652054","_TRANSPORT":"kernel","PRIORITY":"3","MESSAGE":"x \u00e9"}`,
		`{"_BOOT_ID":"a","_TRANSPORT":"kernel","MESSAGE":[1,2,3],"X":{"a":[{"b":"]"}]}}`,
		"\x1e{\"__CURSOR\":\"c\",\"_TRANSPORT\":\"kernel\",\"MESSAGE\":[\"a\",\"b\"]}",
		"MESSAGE=Out of memory: Killed process 1 (x)",
		"_SOURCE_MONOTONIC_TIMESTAMP=99999999999999999999",
		`{"MESSAGE":"\ud83d\ude00\ud83d"}`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		verbose := "Thu 2023-02-02 11:49:13.015489 CET [s=1;i=2;b=3;m=4;t=5f3b550c118c1;x=6]\n    " + line + "\n"
		r := NewReader(strings.NewReader(line + "\n{\n" + line + "\n}\n" + verbose))
		for r.Next() {
			rec := r.Record()
			if r.Format() > FormatSkipped || rec.HasMono && rec.Mono < 0 {
				t.Fatalf("record %+v format %v", rec, r.Format())
			}
		}
		if err := r.Err(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestReaderJournalVerbose(t *testing.T) {
	in := strings.Join([]string{
		"Thu 2023-02-02 11:49:13.015489 CET [s=1d8f87cf60064ba690c44490f14bb3e3;i=10823659;b=796d12a513054cf1bbde201dd1bca9a1;m=1f6726955fe3;t=5f3b550c118c1;x=e5347f6b24873f0c]",
		"    _TRANSPORT=kernel",
		"    PRIORITY=3",
		"    SYSLOG_FACILITY=0",
		"    SYSLOG_IDENTIFIER=kernel",
		"    MESSAGE=Memory cgroup out of memory: Killed process 2855014 (tail) total-vm:4296kB",
		"    _SOURCE_MONOTONIC_TIMESTAMP=34523423",
		"    _BOOT_ID=796d12a513054cf1bbde201dd1bca9a1",
		"Thu 2023-02-02 11:49:14.000000 CET [s=1d8f87cf60064ba690c44490f14bb3e3;i=10823660;b=796d12a513054cf1bbde201dd1bca9a1;m=1f6726955fe4;t=5f3b550c118c2;x=e5]",
		"    _TRANSPORT=stdout",
		"    MESSAGE=Killed process 1 (skipped)",
		// --output-fields=MESSAGE: the transport is not said.
		"Thu 2023-02-02 12:49:25.123048 CET [s=1d8f87cf60064ba690c44490f14bb3e3;i=10832491;b=0f1e2d3c4b5a69788796a5b4c3d2e1f0;m=1f67fde1c30a;t=5f3b6280d7be8;x=54f065dd48ba7646]",
		"    MESSAGE=Memory cgroup out of memory: Killed process 2867622 (python3)",
		// A line after an entry is read as what it is.
		"[ 12.5] Killed process 7 (x)",
		"Thu 2023-02-02 12:49:26.000000 CET [s=1;i=2;b=0f1e2d3c4b5a69788796a5b4c3d2e1f0;m=3;t=5f3b6280d7be9;x=4]",
		"    _TRANSPORT=kernel",
		"    MESSAGE=last, ended by the input's end",
	}, "\n")
	got := readAll(t, in)
	want := []struct {
		msg   string
		wall  time.Time
		boots int
	}{
		{"Memory cgroup out of memory: Killed process 2855014 (tail) total-vm:4296kB", time.UnixMicro(0x5f3b550c118c1), 0},
		{"Memory cgroup out of memory: Killed process 2867622 (python3)", time.UnixMicro(0x5f3b6280d7be8), 1},
		{"Killed process 7 (x)", time.Time{}, 1},
		{"last, ended by the input's end", time.UnixMicro(0x5f3b6280d7be9), 1},
	}
	if len(got) != len(want) {
		for _, g := range got {
			t.Logf("%v %q", g.format, g.msg)
		}
		t.Fatalf("%d records, want %d", len(got), len(want))
	}
	for i, w := range want {
		if g := got[i]; g.msg != w.msg || !g.rec.Wall.Equal(w.wall) || g.boots != w.boots {
			t.Errorf("record %d = %q at %v, boots %d; want %q at %v, boots %d", i, g.msg, g.rec.Wall, g.boots, w.msg, w.wall, w.boots)
		}
	}
	if r := got[0].rec; r.Priority != 3 || !r.HasMono || r.Mono != 34523423*time.Microsecond {
		t.Errorf("first record %+v", r)
	}
	if got[2].format != FormatDmesg {
		t.Errorf("line after an entry read as %v", got[2].format)
	}
}
