package agent

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/euank/go-kmsg-parser/kmsgparser"
	"github.com/sirupsen/logrus"

	"github.com/oomwatch/oomwatch/pkg/devkmsg"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// ordinaryLines are kernel messages of the kinds a busy node prints, none
// of them part of an OOM report, as kmsgparser delivers them (with the
// trailing newline, some with dictionary lines).
var ordinaryLines = []string{
	"cni0: port 12(veth3f2a9c1d) entered blocking state\n SUBSYSTEM=net\n DEVICE=n12\n",
	"device veth3f2a9c1d entered promiscuous mode\n",
	`audit: type=1400 audit(1700123456.123:4567): apparmor="DENIED" operation="open" class="file" profile="cri-containerd.apparmor.d" name="/proc/123/mounts" pid=4567 comm="runc" requested_mask="r" denied_mask="r" fsuid=0 ouid=0` + "\n",
	"audit: type=1334 audit(1700123456.123:4567): prog-id=1234 op=LOAD\n",
	"EXT4-fs (nvme0n1p1): mounted filesystem 1234abcd-12ab-34cd-56ef-1234567890ab with ordered data mode. Quota mode: none.\n",
	"usb 1-2: new high-speed USB device number 7 using xhci_hcd\n",
	"IPv6: ADDRCONF(NETDEV_CHANGE): veth3f2a9c1d: link becomes ready\n",
	"eth0: renamed from tmp01234\n",
}

// BenchmarkRunReaderOrdinary measures what RunReader does for one ordinary
// record after kmsgparser's channel, in one goroutine: the lock, Take and
// the pipeline's bookkeeping. It is the part of the live path that
// oomwatch owns (bench/ measures the whole path against cAdvisor's).
func BenchmarkRunReaderOrdinary(b *testing.B) {
	boot, r := benchReader(b)
	ctx := context.Background()
	var n int64
	p := NewPipeline(PipelineConfig{Node: "node-a", BootID: "boot-1", Sink: &fakeSink{}, Check: &fakeCheck{},
		Proc: fakeProc(b, "5.0", nil), Records: func(k int) { n += int64(k) }}, logrus.NewEntry(logrus.New()))
	msgs := make([]kmsgparser.Message, 1024)
	for i := range msgs {
		msgs[i] = kmsgparser.Message{Priority: 6, Message: ordinaryLines[i%len(ordinaryLines)]}
	}
	p.mu.Lock()
	p.tick = time.NewTicker(time.Hour)
	p.mu.Unlock()
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := msgs[i%len(msgs)]
		m.SequenceNumber = i
		m.Timestamp = boot.Add(time.Duration(i) * time.Microsecond)
		p.mu.Lock()
		gap, rec, err := r.Take(ctx, m, true)
		if err == nil {
			err = p.take(ctx, gap, rec, 0)
		}
		p.mu.Unlock()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// benchReader returns a devkmsg.Reader over no kernel log, open until the
// benchmark ends, and its boot time: records are handed to its Take. The
// boot time is made as kmsgparser makes its own, time.Now() less whole
// seconds, so that it and the timestamps made from it carry Go's monotonic
// reading as kmsgparser's do: Take's arithmetic on them then costs what
// it costs on a node (a boot time without one, e.g. truncated to the
// second, made Take ~10 ns slower per record here than in the agent).
func benchReader(b *testing.B) (time.Time, *devkmsg.Reader) {
	boot := time.Now().Add(-time.Hour)
	parser := &itemParser{boot: boot, closed: make(chan struct{})}
	src := devkmsg.New(logrus.NewEntry(logrus.New()), devkmsg.Options{
		After:     -1,
		BootTime:  boot,
		NewParser: func() (kmsgparser.Parser, error) { return parser, nil },
		Oldest:    func() (int64, int64, error) { return 0, 0, nil },
		Newest:    func() (int64, error) { return -1, nil },
	})
	r, err := src.Open(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close() })
	return boot, r
}

