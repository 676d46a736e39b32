package kernlog

import (
	"bytes"
	"testing"
	"time"
)

// TestLooseUserspaceSyslogNotKernel: a syslog line a userspace program
// wrote (its tag is app[1], not kernel) is never read as a kernel record,
// even when its date cannot be read (a bullet before it, a localized month,
// no host name) and " kernel: " comes later in it.
func TestLooseUserspaceSyslogNotKernel(t *testing.T) {
	for _, l := range []string{
		// list bullet before an English date, userspace tag
		"- Jan 14 18:01:55 host app[1]: kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/x,task=victim,pid=4242,uid=0",
		// localized month, userspace tag
		"дек 06 14:58:14 host app[1]: kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/x,task=victim,pid=4242,uid=0",
		// English date, no host name, userspace tag: before the change a
		// bare line whose message started with "Jan"
		"Jan 14 18:01:55 app[1]: note kernel: oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/x,task=victim,pid=4242,uid=0",
	} {
		var rec Record
		f := ParseLine([]byte(l), &rec, false, 2026, time.UTC)
		if f != FormatSkipped && bytes.HasPrefix(rec.Message, []byte("oom-kill:")) {
			t.Errorf("%q: format %v, userspace text read as the kernel record %q", l, f, rec.Message)
		}
	}
}

// TestIndentedUserspaceSyslogSkipped: in an indented paste of a syslog
// file a userspace program's line is skipped, as unindented, not kept as a
// bare kernel message whose "Killed process" the OOM parser would read.
func TestIndentedUserspaceSyslogSkipped(t *testing.T) {
	for _, l := range []string{
		"Jan 14 18:01:55 host app[1]: Out of memory: Killed process 4242 (victim) total-vm:1kB, anon-rss:4kB, file-rss:0kB",
		"172.20.0.2: user: warning: [2025-06-04T04:51:57.5Z]: Out of memory: Killed process 4242 (victim) total-vm:1kB, anon-rss:4kB, file-rss:0kB",
	} {
		var rec Record
		if f := ParseLine([]byte(l), &rec, false, 2026, time.UTC); f != FormatSkipped {
			t.Fatalf("unindented: %v", f)
		}
		in := "    " + l
		if f := ParseLine([]byte(in), &rec, false, 2026, time.UTC); f != FormatSkipped {
			t.Errorf("%q: format %v, message %q; want skipped like the unindented line", in, f, rec.Message)
		}
	}
}

// TestLooseUserspaceLineSkipped: in a journal in another language, a
// userspace program's line is skipped as the same line with an English
// date is, not kept as a bare message whose "Killed process" would be read
// as a kill line.
func TestLooseUserspaceLineSkipped(t *testing.T) {
	var rec Record
	en := "Dec 06 14:58:14 host app[1]: Out of memory: Killed process 4242 (victim) total-vm:1kB, anon-rss:4kB, file-rss:0kB"
	if f := ParseLine([]byte(en), &rec, false, 2026, time.UTC); f != FormatSkipped {
		t.Fatalf("english: %v", f)
	}
	for _, l := range []string{
		"дек 06 14:58:14 host app[1]: Out of memory: Killed process 4242 (victim) total-vm:1kB, anon-rss:4kB, file-rss:0kB",
		"- Dec 06 14:58:14 host app[1]: Out of memory: Killed process 4242 (victim) total-vm:1kB, anon-rss:4kB, file-rss:0kB",
	} {
		if f := ParseLine([]byte(l), &rec, false, 2026, time.UTC); f != FormatSkipped {
			t.Errorf("%q: format %v, message %q; want skipped (tag app[1], not kernel)", l, f, rec.Message)
		}
	}
}

// TestMonoStampOverflow: a dmesg stamp of more seconds than a Duration
// holds (~9.2e9) is not a stamp; it never gives a negative time.
func TestMonoStampOverflow(t *testing.T) {
	var rec Record
	ParseLine([]byte("[10000000000.0] x"), &rec, false, 2026, time.UTC)
	if rec.Mono < 0 {
		t.Fatalf("negative monotonic time %v", rec.Mono)
	}
}
