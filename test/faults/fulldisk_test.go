package faults

import (
	"bufio"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tinyFS mounts a tmpfs of size bytes at dir, unmounted when the test ends
// (after the processes the test starts later are killed).
func tinyFS(t *testing.T, dir string, size int) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d,mode=0755", size), "oomwatch-fault", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// fill writes path until the file system is full.
func fill(t *testing.T, path string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatal(err)
			}
			break
		}
	}
	// Not even a byte more.
	if _, err := f.Write([]byte{1}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("the file system is not full: %v", err)
	}
}

// scrape returns the agent's metrics: every sample by its name and labels
// as printed; nil when the agent does not answer.
func scrape(addr string) map[string]float64 {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		if v, err := strconv.ParseFloat(line[i+1:], 64); err == nil {
			out[line[:i]] = v
		}
	}
	return out
}

// lostReported sums the Loss events stored, by cause.
func lostReported(t *testing.T, addr string) map[string]int64 {
	t.Helper()
	_, _, losses := count(t, addr, "loss")
	out := map[string]int64{}
	for _, e := range losses {
		out[e.GetLoss().GetCause()] += e.GetLoss().GetLost()
	}
	return out
}

// TestFaultFullDisk runs the agent with its state directory on a full
// 64 KiB tmpfs: it must keep running, send the kills directly while the
// aggregator is up, keep a bounded number in memory while it is down and
// report exactly the ones dropped, and spool again by itself once space
// returns.
func TestFaultFullDisk(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	tinyFS(t, state, 64<<10)
	filler := filepath.Join(state, "filler")
	fill(t, filler)

	addr := freePort(t)
	agg := aggregator(t, dir, addr)
	metricsAddr := freePort(t)
	const kills, rate, memCap = 1600, 40, 100
	procDir := fakeProc(t, dir, "0f0f0f0f-1111-4222-8333-944455556666")
	agentLog := filepath.Join(dir, "agent.log")
	start(t, "agent", agentLog, "--node-name", "node-full", "--server", addr, "--insecure",
		"--state-dir", state, "--proc", procDir, "--no-cri", "--sample-interval", "0", "--synthetic-kills", fmt.Sprint(kills),
		"--synthetic-rate", fmt.Sprint(rate), "--metrics-addr", metricsAddr, "--memory-queue-max-events", fmt.Sprint(memCap))
	m := func() map[string]float64 {
		t.Helper()
		v := scrape(metricsAddr)
		if v == nil {
			logb, _ := os.ReadFile(agentLog)
			t.Fatalf("the agent does not answer (stopped?); its log ends:\n%s", tail(string(logb), 2000))
		}
		return v
	}
	waitFor(t, 20*time.Second, "the agent's metrics", func() bool { return scrape(metricsAddr) != nil })
	t.Cleanup(func() {
		if t.Failed() {
			logb, _ := os.ReadFile(agentLog)
			t.Logf("agent log ends:\n%s", tail(string(logb), 6000))
		}
	})
	phase := func(name string) {
		v := scrape(metricsAddr)
		n, _, _ := count(t, addr, "oom")
		t.Logf("%s: stored %d, spooled %v, in memory %v, sent from memory %v, dropped %v, writable %v", name, n,
			v["oomwatch_spool_events"], v["oomwatch_memory_queue_events"], v["oomwatch_memory_queue_events_total"],
			v["oomwatch_memory_queue_dropped_events_total"], v["oomwatch_spool_writable"])
	}

	// A: disk full, aggregator up: every kill is sent directly.
	waitFor(t, 60*time.Second, "kills delivered from a full disk", func() bool { n, _, _ := count(t, addr, "oom"); return n >= 150 })
	phase("A, full disk, aggregator up")
	v := m()
	directA, droppedA := v["oomwatch_memory_queue_events_total"], v["oomwatch_memory_queue_dropped_events_total"]
	if v["oomwatch_spool_writable"] != 0 || v[`oomwatch_spool_write_errors_total{op="event"}`] == 0 || directA < 150 {
		t.Errorf("on a full disk: writable %v, write errors %v, sent from memory %v",
			v["oomwatch_spool_writable"], v[`oomwatch_spool_write_errors_total{op="event"}`], directA)
	}
	if droppedA != 0 {
		t.Errorf("%v kills dropped while the aggregator was up", droppedA)
	}
	if v["oomwatch_checkpoint_write_errors_total"] == 0 {
		t.Error("no checkpoint write error counted on a full disk")
	}

	// B: disk full, aggregator down: memCap kills wait in memory, the
	// rest are dropped and counted.
	agg.kill()
	waitFor(t, 60*time.Second, "kills dropped from the full memory queue", func() bool {
		return m()["oomwatch_memory_queue_dropped_events_total"] >= 20
	})
	phase("B, full disk, aggregator down")
	if held := m()["oomwatch_memory_queue_events"]; held > memCap {
		t.Errorf("%v kills in memory, over the cap %d", held, memCap)
	}

	// C: aggregator back, disk still full: the held kills and the loss
	// report arrive.
	agg = aggregator(t, dir, addr)
	waitFor(t, 90*time.Second, "the spool-unwritable loss report", func() bool { return lostReported(t, addr)["spool-unwritable"] > 0 })

	phase("C, full disk, aggregator back")
	// D: space returns (the filler goes and the file system grows to
	// 4 MiB, as when an operator makes room), aggregator down: the agent
	// spools again by itself.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-o", "remount,size=4m", state).CombinedOutput(); err != nil {
		t.Fatalf("grow the tmpfs: %v: %s", err, out)
	}
	waitFor(t, 30*time.Second, "the spool writable again", func() bool { return m()["oomwatch_spool_writable"] == 1 })
	agg.kill()
	waitFor(t, 60*time.Second, "kills spooled on disk", func() bool { return m()["oomwatch_spool_events"] >= 40 })
	phase("D, space again, aggregator down")
	v = m()
	droppedD := v["oomwatch_memory_queue_dropped_events_total"]
	if v["oomwatch_memory_queue_events"] != 0 || v["oomwatch_spool_writable"] != 1 {
		t.Errorf("%v kills still only in memory with a writable disk", v["oomwatch_memory_queue_events"])
	}
	segs, _ := filepath.Glob(filepath.Join(state, "spool", "seg-*.log"))
	if len(segs) == 0 {
		t.Error("no spool segment on disk")
	}

	// E: aggregator back: everything is delivered or reported lost.
	aggregator(t, dir, addr)
	var n, dups, reported int64
	waitFor(t, 120*time.Second, "every kill stored or reported lost", func() bool {
		n, dups, _ = count(t, addr, "oom")
		reported = lostReported(t, addr)["spool-unwritable"]
		return n+reported >= kills
	})
	time.Sleep(6 * time.Second) // a late loss report would show now
	n, dups, _ = count(t, addr, "oom")
	losses := lostReported(t, addr)
	reported = losses["spool-unwritable"]
	v = m()
	dropped := int64(v["oomwatch_memory_queue_dropped_events_total"])
	record(row{scenario: "state dir full (64 KiB tmpfs)", sent: kills, stored: n, duplicates: dups, lost: kills - n, report: reported})
	t.Logf("stored %d, reported lost %d (dropped from memory %d), sent from memory %v, spool write errors %v, checkpoint write errors %v, losses %v",
		n, reported, dropped, v["oomwatch_memory_queue_events_total"], v[`oomwatch_spool_write_errors_total{op="event"}`],
		v["oomwatch_checkpoint_write_errors_total"], losses)
	if dups != 0 || n+reported != kills || reported != dropped || reported == 0 {
		t.Fatalf("stored %d (%d twice) + reported lost %d != %d sent, or reported != %d dropped", n, dups, reported, kills, dropped)
	}
	if float64(dropped) != droppedD {
		t.Errorf("%d kills dropped in all, %v when space returned: none may be dropped after", dropped, droppedD)
	}
	if len(losses) != 1 {
		t.Errorf("losses by cause %v, want only spool-unwritable", losses)
	}
	logb, _ := os.ReadFile(agentLog)
	for _, want := range []string{"cannot write to the spool", "the spool takes writes again", "cannot save the checkpoint"} {
		if !strings.Contains(string(logb), want) {
			t.Errorf("agent log does not say %q", want)
		}
	}
	if strings.Contains(string(logb), "agent stopped") {
		t.Error("the agent stopped")
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// TestFaultFullSpoolRestart fills only the spool's file system, so that
// the checkpoint can still be saved, and kills the agent while every kill
// waits in memory for an aggregator that is down: the checkpoint must not
// have claimed those kernel records, and the restarted agent reads them
// again and delivers them all.
func TestFaultFullSpoolRestart(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	spoolDir := filepath.Join(state, "spool")
	if err := os.MkdirAll(spoolDir, 0o755); err != nil {
		t.Fatal(err)
	}
	tinyFS(t, spoolDir, 64<<10)
	fill(t, filepath.Join(spoolDir, "filler"))

	addr := freePort(t)
	const kills = 200
	procDir := fakeProc(t, dir, "0e0e0e0e-1111-4222-8333-944455556666")
	agentLog := filepath.Join(dir, "agent.log")
	run := func() (*proc, string) {
		metricsAddr := freePort(t)
		p := start(t, "agent", agentLog, "--node-name", "node-spoolfull", "--server", addr, "--insecure",
			"--state-dir", state, "--proc", procDir, "--no-cri", "--sample-interval", "0", "--synthetic-kills", fmt.Sprint(kills),
			"--metrics-addr", metricsAddr)
		return p, metricsAddr
	}
	a, metricsAddr := run()
	waitFor(t, 30*time.Second, "every kill held in memory", func() bool {
		return scrape(metricsAddr)["oomwatch_memory_queue_events"] == kills
	})
	// Give the checkpoint a few chances to be saved (every 2 s).
	time.Sleep(5 * time.Second)
	cp, _ := os.ReadFile(filepath.Join(state, "checkpoint.json"))
	a.kill()
	a2, _ := run()
	aggregator(t, dir, addr)
	waitStored(t, addr, kills, 90*time.Second)
	time.Sleep(time.Second)
	n, dups, _ := count(t, addr, "oom")
	losses := lostReported(t, addr)
	record(row{scenario: "spool dir full, agent SIGKILL", sent: kills, stored: n, duplicates: dups, lost: kills - n})
	t.Logf("checkpoint before the SIGKILL: %s", strings.TrimSpace(string(cp)))
	if n != kills || dups != 0 || len(losses) != 0 {
		t.Fatalf("stored %d (%d twice), losses %v; want exactly %d", n, dups, losses, kills)
	}
	a2.kill()
}

// TestFaultReadOnlyStateDir starts the agent on a read-only state
// directory (EROFS, with no spool directory yet): kills are sent directly
// while the aggregator is up; once the file system is writable again the
// agent creates its spool and keeps kills there while the aggregator is down.
func TestFaultReadOnlyStateDir(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o755); err != nil {
		t.Fatal(err)
	}
	tinyFS(t, state, 4<<20)
	if out, err := exec.Command("mount", "-o", "remount,ro", state).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v: %s", err, out)
	}
	addr := freePort(t)
	agg := aggregator(t, dir, addr)
	metricsAddr := freePort(t)
	const kills, rate = 300, 30
	procDir := fakeProc(t, dir, "0d0d0d0d-1111-4222-8333-944455556666")
	agentLog := filepath.Join(dir, "agent.log")
	start(t, "agent", agentLog, "--node-name", "node-ro", "--server", addr, "--insecure",
		"--state-dir", state, "--proc", procDir, "--no-cri", "--sample-interval", "0", "--synthetic-kills", fmt.Sprint(kills),
		"--synthetic-rate", fmt.Sprint(rate), "--metrics-addr", metricsAddr)
	t.Cleanup(func() {
		if t.Failed() {
			logb, _ := os.ReadFile(agentLog)
			t.Logf("agent log ends:\n%s", tail(string(logb), 6000))
		}
	})
	waitFor(t, 60*time.Second, "kills delivered from a read-only disk", func() bool { n, _, _ := count(t, addr, "oom"); return n >= 60 })
	if v := scrape(metricsAddr); v == nil || v["oomwatch_spool_writable"] != 0 || v["oomwatch_memory_queue_events_total"] < 60 {
		t.Fatalf("on a read-only disk: %v", v)
	}
	if out, err := exec.Command("mount", "-o", "remount,rw", state).CombinedOutput(); err != nil {
		t.Fatalf("remount read-write: %v: %s", err, out)
	}
	waitFor(t, 30*time.Second, "the spool writable", func() bool { return scrape(metricsAddr)["oomwatch_spool_writable"] == 1 })
	agg.kill()
	waitFor(t, 60*time.Second, "kills spooled", func() bool { return scrape(metricsAddr)["oomwatch_spool_events"] >= 20 })
	aggregator(t, dir, addr)
	waitStored(t, addr, kills, 90*time.Second)
	time.Sleep(time.Second)
	n, dups, _ := count(t, addr, "oom")
	losses := lostReported(t, addr)
	record(row{scenario: "state dir read-only, then writable", sent: kills, stored: n, duplicates: dups, lost: kills - n})
	if n != kills || dups != 0 || len(losses) != 0 {
		t.Fatalf("stored %d (%d twice), losses %v; want exactly %d", n, dups, losses, kills)
	}
	if _, err := os.Stat(filepath.Join(state, "checkpoint.json")); err != nil {
		t.Errorf("no checkpoint once the disk was writable: %v", err)
	}
}
