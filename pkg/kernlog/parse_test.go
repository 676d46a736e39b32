package kernlog

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	utc := time.UTC
	tests := []struct {
		name     string
		line     string
		after    bool
		format   Format
		seq      int64
		mono     time.Duration
		hasMono  bool
		wall     time.Time
		priority int
		msg      string
	}{
		{name: "kmsg", line: "6,22743,6115623303887,-;oom-kill:constraint=CONSTRAINT_MEMCG", format: FormatKmsg,
			seq: 22743, mono: 6115623303887 * time.Microsecond, hasMono: true, priority: 6, msg: "oom-kill:constraint=CONSTRAINT_MEMCG"},
		{name: "kmsg with extra header fields", line: "4,359,3364390,-,caller=T96;hog invoked oom-killer: x", format: FormatKmsg,
			seq: 359, mono: 3364390 * time.Microsecond, hasMono: true, priority: 4, msg: "hog invoked oom-killer: x"},
		{name: "kmsg leading-space message", line: "4,363,3367253,-; <TASK>", format: FormatKmsg,
			seq: 363, mono: 3367253 * time.Microsecond, hasMono: true, priority: 4, msg: " <TASK>"},
		{name: "kmsg without flags", line: "6,7,8;x", format: FormatKmsg,
			seq: 7, mono: 8 * time.Microsecond, hasMono: true, priority: 6, msg: "x"},
		{name: "kmsg empty message", line: "6,7,8,c;", format: FormatKmsg,
			seq: 7, mono: 8 * time.Microsecond, hasMono: true, priority: 6, msg: ""},
		{name: "kmsg two numbers is bare", line: "6,7;x", format: FormatBare, seq: NoSeq, priority: -1, msg: "6,7;x"},
		{name: "kmsg without ';' is bare", line: "6,7,8,-", format: FormatBare, seq: NoSeq, priority: -1, msg: "6,7,8,-"},
		{name: "kmsg 20-digit number is bare", line: "6,12345678901234567890,8,-;x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "6,12345678901234567890,8,-;x"},
		{name: "kmsg 19-digit number beyond int64 is bare", line: "6,9999999999999999999,8,-;x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "6,9999999999999999999,8,-;x"},
		{name: "kmsg timestamp beyond a Duration is bare", line: "6,7,10000000000000000,-;x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "6,7,10000000000000000,-;x"},
		{name: "kmsg priority beyond int32 is bare", line: "2147483648,7,8,-;x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "2147483648,7,8,-;x"},
		{name: "kmsg continuation", line: " SUBSYSTEM=acpi", after: true, format: FormatSkipped, seq: NoSeq, priority: -1},
		{name: "space line not after kmsg is bare", line: " active_file:35 inactive_file:69", format: FormatBare,
			seq: NoSeq, priority: -1, msg: " active_file:35 inactive_file:69"},
		{name: "dmesg", line: "[ 3457.652078] Out of memory: Killed process 10843", format: FormatDmesg,
			seq: NoSeq, mono: 3457652078 * time.Microsecond, hasMono: true, priority: -1, msg: "Out of memory: Killed process 10843"},
		{name: "dmesg nanoseconds", line: "[    0.000000001] x", format: FormatDmesg,
			seq: NoSeq, mono: 1, hasMono: true, priority: -1, msg: "x"},
		{name: "dmesg -T", line: "[Fri Nov 27 05:12:01 2026] Out of memory: Killed process 1", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2026, 11, 27, 5, 12, 1, 0, utc), priority: -1, msg: "Out of memory: Killed process 1"},
		{name: "dmesg -T single digit day", line: "[Sun Nov  1 05:12:01 2026] x", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2026, 11, 1, 5, 12, 1, 0, utc), priority: -1, msg: "x"},
		{name: "dmesg iso", line: "2025-01-21T08:46:30,287197+00:00 oom-kill:constraint=CONSTRAINT_MEMCG", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2025, 1, 21, 8, 46, 30, 287197000, utc), priority: -1, msg: "oom-kill:constraint=CONSTRAINT_MEMCG"},
		{name: "dmesg decode iso", line: "kern  :warn  : 2025-01-21T08:41:30,287197+00:00 oom_reaper: reaped process 345646 (vector)", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2025, 1, 21, 8, 41, 30, 287197000, utc), priority: 4, msg: "oom_reaper: reaped process 345646 (vector)"},
		{name: "dmesg decode mono", line: "kern  :err   : [  12.5] Out of memory: Killed process 7 (x)", format: FormatDmesg,
			seq: NoSeq, mono: 12500 * time.Millisecond, hasMono: true, priority: 3, msg: "Out of memory: Killed process 7 (x)"},
		{name: "dmesg decode only", line: "kern  :info  : Tasks state (memory values in pages):", format: FormatDmesg,
			seq: NoSeq, priority: 6, msg: "Tasks state (memory values in pages):"},
		{name: "busybox dmesg -r", line: "<3>[  123.000001] Out of memory: Killed process 9 (y)", format: FormatDmesg,
			seq: NoSeq, mono: 123000001 * time.Microsecond, hasMono: true, priority: 3, msg: "Out of memory: Killed process 9 (y)"},
		{name: "syslog with dmesg stamp", line: "Dec  8 01:56:31 scottubuntu kernel: [106464.880260] mono invoked oom-killer: gfp_mask=0x100cca", format: FormatSyslog,
			seq: NoSeq, mono: 106464880260 * time.Microsecond, hasMono: true, wall: time.Date(2020, 12, 8, 1, 56, 31, 0, utc), priority: -1, msg: "mono invoked oom-killer: gfp_mask=0x100cca"},
		{name: "syslog fractional", line: "Nov 27 05:12:01.123456 node1 kernel: Out of memory: Killed process 5 (a)", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2020, 11, 27, 5, 12, 1, 123456000, utc), priority: -1, msg: "Out of memory: Killed process 5 (a)"},
		{name: "syslog other program", line: "Nov 27 05:12:01 node1 systemd[1]: Started foo.", format: FormatSkipped, seq: NoSeq, priority: -1},
		{name: "rfc3339 rsyslog", line: "2026-09-02T09:08:50.880492+00:00 Server1 kernel: MainThread invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=934", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2026, 9, 2, 9, 8, 50, 880492000, utc), priority: -1, msg: "MainThread invoked oom-killer: gfp_mask=0x100cca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=934"},
		{name: "journal short-iso", line: "2026-09-02T09:08:50+0200 host kernel: Killed process 1 (b)", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2026, 9, 2, 7, 8, 50, 0, utc), priority: -1, msg: "Killed process 1 (b)"},
		{name: "journal short-monotonic", line: "[ 3457.652078] host kernel: Out of memory: Killed process 10843", format: FormatSyslog,
			seq: NoSeq, mono: 3457652078 * time.Microsecond, hasMono: true, priority: -1, msg: "Out of memory: Killed process 10843"},
		{name: "journal short-full", line: "Sat 2025-12-06 06:44:17 UTC node1 kernel: oom-kill:constraint=CONSTRAINT_NONE", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2025, 12, 6, 6, 44, 17, 0, utc), priority: -1, msg: "oom-kill:constraint=CONSTRAINT_NONE"},
		{name: "journal short-full, numeric zone", line: "Sat 2025-12-06 06:44:17 +0530 node1 kernel: x", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2025, 12, 6, 1, 14, 17, 0, utc), priority: -1, msg: "x"},
		{name: "journal short-full, named zone is the local one", line: "Sat 2025-12-06 06:44:17 CET node1 kernel: [ 1.5] x", format: FormatSyslog,
			seq: NoSeq, mono: 1500 * time.Millisecond, hasMono: true, wall: time.Date(2025, 12, 6, 6, 44, 17, 0, utc), priority: -1, msg: "x"},
		{name: "journal short-full, another program", line: "Sat 2025-12-06 06:44:17 UTC node1 systemd[1]: Started x.", format: FormatSkipped,
			seq: NoSeq, priority: -1},
		{name: "journal short-full, bad zone is bare", line: "Sat 2025-12-06 06:44:17 U2C node1 kernel: x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "Sat 2025-12-06 06:44:17 U2C node1 kernel: x"},
		{name: "a weekday then a date is bare", line: "Sat 2025-12-06 06:44:17 UTC was the day", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "Sat 2025-12-06 06:44:17 UTC was the day"},
		{name: "journal short-unix", line: "1765003457.652054 node1 kernel: Out of memory: Killed process 1 (b)", format: FormatSyslog,
			seq: NoSeq, wall: time.Unix(1765003457, 652054000), priority: -1, msg: "Out of memory: Killed process 1 (b)"},
		{name: "journal short-unix, another program", line: "1765003457.652054 node1 sshd[12]: Accepted", format: FormatSkipped,
			seq: NoSeq, priority: -1},
		{name: "journal short-unix needs microseconds", line: "1765003457.65 node1 kernel: x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "1765003457.65 node1 kernel: x"},
		{name: "a number then a tag is bare", line: "1765003457.652054 is: a number", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "1765003457.652054 is: a number"},
		{name: "journal short-delta", line: "[ 3457.652054 <    0.000012>] node1 kernel: Killed process 1 (b)", format: FormatSyslog,
			seq: NoSeq, mono: 3457652054 * time.Microsecond, hasMono: true, priority: -1, msg: "Killed process 1 (b)"},
		{name: "journal short-delta, another program", line: "[ 3457.652054 <    0.000012>] node1 sshd[12]: Accepted", format: FormatSkipped,
			seq: NoSeq, priority: -1},
		{name: "a delta without a tag is bare", line: "[ 3457.652054 < 0.000012>] x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "[ 3457.652054 < 0.000012>] x"},
		{name: "syslog tag alone", line: "kernel: [ 1477.960084] Out of memory: Killed process 1822 (main)", format: FormatSyslog,
			seq: NoSeq, mono: 1477960084 * time.Microsecond, hasMono: true, priority: -1, msg: "Out of memory: Killed process 1822 (main)"},
		{name: "piped syslog template", line: "err|kernel[-]|[2919920.414272] Memory cgroup out of memory: Killed process 2021820 (memhog)", format: FormatSyslog,
			seq: NoSeq, mono: 2919920414272 * time.Microsecond, hasMono: true, priority: -1, msg: "Memory cgroup out of memory: Killed process 2021820 (memhog)"},
		{name: "log shipper's table", line: "  | Jun 25, 2021 @ 12:42:13.029 | kernel | [113782.638786] Memory cgroup out of memory: Killed process 1949510 (envoy)", format: FormatSyslog,
			seq: NoSeq, mono: 113782638786 * time.Microsecond, hasMono: true, priority: -1, msg: "Memory cgroup out of memory: Killed process 1949510 (envoy)"},
		{name: "log shipper's table, another program", line: "Jun 25, 2021 @ 12:42:13.029 | kubelet | Killed process 1 (x)", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "Jun 25, 2021 @ 12:42:13.029 | kubelet | Killed process 1 (x)"},
		{name: "a pipe in a message is bare", line: "audit: kernel | x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "audit: kernel | x"},
		{name: "dmesg printk caller", line: "[   37.128158][ T9185] Memory cgroup out of memory: Killed process 9188 (a.out)", format: FormatDmesg,
			seq: NoSeq, mono: 37128158 * time.Microsecond, hasMono: true, priority: -1, msg: "Memory cgroup out of memory: Killed process 9188 (a.out)"},
		{name: "dmesg printk caller, spaced", line: "[   37.128158] [T9185] oom_reaper: reaped process 9188 (a.out)", format: FormatDmesg,
			seq: NoSeq, mono: 37128158 * time.Microsecond, hasMono: true, priority: -1, msg: "oom_reaper: reaped process 9188 (a.out)"},
		{name: "dmesg printk caller, CPU", line: "[    5.000001][    C1] x", format: FormatDmesg,
			seq: NoSeq, mono: 5000001 * time.Microsecond, hasMono: true, priority: -1, msg: "x"},
		{name: "dmesg not a caller", line: "[    5.000001] [T] x", format: FormatDmesg,
			seq: NoSeq, mono: 5000001 * time.Microsecond, hasMono: true, priority: -1, msg: "[T] x"},
		{name: "dmesg not a caller either", line: "[    5.000001] [Tx1] x", format: FormatDmesg,
			seq: NoSeq, mono: 5000001 * time.Microsecond, hasMono: true, priority: -1, msg: "[Tx1] x"},
		{name: "dmesg -T printk caller", line: "[Fri Nov 27 05:12:01 2026] [  T123] x", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2026, 11, 27, 5, 12, 1, 0, utc), priority: -1, msg: "x"},
		{name: "syslog with dmesg stamp and caller", line: "Dec  8 01:56:31 host kernel: [106464.880260][ T9185] mono invoked oom-killer: x", format: FormatSyslog,
			seq: NoSeq, mono: 106464880260 * time.Microsecond, hasMono: true, wall: time.Date(2020, 12, 8, 1, 56, 31, 0, utc), priority: -1, msg: "mono invoked oom-killer: x"},
		{name: "syslog without host", line: "Sep  8 06:22:08 kernel: oom-kill:constraint=CONSTRAINT_MEMCG", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2020, 9, 8, 6, 22, 8, 0, utc), priority: -1, msg: "oom-kill:constraint=CONSTRAINT_MEMCG"},
		{name: "syslog with an empty host", line: "Aug  6 01:04:00  kernel: [1510727.098472] x", format: FormatSyslog,
			seq: NoSeq, mono: 1510727098472 * time.Microsecond, hasMono: true, wall: time.Date(2020, 8, 6, 1, 4, 0, 0, utc), priority: -1, msg: "x"},
		{name: "syslog without host, dmesg stamp", line: "Sep  8 06:22:08 kernel: [ 1.5] x", format: FormatSyslog,
			seq: NoSeq, mono: 1500 * time.Millisecond, hasMono: true, wall: time.Date(2020, 9, 8, 6, 22, 8, 0, utc), priority: -1, msg: "x"},
		{name: "indented dmesg", line: "  [271641.879153] test_zswap invoked oom-killer: x", format: FormatDmesg,
			seq: NoSeq, mono: 271641879153 * time.Microsecond, hasMono: true, priority: -1, msg: "test_zswap invoked oom-killer: x"},
		{name: "indented syslog", line: "\tSep  8 06:22:08 h kernel: x", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2020, 9, 8, 6, 22, 8, 0, utc), priority: -1, msg: "x"},
		{name: "indented bare keeps its spaces", line: "  [<ffffffff8163515c>] dump_stack+0x19/0x1b", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "  [<ffffffff8163515c>] dump_stack+0x19/0x1b"},
		{name: "talosctl dmesg", line: "10.200.70.91: kern:    info: [2025-06-04T04:51:57.572293906Z]: memory: usage 4194304kB, limit 4194304kB, failcnt 2", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2025, 6, 4, 4, 51, 57, 572293906, utc), priority: -1, msg: "memory: usage 4194304kB, limit 4194304kB, failcnt 2"},
		{name: "talosctl dmesg, one node", line: "kern:    info: [2024-08-22T17:35:35.092500011Z]: Tasks state (memory values in pages):", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2024, 8, 22, 17, 35, 35, 92500011, utc), priority: -1, msg: "Tasks state (memory values in pages):"},
		{name: "talosctl dmesg, userspace", line: "10.0.0.1: user: warning: [2024-08-22T17:35:35.0Z]: [talos] Killed process 1 (x)", format: FormatSkipped,
			seq: NoSeq, priority: -1},
		{name: "syslog, month in Russian", line: "дек 06 14:58:14 acerpredator kernel: php invoked oom-killer: x", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2020, 12, 6, 14, 58, 14, 0, utc), priority: -1, msg: "php invoked oom-killer: x"},
		{name: "syslog behind a list bullet", line: "- Jan 14 18:01:55 aks-node kernel: [ 1432.394489] dotnet invoked oom-killer: x", format: FormatSyslog,
			seq: NoSeq, mono: 1432394489 * time.Microsecond, hasMono: true, wall: time.Date(2020, 1, 14, 18, 1, 55, 0, utc), priority: -1, msg: "dotnet invoked oom-killer: x"},
		{name: "dmesg -T in Chinese", line: "[四 4月 17 22:43:41 2025] prometheus invoked oom-killer: x", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2025, 4, 17, 22, 43, 41, 0, utc), priority: -1, msg: "prometheus invoked oom-killer: x"},
		{name: "dmesg -T without its bracket", line: "Thu May 23 18:40:42 2024] oom-kill:constraint=CONSTRAINT_MEMCG", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2024, 5, 23, 18, 40, 42, 0, utc), priority: -1, msg: "oom-kill:constraint=CONSTRAINT_MEMCG"},
		{name: "bare with a clock is bare", line: "rtc_cmos 00:02: setting system clock to 2026-12-06T05:00:00 UTC (1796446800)", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "rtc_cmos 00:02: setting system clock to 2026-12-06T05:00:00 UTC (1796446800)"},
		{name: "dmesg -T in Chinese, a day of one digit", line: "[二 9月  3 05:57:48 2024] oom-kill:constraint=CONSTRAINT_MEMCG", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2024, 9, 3, 5, 57, 48, 0, utc), priority: -1, msg: "oom-kill:constraint=CONSTRAINT_MEMCG"},
		{name: "syslog, month in German, fraction", line: "Mär 06 14:58:14.250 host kernel: x", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2020, 3, 6, 14, 58, 14, 250000000, utc), priority: -1, msg: "x"},
		{name: "syslog, month in French", line: "févr. 06 14:58:14 host kernel: x", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2020, 2, 6, 14, 58, 14, 0, utc), priority: -1, msg: "x"},
		{name: "dmesg -T in French, the day before the month", line: "[dim. 19 avril 18:03:30 2026] oom-kill:constraint=CONSTRAINT_NONE", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2026, 4, 19, 18, 3, 30, 0, utc), priority: -1, msg: "oom-kill:constraint=CONSTRAINT_NONE"},
		{name: "dmesg -T in German, full month", line: "[So 4. Oktober 09:05:01 2026] x", format: FormatDmesg,
			seq: NoSeq, wall: time.Date(2026, 10, 4, 9, 5, 1, 0, utc), priority: -1, msg: "x"},
		{name: "syslog, full month in Spanish", line: "septiembre 06 14:58:14 host kernel: x", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2020, 9, 6, 14, 58, 14, 0, utc), priority: -1, msg: "x"},
		{name: "words before a clock are no date", line: "[run 19 tests 18:03:30 2026] x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "[run 19 tests 18:03:30 2026] x"},
		{name: "dmesg behind a Unix time and a host", line: "1720128512 node-7 [42201.484624] python3 invoked oom-killer: x", format: FormatDmesg,
			seq: NoSeq, mono: 42201484624 * time.Microsecond, hasMono: true, priority: -1, msg: "python3 invoked oom-killer: x"},
		{name: "dmesg behind a host", line: "node-7  [    5.100000] x", format: FormatDmesg,
			seq: NoSeq, mono: 5100000 * time.Microsecond, hasMono: true, priority: -1, msg: "x"},
		{name: "a message with a stamp inside is bare", line: "eth0: link [ 5.100000] up", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "eth0: link [ 5.100000] up"},
		{name: "four words before a stamp are bare", line: "a b c d [5.100000] x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "a b c d [5.100000] x"},
		{name: "words before brackets that are no stamp are bare", line: "node-7 [not a stamp] x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "node-7 [not a stamp] x"},
		{name: "a time of day alone", line: "12:00:52 Out of memory: Killed process 25507 (oom01) total-vm:6324780kB", format: FormatDmesg,
			seq: NoSeq, priority: -1, msg: "Out of memory: Killed process 25507 (oom01) total-vm:6324780kB"},
		{name: "a time of day before a host and the kernel's tag", line: "12:00:52 node-7 kernel: x", format: FormatSyslog,
			seq: NoSeq, priority: -1, msg: "x"},
		{name: "a time of day before another program's tag", line: "12:00:52 node-7 systemd[1]: Started x.", format: FormatSkipped,
			seq: NoSeq, priority: -1},
		{name: "a PCI address is no time of day", line: "00:02:00.0 x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "00:02:00.0 x"},
		{name: "syslog, month in Korean", line: "12월 06 14:58:14 host kernel: x", format: FormatSyslog,
			seq: NoSeq, wall: time.Date(2020, 12, 6, 14, 58, 14, 0, utc), priority: -1, msg: "x"},
		{name: "syslog, month unknown: no time", line: "xyz 06 14:58:14 host kernel: x", format: FormatSyslog,
			seq: NoSeq, priority: -1, msg: "x"},
		{name: "syslog, day out of range: no time", line: "дек 32 14:58:14 host kernel: x", format: FormatSyslog,
			seq: NoSeq, priority: -1, msg: "x"},
		{name: "localized syslog of another program", line: "дек 06 14:58:14 host systemd[1]: Started x.", format: FormatSkipped,
			seq: NoSeq, priority: -1},
		{name: "OpenWrt logread", line: "Sat Jan 25 09:40:15 2020 kern.info kernel: [22042.979908] [ 1039]     0  1039      420       38       4       0        0 netifd", format: FormatSyslog,
			seq: NoSeq, mono: 22042979908 * time.Microsecond, hasMono: true, wall: time.Date(2020, 1, 25, 9, 40, 15, 0, utc), priority: -1, msg: "[ 1039]     0  1039      420       38       4       0        0 netifd"},
		{name: "OpenWrt logread, another program", line: "Sat Jan 25 09:40:15 2020 daemon.notice netifd: Interface 'wan' is now down", format: FormatSkipped,
			seq: NoSeq, priority: -1},
		{name: "bare with a clock and a colon is bare", line: "Clock: 12:00:00 set: ok", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "Clock: 12:00:00 set: ok"},
		{name: "bare with a clock and a bracket is bare", line: "ACPI: 12:00:00 [PCI0] x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "ACPI: 12:00:00 [PCI0] x"},
		{name: "bare with a day, a clock and a colon is bare", line: "uptime 3 12:00:00 set: x", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "uptime 3 12:00:00 set: x"},
		{name: "quoted in a mail", line: "> [  37.128158] Tasks in /A1 are going to be killed due to memory.oom.group set", format: FormatDmesg,
			seq: NoSeq, mono: 37128158 * time.Microsecond, hasMono: true, priority: -1, msg: "Tasks in /A1 are going to be killed due to memory.oom.group set"},
		{name: "quoted twice, bare", line: "> > oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/syz1", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/syz1"},
		{name: "quoted with a bar", line: " | [ 1.5] x", format: FormatDmesg,
			seq: NoSeq, mono: 1500 * time.Millisecond, hasMono: true, priority: -1, msg: "x"},
		{name: "inline code", line: "`[ 1.5] Out of memory: Killed process 7 (x)`", format: FormatDmesg,
			seq: NoSeq, mono: 1500 * time.Millisecond, hasMono: true, priority: -1, msg: "Out of memory: Killed process 7 (x)"},
		{name: "inline code, bare", line: "`oom-kill:constraint=CONSTRAINT_NONE`", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "oom-kill:constraint=CONSTRAINT_NONE"},
		{name: "a code fence", line: "```", format: FormatSkipped, seq: NoSeq, priority: -1},
		{name: "a code fence with a language", line: "```text", format: FormatSkipped, seq: NoSeq, priority: -1},
		{name: "bare", line: "Memory cgroup out of memory: Kill process 1012 (heapster) score 1035 or sacrifice child", format: FormatBare,
			seq: NoSeq, priority: -1, msg: "Memory cgroup out of memory: Kill process 1012 (heapster) score 1035 or sacrifice child"},
		{name: "bare month-like word", line: "Mar is not a date", format: FormatBare, seq: NoSeq, priority: -1, msg: "Mar is not a date"},
		{name: "bare bracket", line: "[drm] Initialized", format: FormatBare, seq: NoSeq, priority: -1, msg: "[drm] Initialized"},
		{name: "bare digits", line: "12345 not kmsg", format: FormatBare, seq: NoSeq, priority: -1, msg: "12345 not kmsg"},
		{name: "blank", line: "   ", format: FormatSkipped, seq: NoSeq, priority: -1},
		{name: "blank with tabs and no-break spaces", line: "\t\u00a0 \r", format: FormatSkipped, seq: NoSeq, priority: -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var rec Record
			f := ParseLine([]byte(tt.line), &rec, tt.after, 2020, utc)
			if f != tt.format {
				t.Fatalf("format = %v, want %v", f, tt.format)
			}
			if rec.Seq != tt.seq || rec.Mono != tt.mono || rec.HasMono != tt.hasMono || rec.Priority != tt.priority {
				t.Errorf("seq/mono/hasMono/prio = %d/%v/%v/%d, want %d/%v/%v/%d",
					rec.Seq, rec.Mono, rec.HasMono, rec.Priority, tt.seq, tt.mono, tt.hasMono, tt.priority)
			}
			if !rec.Wall.Equal(tt.wall) {
				t.Errorf("wall = %v, want %v", rec.Wall, tt.wall)
			}
			if string(rec.Message) != tt.msg {
				t.Errorf("message = %q, want %q", rec.Message, tt.msg)
			}
		})
	}
}

func TestReaderMixedAndContinuation(t *testing.T) {
	in := strings.Join([]string{
		"6,1,100,-;usb 1-1: new device",
		" SUBSYSTEM=usb",
		" DEVICE=c189:1",
		"[    1.000000] dmesg line",
		"Nov 27 05:12:01 h kernel: syslog line",
		"Nov 27 05:12:02 h sshd[5]: not kernel",
		"bare body\r",
		"",
		"final without newline",
	}, "\n")
	r := NewReader(strings.NewReader(in))
	r.Year = 2026
	var got []string
	var formats []Format
	for r.Next() {
		got = append(got, string(r.Record().Message))
		formats = append(formats, r.Format())
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	want := []string{"usb 1-1: new device", "dmesg line", "syslog line", "bare body", "final without newline"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("messages = %q, want %q", got, want)
	}
	wantF := []Format{FormatKmsg, FormatDmesg, FormatSyslog, FormatBare, FormatBare}
	for i := range wantF {
		if formats[i] != wantF[i] {
			t.Errorf("format[%d] = %v, want %v", i, formats[i], wantF[i])
		}
	}
}

func TestReaderYearRollback(t *testing.T) {
	r := NewReader(strings.NewReader("Dec 31 23:59:59 h kernel: x\n"))
	r.now = time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)
	r.Location = time.UTC
	if !r.Next() {
		t.Fatal("no record")
	}
	if y := r.Record().Wall.Year(); y != 2025 {
		t.Fatalf("year = %d, want 2025 (a date ahead belongs to last year)", y)
	}
}

// TestReaderJournalBanner: journalctl's banner says when its entries
// begin; its year, not the current one, completes the syslog dates after
// it, rolling over to the next at a date before the banner's. A year given
// wins; an unreadable banner changes nothing.
func TestReaderJournalBanner(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		year     int
		want     []int
	}{
		{"systemd before 246", "-- Logs begin at Sun 2021-05-30 20:43:48 CST, end at Mon 2022-01-03 10:01:02 CST. --\n" +
			"Jun 13 14:21:19 h kernel: a\nDec 31 23:59:59 h kernel: b\nJan  2 00:00:01 h kernel: c\n", 0, []int{2021, 2021, 2022}},
		{"systemd 246", "-- Journal begins at Sat 2022-03-05 01:02:03 UTC, ends at Sat 2022-03-05 09:00:00 UTC. --\nMar  5 08:00:00 h kernel: a\n", 0, []int{2022}},
		{"quoted", ">-- Logs begin at Sun 2021-05-30 12:29:02 CST. --\n>Jun 13 14:21:19 kubelet kernel: a\n", 0, []int{2021}},
		{"a year given", "-- Logs begin at Sun 2021-05-30 20:43:48 CST. --\nJun 13 14:21:19 h kernel: a\n", 2019, []int{2019}},
		{"unreadable", "-- Logs begin at sometime. --\nJun 13 14:21:19 h kernel: a\n", 0, []int{2026}},
		{"an ISO date keeps its year", "-- Logs begin at Sun 2021-05-30 20:43:48 CST. --\n2024-06-13T14:21:19+0000 h kernel: a\n", 0, []int{2024}},
	} {
		r := NewReader(strings.NewReader(tc.in))
		r.now = time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
		r.Location = time.UTC
		r.Year = tc.year
		var got []int
		for r.Next() {
			got = append(got, r.Record().Wall.Year())
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: years %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestReaderLongLine(t *testing.T) {
	long := strings.Repeat("x", MaxLineBytes+10)
	r := NewReader(strings.NewReader("ok\n" + long + "\nafter\n"))
	if !r.Next() || string(r.Record().Message) != "ok" {
		t.Fatal("first line lost")
	}
	var skipped []error
	r.LongLine = func(err error) { skipped = append(skipped, err) }
	if !r.Next() || string(r.Record().Message) != "after" {
		t.Fatal("the line after an over-long one was lost")
	}
	if r.Err() != nil || len(skipped) != 1 || !errors.Is(skipped[0], ErrLineTooLong) || r.Line() != 3 {
		t.Fatalf("err %v, skipped %v, line %d", r.Err(), skipped, r.Line())
	}
	// A line longer than the buffer but within the bound is read whole.
	mid := strings.Repeat("y", 70<<10-100)
	r = NewReader(strings.NewReader(mid[:MaxLineBytes-1] + "\nz\n"))
	if !r.Next() || len(r.Record().Message) != MaxLineBytes-1 {
		t.Fatalf("long line not read whole")
	}
	if !r.Next() || string(r.Record().Message) != "z" {
		t.Fatal("line after a long line lost")
	}
}

func TestParseLineDoesNotAllocate(t *testing.T) {
	lines := [][]byte{
		[]byte("6,22743,6115623303887,-;usb 1-1: new high-speed USB device number 2 using xhci_hcd"),
		[]byte("[ 3457.652078] EXT4-fs (sda1): mounted filesystem"),
		[]byte("2026-09-02T09:08:50.880492+02:00 Server1 kernel: eth0: link up"),
		[]byte("Nov 27 05:12:01.123456 node1 kernel: [  1.2] audit: type=1400"),
		// The renderings read past an indent, a caller ID, a quote, or a
		// date they cannot read.
		[]byte("   [ 3457.652078] EXT4-fs (sda1): mounted filesystem"),
		[]byte("[ 3457.652078] [ T9185] EXT4-fs (sda1): mounted filesystem"),
		[]byte("> [ 3457.652078] EXT4-fs (sda1): mounted filesystem"),
		[]byte("172.20.0.2: kern:    info: [2025-06-04T04:51:57.5Z]: eth0: link up"),
		[]byte("172.20.0.2: kern:    info: [2025-06-04T04:51:57.5+05:30]: eth0: link up"),
		[]byte("дек 06 14:58:14 host kernel: eth0: link up"),
		[]byte("[四 4月 17 22:43:41 2025] eth0: link up"),
		[]byte("Sep  8 06:22:08 kernel: eth0: link up"),
		[]byte("Sat Jan 25 09:40:15 2020 kern.info kernel: eth0: link up"),
		[]byte("Sat 2025-12-06 06:44:17 UTC node1 kernel: eth0: link up"),
		[]byte("Sat 2025-12-06 06:44:17 +0530 node1 kernel: eth0: link up"),
		[]byte("1765003457.652054 node1 kernel: eth0: link up"),
		[]byte("[ 3457.652054 <    0.000012>] node1 kernel: eth0: link up"),
		[]byte("err|kernel[-]|[2919920.414272] eth0: link up"),
		[]byte("Jun 25, 2021 @ 12:42:13.029 | kernel | [113782.638786] eth0: link up"),
	}
	var rec Record
	allocs := testing.AllocsPerRun(100, func() {
		for _, l := range lines {
			ParseLine(l, &rec, false, 2026, time.UTC)
		}
	})
	if allocs != 0 {
		t.Fatalf("ParseLine allocated %.1f times per run, want 0", allocs)
	}
}

func FuzzParseLine(f *testing.F) {
	for _, s := range []string{
		"6,22743,6115623303887,-;oom-kill:constraint=CONSTRAINT_MEMCG",
		"[ 3457.652078] Out of memory: Killed process 10843",
		"kern  :warn  : 2025-01-21T08:41:30,287197+00:00 oom_reaper: reaped",
		"Dec  8 01:56:31 scottubuntu kernel: [106464.880260] mono invoked oom-killer:",
		"2026-09-02T09:08:50.880492+00:00 Server1 kernel: x",
		"[Fri Nov 27 05:12:01 2026] y",
		"<3>[1.0] z",
		"Sat 2025-12-06 06:44:17 +05:30 node1 kernel: x",
		"1765003457.652054 node1 kernel: x",
		"[ 3457.652054 <    0.000012>] node1 kernel: x",
	} {
		f.Add([]byte(s), false)
	}
	f.Fuzz(func(t *testing.T, line []byte, after bool) {
		var rec Record
		format := ParseLine(line, &rec, after, 2026, time.UTC)
		if format > FormatSkipped {
			t.Fatalf("unknown format %d", format)
		}
		if rec.Mono < 0 {
			t.Fatalf("negative monotonic time %v", rec.Mono)
		}
		if format != FormatSkipped && len(rec.Message) > len(line) {
			t.Fatalf("message longer than the line")
		}
	})
}
