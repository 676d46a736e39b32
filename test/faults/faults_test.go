// Package faults proves oomwatch's delivery guarantees with fault
// injection: real agent and aggregator processes on loopback, killed with
// SIGKILL mid-stream, cut off from each other, and fed corrupt state; and a
// real kernel log overflowing in a VM. Each test asserts exact counts, and
// the table of results is printed at the end (`make faults`).
package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
	"github.com/oomwatch/oomwatch/test/e2e/scenario"
	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

// row is one line of the results table.
type row struct {
	scenario                               string
	sent, stored, duplicates, lost, report int64
}

var (
	tableMu sync.Mutex
	table   []row
)

func record(r row) {
	tableMu.Lock()
	table = append(table, r)
	tableMu.Unlock()
}

func TestMain(m *testing.M) {
	// The replica tests' PostgreSQL server is stopped when the tests end.
	code := pgtest.Main(m)
	tableMu.Lock()
	if len(table) > 0 {
		sort.SliceStable(table, func(i, j int) bool { return table[i].scenario < table[j].scenario })
		fmt.Println("FAULTS TABLE")
		fmt.Printf("| %-40s | %6s | %6s | %10s | %5s | %16s |\n", "scenario", "sent", "stored", "duplicates", "lost", "reported as lost")
		fmt.Printf("|%s|%s|%s|%s|%s|%s|\n", strings.Repeat("-", 42), strings.Repeat("-", 8), strings.Repeat("-", 8),
			strings.Repeat("-", 12), strings.Repeat("-", 7), strings.Repeat("-", 18))
		for _, r := range table {
			fmt.Printf("| %-40s | %6d | %6d | %10d | %5d | %16d |\n", r.scenario, r.sent, r.stored, r.duplicates, r.lost, r.report)
		}
	}
	tableMu.Unlock()
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// binaries builds the agent, the aggregator and oomctl once.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "oomwatch-faults")
		if buildErr != nil {
			return
		}
		for _, name := range []string{"agent", "aggregator", "oomctl"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(binDir, name), "github.com/oomwatch/oomwatch/"+name)
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("build %s: %v: %s", name, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

func freePort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// proc is one child process with its log.
type proc struct {
	cmd *exec.Cmd
	log string
}

func start(t *testing.T, name string, logPath string, args ...string) *proc {
	t.Helper()
	return startOut(t, name, logPath, nil, args...)
}

// startOut is start with standard output to stdout (nil: the log).
func startOut(t *testing.T, name string, logPath string, stdout io.Writer, args ...string) *proc {
	t.Helper()
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binaries(t), name), args...)
	cmd.Stdout, cmd.Stderr = f, f
	if stdout != nil {
		cmd.Stdout = stdout
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, log: logPath}
	t.Cleanup(func() {
		p.kill()
		f.Close()
	})
	return p
}

func (p *proc) kill() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(syscall.SIGKILL)
		_, _ = p.cmd.Process.Wait()
		p.cmd.ProcessState = &os.ProcessState{}
	}
}

