package oom

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

func TestDumpRowColumns(t *testing.T) {
	for _, tc := range []struct {
		name    string
		row     string
		numeric int // the header's numeric columns; 0 when no header was seen
		ok      bool
		pid     int
		uid     int
		rss     int64
		adj     int
		comm    string
	}{
		{name: "6.1", row: "[   1234]     0  1234   530382     5191   110592        0          -999 containerd",
			numeric: 7, ok: true, pid: 1234, rss: 5191, adj: -999, comm: "containerd"},
		{name: "3.13", row: "[ 1532]  1020  1532   410347   398810     788        0             0 badsysprogram",
			numeric: 7, ok: true, pid: 1532, uid: 1020, rss: 398810, comm: "badsysprogram"},
		{name: "no header", row: "[ 12] 0 12 1 7 1 0 3 x y", ok: true, pid: 12, rss: 7, adj: 3, comm: "x y"},
		// A name of digits reads as one more column without a header.
		{name: "numeric name", row: "[ 12] 0 12 1 7 1 0 3 1234", numeric: 7, ok: true, pid: 12, rss: 7, adj: 3,
			comm: "1234"},
		{name: "numeric name, no header", row: "[ 12] 0 12 1 7 1 0 3 1234"},
		{name: "name with spaces after numbers", row: "[ 12] 0 12 1 7 1 0 3 4 5 kworker/0:1", numeric: 7, ok: true,
			pid: 12, rss: 7, adj: 3, comm: "4 5 kworker/0:1"},
		{name: "five columns", row: "[ 12] 0 12 1 7 3 x"},
		{name: "no name", row: "[ 12] 0 12 1 7 1 0 3   "},
		{name: "no pid", row: "[ ] 0 12 1 7 1 0 3 x"},
		{name: "stack frame", row: "[<ffffffff817199c4>] dump_stack+0x45/0x56"},
		{name: "header", row: "[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg := []byte(tc.row)
			var row dumpRow
			scanned := row.scan(msg)
			c, ok := row.columns(msg, tc.numeric)
			if ok != tc.ok || (tc.numeric == 0 && scanned != ok) {
				t.Fatalf("scan %v, columns(%d) %v; want %v", scanned, tc.numeric, ok, tc.ok)
			}
			if !ok {
				return
			}
			got := fmt.Sprintf("%d %d %d %d %q", row.pid, row.num(0), row.num(3), row.num(c-1), row.name(msg, c))
			want := fmt.Sprintf("%d %d %d %d %q", tc.pid, tc.uid, tc.rss, tc.adj, tc.comm)
			if got != want {
				t.Fatalf("pid uid rss adj comm = %s, want %s", got, want)
			}
		})
	}
}

// dumpReport renders a 6.1 node-level report whose n dump rows have
// distinct comms, the victim (pid 1000+victim) among them.
func dumpReport(seq int64, n, victim int) []string {
	l := []string{
		fmt.Sprintf("4,%d,%d,-;stress invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP), order=0, oom_score_adj=0", seq, seq),
		fmt.Sprintf("6,%d,%d,-;[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name", seq+1, seq+1),
	}
	for i := range n {
		s := seq + 2 + int64(i)
		l = append(l, fmt.Sprintf("6,%d,%d,-;[%7d] %5d %5d %8d %8d %8d %8d %13d comm-%d", s, s, 1000+i, i%3, 1000+i, 200+i, 100+i, 61440, 0, i-500, i))
	}
	s := seq + 2 + int64(n)
	l = append(l, fmt.Sprintf("3,%d,%d,-;Out of memory: Killed process %d (comm-%d) total-vm:1000kB, anon-rss:%dkB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:60kB oom_score_adj:0",
		s, s, 1000+victim, victim, (100+victim)*4))
	return l
}

func TestLargeDumpThenSmall(t *testing.T) {
	// The rows of a large dump span many blocks of the staging area; the
	// next report reuses it and must hold its own rows only.
	lines := append(dumpReport(1, 3*dumpBlock+7, 700), dumpReport(5000, 3, 1)...)
	reps, _ := feed(t, Options{}, lines...)
	if len(reps) != 2 {
		t.Fatalf("got %d reports, want 2", len(reps))
	}
	for ri, want := range []int{3*dumpBlock + 7, 3} {
		r := reps[ri]
		if len(r.Tasks) != want {
			t.Fatalf("report %d: %d tasks, want %d", ri, len(r.Tasks), want)
		}
		for i, task := range r.Tasks {
			if task.PID != 1000+i || task.Comm != fmt.Sprintf("comm-%d", i) || task.UID != i%3 ||
				task.RSSPages != int64(100+i) || task.RSSBytes != int64(100+i)*4096 || task.OOMScoreAdj != i-500 ||
				!task.HasUID || !task.HasRSS || !task.HasAdj {
				t.Fatalf("report %d, row %d: %+v", ri, i, task)
			}
		}
	}
	if v := reps[0].Victim(); v.PID != 1700 || !v.HasUID || v.OOMScoreAdj != 0 {
		t.Fatalf("victim %+v", v)
	}
}

