package bench

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/oomwatch/oomwatch/test/containerd"
	"github.com/oomwatch/oomwatch/test/e2e/scenario"
	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

// Footprint settings: how long the agent idles, and the burst's task count.
const (
	FootprintIdle       = 60 * time.Second
	FootprintBurstTasks = 10000
	// userHZ is the unit of /proc/PID/stat's utime and stime on x86.
	userHZ = 100
)

// footprintScript measures the agent in the guest: it starts the
// aggregator (when built) and the agent, lets the agent read the boot log
// and settle, samples /proc/PID/stat (CPU ticks) and /proc/PID/status
// (VmRSS, VmHWM) around FootprintIdle of idling, then starts
// FootprintBurstTasks sleeping tasks in a cgroup, sets its memory.max just
// above their usage and grows a hog there until the kernel kills it: one
// memcg report whose task dump has a row per task. The agent runs in a
// cgroup of its own. Each sample line is "label uptime utime stime rss_kB
// hwm_kB cgroup_current_kB cgroup_peak_kB" (peak 0 before Linux 5.19).
func footprintScript(tasks int, idle time.Duration) string {
	return scenario.Helpers + fmt.Sprintf(`
mkdir -p /tmp/state /tmp/db
if [ -x /bin/aggregator ]; then
	aggregator --listen %[1]s --db /tmp/db/oomwatch.db --insecure >/tmp/aggregator.log 2>&1 &
	# Wait (up to 60 s) until it listens: port 7443 is 1D13 in /proc/net/tcp, state 0A.
	i=0; until grep -q ':1D13 00000000:0000 0A' /proc/net/tcp || [ $i -gt 600 ]; do sleep 0.1; i=$((i+1)); done
fi
# The agent runs in a memory cgroup of its own from its first instruction.
mkcg /bench/agent
sh -c 'echo $$ > '$CG'/bench/agent/cgroup.procs && exec agent "$@"' agent --node-name bench --server %[1]s --insecure --state-dir /tmp/state --no-cri >/tmp/agent.log 2>&1 &
A=$!
sample() { echo "$1 $(cut -d' ' -f1 /proc/uptime) $(cut -d' ' -f14,15 /proc/$A/stat) $(awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} END{print r, h}' /proc/$A/status) $(($(cat $CG/bench/agent/memory.current)/1024)) $(($(cat $CG/bench/agent/memory.peak 2>/dev/null || echo 0)/1024))" >> /tmp/samples; }
sleep 20
sample idle-start
sleep %[2]d
sample idle-end
mkcg /bench/burst
sleepers -n %[3]d -cgroup $CG/bench/burst > /tmp/sleepers.log 2>&1
echo "tasks in the burst cgroup: $(wc -l < $CG/bench/burst/cgroup.procs)" >> /tmp/sleepers.log
echo $(( $(cat $CG/bench/burst/memory.current) + 48*1024*1024 )) > $CG/bench/burst/memory.max
sample burst-start
hog -mb 0 -step 4 -oom-score-adj 1000 -cgroup $CG/bench/burst || true
i=0; until grep -q '"victim_comm":"hog"' /tmp/agent.log || [ $i -gt 3000 ]; do sleep 0.1; i=$((i+1)); done
sample burst-reported
sleep 5
sample burst-end
cat /proc/$A/status > /tmp/status.end
cat $CG/bench/agent/memory.stat > /tmp/memory.stat.end
hog -dump-kmsg /tmp/kmsg
echo "task dump rows in the kernel log: $(grep -c ';\[ *[0-9][0-9]*\] ' /tmp/kmsg)" >> /tmp/sleepers.log
export_file samples /tmp/samples
export_file status.end /tmp/status.end
export_file memory.stat.end /tmp/memory.stat.end
export_file agent.log /tmp/agent.log
export_file sleepers.log /tmp/sleepers.log
`, scenario.Server, int(idle.Seconds()), tasks)
}

// footprintSample is one line of the guest's samples.
type footprintSample struct {
	uptime       float64
	ticks        int64
	rssKB, hwmKB int64
	// cgKB and cgPeakKB are the agent's cgroup's memory.current and
	// memory.peak.
	cgKB, cgPeakKB int64
}

