// Package security plays the attacker against the real aggregator binary
// on 127.0.0.1: each test is one attack of issue #13, made while an honest
// agent (the real agent binary, reading synthetic kills) streams beside
// it. Each asserts the status the attacker gets, that the aggregator is
// still up and its /healthz (on the separate metrics listener) answers,
// that its peak RSS stays within the deployed memory limit, and that the
// honest agent's events are all stored, exactly once. The aggregator runs
// with the deployed GOMEMLIMIT and, when this machine lets the test make
// one, in a memory cgroup of the deployed limit. `make security` prints
// the table of results.
package security

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"

	"github.com/oomwatch/oomwatch/pkg/transport"
	"github.com/oomwatch/oomwatch/pkg/transport/transporttest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// The deployed aggregator's memory (deploy/aggregator.yaml).
const (
	memLimit   = 1 << 30
	goMemLimit = "768MiB"
)

// row is one line of the results table.
type row struct {
	attack, result, protection string
	peakRSS                    int64
	honestSent, honestStored   int64
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
	code := m.Run()
	tableMu.Lock()
	if len(table) > 0 {
		sort.SliceStable(table, func(i, j int) bool { return table[i].attack < table[j].attack })
		fmt.Println("SECURITY TABLE")
		fmt.Println("| attack | result | what protects it | aggregator peak RSS | honest events stored |")
		fmt.Println("|---|---|---|---|---|")
		for _, r := range table {
			fmt.Printf("| %s | %s | %s | %.0f MiB | %d of %d |\n", r.attack, r.result, r.protection,
				float64(r.peakRSS)/(1<<20), r.honestStored, r.honestSent)
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

// binaries builds the agent and the aggregator once.
func binaries(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "oomwatch-security")
		if buildErr != nil {
			return
		}
		for _, name := range []string{"agent", "aggregator"} {
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

// pickPort chooses the aggregator's ports: freePort, or a test's own.
var pickPort = freePort

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

// aggregator is a running aggregator binary with mutual TLS.
type aggregator struct {
	addr, metrics, web string
	dir                string
	ca                 *transporttest.CA
	cmd                *exec.Cmd
	exited             chan struct{}
	cgroup             string
}

// Identities the tests use: the agents' shared certificate, an honest
// node's own, and a reader's.
const (
	sharedAgent = "oomwatch-agent"
	readerName  = "oomctl"
)

// startAggregator runs the aggregator with mutual TLS, its metrics and
// web listeners, the deployed GOMEMLIMIT, and args added. Its ports are
// chosen free, then bound by the aggregator: in between, another process
// may take one (the floods here dial tens of thousands of connections,
// each from an ephemeral port of the same range), and the aggregator then
// exits at once. That start is tried again on new ports, up to
// startAttempts times.
func startAggregator(t *testing.T, args ...string) *aggregator {
	t.Helper()
	for attempt := 1; ; attempt++ {
		a := launchAggregator(t, args)
		err := a.waitHealthy(30 * time.Second)
		if err == nil {
			return a
		}
		if errors.Is(err, errExited) && attempt < startAttempts && portTaken(a.log()) {
			t.Logf("aggregator start %d: a port was taken before it bound it; again on new ports", attempt)
			continue
		}
		t.Fatalf("aggregator /healthz: %v", err)
	}
}

// startAttempts bounds the starts of one aggregator (see startAggregator).
const startAttempts = 3

// errExited: the aggregator exited while it was awaited.
var errExited = errors.New("the aggregator exited")

// portTaken tells whether an aggregator's log says it could not bind one
// of its listeners because another process holds the port.
func portTaken(log string) bool {
	return strings.Contains(log, "bind: address already in use")
}

// launchAggregator starts one aggregator (see startAggregator) on ports
// chosen free now, and stops it when the test ends.
func launchAggregator(t *testing.T, args []string) *aggregator {
	t.Helper()
	dir := t.TempDir()
	ca := transporttest.NewCA(t, "oomwatch-test-ca")
	cert, key := ca.Server(t, "aggregator")
	a := &aggregator{addr: pickPort(t), metrics: pickPort(t), web: pickPort(t), dir: dir, ca: ca, exited: make(chan struct{})}
	logf, err := os.Create(filepath.Join(dir, "aggregator.log"))
	if err != nil {
		t.Fatal(err)
	}
	base := []string{"--listen", a.addr, "--metrics-addr", a.metrics, "--http-addr", a.web,
		"--db", filepath.Join(dir, "oomwatch.db"), "--tls-cert", cert, "--tls-key", key, "--tls-ca", ca.CertFile,
		"--agent-identity", sharedAgent, "--log-level", "warn"}
	base = append(base, roleArgs()...)
	a.cmd = exec.Command(filepath.Join(binaries(t), "aggregator"), append(base, args...)...)
	a.cmd.Env = append(os.Environ(), "GOMEMLIMIT="+goMemLimit)
	a.cmd.Stdout, a.cmd.Stderr = logf, logf
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.cgroup = limitMemory(t, a.cmd.Process.Pid)
	go func() {
		_ = a.cmd.Wait()
		logf.Close()
		close(a.exited)
	}()
	t.Cleanup(func() {
		_ = a.cmd.Process.Signal(syscall.SIGKILL)
		<-a.exited
		if a.cgroup != "" {
			_ = os.Remove(a.cgroup)
		}
		if t.Failed() {
			t.Logf("aggregator log (end):\n%s", tail(a.log(), 4000))
		}
	})
	return a
}

// waitHealthy waits until /healthz answers, the aggregator exits
// (errExited), or d passes.
func (a *aggregator) waitHealthy(d time.Duration) error {
	deadline := time.Now().Add(d)
	for {
		err := a.healthy()
		if err == nil {
			return nil
		}
		select {
		case <-a.exited:
			return errExited
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not answering after %v: %w", d, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// log returns what the aggregator has logged.
func (a *aggregator) log() string {
	b, _ := os.ReadFile(filepath.Join(a.dir, "aggregator.log"))
	return string(b)
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// limitMemory puts pid in a new memory cgroup of the deployed limit, as
// a child of this process's own (cgroup v2 or v1), and returns its path;
// "" when this machine does not let it (the RSS checks still apply).
func limitMemory(t *testing.T, pid int) string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	name := fmt.Sprintf("oomwatch-security-%d-%d", os.Getpid(), pid)
	for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var dir, limitFile string
		switch {
		case parts[1] == "memory":
			dir, limitFile = filepath.Join("/sys/fs/cgroup/memory", parts[2], name), "memory.limit_in_bytes"
		case parts[0] == "0" && parts[1] == "":
			dir, limitFile = filepath.Join("/sys/fs/cgroup", parts[2], name), "memory.max"
		default:
			continue
		}
		if os.Mkdir(dir, 0o755) != nil {
			continue
		}
		if os.WriteFile(filepath.Join(dir, limitFile), []byte(strconv.Itoa(memLimit)), 0o644) != nil ||
			os.WriteFile(filepath.Join(dir, "cgroup.procs"), []byte(strconv.Itoa(pid)), 0o644) != nil {
			_ = os.Remove(dir)
			continue
		}
		t.Logf("aggregator in memory cgroup %s (limit %d MiB)", dir, memLimit>>20)
		return dir
	}
	t.Log("no memory cgroup could be made here: only the RSS checks bound the aggregator")
	return ""
}

// healthy asks /healthz on the metrics listener.
func (a *aggregator) healthy() error {
	c := http.Client{Timeout: 3 * time.Second}
	resp, err := c.Get("http://" + a.metrics + "/healthz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/healthz: %s", resp.Status)
	}
	return nil
}

// metric sums the samples of a metric on /metrics whose line contains
// every one of match.
func (a *aggregator) metric(t *testing.T, name string, match ...string) float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + a.metrics + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var sum float64
lines:
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+" ") && !strings.HasPrefix(line, name+"{") {
			continue
		}
		for _, m := range match {
			if !strings.Contains(line, m) {
				continue lines
			}
		}
		f := strings.Fields(line)
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		sum += v
	}
	return sum
}

// metricsText returns /metrics.
func (a *aggregator) metricsText(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + a.metrics + "/metrics")
	if err != nil {
		t.Fatalf("/metrics: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// status reads a field of /proc/<pid>/status in bytes (VmHWM, VmRSS).
func (a *aggregator) status(field string) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// fds counts the aggregator's open file descriptors.
func (a *aggregator) fds() int {
	ents, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", a.cmd.Process.Pid))
	return len(ents)
}

// up fails the test when the aggregator exited, /healthz does not answer
// or its peak RSS went past the deployed limit; it returns the peak RSS.
func (a *aggregator) up(t *testing.T) int64 {
	t.Helper()
	select {
	case <-a.exited:
		t.Fatalf("the aggregator exited: %v", a.cmd.ProcessState)
	default:
	}
	if err := a.healthy(); err != nil {
		t.Fatalf("the aggregator's /healthz: %v", err)
	}
	hwm := a.status("VmHWM")
	if hwm > memLimit {
		t.Fatalf("the aggregator's peak RSS %d MiB is over the deployed limit %d MiB", hwm>>20, memLimit>>20)
	}
	return hwm
}

// clientCert issues a certificate of common name cn: a reader's when cn
// is readerName or starts with "reader-", else an agent's.
func (a *aggregator) clientCert(t *testing.T, cn string) (cert, key string) {
	t.Helper()
	org := transport.OrgAgents
	if cn == readerName || strings.HasPrefix(cn, "reader-") {
		org = transport.OrgReaders
	}
	return a.ca.ClientIn(t, []string{org}, cn)
}

// dial connects with a client certificate of common name cn (clientCert).
func (a *aggregator) dial(t *testing.T, cn string) *grpc.ClientConn {
	t.Helper()
	cert, key := a.clientCert(t, cn)
	opts, err := transport.DialOptions(transport.Options{CertFile: cert, KeyFile: key, CAFile: a.ca.CertFile}, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient(a.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// honest is a real agent with its own certificate, reading count
// synthetic kills at rate per second.
type honest struct {
	node  string
	count int64
	cmd   *exec.Cmd
}

func (a *aggregator) honestAgent(t *testing.T, node string, count int, rate float64) *honest {
	t.Helper()
	state := filepath.Join(a.dir, node)
	procDir := filepath.Join(state, "proc")
	if err := os.MkdirAll(filepath.Join(procDir, "sys/kernel/random"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(procDir, "sys/kernel/random/boot_id"), []byte("6b1f3c2e-1111-4222-8333-944455556666\n"), 0o644)
	os.WriteFile(filepath.Join(procDir, "uptime"), []byte("3600.00 1.00\n"), 0o644)
	os.WriteFile(filepath.Join(procDir, "meminfo"), []byte("MemTotal: 1048576 kB\nMemAvailable: 1000 kB\n"), 0o644)
	cert, key := a.clientCert(t, node)
	logf, err := os.Create(filepath.Join(state, "agent.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binaries(t), "agent"), "--node-name", node, "--server", a.addr,
		"--tls-cert", cert, "--tls-key", key, "--tls-ca", a.ca.CertFile,
		"--state-dir", state, "--proc", procDir, "--no-cri", "--sample-interval", "0", "--no-kube-api",
		"--synthetic-kills", strconv.Itoa(count), "--synthetic-rate", fmt.Sprint(rate))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
	})
	return &honest{node: node, count: int64(count), cmd: cmd}
}

// stored counts the OOM kills of node stored, and those listed twice.
func (a *aggregator) stored(t *testing.T, node string) (distinct, twice int64) {
	t.Helper()
	conn := a.dial(t, readerName)
	defer conn.Close()
	client := pb.NewQueryServiceClient(conn)
	seen := map[string]bool{}
	token := ""
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := client.ListEvents(ctx, &pb.ListEventsRequest{
			Filter: &pb.EventFilter{Node: node, Types: []string{"oom"}}, PageSize: 1000, PageToken: token})
		cancel()
		if err != nil {
			t.Logf("list: %v", err)
			return -1, 0
		}
		for _, e := range resp.GetEvents() {
			key := fmt.Sprintf("%s/%d", e.GetBootId(), e.GetSeq())
			if seen[key] {
				twice++
			}
			seen[key] = true
		}
		if token = resp.GetNextPageToken(); token == "" {
			return int64(len(seen)), twice
		}
	}
}

// finish waits for the honest agent's kills to be stored and asserts
// that each was stored once; it returns how many were.
func (a *aggregator) finish(t *testing.T, h *honest) int64 {
	t.Helper()
	deadline := time.Now().Add(90 * time.Second)
	var n, twice int64
	for {
		n, twice = a.stored(t, h.node)
		if n >= h.count || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if n != h.count || twice != 0 {
		t.Errorf("honest agent: %d of %d kills stored (%d listed twice)", n, h.count, twice)
	}
	return n
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

// roleArgs are the aggregator flags that give the test's identities their
// roles.
func roleArgs() []string { return nil }

// TestStartOnTakenPort: when a port chosen for the aggregator is taken
// before the aggregator binds it (here: held by this test), the start is
// tried again on new ports instead of failing the scenario.
func TestStartOnTakenPort(t *testing.T) {
	held, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	calls := 0
	pickPort = func(t *testing.T) string {
		calls++
		if calls == 3 {
			// The first start's web listener.
			return held.Addr().String()
		}
		return freePort(t)
	}
	defer func() { pickPort = freePort }()
	a := startAggregator(t)
	if calls != 6 || a.web == held.Addr().String() {
		t.Fatalf("%d ports chosen, web listener %s (the held port %s)", calls, a.web, held.Addr())
	}
	a.up(t)
}