func TestTaskSeenForEveryRow(t *testing.T) {
	var seen []int64
	opts := Options{TaskSeen: func(pid int, rss int64) { seen = append(seen, int64(pid), rss) }}
	feed(t, opts, dumpReport(1, 300, 5)...)
	if len(seen) != 2*300 || seen[0] != 1000 || seen[1] != 100 || seen[598] != 1299 || seen[599] != 399 {
		t.Fatalf("TaskSeen got %d values: %v...", len(seen), seen[:min(len(seen), 6)])
	}
}

// A dump row costs no allocation of its own: the rows are staged in blocks
// and turned into Tasks, with one string for all comms, once the report is
// finished, and the raw lines kept share a few strings.
func TestDumpRowsDoNotAllocateEach(t *testing.T) {
	const rows = 4000
	lines := dumpReport(1, rows, 10)
	recs := make([]kernlog.Record, len(lines))
	for i, l := range lines {
		kernlog.ParseLine([]byte(l), &recs[i], false, 2026, time.UTC)
	}
	n := 0
	a := NewAssembler(Options{}, func(*Report) { n++ })
	allocs := testing.AllocsPerRun(5, func() {
		for i := range recs {
			a.Feed(&recs[i])
		}
		a.Flush()
	})
	// The report, the staging blocks (one per dumpBlock rows), the Tasks,
	// the comms, the raw lines' chunks: a few dozen, not thousands.
	if allocs > rows/40 {
		t.Fatalf("%.0f allocations for a report of %d dump rows", allocs, rows)
	}
	if n == 0 {
		t.Fatal("no report")
	}
}

// FuzzMayBeReport checks the cheap test of mayBeReport against classify:
// every line that could start a report must get past it.
func FuzzMayBeReport(f *testing.F) {
	for _, s := range []string{
		"stress invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE), order=0, oom_score_adj=0",
		"oom-kill:constraint=CONSTRAINT_MEMCG,oom_memcg=/a,task_memcg=/a/b,task=x,pid=3,uid=0",
		"Memory cgroup out of memory: Killed process 1 (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB",
		"Out of memory: Kill process 1532 (badsysprogram) score 919 or sacrifice child",
		"Task in /a killed as a result of limit of /a",
		"Tasks in /x are going to be killed due to memory.oom.group set",
		"Tasks state (memory values in pages):",
		"Memory cgroup stats for /kubepods/oom:",
		"Memory cgroup stats for /kubepods/burstable:",
		"memory: usage 16777216kB, limit 16777216kB, failcnt 52843037",
		"[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name",
		"[   1234]     0  1234   530382     5191   110592        0          -999 containerd",
		"TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.",
		"kworker invoked oom-killer:",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		var row dumpRow
		kind := classify(msg, &row)
		if startsReport(kind) && len(msg) > 0 && msg[0] != '[' && !mayStart(msg) {
			t.Fatalf("mayStart(%q) is false for a line of kind %d", msg, kind)
		}
		words := strings.Contains(string(msg), "oom") || strings.Contains(string(msg), "Kill") ||
			strings.Contains(string(msg), "Task")
		usage := bytes.HasPrefix(msg, bMemStats) || bytes.HasPrefix(msg, bMemory)
		if want := len(msg) > 0 && (msg[0] == '[' || words || usage); startsReport(kind) && mayBeReport(msg) != want {
			t.Fatalf("mayBeReport(%q) = %v, want %v", msg, !want, want)
		}
	})
}