// parseSamples reads the guest's sample lines by label.
func parseSamples(b []byte) (map[string]footprintSample, error) {
	out := map[string]footprintSample{}
	for _, l := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		f := strings.Fields(l)
		if len(f) != 8 {
			return nil, fmt.Errorf("sample %q: want 8 fields", l)
		}
		var s footprintSample
		var err error
		var ut, st int64
		if s.uptime, err = strconv.ParseFloat(f[1], 64); err == nil {
			if ut, err = strconv.ParseInt(f[2], 10, 64); err == nil {
				if st, err = strconv.ParseInt(f[3], 10, 64); err == nil {
					if s.rssKB, err = strconv.ParseInt(f[4], 10, 64); err == nil {
						if s.hwmKB, err = strconv.ParseInt(f[5], 10, 64); err == nil {
							if s.cgKB, err = strconv.ParseInt(f[6], 10, 64); err == nil {
								s.cgPeakKB, err = strconv.ParseInt(f[7], 10, 64)
							}
						}
					}
				}
			}
		}
		if err != nil {
			return nil, fmt.Errorf("sample %q: %w", l, err)
		}
		s.ticks = ut + st
		out[f[0]] = s
	}
	return out, nil
}

// AgentFootprint measures the agent (…/agent, with the aggregator when it
// builds) in the qemu guest: RSS and CPU over FootprintIdle of idling after
// start-up, then peak RSS and CPU through a memcg OOM report whose task
// dump has FootprintBurstTasks rows. CPU is the guest's accounting under
// qemu TCG, which emulates the CPU: the same work costs more CPU time than
// on hardware, so the CPU figures are upper bounds.
func AgentFootprint(ctx context.Context, cfg HookConfig) ([]Measurement, error) {
	logf := func(format string, args ...any) {
		if cfg.Log != nil {
			fmt.Fprintf(cfg.Log, format+"\n", args...)
		}
	}
	tasks, idle := FootprintBurstTasks, FootprintIdle
	if cfg.Short {
		tasks, idle = 500, 5*time.Second
	}
	assets, err := vm.EnsureAssets(ctx, logf)
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "oomwatch-bench-footprint-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	logf("footprint: building agent, aggregator, hog and sleepers")
	files := map[string]vm.File{}
	// The agent and the aggregator are built as shipped (make build's
	// flags), so that their sizes and pages are the release's.
	agentBin, err := buildStripped(ctx, cfg.RepoRoot, dir, "./agent")
	if err != nil {
		return nil, err
	}
	files["/bin/agent"] = vm.File{HostPath: agentBin}
	for name, b := range map[string]struct{ mod, pkg string }{
		"hog":      {cfg.RepoRoot, "./test/e2e/hog"},
		"sleepers": {filepath.Join(cfg.RepoRoot, "bench"), "./cmd/sleepers"},
	} {
		p, err := buildStatic(ctx, b.mod, filepath.Join(dir, name), b.pkg)
		if err != nil {
			return nil, err
		}
		files["/bin/"+name] = vm.File{HostPath: p}
	}
	aggNote := "with the aggregator in the guest"
	sizes := []Measurement{binarySize("agent", agentBin), imageSize("agent", agentBin)}
	if p, err := buildStripped(ctx, cfg.RepoRoot, filepath.Join(dir, "aggregator"), "./aggregator"); err == nil {
		files["/bin/aggregator"] = vm.File{HostPath: p}
		sizes = append(sizes, binarySize("aggregator", p), imageSize("aggregator", p))
	} else {
		aggNote = "without an aggregator (it did not build: the agent retries its connection)"
		logf("footprint: aggregator: %v", err)
	}
	var host []Measurement
	if agg, ok := files["/bin/aggregator"]; ok {
		host, err = hostIdle(ctx, files["/bin/agent"].HostPath, agg.HostPath, idle, logf)
		if err != nil {
			host = []Measurement{{Name: "agent idle on this host", Value: err.Error(), Target: "< 20 MiB, < 0.1% of a core", Verdict: VerdictNotMeasured}}
		}
	}
	logf("footprint: booting (%s idle, %d-task burst)", idle, tasks)
	res, err := vm.Run(ctx, vm.Config{
		Assets:   assets,
		Files:    files,
		Script:   footprintScript(tasks, idle),
		Cmdline:  []string{"log_buf_len=16M"},
		MemoryMB: 2048,
		CPUs:     2,
		Timeout:  20 * time.Minute,
	})
	if res != nil {
		saveArtifacts(cfg.ArtifactDir, "footprint", res, logf)
	}
	if err != nil {
		return nil, err
	}
	raw, err := res.File("samples")
	if err != nil {
		return nil, err
	}
	s, err := parseSamples(raw)
	if err != nil {
		return nil, err
	}
	for _, l := range []string{"idle-start", "idle-end", "burst-start", "burst-reported", "burst-end"} {
		if _, ok := s[l]; !ok {
			return nil, fmt.Errorf("no %s sample", l)
		}
	}
	// What the agent's cgroup holds after the report, by kind.
	var after string
	if b, err := res.File("memory.stat.end"); err == nil {
		if st, err := parseMemoryStat(bytes.NewReader(b)); err == nil {
			after = "; after it: " + cgroupBreakdown(st)
		}
	}
	agentLog, _ := res.File("agent.log")
	reported := strings.Contains(string(agentLog), `"victim_comm":"hog"`)
	mib := func(kb int64) float64 { return float64(kb) / 1024 }
	i0, i1 := s["idle-start"], s["idle-end"]
	b0, br, b1 := s["burst-start"], s["burst-reported"], s["burst-end"]
	idleCPU := float64(i1.ticks-i0.ticks) / userHZ / (i1.uptime - i0.uptime) * 100
	where := fmt.Sprintf("qemu TCG guest, %s", aggNote)
	// The guest's binaries sit in the initramfs's tmpfs, charged to the
	// root cgroup when it was unpacked: the agent's cgroup holds its
	// anonymous memory and kernel objects, not its binary's pages.
	cgNote := "cgroup2 memory.current; the binary's pages, in the initramfs, are not charged to it"
	ms := append(sizes, host...)
	ms = append(ms,
		Measurement{Name: "agent RSS idle (" + where + ")", Value: fmt.Sprintf("%.1f MiB", mib(i1.rssKB)),
			Target: "< 20 MiB", Verdict: verdict(mib(i1.rssKB) < 20)},
		Measurement{Name: "agent cgroup memory idle (qemu TCG guest, " + cgNote + ")", Value: fmt.Sprintf("%.1f MiB", mib(i1.cgKB)),
			Target: "< 20 MiB", Verdict: verdict(mib(i1.cgKB) < 20)},
		Measurement{Name: fmt.Sprintf("agent CPU idle over %.0f s (TCG guest: an upper bound)", i1.uptime-i0.uptime),
			Value:  fmt.Sprintf("%.3f%% of a core (%d ticks of 10 ms)", idleCPU, i1.ticks-i0.ticks),
			Target: "< 0.1% of a core", Verdict: verdict(idleCPU < 0.1)},
		Measurement{Name: fmt.Sprintf("agent peak RSS through a %d-task OOM report (VmHWM)", tasks),
			Value:  fmt.Sprintf("%.1f MiB (RSS after: %.1f MiB)", mib(b1.hwmKB), mib(b1.rssKB)),
			Target: "< 24 MiB", Verdict: verdict(mib(b1.hwmKB) < 24)},
		Measurement{Name: fmt.Sprintf("agent cgroup memory peak through the %d-task OOM report (TCG guest, cgroup2 memory.peak)", tasks),
			Value:  fmt.Sprintf("%.1f MiB (memory.current after: %.1f MiB%s)", mib(b1.cgPeakKB), mib(b1.cgKB), after),
			Target: "< 24 MiB", Verdict: verdict(b1.cgPeakKB > 0 && mib(b1.cgPeakKB) < 24)})
	burst := Measurement{Name: fmt.Sprintf("agent CPU through the %d-task OOM report (TCG)", tasks), Target: "report the kill",
		Value: fmt.Sprintf("%.2f s of CPU; kill logged %.1f s after the hog started (hog growth included)",
			float64(b1.ticks-b0.ticks)/userHZ, br.uptime-b0.uptime)}
	burst.Verdict = verdict(reported)
	if !reported {
		burst.Value += "; the agent did not log the kill"
	}
	return append(ms, burst), nil
}

