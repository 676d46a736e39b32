package agent

import (
	"context"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	"github.com/oomwatch/oomwatch/pkg/kernlog"
	"github.com/oomwatch/oomwatch/pkg/kernlog/kernlogtest"
	"github.com/oomwatch/oomwatch/pkg/oom"
	"github.com/oomwatch/oomwatch/pkg/proc"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

type fakeSink struct {
	mu     sync.Mutex
	events []*pb.Event
}

func (s *fakeSink) Put(_ context.Context, evs ...*pb.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, evs...)
	return nil
}

type fakeCheck struct{ saved []int64 }

func (c *fakeCheck) Save(seq int64) error { c.saved = append(c.saved, seq); return nil }

// fakeProc is a /proc fixture: boot id, uptime, meminfo, and the cgroup of
// one live process.
func fakeProc(t testing.TB, uptime string, cgroups map[int]string) proc.FS {
	dir := t.TempDir()
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dir, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("sys/kernel/random/boot_id", "0b5e4f7a-1111-4222-8333-944455556666\n")
	write("uptime", uptime+" 1.00\n")
	write("meminfo", "MemTotal:         261624 kB\nMemFree:  1000 kB\nMemAvailable:      12000 kB\n")
	for pid, cg := range cgroups {
		write(filepath.Join(strconv.Itoa(pid), "cgroup"), "0::"+cg+"\n")
	}
	return proc.New(dir)
}

func records(t *testing.T, path string) []devkmsg.Item {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []devkmsg.Item
	rd := kernlog.NewReader(f)
	for rd.Next() {
		r := *rd.Record()
		r.Message = append([]byte(nil), r.Message...)
		out = append(out, devkmsg.Item{Record: r})
	}
	return out
}

func runPipeline(t *testing.T, cfg PipelineConfig, items []devkmsg.Item) *fakeSink {
	t.Helper()
	sink := &fakeSink{}
	cfg.Sink = sink
	cfg.Node, cfg.BootID = "node-a", "boot-1"
	p := NewPipeline(cfg, logrus.NewEntry(logrus.New()))
	ch := make(chan devkmsg.Item, len(items))
	for _, it := range items {
		ch <- it
	}
	close(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := p.Run(ctx, ch); err != nil {
		t.Fatal(err)
	}
	return sink
}

func TestPipelineNodeKillWithProcLookup(t *testing.T) {
	items := records(t, "../analysis/testdata/debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg")
	// Keep only the first report: the trigger (pid 96) is then known only
	// from /proc, as on a live node where it is still running.
	var first []devkmsg.Item
	for _, it := range items {
		if it.Record.Seq <= 410 {
			first = append(first, it)
		}
	}
	guaranteed := "/kubepods.slice/kubepods-podf0e1d2c3_b4a5_4697_8877_665544332211.slice/cri-containerd-0000111122223333444455556666777788889999aaaabbbbccccddddeeeeffff.scope"
	check := &fakeCheck{}
	sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "5.0", map[int]string{96: guaranteed}), Check: check}, first)
	if len(sink.events) != 1 {
		t.Fatalf("%d events, want 1", len(sink.events))
	}
	e := sink.events[0]
	k := e.GetOom()
	if e.Node != "node-a" || e.BootId != "boot-1" || e.Seq != 359 || k.GetKind() != "node" {
		t.Fatalf("event %v", e)
	}
	if !k.GetCollateral() || k.GetCulprit().GetWorkload().GetPodUid() != "f0e1d2c3-b4a5-4697-8877-665544332211" {
		t.Fatalf("culprit not resolved from /proc: %v", k.GetCulprit())
	}
	if k.GetTrigger().GetWorkload().GetQos() != "guaranteed" {
		t.Fatalf("trigger workload %v", k.GetTrigger().GetWorkload())
	}
	if k.GetNodeMemory().GetMemTotalBytes() != 261624*1024 {
		t.Fatalf("node memory %v", k.GetNodeMemory())
	}
	if e.GetMonotonic().AsDuration() != 3373704*time.Microsecond {
		t.Fatalf("monotonic %v", e.GetMonotonic().AsDuration())
	}
	if len(check.saved) == 0 || check.saved[len(check.saved)-1] != 410 {
		t.Fatalf("checkpoint saves %v, want the last at 410", check.saved)
	}
}