func BenchmarkMayBeReport(b *testing.B) {
	msgs := [][]byte{
		[]byte("cni0: port 41(vethfcf1a99b) entered blocking state"),
		[]byte(`audit: type=1400 audit(1700123456.789:12345): apparmor="DENIED" operation="open" class="file" profile="cri-containerd.apparmor.d" name="/proc/123/mounts" pid=123 comm="node" requested_mask="r" denied_mask="r" fsuid=0 ouid=0`),
		[]byte("EXT4-fs (nvme0n1p1): mounted filesystem 12345678-abcd-ef01-2345-6789abcdef01 with ordered data mode. Quota mode: none."),
		[]byte("usb 1-1: new high-speed USB device number 2 using xhci_hcd"),
		[]byte("TCP: request_sock_TCP: Possible SYN flooding on port 8080. Sending cookies.  Check SNMP counters."),
		[]byte("overlayfs: upperdir is in-use as upperdir/workdir of another mount, accessing files from both mounts will result in undefined behavior."),
	}
	b.ReportAllocs()
	n := 0
	for i := 0; i < b.N; i++ {
		if mayBeReport(msgs[i%len(msgs)]) {
			n++
		}
	}
	if n != 0 {
		b.Fatalf("%d ordinary records may start a report", n)
	}
}

// parseDumpRow is how rows were read before scan: once to classify the
// line (numeric 0: every numeric column), once more under the dump's layout
// to take the task. scan reads a row once for both, and must agree.
func parseDumpRow(msg []byte, numeric int) (Task, bool) {
	var t Task
	i := 1
	for i < len(msg) && msg[i] == ' ' {
		i++
	}
	pid, n := atoi(msg, i)
	if n == 0 {
		return t, false
	}
	i += n
	if i >= len(msg) || msg[i] != ']' {
		return t, false
	}
	i++
	var nums [12]int64
	count := 0
	for count < len(nums) {
		j := i
		for j < len(msg) && msg[j] == ' ' {
			j++
		}
		if j == i || j >= len(msg) {
			break
		}
		neg := false
		k := j
		if msg[k] == '-' {
			neg = true
			k++
		}
		v, m := atoi(msg, k)
		if m == 0 || (k+m < len(msg) && msg[k+m] != ' ') {
			break
		}
		if neg {
			v = -v
		}
		nums[count] = int64(v)
		count++
		i = k + m
		if numeric > 0 && count == numeric {
			break
		}
	}
	if count < 6 {
		return t, false
	}
	name := msg[i:]
	for len(name) > 0 && name[0] == ' ' {
		name = name[1:]
	}
	if len(name) == 0 {
		return t, false
	}
	t.PID, t.UID, t.RSSPages, t.OOMScoreAdj, t.Comm = pid, int(nums[0]), nums[3], int(nums[count-1]), string(name)
	return t, true
}

// shapeRows are rows of several kernels' shapes, scanned before the row
// under test: what scan keeps from one row must not change how it reads the
// next.
var shapeRows = []string{
	"",
	"[   1234]     0  1234   530382     5191   110592        0          -999 containerd",
	"[ 1532]  1020  1532   410347   398810     788        0             0 badsysprogram",
	"[  20351]     0 20351     1130      935    91248        0          -804 node",
	"[    512]     0   512     9001      120      321      245       15   61440        0           100 sshd",
	"[1] 0 1 2 3 4 5 6 init",
}

// checkScan scans msg after each of shapeRows (and after itself) and
// checks the result against parseDumpRow, the plain reading.
func checkScan(t *testing.T, msg []byte) {
	t.Helper()
	for _, before := range append(shapeRows, string(msg)) {
		var row dumpRow
		if before != "" {
			row.scan([]byte(before))
		}
		scanned := row.scan(msg)
		if _, want := parseDumpRow(msg, 0); scanned != want {
			t.Fatalf("scan(%q) after %q = %v, want %v", msg, before, scanned, want)
		}
		for numeric := 0; numeric <= maxDumpColumns+1; numeric++ {
			want, wantOK := parseDumpRow(msg, numeric)
			c, ok := row.columns(msg, numeric)
			if ok != wantOK {
				t.Fatalf("%q after %q under %d columns: %v, want %v", msg, before, numeric, ok, wantOK)
			}
			if !ok {
				continue
			}
			got := Task{PID: row.pid, UID: int(row.num(0)), RSSPages: row.num(3), OOMScoreAdj: int(row.num(c - 1)),
				Comm: string(row.name(msg, c))}
			if got != want {
				t.Fatalf("%q after %q under %d columns: %+v, want %+v", msg, before, numeric, got, want)
			}
		}
		checkMasked(t, msg, row)
		// Every column and where each starts, not only what a Task keeps:
		// as read by a fresh dumpRow.
		// (What lies past the columns read is left from earlier rows.)
		var plain dumpRow
		plain.scan(msg)
		n := row.count
		if row.count != plain.count || !slices.Equal(row.values(), plain.values()) ||
			scanned && (row.pid != plain.pid || !slices.Equal(row.starts[:n+1], plain.starts[:n+1])) {
			t.Fatalf("%q after %q: %d %d %v %v, read alone %d %d %v %v", msg, before, row.pid, row.count, row.values(),
				row.starts, plain.pid, plain.count, plain.values(), plain.starts)
		}
	}
}

