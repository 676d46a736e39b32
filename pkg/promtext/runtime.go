package promtext

import (
	"bytes"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// help is the HELP text of each standard metric, as client_golang v1.25
// words it: dashboards and alerts show it.
var help = map[string]string{
	"go_gc_duration_seconds":               "A summary of the wall-time pause (stop-the-world) duration in garbage collection cycles.",
	"go_gc_gogc_percent":                   "Heap size target percentage configured by the user, otherwise 100. This value is set by the GOGC environment variable, and the runtime/debug.SetGCPercent function. Sourced from /gc/gogc:percent.",
	"go_gc_gomemlimit_bytes":               "Go runtime memory limit configured by the user, otherwise math.MaxInt64. This value is set by the GOMEMLIMIT environment variable, and the runtime/debug.SetMemoryLimit function. Sourced from /gc/gomemlimit:bytes.",
	"go_goroutines":                        "Number of goroutines that currently exist.",
	"go_info":                              "Information about the Go environment.",
	"go_memstats_alloc_bytes":              "Number of bytes allocated in heap and currently in use. Equals to /memory/classes/heap/objects:bytes.",
	"go_memstats_alloc_bytes_total":        "Total number of bytes allocated in heap until now, even if released already. Equals to /gc/heap/allocs:bytes.",
	"go_memstats_buck_hash_sys_bytes":      "Number of bytes used by the profiling bucket hash table. Equals to /memory/classes/profiling/buckets:bytes.",
	"go_memstats_frees_total":              "Total number of heap objects frees. Equals to /gc/heap/frees:objects + /gc/heap/tiny/allocs:objects.",
	"go_memstats_gc_sys_bytes":             "Number of bytes used for garbage collection system metadata. Equals to /memory/classes/metadata/other:bytes.",
	"go_memstats_heap_alloc_bytes":         "Number of heap bytes allocated and currently in use, same as go_memstats_alloc_bytes. Equals to /memory/classes/heap/objects:bytes.",
	"go_memstats_heap_idle_bytes":          "Number of heap bytes waiting to be used. Equals to /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.",
	"go_memstats_heap_inuse_bytes":         "Number of heap bytes that are in use. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes",
	"go_memstats_heap_objects":             "Number of currently allocated objects. Equals to /gc/heap/objects:objects.",
	"go_memstats_heap_released_bytes":      "Number of heap bytes released to OS. Equals to /memory/classes/heap/released:bytes.",
	"go_memstats_heap_sys_bytes":           "Number of heap bytes obtained from system. Equals to /memory/classes/heap/objects:bytes + /memory/classes/heap/unused:bytes + /memory/classes/heap/released:bytes + /memory/classes/heap/free:bytes.",
	"go_memstats_last_gc_time_seconds":     "Number of seconds since 1970 of last garbage collection.",
	"go_memstats_mallocs_total":            "Total number of heap objects allocated, both live and gc-ed. Semantically a counter version for go_memstats_heap_objects gauge. Equals to /gc/heap/allocs:objects + /gc/heap/tiny/allocs:objects.",
	"go_memstats_mcache_inuse_bytes":       "Number of bytes in use by mcache structures. Equals to /memory/classes/metadata/mcache/inuse:bytes.",
	"go_memstats_mcache_sys_bytes":         "Number of bytes used for mcache structures obtained from system. Equals to /memory/classes/metadata/mcache/inuse:bytes + /memory/classes/metadata/mcache/free:bytes.",
	"go_memstats_mspan_inuse_bytes":        "Number of bytes in use by mspan structures. Equals to /memory/classes/metadata/mspan/inuse:bytes.",
	"go_memstats_mspan_sys_bytes":          "Number of bytes used for mspan structures obtained from system. Equals to /memory/classes/metadata/mspan/inuse:bytes + /memory/classes/metadata/mspan/free:bytes.",
	"go_memstats_next_gc_bytes":            "Number of heap bytes when next garbage collection will take place. Equals to /gc/heap/goal:bytes.",
	"go_memstats_other_sys_bytes":          "Number of bytes used for other system allocations. Equals to /memory/classes/other:bytes.",
	"go_memstats_stack_inuse_bytes":        "Number of bytes obtained from system for stack allocator in non-CGO environments. Equals to /memory/classes/heap/stacks:bytes.",
	"go_memstats_stack_sys_bytes":          "Number of bytes obtained from system for stack allocator. Equals to /memory/classes/heap/stacks:bytes + /memory/classes/os-stacks:bytes.",
	"go_memstats_sys_bytes":                "Number of bytes obtained from system. Equals to /memory/classes/total:byte.",
	"go_sched_gomaxprocs_threads":          "The current runtime.GOMAXPROCS setting, or the number of operating system threads that can execute user-level Go code simultaneously. Sourced from /sched/gomaxprocs:threads.",
	"go_threads":                           "Number of OS threads created.",
	"process_cpu_seconds_total":            "Total user and system CPU time spent in seconds.",
	"process_max_fds":                      "Maximum number of open file descriptors.",
	"process_network_receive_bytes_total":  "Number of bytes received by the process over the network.",
	"process_network_transmit_bytes_total": "Number of bytes sent by the process over the network.",
	"process_open_fds":                     "Number of open file descriptors.",
	"process_resident_memory_bytes":        "Resident memory size in bytes.",
	"process_start_time_seconds":           "Start time of the process since unix epoch in seconds.",
	"process_virtual_memory_bytes":         "Virtual memory size in bytes.",
	"process_virtual_memory_max_bytes":     "Maximum amount of virtual memory available in bytes.",
}

// gauge and counter make a family of one sample without labels.
func gauge(name string, v float64) Family {
	return Family{Name: name, Help: help[name], Type: TypeGauge, Samples: []Sample{{Value: v}}}
}

func counter(name string, v float64) Family {
	return Family{Name: name, Help: help[name], Type: TypeCounter, Samples: []Sample{{Value: v}}}
}

// GoCollector returns the Go runtime's metrics, the go_* families of
// client_golang's Go collector in its default configuration.
func GoCollector() Collector {
	samples := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}, {Name: "/sched/gomaxprocs:threads"}}
	return func() []Family {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		s := append([]metrics.Sample(nil), samples...)
		metrics.Read(s)
		num := func(i int) float64 {
			if s[i].Value.Kind() == metrics.KindUint64 {
				return float64(s[i].Value.Uint64())
			}
			return 0
		}
		gc := debug.GCStats{PauseQuantiles: make([]time.Duration, 5)}
		debug.ReadGCStats(&gc)
		threads, _ := runtime.ThreadCreateProfile(nil)
		var pause []Sample
		for i, q := range []string{"0", "0.25", "0.5", "0.75", "1"} {
			pause = append(pause, Sample{Labels: []Label{{"quantile", q}}, Value: gc.PauseQuantiles[i].Seconds()})
		}
		pause = append(pause, Sample{Suffix: "_sum", Value: gc.PauseTotal.Seconds()}, Sample{Suffix: "_count", Value: float64(gc.NumGC)})
		return []Family{
			{Name: "go_gc_duration_seconds", Help: help["go_gc_duration_seconds"], Type: TypeSummary, Samples: pause},
			gauge("go_gc_gogc_percent", num(0)),
			gauge("go_gc_gomemlimit_bytes", num(1)),
			gauge("go_goroutines", float64(runtime.NumGoroutine())),
			{Name: "go_info", Help: help["go_info"], Type: TypeGauge, Samples: []Sample{{Labels: []Label{{"version", runtime.Version()}}, Value: 1}}},
			gauge("go_memstats_alloc_bytes", float64(ms.Alloc)),
			counter("go_memstats_alloc_bytes_total", float64(ms.TotalAlloc)),
			gauge("go_memstats_buck_hash_sys_bytes", float64(ms.BuckHashSys)),
			counter("go_memstats_frees_total", float64(ms.Frees)),
			gauge("go_memstats_gc_sys_bytes", float64(ms.GCSys)),
			gauge("go_memstats_heap_alloc_bytes", float64(ms.HeapAlloc)),
			gauge("go_memstats_heap_idle_bytes", float64(ms.HeapIdle)),
			gauge("go_memstats_heap_inuse_bytes", float64(ms.HeapInuse)),
			gauge("go_memstats_heap_objects", float64(ms.HeapObjects)),
			gauge("go_memstats_heap_released_bytes", float64(ms.HeapReleased)),
			gauge("go_memstats_heap_sys_bytes", float64(ms.HeapSys)),
			gauge("go_memstats_last_gc_time_seconds", float64(ms.LastGC)/1e9),
			counter("go_memstats_mallocs_total", float64(ms.Mallocs)),
			gauge("go_memstats_mcache_inuse_bytes", float64(ms.MCacheInuse)),
			gauge("go_memstats_mcache_sys_bytes", float64(ms.MCacheSys)),
			gauge("go_memstats_mspan_inuse_bytes", float64(ms.MSpanInuse)),
			gauge("go_memstats_mspan_sys_bytes", float64(ms.MSpanSys)),
			gauge("go_memstats_next_gc_bytes", float64(ms.NextGC)),
			gauge("go_memstats_other_sys_bytes", float64(ms.OtherSys)),
			gauge("go_memstats_stack_inuse_bytes", float64(ms.StackInuse)),
			gauge("go_memstats_stack_sys_bytes", float64(ms.StackSys)),
			gauge("go_memstats_sys_bytes", float64(ms.Sys)),
			gauge("go_sched_gomaxprocs_threads", num(2)),
			gauge("go_threads", float64(threads)),
		}
	}
}