// hostIdle runs the aggregator and the agent natively on this machine (the
// agent reading this machine's /dev/kmsg, which needs root) and measures the
// agent's RSS and CPU over idle, after letting it start up. It is the
// figure for the idle CPU target: the guest's is inflated by emulation.
func hostIdle(ctx context.Context, agentBin, aggBin string, idle time.Duration, logf func(string, ...any)) ([]Measurement, error) {
	dir, err := os.MkdirTemp("", "oomwatch-bench-host-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	addr := l.Addr().String()
	_ = l.Close()
	// The children get no OOMWATCH_* variables meant for benchtable.
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "OOMWATCH_") {
			env = append(env, e)
		}
	}
	start := func(name string, args ...string) (*exec.Cmd, error) {
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = env
		logFile, err := os.Create(filepath.Join(dir, filepath.Base(name)+".log"))
		if err != nil {
			return nil, err
		}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		return cmd, nil
	}
	stop := func(cmd *exec.Cmd) {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	agg, err := start(aggBin, "--listen", addr, "--db", filepath.Join(dir, "oomwatch.db"), "--insecure")
	if err != nil {
		return nil, err
	}
	defer stop(agg)
	for i := 0; ; i++ {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			break
		}
		if i > 300 {
			return nil, fmt.Errorf("aggregator did not listen on %s", addr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	// The agent runs in a memory cgroup of its own, started with its
	// binary out of the page cache, as a new pod's container would be.
	cg, err := newMemcg("/sys/fs/cgroup", fmt.Sprintf("oomwatch-bench-agent-%d", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("agent's memory cgroup: %w", err)
	}
	defer func() { _ = cg.remove() }()
	if err := evictPageCache(agentBin); err != nil {
		return nil, fmt.Errorf("evict the agent's binary from the page cache: %w", err)
	}
	sh, args := cg.wrap(agentBin, "--node-name", "bench-host", "--server", addr, "--insecure",
		"--state-dir", filepath.Join(dir, "state"), "--no-cri")
	agent, err := start(sh, args...)
	if err != nil {
		return nil, err
	}
	// Deferred after the cgroup's removal, so it runs first.
	defer stop(agent)
	logf("footprint: agent idling on this host for %s (pid %d)", idle, agent.Process.Pid)
	settle := 20 * time.Second
	if idle < 10*time.Second {
		settle = 3 * time.Second
	}
	time.Sleep(settle)
	t0, c0, _, err := procSample(agent.Process.Pid)
	if err != nil {
		return nil, err
	}
	time.Sleep(idle)
	t1, c1, rss, err := procSample(agent.Process.Pid)
	if err != nil {
		return nil, err
	}
	cpu := (c1 - c0).Seconds() / t1.Sub(t0).Seconds() * 100
	mib := float64(rss) / 1024
	pm, err := procMemory(agent.Process.Pid)
	if err != nil {
		return nil, err
	}
	u, err := cg.read()
	if err != nil {
		return nil, fmt.Errorf("agent's memory cgroup: %w", err)
	}
	fi, err := os.Stat(agentBin)
	if err != nil {
		return nil, err
	}
	usage := float64(u.Usage) / (1 << 20)
	return []Measurement{
		{Name: "agent RSS idle (this host, native, aggregator connected)",
			Value:  fmt.Sprintf("%.1f MiB: RssFile %.1f MiB (the binary's pages), RssAnon %.1f MiB", mib, float64(pm["RssFile"])/1024, float64(pm["RssAnon"])/1024),
			Target: "< 20 MiB", Verdict: verdict(mib < 20)},
		{Name: fmt.Sprintf("agent cgroup memory idle (this host, native, %s)", cg.version()),
			Value: fmt.Sprintf("%.1f MiB: page cache %.1f MiB (the %.1f MB binary, read whole, and the state files), anonymous %.1f MiB; working set (usage - inactive_file, as kubelet counts it) %.1f MiB",
				usage, float64(u.File)/(1<<20), float64(fi.Size())/1e6, float64(u.Anon)/(1<<20), float64(u.WorkingSet())/(1<<20)),
			Target: "< 20 MiB", Verdict: verdict(usage < 20)},
		{Name: fmt.Sprintf("agent CPU idle over %.0f s (this host, native)", t1.Sub(t0).Seconds()),
			Value:  fmt.Sprintf("%.3f%% of a core (%s of CPU)", cpu, c1-c0),
			Target: "< 0.1% of a core", Verdict: verdict(cpu < 0.1)},
	}, nil
}

// procSample reads a process's CPU time (user+system) and RSS in kB.
func procSample(pid int) (time.Time, time.Duration, int64, error) {
	now := time.Now()
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return now, 0, 0, err
	}
	// Fields after the ")" closing the command: state is the first, utime
	// the 12th and stime the 13th.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return now, 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return now, 0, 0, fmt.Errorf("/proc/%d/stat: bad CPU times", pid)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return now, 0, 0, err
	}
	var rss int64
	for _, l := range strings.Split(string(status), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			rss, _ = strconv.ParseInt(strings.Fields(v)[0], 10, 64)
		}
	}
	return now, time.Duration(ut+st) * time.Second / userHZ, rss, nil
}