// checkMasked reads msg with scanMasked and with scanLoop, each after the
// row that before left (whatever the architecture, and whichever scan
// chose), and checks that they read the same: the result, the pid, every
// column and where each starts.
func checkMasked(t *testing.T, msg []byte, before dumpRow) {
	t.Helper()
	if len(msg) > maxMaskedRow || maskedScan && len(msg) < 16 {
		return
	}
	masked, loop := before, before
	okM, okL := masked.scanMasked(msg), loop.scanLoop(msg)
	n := loop.count
	if okM != okL || masked.pid != loop.pid || masked.count != n || !slices.Equal(masked.values(), loop.values()) ||
		!slices.Equal(masked.starts[:n+1], loop.starts[:n+1]) {
		t.Fatalf("%q: masked %v %d %d %v %v, loop %v %d %d %v %v", msg, okM, masked.pid, masked.count, masked.values(),
			masked.starts, okL, loop.pid, n, loop.values(), loop.starts)
	}
}

// values returns the row's numeric columns.
func (row *dumpRow) values() []int64 {
	v := make([]int64, row.count)
	for c := range v {
		v[c] = row.num(c)
	}
	return v
}

// TestScanMaskedNumbers reads rows whose numbers have every width from 1
// to 20 digits, at every offset in the row and near both of its ends, and
// rows of every length the masks hold, through both scans.
func TestScanMaskedNumbers(t *testing.T) {
	digits := "98765432109876543210"
	for w := 1; w <= len(digits); w++ {
		num := digits[:w]
		for pad := 1; pad <= 100; pad++ {
			for _, msg := range []string{
				"[" + strings.Repeat(" ", pad) + num + "] 0 1 2 3 4 5 6 x",
				"[ 1]" + strings.Repeat(" ", pad) + num + " 1 2 3 -" + num + " 5 6 x",
				"[ 1] 0 1 2 3 4 5" + strings.Repeat(" ", pad) + num,
				"[ 1] 0 1 2 3 4 5" + strings.Repeat(" ", pad) + "-" + num + " y",
			} {
				var row dumpRow
				checkMasked(t, []byte(msg), row)
				checkScan(t, []byte(msg))
			}
		}
	}
	for n := 16; n <= maxMaskedRow+1; n++ {
		msg := []byte("[ 1] 0 1 2 3 4 5 " + strings.Repeat("7 ", 64))[:n]
		checkScan(t, msg)
	}
}

// TestScanMalformedRows reads rows of several kernels, truncated at every
// length and with each byte replaced by others, after rows of each shape:
// scan must find what the plain reading does.
func TestScanMalformedRows(t *testing.T) {
	rows := append(shapeRows[1:],
		"[  20856]     0 20856     2329     2134    74950        0           850 redis-server",
		"[ 145839]     0 145839     2448     2253    66128        0           456 envoy",
		"[12345678] 65534 12345678 123456789 12345678 1234567890 12345678         -1000 x",
		"[   1234]     0  1234   530382     5191   110592        0          -999 1234",
	)
	for _, r := range rows {
		for n := 1; n <= len(r); n++ {
			checkScan(t, []byte("["+r[1:n]))
		}
		for i := 1; i < len(r); i++ {
			for _, c := range []byte{' ', '-', '0', '9', 'x', ']', '\xff', '/', ':'} {
				msg := []byte(r)
				msg[i] = c
				checkScan(t, msg)
			}
		}
	}
}

func FuzzDumpRowScan(f *testing.F) {
	for _, s := range []string{
		"[   1234]     0  1234   530382     5191   110592        0          -999 containerd",
		"[ 12] 0 12 1 7 1 0 3 4 5 6 7 8 9 10 11 12 13 x",
		"[ 12]  1234567890123456789 0 0 0 0 0 x",
		"[ 12] 0 12 1 7 1 0 -3 -",
		"[ 12] 0 12 1 7 1 0 3 1234",
		"[ 1]\xff0 1 2 3 4 5 6 z",
		"[  20351]     0 20351     1130      935    91248        0          -804 node",
		"[  20351]     0 20351    -1130      935    91248        0          --804 node",
		"[ 1532]  1020  1532   410347   398810     788        0             0 badsysprogram",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, msg []byte) {
		if len(msg) == 0 || msg[0] != '[' {
			msg = append([]byte("["), msg...)
		}
		checkScan(t, msg)
	})
}