func TestPipelineOldReportsAreNotLookedUp(t *testing.T) {
	items := records(t, "../analysis/testdata/debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg")
	var first []devkmsg.Item
	for _, it := range items {
		if it.Record.Seq <= 410 {
			first = append(first, it)
		}
	}
	// The node has been up for an hour: PID 96 may be another process now.
	other := "/system.slice/other.service"
	sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "3600.0", map[int]string{96: other})}, first)
	if got := sink.events[0].GetOom().GetTrigger().GetWorkload().GetCgroup(); got != "" {
		t.Fatalf("an hour-old report's PID was looked up: %q", got)
	}
}

func TestPipelineGapBecomesLossAndCheckpointWaitsForOpenReport(t *testing.T) {
	items := records(t, "../analysis/testdata/debian-6.1-kmsg-v2-systemd-container-limit.kmsg")
	var in []devkmsg.Item
	for _, it := range items {
		in = append(in, it)
		if it.Record.Seq == 100 {
			in = append(in, devkmsg.Item{Gap: &devkmsg.Gap{AfterSeq: 100, NextSeq: 150, Lost: 49, Detected: time.Unix(1, 0)}})
		}
	}
	check := &fakeCheck{}
	sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "3.0", nil), Check: check}, in)
	var loss, ooms int
	for _, e := range sink.events {
		if l := e.GetLoss(); l != nil {
			loss++
			if l.GetLost() != 49 || e.Seq != 150 || l.GetCause() != "kernel-gap" || !strings.Contains(l.GetDetail(), "49 kernel records lost on node node-a") {
				t.Fatalf("loss event %v", e)
			}
		}
		if e.GetOom() != nil {
			ooms++
		}
	}
	if loss != 1 || ooms != 1 {
		t.Fatalf("loss=%d ooms=%d", loss, ooms)
	}
}

// A record that takes longer to handle than the idle time (a slow /proc
// or runtime lookup) must not close its report while the next records
// wait in the channel: the log was never quiet.
func TestPipelineSlowHandlingDoesNotSplitReports(t *testing.T) {
	items := records(t, "../analysis/testdata/debian-6.1-kmsg-v2-systemd-container-limit.kmsg")
	// Records is told of every report record as it is read.
	slow := func(int) { time.Sleep(3 * time.Millisecond) }
	sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "3.0", nil), Idle: time.Millisecond, Records: slow}, items)
	var ooms []*pb.Event
	for _, e := range sink.events {
		if e.GetOom() != nil {
			ooms = append(ooms, e)
		}
	}
	if len(ooms) != 1 || !ooms[0].GetOom().GetComplete() {
		for _, e := range ooms {
			t.Logf("event seq %d complete %v: %s", e.Seq, e.GetOom().GetComplete(), e.GetOom().GetReason())
		}
		t.Fatalf("%d OOM events, want 1 complete", len(ooms))
	}
}

// cascade is a real kernel's (Debian 6.1, qemu guest) pair of kills 8 ms
// apart under kubepods' limit: a BestEffort pod's hog (pid 228), then the
// Burstable pod's grower (pid 234) that had caused it. Neither is in /proc
// by the time the agent reads: only the second report's kill line places
// the grower.
const cascade = "testdata/kubepods-limit-cascade.kmsg"

const cascadeCulprit = "b4d5e6f7-0819-42a3-b4c5-d6e7f8091a2b"