// userHZ is the unit of /proc/PID/stat's CPU times on Linux.
const userHZ = 100

// ProcessCollector returns the process's metrics from procRoot (/proc),
// the process_* families of client_golang's process collector. A figure
// whose file cannot be read is left out.
func ProcessCollector(procRoot string) Collector {
	self := procRoot + "/self"
	return func() []Family {
		var out []Family
		if b, err := os.ReadFile(self + "/stat"); err == nil {
			if st, err := parseStat(b); err == nil {
				out = append(out, counter("process_cpu_seconds_total", float64(st.utime+st.stime)/userHZ),
					gauge("process_resident_memory_bytes", float64(st.rss*int64(os.Getpagesize()))),
					gauge("process_virtual_memory_bytes", float64(st.vsize)))
				if btime, err := bootTime(procRoot); err == nil {
					out = append(out, gauge("process_start_time_seconds", float64(btime)+float64(st.start)/userHZ))
				}
			}
		}
		if b, err := os.ReadFile(self + "/limits"); err == nil {
			if v, ok := limit(b, "Max open files"); ok {
				out = append(out, gauge("process_max_fds", v))
			}
			if v, ok := limit(b, "Max address space"); ok {
				out = append(out, gauge("process_virtual_memory_max_bytes", v))
			}
		}
		if fds, err := os.ReadDir(self + "/fd"); err == nil {
			out = append(out, gauge("process_open_fds", float64(len(fds))))
		}
		if b, err := os.ReadFile(self + "/net/netstat"); err == nil {
			if in, outB, ok := ipOctets(b); ok {
				out = append(out, counter("process_network_receive_bytes_total", in),
					counter("process_network_transmit_bytes_total", outB))
			}
		}
		return out
	}
}

