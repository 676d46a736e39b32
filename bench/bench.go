// Package bench measures oomwatch's kernel-record path against its peers,
// cAdvisor's OOM parser (github.com/google/cadvisor/utils/oomparser) and
// node-problem-detector's OOMKilling rule, on the same deterministic inputs,
// in one process, and prints one table: records/s, CPU time, allocations
// and bytes per record, and what each parser could tell about the kills
// (kill found, victim PID, victim cgroup, node-level or limit).
//
// It is its own Go module so that the product does not depend on the
// peers. The Benchmark* functions of bench_test.go run the same
// measurements under `go test -bench`; cmd/benchtable runs them side by side
// with testing.Benchmark and prints the table (see run.sh and
// BENCHMARKS.md at the repository root).
package bench

import (
	"flag"
	"fmt"
	"syscall"
	"testing"
	"time"
)

// Metric units the benchmarks report with b.ReportMetric.
const (
	UnitRecordsPerSec = "records/s"
	UnitRecordsPerOp  = "records/op"
	UnitCPUPerRecord  = "cpu-ns/record"
)

// Benchmark returns a benchmark of p reading in: each op reads the whole
// input. It reports records/s, records/op and CPU ns/record (all threads of
// the process: the peers' reader goroutines and the garbage collector
// included), and stores the last op's output and error in out and errp.
func Benchmark(p Parser, in *Input, out *Output, errp *error) func(b *testing.B) {
	return func(b *testing.B) {
		b.ReportAllocs()
		cpu0 := cpuTime()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			o, err := p.Parse(in)
			if err != nil {
				*errp = err
				b.Fatalf("%s on %s: %v", p.Name(), in.Name, err)
			}
			*out = o
		}
		b.StopTimer()
		cpu := cpuTime() - cpu0
		n := float64(in.Records())
		b.ReportMetric(n*float64(b.N)/b.Elapsed().Seconds(), UnitRecordsPerSec)
		b.ReportMetric(n, UnitRecordsPerOp)
		b.ReportMetric(float64(cpu.Nanoseconds())/(n*float64(b.N)), UnitCPUPerRecord)
	}
}

// cpuTime returns the user and system CPU time the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// SetBenchTime sets how long testing.Benchmark runs each benchmark (the
// -test.benchtime flag, which it reads), registering the testing flags
// first when the program is not a test binary.
func SetBenchTime(d time.Duration) error {
	if flag.Lookup("test.benchtime") == nil {
		testing.Init()
	}
	if err := flag.Set("test.benchtime", d.String()); err != nil {
		return fmt.Errorf("set benchtime: %w", err)
	}
	return nil
}

// Inputs returns the inputs of the comparison: 1M ordinary records, one
// node-level report with 10,000 tasks, and a 1M-record mix with 40 reports;
// short returns small ones that only prove the comparison runs.
func Inputs(short bool) []*Input {
	if short {
		return []*Input{NonOOM(10_000), NodeReport(500), Mix(20_000, 8)}
	}
	return []*Input{NonOOM(1_000_000), NodeReport(10_000), Mix(1_000_000, 40)}
}