// TestPipelineCulpritKilledNextIsPlaced: the first kill is judged after the
// report that kills its culprit is read, so its culprit is named.
func TestPipelineCulpritKilledNextIsPlaced(t *testing.T) {
	sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "7.4", nil)}, records(t, cascade))
	var ooms []*pb.OOMKill
	for _, e := range sink.events {
		if k := e.GetOom(); k != nil {
			ooms = append(ooms, k)
		}
	}
	if len(ooms) != 2 {
		t.Fatalf("%d OOM events, want 2", len(ooms))
	}
	first := ooms[0]
	if v := first.GetVictims()[0]; v.GetPid() != 228 {
		t.Fatalf("first victim pid %d, want 228", v.GetPid())
	}
	if got := first.GetCulprit().GetWorkload().GetPodUid(); got != cascadeCulprit || !first.GetCollateral() {
		t.Fatalf("first kill: culprit pod %q collateral %v, want %s and collateral: %s",
			got, first.GetCollateral(), cascadeCulprit, first.GetReason())
	}
}

// TestPipelineCheckpointWaitsForHeldReport: a finished report waiting to be
// judged keeps the checkpoint before its first record.
func TestPipelineCheckpointWaitsForHeldReport(t *testing.T) {
	items := records(t, cascade)
	sink := &fakeSink{}
	p := NewPipeline(PipelineConfig{Node: "n", BootID: "b", Sink: sink, Proc: fakeProc(t, "7.4", nil)},
		logrus.NewEntry(logrus.New()))
	ctx := context.Background()
	for _, it := range items {
		rec := it.Record
		if err := p.take(ctx, nil, &rec, 0); err != nil {
			t.Fatal(err)
		}
		if rec.Seq == 380 {
			break // the second report has begun: the first is finished
		}
	}
	if held, ok := p.stream.HeldFrom(); !ok || held != 339 {
		t.Fatalf("held from %d (%v), want the first report (339) waiting", held, ok)
	}
	if p.safe >= 339 || len(sink.events) != 0 {
		t.Fatalf("checkpoint at %d with %d events, want before 339 and none", p.safe, len(sink.events))
	}
	if err := p.end(ctx); err != nil {
		t.Fatal(err)
	}
	if p.safe < 380 || len(sink.events) != 1 {
		t.Fatalf("after the end: checkpoint at %d with %d events, want at least 380 and 1 (the second report was cut short)", p.safe, len(sink.events))
	}
}

// observingEnricher records what the pipeline shows an Observer.
type observingEnricher struct{ seen []string }

func (o *observingEnricher) Enrich(context.Context, *analysis.Event) {}
func (o *observingEnricher) Observe(msg []byte)                      { o.seen = append(o.seen, string(msg)) }

// TestPipelineObservesReportRecords checks what an Observer is shown:
// every record of a report, from its first line, and no ordinary record
// (one the Assembler skips) read while no report is open; and that every record is counted and the
// checkpoint reaches the last one.
func TestPipelineObservesReportRecords(t *testing.T) {
	items := records(t, "../analysis/testdata/debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg")
	var first []devkmsg.Item
	for _, it := range items {
		if it.Record.Seq <= 410 {
			first = append(first, it)
		}
	}
	obs := &observingEnricher{}
	check := &fakeCheck{}
	n := 0
	sink := runPipeline(t, PipelineConfig{Proc: fakeProc(t, "5.0", nil), Check: check, Enricher: obs,
		Records: func(k int) { n += k }}, first)
	if len(sink.events) != 1 || n != len(first) {
		t.Fatalf("%d events, %d records counted of %d", len(sink.events), n, len(first))
	}
	seen := map[string]bool{}
	for _, m := range obs.seen {
		seen[m] = true
	}
	var observed, before int
	for _, it := range first {
		msg := string(it.Record.Message)
		switch {
		case it.Record.Seq >= 359 && it.Record.Seq <= 410:
			// The report: its trigger line (seq 359) to the end.
			if !seen[msg] {
				t.Errorf("report record %d not observed: %q", it.Record.Seq, msg)
			}
			observed++
		case oom.NewAssembler(oom.Options{}, nil).Skip(&it.Record):
			// Outside the report, what the Assembler skips.
			if seen[msg] {
				t.Errorf("ordinary record %d observed: %q", it.Record.Seq, msg)
			}
			before++
		}
	}
	if observed == 0 || before == 0 {
		t.Fatalf("%d report records, %d others", observed, before)
	}
	if len(check.saved) == 0 || check.saved[len(check.saved)-1] != 410 {
		t.Fatalf("checkpoint saves %v, want the last at 410", check.saved)
	}
}