func BenchmarkDumpRowScan(b *testing.B) {
	rows := [][]byte{
		[]byte("[  20818]     0 20818      666      471    84874        0           862 node"),
		[]byte("[  20856]     0 20856     2329     2134    74950        0          -850 redis-server"),
		[]byte("[  20900]     0 20900     3199     3004    82189        0           699 php-fpm"),
		[]byte("[   1234]  1000  1234   530382     5191   110592        0          -999 containerd"),
	}
	var row dumpRow
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !row.scan(rows[i%len(rows)]) {
			b.Fatal("not a row")
		}
	}
}

// Lines whose path is empty matched classify but panicked their parsers.
func TestEmptyPathsDoNotPanic(t *testing.T) {
	reps, _ := feed(t, Options{},
		"Task in killed as a result of limit of /a",
		"Tasks in are going to be killed due to memory.oom.group set",
		"Memory cgroup out of memory: Killed process 7 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB")
	if len(reps) != 1 || reps[0].LegacyTaskIn != "" || reps[0].LegacyLimitOf != "/a" || reps[0].GroupCgroup != "" ||
		reps[0].Victim().PID != 7 {
		t.Fatalf("reports %+v", reps)
	}
}

func TestRawLinesAcrossChunks(t *testing.T) {
	want := []string{"stress invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0"}
	for i := range 120 {
		want = append(want, fmt.Sprintf("Call Trace line %d %s", i, strings.Repeat("y", i)))
	}
	want = append(want, strings.Repeat("z", 3*lineChunk/2), "after the long line",
		"Memory cgroup out of memory: Killed process 7 (x) total-vm:1kB, anon-rss:1kB, file-rss:0kB")
	var lines []string
	for i, m := range want {
		lines = append(lines, fmt.Sprintf("6,%d,%d,-;%s", i+1, i+1, m))
	}
	reps, _ := feed(t, Options{}, lines...)
	if len(reps) != 1 {
		t.Fatalf("got %d reports", len(reps))
	}
	got := reps[0].Lines
	if len(got) != len(want) {
		t.Fatalf("%d lines, want %d", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("line %d = %.40q..., want %.40q...", i, got[i], want[i])
		}
	}
}

// variedRows renders n 6.1 dump rows whose numbers have the spread of a
// real node's (pids of 3-7 digits, sizes of 2-9, most swapents 0), so that
// the ends of their runs of digits and spaces are as hard to predict as in
// a real dump.
func variedRows(n int) [][]byte {
	rnd := rand.New(rand.NewPCG(1, 2))
	num := func(maxDigits int) int64 {
		d := 1 + rnd.IntN(maxDigits)
		return rnd.Int64N(pow10(d))
	}
	names := []string{"node", "redis-server", "php-fpm", "containerd", "kworker/0:1", "java", "x", "envoy"}
	rows := make([][]byte, n)
	for i := range rows {
		pid := 100 + num(7)
		uid := int64(0)
		if rnd.IntN(4) == 0 {
			uid = 1000 + rnd.Int64N(64000)
		}
		swap := int64(0)
		if rnd.IntN(8) == 0 {
			swap = num(6)
		}
		rows[i] = fmt.Appendf(nil, "[%7d] %5d %5d %8d %8d %8d %8d         %5d %s", pid, uid, pid, num(8), num(7),
			num(9), swap, rnd.IntN(2001)-1000, names[rnd.IntN(len(names))])
	}
	return rows
}

func pow10(d int) int64 {
	p := int64(1)
	for range d {
		p *= 10
	}
	return p
}

// BenchmarkDumpRowScanVaried scans rows of varied widths: the benchmark
// above repeats four rows, whose runs the CPU learns.
func BenchmarkDumpRowScanVaried(b *testing.B) {
	rows := variedRows(8192)
	var row dumpRow
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !row.scan(rows[i%len(rows)]) {
			b.Fatalf("not a row: %q", rows[i%len(rows)])
		}
	}
}

