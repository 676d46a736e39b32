package store

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// benchEvent is a realistic OOM kill in a cluster of 100 nodes, 50
// namespaces and 5,000 pods, with 20 kernel lines: four in five are
// container limit kills (victim, trigger, culprit and top consumers in one
// container), one in five node kills whose top consumers are five pods.
func benchEvent(r *rand.Rand, seq int64, at time.Time) *pb.Event {
	p := func(pod int) *pb.Process {
		return proc(int32(r.IntN(1<<20)), "java", "ns-"+strconv.Itoa(pod%50), "pod-"+strconv.Itoa(pod), "app-"+strconv.Itoa(pod%7), r.Int64N(1<<33))
	}
	lines := make([]string, 20)
	for i := range lines {
		lines[i] = fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %5d java", i, r.IntN(1<<16), r.IntN(1000), r.IntN(1<<20), r.IntN(1<<20), r.IntN(1<<20), r.IntN(1<<20), r.IntN(1000))
	}
	pod := r.IntN(5000)
	v := p(pod)
	kind := "limit"
	if r.IntN(5) == 0 {
		kind = "node"
	}
	k := &pb.OOMKill{Kind: kind, Complete: true, Victims: []*pb.Process{v}, Trigger: p(pod), Collateral: r.IntN(5) == 0,
		Culprit: &pb.Culprit{Pid: v.Pid, Comm: v.Comm, RssBytes: v.RssBytes, Tasks: 3, Source: "task-dump", Workload: v.Workload},
		Lines:   lines}
	for range 5 {
		if kind == "node" {
			k.TopConsumers = append(k.TopConsumers, p(r.IntN(5000)))
		} else {
			k.TopConsumers = append(k.TopConsumers, p(pod))
		}
	}
	return &pb.Event{Node: "node-" + strconv.Itoa(r.IntN(100)), BootId: boot, Seq: seq, Time: timestamppb.New(at), Payload: &pb.Event_Oom{Oom: k}}
}