// TestPipelineQuiet: Quiet is called once the start's backlog is handled
// and once after each report, when the pipeline goes idle; ordinary
// records do not call it.
func TestPipelineQuiet(t *testing.T) {
	items := records(t, "../analysis/testdata/debian-6.1-kmsg-v2-systemd-global-besteffort-victim.kmsg")
	var ordinary, report []devkmsg.Item
	for _, it := range items {
		if it.Record.Seq <= 410 && it.Record.Seq >= 359 {
			report = append(report, it)
		} else if it.Record.Seq < 359 {
			ordinary = append(ordinary, it)
		}
	}
	if len(ordinary) == 0 || len(report) == 0 {
		t.Fatalf("%d ordinary records, %d of the report", len(ordinary), len(report))
	}
	quiet := make(chan struct{}, 10)
	sink := &fakeSink{}
	p := NewPipeline(PipelineConfig{Node: "n", BootID: "b", Sink: sink, Check: &fakeCheck{}, Proc: fakeProc(t, "5.0", nil),
		Idle: 5 * time.Millisecond, CheckpointEvery: 5 * time.Millisecond, Quiet: func() { quiet <- struct{}{} }},
		logrus.NewEntry(logrus.New()))
	ch := make(chan devkmsg.Item)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx, ch) }()
	calls := func(want int, within time.Duration) {
		t.Helper()
		got := 0
		deadline := time.After(within)
		for {
			select {
			case <-quiet:
				got++
				if got > want {
					t.Fatalf("Quiet called %d times, want %d", got, want)
				}
			case <-deadline:
				if got != want {
					t.Fatalf("Quiet called %d times, want %d", got, want)
				}
				return
			}
		}
	}
	calls(1, 300*time.Millisecond) // the start
	for _, it := range ordinary {
		ch <- it
	}
	calls(0, 300*time.Millisecond)
	for _, it := range report {
		ch <- it
	}
	calls(1, 500*time.Millisecond)
	close(ch)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if len(sink.events) != 1 {
		t.Fatalf("%d events, want the report's 1", len(sink.events))
	}
}