// The comms of a dump are staged in chunks of growing size: rows whose
// comms fill chunks to the byte, spill into the next one, or are longer
// than a whole chunk must come out as they were printed, in every report.
func TestCommsAcrossChunks(t *testing.T) {
	var lines []string
	var want [][]string
	for ri, lens := range [][]int{
		{255, 1, 1, 1023, 3000, 1000, 95, 20000, 7, commChunkMax, 1, commChunkMax - 1, 2},
		{3, 300, 5},
	} {
		seq := int64(1 + 1000*ri)
		lines = append(lines, fmt.Sprintf("4,%d,%d,-;stress invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0", seq, seq))
		var comms []string
		for i, n := range lens {
			comm := strings.Repeat(string(rune('a'+i%26)), n)
			comms = append(comms, comm)
			s := seq + 1 + int64(i)
			lines = append(lines, fmt.Sprintf("6,%d,%d,-;[%7d] %5d %5d %8d %8d %8d %8d %13d %s", s, s, 1000+i, 0, 1000+i, 200, 100, 61440, 0, 0, comm))
		}
		s := seq + 1 + int64(len(lens))
		lines = append(lines, fmt.Sprintf("3,%d,%d,-;Out of memory: Killed process 1000 (a) total-vm:1000kB, anon-rss:400kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:60kB oom_score_adj:0", s, s))
		want = append(want, comms)
	}
	reps, _ := feed(t, Options{}, lines...)
	if len(reps) != len(want) {
		t.Fatalf("%d reports, want %d", len(reps), len(want))
	}
	for ri, r := range reps {
		if len(r.Tasks) != len(want[ri]) {
			t.Fatalf("report %d: %d tasks, want %d", ri, len(r.Tasks), len(want[ri]))
		}
		for i, task := range r.Tasks {
			if task.Comm != want[ri][i] || task.PID != 1000+i {
				t.Fatalf("report %d, row %d: pid %d, comm of %d bytes, want %d", ri, i, task.PID, len(task.Comm), len(want[ri][i]))
			}
		}
	}
}

// TestPageSizeFromAnonColumn: file pages come and go between a 6.x
// report's task dump and its kill line (46 file pages in the row, 472kB in
// the line), which put the victim's rss/kB ratio nearer 8 KiB than 4 KiB;
// its rss_anon column against the line's anon-rss is exact.
func TestPageSizeFromAnonColumn(t *testing.T) {
	rows := []string{
		"[    171]     0   171  1869456  1853090  1853056       34         0 14934016        0         -1000 systemd-udevd",
		"[    235]   999   235     2385      142       96       46         0    57344        0          -900 dbus-daemon",
		"Out of memory: Killed process 235 (dbus-daemon) total-vm:9540kB, anon-rss:384kB, file-rss:472kB, shmem-rss:0kB, UID:999 pgtables:56kB oom_score_adj:-900",
	}
	header := "[  pid  ]   uid  tgid total_vm      rss rss_anon rss_file rss_shmem pgtables_bytes swapents oom_score_adj name"
	for name, lines := range map[string][]string{
		"without the header": rows,
		"with the header":    append([]string{header}, rows...),
	} {
		reps, _ := feed(t, Options{}, lines...)
		if len(reps) != 1 || reps[0].PageSize != 4096 {
			t.Fatalf("%s: reports %+v", name, reps)
		}
		if row := reps[0].TaskByPID(171); row == nil || row.RSSBytes != 1853090*4096 {
			t.Errorf("%s: systemd-udevd %+v", name, row)
		}
	}
	// A 64 KiB-page dump of the same columns stays 64 KiB.
	reps, _ := feed(t, Options{},
		"[    235]   999   235     2385      142       96       46         0    57344        0          -900 dbus-daemon",
		"Out of memory: Killed process 235 (dbus-daemon) total-vm:152640kB, anon-rss:6144kB, file-rss:2000kB, shmem-rss:0kB, UID:999 pgtables:56kB oom_score_adj:-900")
	if len(reps) != 1 || reps[0].PageSize != 65536 {
		t.Fatalf("64 KiB: %+v", reps)
	}
}

// TestReportFromItsStatsBlock: when a cgroup v1 limit report's start is
// lost, its first "Memory cgroup stats for" block, which names the limited
// cgroup, starts it: the path alone says nothing of an OOM.
func TestReportFromItsStatsBlock(t *testing.T) {
	const cg = "/kubepods/pod95387fa4-da9c-11e7-9d36-5254b24cbf5e/6895a3e13439535852d3184ac2aadd26d7363cc035f171545ec7d4ce74073b0b"
	reps, _ := feed(t, Options{},
		"Memory cgroup stats for "+cg+": cache:32KB rss:524188KB rss_huge:370688KB mapped_file:0KB swap:524356KB",
		"[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name",
		"[28438]     0 28438  5063909   119961    1661   136409          -998 java",
		"Memory cgroup out of memory: Kill process 24572 (java) score 0 or sacrifice child",
		"Killed process 28438 (java) total-vm:20255636kB, anon-rss:466160kB, file-rss:13684kB")
	if len(reps) != 1 || reps[0].MemcgStatsFor != cg || reps[0].Complete || reps[0].Victim().PID != 28438 {
		t.Fatalf("reports %+v", reps)
	}
}