// nodeReportMessages returns a 6.1 node-level OOM report whose task dump
// has tasks rows, between ordinary records, as kmsgparser delivers them
// (the bench module's "node report, 10k tasks" input): the victim is a
// BestEffort container's task, the other tasks' cgroups are not printed.
func nodeReportMessages(tasks int) []kmsgparser.Message {
	rng := rand.New(rand.NewPCG(2, 0x6f6f6d77))
	var out []kmsgparser.Message
	add := func(prio int, msg string) {
		out = append(out, kmsgparser.Message{Priority: prio, Message: msg + "\n"})
	}
	noise := func(n int) {
		for range n {
			out = append(out, kmsgparser.Message{Priority: 6, Message: ordinaryLines[rng.IntN(len(ordinaryLines))]})
		}
	}
	comms := [...]string{"java", "python3", "node", "nginx", "envoy", "postgres", "redis-server", "ruby", "php-fpm", "dotnet"}
	cg := "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0f1e2d3c_4b5a_4968_a7b6_c5d4e3f2a1b0.slice/cri-containerd-e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff.scope"
	pid, victim, comm := 20000, 20017, "python3"
	noise(10)
	add(4, "java invoked oom-killer: gfp_mask=0x140dca(GFP_HIGHUSER_MOVABLE|__GFP_COMP|__GFP_ZERO), order=0, oom_score_adj=-997")
	add(4, "CPU: 3 PID: 20005 Comm: java Not tainted 6.1.0-56-cloud-amd64 #1  Debian 6.1.192-2")
	for _, l := range []string{"Call Trace:", " <TASK>", " dump_stack_lvl+0x44/0x5c", " dump_header+0x4c/0x22b",
		" out_of_memory+0x1fd/0x4c0", " __alloc_pages+0x305/0x330", " </TASK>", "Mem-Info:",
		`active_anon:467 inactive_anon:48470 isolated_anon:0\x0a active_file:0 inactive_file:0 isolated_file:0`,
		"Node 0 hugepages_total=0 hugepages_free=0 hugepages_surp=0 hugepages_size=2048kB",
		"674 total pagecache pages", "65406 pages RAM", "9812 pages reserved",
		"Tasks state (memory values in pages):",
		"[  pid  ]   uid  tgid total_vm      rss pgtables_bytes swapents oom_score_adj name"} {
		add(4, l)
	}
	at := rng.IntN(tasks)
	for i := range tasks {
		pid += 1 + rng.IntN(50)
		p, c, rss, adj := pid, comms[rng.IntN(len(comms))], 100+rng.IntN(3000), -997+rng.IntN(1997)
		if i == at {
			p, c, rss, adj = victim, comm, 6220, 1000
		}
		add(6, fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %13d %s", p, 0, p, rss+195, rss, 61440+rng.IntN(40000), 0, adj, c))
	}
	add(6, fmt.Sprintf("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=%s,task=%s,pid=%d,uid=0", cg, comm, victim))
	add(3, fmt.Sprintf("Out of memory: Killed process %d (%s) total-vm:25660kB, anon-rss:24228kB, file-rss:4kB, shmem-rss:648kB, UID:0 pgtables:84kB oom_score_adj:1000", victim, comm))
	add(6, fmt.Sprintf("oom_reaper: reaped process %d (%s), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", victim, comm))
	noise(40)
	return out
}

// BenchmarkRunReaderNodeReport10k measures what RunReader does after
// kmsgparser's channel for a node-level report of 10,000 tasks between a
// few ordinary records, in one goroutine: Take, the Assembler, judging the
// report and spooling its event (the report is read from the backlog, as
// in the bench's live row: no task is looked up in /proc). allocs/record
// is the pipeline's own, kmsgparser's not included.
func BenchmarkRunReaderNodeReport10k(b *testing.B) {
	msgs := nodeReportMessages(10000)
	boot, r := benchReader(b)
	ctx := context.Background()
	logger := logrus.New()
	logger.SetOutput(io.Discard)
	sink := &firstSink{}
	p := NewPipeline(PipelineConfig{Node: "node-a", BootID: "boot-1", Sink: sink, Check: &fakeCheck{},
		Proc: fakeProc(b, "1000000000.00", nil), Records: func(int) {}}, logrus.NewEntry(logger))
	p.mu.Lock()
	p.tick = time.NewTicker(time.Hour)
	p.mu.Unlock()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	seq := 0
	for i := 0; i < b.N; i++ {
		// Each pass two minutes after the last: a report of its own, out
		// of the last one's incident.
		start := time.Duration(i) * 2 * time.Minute
		p.mu.Lock()
		for k, m := range msgs {
			m.SequenceNumber = seq
			m.Timestamp = boot.Add(start + time.Duration(k)*100*time.Microsecond)
			seq++
			gap, rec, err := r.Take(ctx, m, true)
			if err == nil {
				err = p.take(ctx, gap, rec, 0)
			}
			if err != nil {
				b.Fatal(err)
			}
		}
		if err := p.end(ctx); err != nil {
			b.Fatal(err)
		}
		p.mu.Unlock()
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	records := float64(b.N * len(msgs))
	b.ReportMetric(float64(len(msgs)), "records/op")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/records, "allocs/record")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/records, "ns/record")
	if sink.n != b.N {
		b.Fatalf("%d events for %d reports", sink.n, b.N)
	}
	if v := sink.first.GetOom().GetVictims()[0]; v.GetPid() != 20017 || v.GetWorkload().GetCgroup() == "" {
		b.Fatalf("victim %v", v)
	}
}

// firstSink counts the events put and keeps the first.
type firstSink struct {
	n     int
	first *pb.Event
}

func (s *firstSink) Put(_ context.Context, evs ...*pb.Event) error {
	if s.n == 0 && len(evs) > 0 {
		s.first = evs[0]
	}
	s.n += len(evs)
	return nil
}