// TestPipelineLookupReadsCgroupProcs: the tasks of a recent report are
// placed from the cgroup.procs files of the report's limited cgroup (of
// the whole hierarchy for a node-wide report); /proc knows only one of
// them, which confirms the mount is the hierarchy /proc names.
func TestPipelineLookupReadsCgroupProcs(t *testing.T) {
	const (
		pod    = "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-poda.slice"
		ctr1   = pod + "/cri-containerd-1.scope"
		ctr2   = pod + "/cri-containerd-2.scope"
		other  = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podb.slice/cri-containerd-3.scope"
		system = "/system.slice/sshd.service"
	)
	fs := fakeProc(t, "5.0", map[int]string{1000: ctr1})
	fs.CgroupRoot = t.TempDir()
	// The agent runs in the fake /proc's PID namespace (hostPID).
	if err := os.Symlink(strconv.Itoa(os.Getpid()), filepath.Join(fs.Root, "self")); err != nil {
		t.Fatal(err)
	}
	where := map[int]string{}
	write := func(p, s string) {
		t.Helper()
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(fs.CgroupRoot, "cgroup.controllers"), "cpu io memory pids\n")
	pid := 1000
	for _, cg := range []string{ctr1, ctr2, other, system} {
		var procs strings.Builder
		for range 40 {
			where[pid] = cg
			procs.WriteString(strconv.Itoa(pid) + "\n")
			pid++
		}
		write(filepath.Join(fs.CgroupRoot, cg, "cgroup.procs"), procs.String())
	}
	// In the order of the dump: the first is checked against /proc.
	all := slices.Sorted(maps.Keys(where))
	limit := &oom.Report{HasMono: true, Mono: 4 * time.Second,
		Summary: &oom.Summary{Constraint: "CONSTRAINT_MEMCG", OOMMemcg: pod}}
	node := &oom.Report{HasMono: true, Mono: 4 * time.Second,
		Summary: &oom.Summary{Constraint: "CONSTRAINT_NONE"}}
	tests := []struct {
		name string
		r    *oom.Report
		want func(cg string) bool
	}{
		// Only the limited pod's tasks are in its dump, and read.
		{"limit", limit, func(cg string) bool { return strings.HasPrefix(cg, pod+"/") }},
		{"node-wide", node, func(string) bool { return true }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPipeline(PipelineConfig{Node: "n", BootID: "b", Sink: &fakeSink{}, Proc: fs}, logrus.NewEntry(logrus.New()))
			got := p.lookup(tt.r, all)
			n := 0
			for pid, cg := range where {
				if !tt.want(cg) {
					continue
				}
				n++
				if got[pid] != cg {
					t.Errorf("pid %d in %q, want %q", pid, got[pid], cg)
				}
			}
			if len(got) != n {
				t.Errorf("%d PIDs placed, want %d", len(got), n)
			}
		})
	}
}

// TestTaskSeenLooksUpRecentTasksOnly checks the look-ups made as a dump's
// rows are read: every large task of a recent report, whatever uptime
// the last row read; none of an old report's.
func TestTaskSeenLooksUpRecentTasksOnly(t *testing.T) {
	cgroups := map[int]string{101: "/system.slice/a.service", 102: "/system.slice/b.service", 103: "/system.slice/c.service"}
	for _, tc := range []struct {
		uptime string
		want   int
	}{{"5.0", 3}, {"3600.0", 0}} {
		p := NewPipeline(PipelineConfig{Sink: &fakeSink{}, Proc: fakeProc(t, tc.uptime, cgroups)}, logrus.NewEntry(logrus.New()))
		p.lastMono = 3 * time.Second
		for pid := 101; pid <= 103; pid++ {
			p.taskSeen(pid, lookupMinPages)
		}
		if len(p.seen) != tc.want {
			t.Errorf("uptime %s: looked up %v, want %d tasks", tc.uptime, p.seen, tc.want)
		}
		for pid, cg := range p.seen {
			if cg != cgroups[pid] {
				t.Errorf("uptime %s: pid %d in %q, want %q", tc.uptime, pid, cg, cgroups[pid])
			}
		}
	}
}

// TestReportsEndOnNoTaskRow: the read time of a report's last record is
// kept only for records that are not task dump rows (taskRow), so no
// report of the fixture kernel logs may end on one.
func TestReportsEndOnNoTaskRow(t *testing.T) {
	logs := kernlogtest.Records(t)
	reports, rows := 0, 0
	for name, recs := range logs {
		msgs := map[int64]string{}
		var ends []int64
		a := oom.NewAssembler(oom.Options{}, func(r *oom.Report) { ends = append(ends, r.EndSeq) })
		for i := range recs {
			r := &recs[i]
			msgs[r.Seq] = string(r.Message)
			if taskRow(r.Message) {
				rows++
			}
			a.Feed(r)
		}
		a.Flush()
		for _, seq := range ends {
			reports++
			if m := msgs[seq]; taskRow([]byte(m)) {
				t.Errorf("%s: a report ends on task row %d %q", name, seq, m)
			}
		}
	}
	if reports < 10 || rows < 40 {
		t.Fatalf("%d reports and %d task rows in %d logs: the fixtures are not read", reports, rows, len(logs))
	}
}