// TestReportFromItsUsageLine: a limit report whose start was lost keeps
// its "memory: usage" line, the limit's figures.
func TestReportFromItsUsageLine(t *testing.T) {
	reps, _ := feed(t, Options{},
		"memory: usage 16777216kB, limit 16777216kB, failcnt 52843037",
		"[ 5740]     0  5740      257        1    32768        0          -998 pause",
		"[58406]  1000 58406 18285584  3967322 37101568        0          -998 data_sim",
		"Memory cgroup out of memory: Killed process 5740 (pause) total-vm:1028kB, anon-rss:4kB, file-rss:0kB, shmem-rss:0kB")
	if len(reps) != 1 || !reps[0].HasMemcgUsage || reps[0].MemcgLimitKB != 16777216 || reps[0].Complete || len(reps[0].Tasks) != 2 {
		t.Fatalf("reports %+v", reps)
	}
}

func TestKernelRelease(t *testing.T) {
	for line, want := range map[string]string{
		"CPU: 1 PID: 7749 Comm: python Not tainted 3.10.0-514.el7.x86_64 #1":                                  "3.10.0-514.el7.x86_64",
		"CPU: 0 UID: 0 PID: 171 Comm: systemd-udevd Not tainted 6.18.13-yocto-standard #1 PREEMPT(full) ":     "6.18.13-yocto-standard",
		"CPU: 12 PID: 1241 Comm: tailscaled Tainted: G           OE      6.1.0-41-amd64 #1  Debian 6.1.158-1": "6.1.0-41-amd64",
		"CPU: 3 PID: 9 Comm: x Kdump: loaded Tainted: G        W  --------- -  - 4.18.0-348.el8.x86_64 #1":    "4.18.0-348.el8.x86_64",
		"CPU: 3 PID: 9 Comm: x #1":          "",
		"CPU: 3 PID: 9 Comm: x Not tainted": "",
	} {
		if got := parseKernelVersion(line); got != want {
			t.Errorf("%q: %q, want %q", line, got, want)
		}
	}
	for _, tc := range []struct {
		release      string
		major, minor int
		want         bool
	}{
		{"5.9.0", 5, 9, true}, {"5.10.0-28-amd64", 5, 9, true}, {"6.1.0", 5, 9, true}, {"5.8.18", 5, 9, false},
		{"4.19.0", 5, 9, false}, {"", 5, 9, false}, {"x.y", 5, 9, false}, {"5", 5, 9, false},
	} {
		if got := KernelAtLeast(tc.release, tc.major, tc.minor); got != tc.want {
			t.Errorf("KernelAtLeast(%q, %d, %d) = %v", tc.release, tc.major, tc.minor, got)
		}
	}
}

// TestSummaryOfAThread: the summary names a thread (no row of its own),
// the kill line its process: the victim ran in the summary's task_memcg.
// A child killed instead of its parent (both have rows) does not take it.
func TestSummaryOfAThread(t *testing.T) {
	const cg = "/kubepods/burstable/pod6c4333b3-1d2e-4f5a-8b9c-0d1e2f3a4b5c/bbd5e4b5f9c1"
	lines := func(killed string) []string {
		return []string{
			"[ pid ]   uid  tgid total_vm      rss nr_ptes swapents oom_score_adj name",
			"[12788]     0 12788   150184     1146      23        0           997 runc:[2:INIT]",
			"[12790]     0 12790   150184      900      23        0           997 child",
			"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=bbd5e4b5f9c1,mems_allowed=0,oom_memcg=/kubepods/burstable/pod6c4333b3-1d2e-4f5a-8b9c-0d1e2f3a4b5c,task_memcg=" + cg + ",task=runc:[2:INIT],pid=12800,uid=0",
			"Memory cgroup out of memory: Kill process 12800 (runc:[2:INIT]) score 997 or sacrifice child",
			"Killed process " + killed + " total-vm:600736kB, anon-rss:3296kB, file-rss:1288kB, shmem-rss:0kB",
		}
	}
	reps, _ := feed(t, Options{}, lines("12788 (runc:[2:INIT])")...)
	if len(reps) != 1 || reps[0].Victim().Cgroup != cg {
		t.Fatalf("the thread's process: %+v", reps)
	}
	reps, _ = feed(t, Options{}, strings.Replace(strings.Join(lines("12790 (child)"), "\n"), "pid=12800", "pid=12788", 1))
	if len(reps) != 1 || reps[0].Victim().Cgroup != "" {
		t.Fatalf("a child killed instead: %+v", reps)
	}
}