// BenchmarkPut stores batches of 1,000 events, as the server's group
// commit does under load: "small" are limit kills like the agent's
// smallest reports (one workload, one kernel line), "mixed" are benchEvent.
func BenchmarkPut(b *testing.B) {
	for _, shape := range []string{"small", "mixed"} {
		b.Run(shape, func(b *testing.B) {
			s, _ := open(b)
			r := rand.New(rand.NewPCG(1, 2))
			var n int64
			cpu0 := cpuTime()
			for b.Loop() {
				b.StopTimer()
				evs := make([]*pb.Event, 1000)
				for i := range evs {
					at := t0.Add(time.Duration(n) * time.Millisecond)
					if shape == "small" {
						pod := strconv.Itoa(r.IntN(5000))
						evs[i] = oom("node-"+strconv.Itoa(r.IntN(100)), n, at.Sub(t0), "limit", "ns-"+pod[:1], "pod-"+pod, "api")
					} else {
						evs[i] = benchEvent(r, n, at)
					}
					n++
				}
				b.StartTimer()
				if _, err := s.Put(context.Background(), evs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
			// CPU per event, less sensitive than wall time to a busy machine
			// (includes building the events).
			b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/float64(n), "cpu-µs/event")
		})
	}
}

// BenchmarkListByNamespace lists one namespace's newest page in the last
// day of a large store. OOMWATCH_BENCH_EVENTS sets its size (default
// 100,000; 1000000 for a store the size of BENCHMARKS.md's query
// figures), spread over 30 days.
func BenchmarkListByNamespace(b *testing.B) {
	size := 100_000
	if v := os.Getenv("OOMWATCH_BENCH_EVENTS"); v != "" {
		var err error
		if size, err = strconv.Atoi(v); err != nil {
			b.Fatal(err)
		}
	}
	s, _ := open(b)
	r := rand.New(rand.NewPCG(3, 4))
	span := 30 * 24 * time.Hour
	start := time.Now()
	for lo := 0; lo < size; lo += 5000 {
		evs := make([]*pb.Event, 0, 5000)
		for i := lo; i < min(lo+5000, size); i++ {
			evs = append(evs, benchEvent(r, int64(i), t0.Add(time.Duration(r.Int64N(int64(span))))))
		}
		if _, err := s.Put(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("stored %d events in %v", size, time.Since(start).Round(time.Millisecond))
	since := timestamppb.New(t0.Add(span - 24*time.Hour))
	var lat []time.Duration
	var listed int
	b.ResetTimer()
	for b.Loop() {
		f := &pb.EventFilter{Namespace: "ns-" + strconv.Itoa(r.IntN(50)), Since: since}
		t := time.Now()
		evs, _, err := s.List(context.Background(), f, 100, "")
		lat = append(lat, time.Since(t))
		if err != nil {
			b.Fatal(err)
		}
		listed += len(evs)
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(listed)/float64(len(lat)), "events/page")
}

// cpuTime is the process's user and system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkListOpenWarnings lists what is open now (the first page, as
// oomctl warnings and the At risk page ask) in a store of 100,000
// warnings, 200 of them open, their openings spread over a week.
func BenchmarkListOpenWarnings(b *testing.B) {
	s, _ := open(b)
	now := time.Now()
	r := rand.New(rand.NewPCG(1, 2))
	var evs []*pb.Event
	for i := range 100_000 {
		since := now.Add(-time.Duration(r.Int64N(int64(7 * 24 * time.Hour))))
		pod := "pod-" + strconv.Itoa(r.IntN(5000))
		at := since
		if at.Before(now.Add(-time.Minute)) {
			at = now.Add(-time.Minute)
		}
		evs = append(evs, warning(int64(i+1), pb.WarningKind(1+r.IntN(5)), "ns-"+strconv.Itoa(r.IntN(50)), pod, "app",
			since, at, 0, i >= 200))
		if len(evs) == 1000 {
			put(b, s, evs...)
			evs = evs[:0]
		}
	}
	f := &pb.EventFilter{OpenWarningsOnly: true}
	for b.Loop() {
		got, _, err := s.List(context.Background(), f, 100, "")
		if err != nil || len(got) != 100 {
			b.Fatalf("%d, %v", len(got), err)
		}
	}
}

// BenchmarkPutCommits is the store's share of the aggregator's ingest
// (bench's -hooks ingest): commits of 8,000 kills from 1,000 nodes of 8
// pods each, in the order they arrived, into a store that already holds
// OOMWATCH_BENCH_PREFILL events (default 100,000). The events are encoded
// before the timer runs; cpu-µs/event is the process's CPU (the background
// checkpoint included), written-B/event what it wrote to the disk.
func BenchmarkPutCommits(b *testing.B) {
	const nodes, podsPerNode, perCommit = 1000, 8, 8000
	prefill := 100_000
	if v, err := strconv.Atoi(os.Getenv("OOMWATCH_BENCH_PREFILL")); err == nil {
		prefill = v
	}
	s, _ := open(b)
	r := rand.New(rand.NewPCG(3, 4))
	seqs := make([]int64, nodes)
	at := time.Now().Add(-time.Hour)
	lines := make([]string, 48)
	for i := range lines {
		lines[i] = fmt.Sprintf("[%7d] %5d %5d %8d %8d %8d %8d %5d java", i, r.IntN(1<<16), r.IntN(1000), r.IntN(1<<20), r.IntN(1<<20), r.IntN(1<<20), r.IntN(1<<20), r.IntN(1000))
	}
	batch := func() []*Record {
		recs := make([]*Record, perCommit)
		for i := range recs {
			node := r.IntN(nodes)
			seqs[node]++
			at = at.Add(50 * time.Microsecond)
			pod := func() string { return "web-" + strconv.Itoa(node) + "-" + strconv.Itoa(r.IntN(podsPerNode)) }
			p := func(pod string) *pb.Process {
				return proc(int32(r.IntN(1<<22)), "java", "ns-"+strconv.Itoa(node%50), pod, "app", r.Int64N(1<<33))
			}
			v := p(pod())
			k := &pb.OOMKill{Kind: "limit", Complete: true, Victims: []*pb.Process{v}, Trigger: v, Lines: lines,
				Culprit: &pb.Culprit{Pid: v.Pid, Comm: v.Comm, RssBytes: v.RssBytes, Tasks: 3, Source: "task-dump", Workload: v.Workload}}
			if r.IntN(5) == 0 {
				k.Kind = "node"
				for range 3 {
					k.TopConsumers = append(k.TopConsumers, p(pod()))
				}
			}
			e := &pb.Event{Node: fmt.Sprintf("ip-10-0-%d-%d.ec2.internal", node/250, node%250), BootId: boot, Seq: seqs[node],
				Time: timestamppb.New(at), Payload: &pb.Event_Oom{Oom: k}}
			rec, err := Encode(e, at)
			if err != nil {
				b.Fatal(err)
			}
			recs[i] = rec
		}
		return recs
	}
	ctx := context.Background()
	for range prefill / perCommit {
		if _, err := s.PutRecords(ctx, batch()); err != nil {
			b.Fatal(err)
		}
	}
	var n int64
	var cpu time.Duration
	w0 := writtenBytes()
	for b.Loop() {
		b.StopTimer()
		recs := batch()
		b.StartTimer()
		c0 := cpuTime()
		if _, err := s.PutRecords(ctx, recs); err != nil {
			b.Fatal(err)
		}
		cpu += cpuTime() - c0
		n += perCommit
	}
	b.ReportMetric(float64(cpu.Microseconds())/float64(n), "cpu-µs/event")
	if w := writtenBytes(); w0 >= 0 && w >= 0 {
		b.ReportMetric(float64(w-w0)/float64(n), "written-B/event")
	}
}

// writtenBytes is what this process has written to storage (-1 if not
// known).
func writtenBytes() int64 {
	data, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "write_bytes: "); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}