// stat holds the fields of /proc/PID/stat the collector uses.
type stat struct {
	utime, stime, start, vsize, rss int64
}

// parseStat reads /proc/PID/stat: the fields after the command's closing
// parenthesis (the command may hold spaces and parentheses).
func parseStat(b []byte) (stat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return stat{}, fmt.Errorf("stat: no command")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is the state (field 3); utime is field 14, stime 15, starttime
	// 22, vsize 23, rss 24.
	if len(f) < 22 {
		return stat{}, fmt.Errorf("stat: %d fields", len(f)+2)
	}
	var st stat
	for _, p := range []struct {
		dst   *int64
		field int
	}{{&st.utime, 14}, {&st.stime, 15}, {&st.start, 22}, {&st.vsize, 23}, {&st.rss, 24}} {
		v, err := strconv.ParseInt(f[p.field-3], 10, 64)
		if err != nil {
			return stat{}, fmt.Errorf("stat field %d: %w", p.field, err)
		}
		*p.dst = v
	}
	return st, nil
}

// bootTime reads the boot time (btime, seconds since the epoch) from
// /proc/stat.
func bootTime(procRoot string) (int64, error) {
	b, err := os.ReadFile(procRoot + "/stat")
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "btime "); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/stat: no btime")
}

// limit reads a soft limit from /proc/PID/limits; unlimited is the
// largest uint64, as client_golang writes it.
func limit(b []byte, name string) (float64, bool) {
	for _, l := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(l, name)
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return 0, false
		}
		if f[0] == "unlimited" {
			return float64(^uint64(0)), true
		}
		v, err := strconv.ParseUint(f[0], 10, 64)
		return float64(v), err == nil
	}
	return 0, false
}

// ipOctets reads InOctets and OutOctets from the IpExt lines of
// /proc/PID/net/netstat: a header line of names, then one of values.
func ipOctets(b []byte) (in, out float64, ok bool) {
	var names []string
	var foundIn, foundOut bool
	for _, l := range strings.Split(string(b), "\n") {
		rest, isExt := strings.CutPrefix(l, "IpExt:")
		if !isExt {
			continue
		}
		f := strings.Fields(rest)
		if names == nil {
			names = f
			continue
		}
		for i, n := range names {
			if i >= len(f) {
				break
			}
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch n {
			case "InOctets":
				in, foundIn = v, true
			case "OutOctets":
				out, foundOut = v, true
			}
		}
		break
	}
	return in, out, foundIn && foundOut
}