// TestSharingAndSkipped: a process killed for sharing the victim's memory
// is part of the same kill (kernels before 4.x), and a victim the kernel
// chose but found already exiting was not killed (5.x and later).
func TestSharingAndSkipped(t *testing.T) {
	reps, _ := feed(t, Options{},
		"java invoked oom-killer: gfp_mask=0x280da, order=0, oom_score_adj=0",
		"[ 2305]  1000  2305   412000   315392   0       8           500 java-worker",
		"Out of memory: Kill process 2305 (java-worker) score 912 or sacrifice child",
		"Killed process 2305 (java-worker) total-vm:1648000kB, anon-rss:1260100kB, file-rss:1468kB",
		"Kill process 2306 (java-helper) sharing same memory")
	if len(reps) != 1 || len(reps[0].Victims) != 2 || !reps[0].Victims[1].SharedMemory || reps[0].Victims[0].SharedMemory {
		t.Fatalf("sharing: %+v", reps)
	}
	reps, a := feed(t, Options{},
		"node invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=998",
		"[   3120]  1000  3120   330120   130245  1097728        0           998 node",
		"oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/a,task_memcg=/a,task=node,pid=3120,uid=1000",
		"Memory cgroup out of memory: OOM victim 3120 (node) is already exiting. Skip killing the task")
	if len(reps) != 0 || a.Stats().Abandoned != 1 {
		t.Fatalf("already exiting: %+v, stats %+v", reps, a.Stats())
	}
}

// TestWrappedKillLine: a kill line wrapped by a paste (its rest on a line
// of its own, without the rendering's prefix) is read whole; one that is
// whole but sizeless (2.6.32's) is read as it is, wherever it stands.
func TestWrappedKillLine(t *testing.T) {
	for name, tc := range map[string]struct {
		lines []string
		pid   int
		comm  string
		rss   int64
	}{
		"inside a number": {[]string{
			"[Thu May 23 18:40:42 2024] Memory cgroup out of memory: Killed process 76630 (br) total-vm:22239",
			"788kB, anon-rss:13884820kB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:28052kB oom_score_adj:-997",
		}, 76630, "br", 13884820 * 1024},
		"at a space, quoted": {[]string{
			"> [201169.028888] Memory cgroup out of memory: Killed process 1887079",
			"> (qemu-kata-syste) total-vm:13598556kB, anon-rss:39836kB, file-rss:8712kB, shmem-rss:12017992kB",
		}, 1887079, "qemu-kata-syste", (39836 + 8712 + 12017992) * 1024},
		"sizeless, then a record": {[]string{
			"[  12.000001] Killed process 7 (x)",
			"[  12.000002] eth0: link up",
		}, 7, "x", 0},
		"sizeless, at the end": {[]string{
			"[  12.000001] Killed process 7 (x)",
		}, 7, "x", 0},
	} {
		reps, _ := feed(t, Options{}, tc.lines...)
		if len(reps) != 1 {
			t.Fatalf("%s: %d reports", name, len(reps))
		}
		v := reps[0].Victim()
		if v.PID != tc.pid || v.Comm != tc.comm || v.RSSBytes != tc.rss {
			t.Errorf("%s: victim %+v", name, v)
		}
	}
	// An old kernel's selection line wrapped before its PID.
	for head, rest := range map[string]string{
		"Out of memory: Kill":          "process 19961 (python) score 17 or sacrifice child",
		"Out of memory: Kill process ": "19961 (python) score 17 or sacrifice child",
		"Out of memory: Kill process":  "19961 (python) score 17 or sacrifice child",
	} {
		reps, _ := feed(t, Options{},
			"> Nov 14 15:23:48 oldserver kernel: [337631.991218] "+head,
			"> "+rest,
			"> Nov 14 15:23:48 oldserver kernel: [337631.991237] Killed process 31357 (sh) total-vm:5400kB, anon-rss:252kB, file-rss:4kB, shmem-rss:0kB")
		if len(reps) != 1 || reps[0].SelectedPID != 19961 || !reps[0].SelectedGlobal || reps[0].Victim().PID != 31357 {
			t.Errorf("%q: reports %+v", head, reps)
		}
	}
}