// binarySize is the row of a binary's size, built as shipped.
func binarySize(name, path string) Measurement {
	m := Measurement{Name: name + " binary (static, stripped, make build's flags)", Target: "report (the issue sets no figure)", Verdict: VerdictMeasured}
	fi, err := os.Stat(path)
	if err != nil {
		m.Value, m.Verdict = err.Error(), VerdictNotMeasured
		return m
	}
	m.Value = fmt.Sprintf("%.2f MB (%d bytes)", float64(fi.Size())/1e6, fi.Size())
	return m
}

// imageSize is the row of the size of a binary's image layer: the
// Dockerfile's final stage for it (the binary in /usr/local/bin) written as
// an OCI archive, its layer gzip-compressed as a registry serves it
// (test/containerd.WriteImage, which test/kube imports into containerd).
// What a node pulls is that layer and distroless static-debian12's, which
// no registry here serves: its size is not in the figure.
func imageSize(name, bin string) Measurement {
	m := Measurement{Name: name + " image, oomwatch's layer (OCI archive, gzip; the distroless base layer is not reachable here)",
		Target: "report (the issue sets no figure)", Verdict: VerdictMeasured}
	fi, err := os.Stat(bin)
	if err != nil {
		m.Value, m.Verdict = err.Error(), VerdictNotMeasured
		return m
	}
	var n countWriter
	img := containerd.Image{Ref: "oomwatch.local/" + name + ":bench", Entrypoint: []string{"/usr/local/bin/" + name},
		Files: []containerd.File{{Path: "usr/local/bin/" + name, Src: bin, Mode: 0o755}}}
	if err := containerd.WriteImage(&n, img); err != nil {
		m.Value, m.Verdict = err.Error(), VerdictNotMeasured
		return m
	}
	m.Value = fmt.Sprintf("%.2f MB archive (%d bytes; gzip at its fastest level, as test/kube writes it) for a %.2f MB binary", float64(n)/1e6, int64(n), float64(fi.Size())/1e6)
	return m
}

// countWriter counts the bytes written to it.
type countWriter int64

// Write implements io.Writer.
func (c *countWriter) Write(p []byte) (int, error) {
	*c += countWriter(len(p))
	return len(p), nil
}

// cgroupBreakdown says what a cgroup2 memory.stat counts, in MiB: anonymous
// memory, page cache, and kernel memory (slab, of it reclaimable, and the
// rest: stacks, page tables, sockets).
func cgroupBreakdown(st map[string]int64) string {
	m := func(k string) float64 { return float64(st[k]) / (1 << 20) }
	return fmt.Sprintf("anon %.1f MiB, file %.1f MiB, slab %.1f MiB (reclaimable %.1f MiB), kernel stacks %.2f MiB, page tables %.2f MiB, sockets %.2f MiB",
		m("anon"), m("file"), m("slab"), m("slab_reclaimable"), m("kernel_stack"), m("pagetables"), m("sock"))
}