// aggregator starts an aggregator on addr with the database at db.
func aggregator(t *testing.T, dir, addr string) *proc {
	t.Helper()
	p := start(t, "aggregator", filepath.Join(dir, "aggregator.log"), "--listen", addr,
		"--db", filepath.Join(dir, "oomwatch.db"), "--insecure", "--max-events-per-second", "0")
	waitFor(t, 20*time.Second, "aggregator up", func() bool {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// fakeProc makes a /proc with a boot ID for one synthetic node.
func fakeProc(t *testing.T, dir, boot string) string {
	t.Helper()
	p := filepath.Join(dir, "proc")
	if err := os.MkdirAll(filepath.Join(p, "sys/kernel/random"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(p, "sys/kernel/random/boot_id"), []byte(boot+"\n"), 0o644)
	os.WriteFile(filepath.Join(p, "uptime"), []byte("3600.00 1.00\n"), 0o644)
	os.WriteFile(filepath.Join(p, "meminfo"), []byte("MemTotal: 1048576 kB\nMemAvailable: 1000 kB\n"), 0o644)
	return p
}

// agent starts an agent for node reading kills synthetic kills at rate.
// Every synthetic agent runs with --sample-interval 0: the fake /proc's
// meminfo is not a node's memory and the host's cgroups are not the
// synthetic node's, so warnings would only add events the tables do not
// count (a node-low warning dropped with the kills read as one loss too
// many).
func agent(t *testing.T, dir, node, addr string, kills int, rate float64) *proc {
	t.Helper()
	state := filepath.Join(dir, node)
	os.MkdirAll(state, 0o755)
	procDir := fakeProc(t, state, fmt.Sprintf("%08x-1111-4222-8333-944455556666", len(node)*7919+int(node[len(node)-1])))
	return start(t, "agent", filepath.Join(state, "agent.log"), "--node-name", node, "--server", addr, "--insecure",
		"--state-dir", state, "--proc", procDir, "--no-cri", "--sample-interval", "0", "--synthetic-kills", fmt.Sprint(kills),
		"--synthetic-rate", fmt.Sprint(rate))
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// count lists every stored event of a type and returns the distinct
// events and how many the listing returned twice.
func count(t *testing.T, addr, typ string) (distinct, duplicates int64, events []*pb.Event) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := pb.NewQueryServiceClient(conn)
	seen := map[string]bool{}
	token := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := client.ListEvents(ctx, &pb.ListEventsRequest{Filter: &pb.EventFilter{Types: []string{typ}},
			PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			return -1, 0, nil
		}
		for _, e := range resp.GetEvents() {
			key := fmt.Sprintf("%s/%s/%d", e.GetNode(), e.GetBootId(), e.GetSeq())
			if seen[key] {
				duplicates++
				continue
			}
			seen[key] = true
			events = append(events, e)
		}
		token = resp.GetNextPageToken()
		if token == "" {
			break
		}
	}
	return int64(len(seen)), duplicates, events
}

func waitStored(t *testing.T, addr string, want int64, d time.Duration) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		n, _, _ := count(t, addr, "oom")
		if n >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("stored %d of %d events", n, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func TestFaultAggregatorSIGKILL(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	agg := aggregator(t, dir, addr)
	const agents, kills = 4, 400
	for i := 0; i < agents; i++ {
		agent(t, dir, fmt.Sprintf("node-%d", i), addr, kills, 200)
	}
	// Kill the aggregator while the agents are mid-stream.
	waitFor(t, 30*time.Second, "some events stored", func() bool { n, _, _ := count(t, addr, "oom"); return n > 100 })
	agg.kill()
	time.Sleep(2 * time.Second)
	aggregator(t, dir, addr)
	waitStored(t, addr, agents*kills, 90*time.Second)
	time.Sleep(time.Second)
	n, dups, _ := count(t, addr, "oom")
	record(row{scenario: "aggregator SIGKILL mid-stream", sent: agents * kills, stored: n, duplicates: dups,
		lost: agents*kills - n})
	if n != agents*kills || dups != 0 {
		t.Fatalf("stored %d distinct (%d listed twice), want exactly %d", n, dups, agents*kills)
	}
}

func TestFaultAgentSIGKILL(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	aggregator(t, dir, addr)
	const kills = 600
	a := agent(t, dir, "node-k", addr, kills, 150)
	agent(t, dir, "node-other", addr, kills, 150)
	waitFor(t, 30*time.Second, "some events stored", func() bool { n, _, _ := count(t, addr, "oom"); return n > 150 })
	a.kill()
	time.Sleep(time.Second)
	agent(t, dir, "node-k", addr, kills, 150)
	waitStored(t, addr, 2*kills, 90*time.Second)
	time.Sleep(time.Second)
	n, dups, _ := count(t, addr, "oom")
	record(row{scenario: "agent SIGKILL and restart", sent: 2 * kills, stored: n, duplicates: dups, lost: 2*kills - n})
	if n != 2*kills || dups != 0 {
		t.Fatalf("stored %d distinct (%d listed twice), want exactly %d", n, dups, 2*kills)
	}
}

func TestFaultAggregatorUnreachable60s(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	const kills = 300
	// The kills happen while nothing listens; the agents spool them.
	agent(t, dir, "node-u1", addr, kills, 10)
	agent(t, dir, "node-u2", addr, kills, 10)
	time.Sleep(60 * time.Second)
	aggregator(t, dir, addr)
	waitStored(t, addr, 2*kills, 120*time.Second)
	time.Sleep(time.Second)
	n, dups, _ := count(t, addr, "oom")
	record(row{scenario: "aggregator unreachable for 60 s", sent: 2 * kills, stored: n, duplicates: dups, lost: 2*kills - n})
	if n != 2*kills || dups != 0 {
		t.Fatalf("stored %d distinct (%d listed twice), want exactly %d", n, dups, 2*kills)
	}
}

func TestFaultCorruptSpool(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	const kills = 50
	// A first run spools its kills with no aggregator, then dies.
	a := agent(t, dir, "node-c", addr, kills, 0)
	spoolDir := filepath.Join(dir, "node-c", "spool")
	waitFor(t, 30*time.Second, "kills spooled", func() bool {
		m, _ := filepath.Glob(filepath.Join(spoolDir, "seg-*.log"))
		if len(m) == 0 {
			return false
		}
		st, err := os.Stat(m[len(m)-1])
		return err == nil && st.Size() > int64(kills)*300
	})
	time.Sleep(time.Second)
	a.kill()
	// Garbage in the middle of the segment, and a garbage segment.
	segs, _ := filepath.Glob(filepath.Join(spoolDir, "seg-*.log"))
	f, err := os.OpenFile(segs[0], os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := f.Stat()
	f.WriteAt([]byte("\x00garbage garbage garbage\x00"), st.Size()/2)
	f.Close()
	os.WriteFile(filepath.Join(spoolDir, "seg-00000000000000ff.log"), []byte("not a spool segment at all"), 0o644)
	os.WriteFile(filepath.Join(dir, "node-c", "checkpoint.json"), []byte("{truncated"), 0o644)
	aggregator(t, dir, addr)
	agent(t, dir, "node-c", addr, kills, 0)
	// The agent starts, says what was corrupt, and delivers every kill:
	// what the corrupt spool lost, the kernel (here the synthetic source,
	// read again from the start since the checkpoint was corrupt) still had.
	waitStored(t, addr, kills, 60*time.Second)
	logb, _ := os.ReadFile(filepath.Join(dir, "node-c", "agent.log"))
	for _, want := range []string{"the spool was corrupt", "the checkpoint was corrupt"} {
		if !strings.Contains(string(logb), want) {
			t.Errorf("agent log does not report %q", want)
		}
	}
	n, dups, _ := count(t, addr, "oom")
	record(row{scenario: "corrupt spool and checkpoint", sent: kills, stored: n, duplicates: dups, lost: kills - n})
	if n != kills || dups != 0 {
		t.Fatalf("stored %d distinct (%d listed twice), want %d", n, dups, kills)
	}
}

func TestFaultSpoolOverflow(t *testing.T) {
	dir := t.TempDir()
	addr := freePort(t)
	const kills, bound = 300, 100
	// Nothing listens and the spool holds 100 events: the oldest are
	// dropped, counted, and reported as a loss once the aggregator is back.
	state := filepath.Join(dir, "node-o")
	os.MkdirAll(state, 0o755)
	procDir := fakeProc(t, state, "0b0b0b0b-1111-4222-8333-944455556666")
	start(t, "agent", filepath.Join(state, "agent.log"), "--node-name", "node-o", "--server", addr, "--insecure",
		"--state-dir", state, "--proc", procDir, "--no-cri", "--sample-interval", "0", "--synthetic-kills", fmt.Sprint(kills),
		"--spool-max-events", fmt.Sprint(bound))
	time.Sleep(5 * time.Second)
	aggregator(t, dir, addr)
	var reported int64
	waitFor(t, 60*time.Second, "the loss report", func() bool {
		_, _, losses := count(t, addr, "loss")
		reported = 0
		for _, e := range losses {
			reported += e.GetLoss().GetLost()
		}
		return reported > 0
	})
	time.Sleep(2 * time.Second)
	n, dups, _ := count(t, addr, "oom")
	record(row{scenario: "spool overflow (bound 100 events)", sent: kills, stored: n, duplicates: dups, lost: kills - n, report: reported})
	if dups != 0 || n+reported != kills || n > bound {
		t.Fatalf("stored %d + reported lost %d != %d sent (or more stored than the bound %d)", n, reported, kills, bound)
	}
}

// TestFaultKernelLogOverflow overflows a real kernel's log buffer while the
// agent is paused (SIGSTOP): the agent must report the gap and deliver
// every kill still in the buffer.
func TestFaultKernelLogOverflow(t *testing.T) {
	assets, err := vm.EnsureAssets(t.Context(), t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]vm.File{}
	dir := t.TempDir()
	for name, pkg := range map[string]string{"agent": "agent", "aggregator": "aggregator", "oomctl": "oomctl", "hog": "test/e2e/hog"} {
		p, err := vm.BuildStatic(t.Context(), filepath.Join(dir, name), "github.com/oomwatch/oomwatch/"+pkg)
		if err != nil {
			t.Fatal(err)
		}
		files["/bin/"+name] = vm.File{HostPath: p}
	}
	ctr := func(n int) string {
		return fmt.Sprintf("/kubepods/burstable/pod0f1e2d3c-4b5a-4968-a7b6-c5d4e3f2a1b%d/%064d", n, n)
	}
	script := scenario.Prelude() + fmt.Sprintf(`
kill_in() { mkcg $1; echo 16M > $CG$1/memory.max; hog -mb 32 -oom-score-adj 500 -cgroup $CG$1 || true; }
echo "fault: first kill"
kill_in %[1]s
echo "fault: waiting for it"
i=0; until [ "$(oomctl events -o json -type oom | grep -c '"oom":{')" -ge 1 ] || [ $i -gt 300 ]; do sleep 0.1; i=$((i+1)); done
kill -STOP $(cat /tmp/agent.pid)
echo "fault: agent stopped; second kill"
kill_in %[2]s
echo "fault: flood" 
# Far more than the kernel's log buffer holds.
i=0; while [ $i -lt 6000 ]; do echo "oomwatch flood record $i: padding padding padding padding padding padding" > /dev/kmsg; i=$((i+1)); done
echo "fault: third kill"
kill_in %[3]s
echo "fault: agent resumed"
kill -CONT $(cat /tmp/agent.pid)
i=0; until [ "$(oomctl events -o json -type loss | grep -c '"loss":{')" -ge 1 ] || [ $i -gt 300 ]; do sleep 0.1; i=$((i+1)); done
echo "fault: loss seen after $i"
`, ctr(1), ctr(2), ctr(3)) + scenario.Epilogue(2)
	res, err := vm.Run(t.Context(), vm.Config{Assets: assets, Files: files, Script: script,
		Cmdline: []string{"printk.devkmsg=on"}, MemoryMB: 384, CPUs: 2, Timeout: 4 * time.Minute})
	if err != nil {
		if res != nil {
			t.Logf("console:\n%s", res.Console)
		}
		t.Fatal(err)
	}
	raw, err := res.File("events.json")
	if err != nil {
		t.Fatal(err)
	}
	kmsgDump, _ := res.File("kmsg")
	delivered := map[string]bool{}
	var lost int64
	var ooms int64
	evs, err := clitest.ReadEvents(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		switch {
		case e.GetOom() != nil:
			ooms++
			delivered[fmt.Sprint(e.GetOom().GetVictims()[0].GetPid())] = true
		case e.GetLoss() != nil:
			lost += e.GetLoss().GetLost()
		}
	}
	inBuffer, missing := 0, 0
	for _, line := range strings.Split(string(kmsgDump), "\n") {
		if i := strings.Index(line, "Killed process "); i >= 0 {
			inBuffer++
			if !delivered[strings.Fields(line[i+len("Killed process "):])[0]] {
				missing++
			}
		}
	}
	record(row{scenario: "kernel log overflow (VM; records)", sent: 3, stored: ooms, lost: 3 - ooms, report: lost})
	t.Logf("%d OOM events, %d kernel records reported lost, %d kill lines left in the buffer (%d missing)", ooms, lost, inBuffer, missing)
	if lost == 0 {
		t.Errorf("no kernel-record loss reported after the overflow")
	}
	if missing != 0 {
		t.Errorf("%d kills still in the kernel buffer were not delivered", missing)
	}
	if ooms < 2 || inBuffer == 0 {
		t.Errorf("%d OOM events, %d kill lines in the buffer: want the kills before and after the flood", ooms, inBuffer)
	}
}
