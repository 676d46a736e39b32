package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// aggregatorProc is the aggregator binary running on this machine.
type aggregatorProc struct {
	cmd     *exec.Cmd
	addr    string
	metrics string
	log     string
	done    chan struct{}
}

// freeAddr returns a loopback address with a port free at the time.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// DeployedGOMEMLIMIT is the aggregator's GOMEMLIMIT in deploy/aggregator.yaml.
const DeployedGOMEMLIMIT = "768MiB"

// childEnv is the environment of the processes the hooks start: theirs
// without the OOMWATCH_* variables meant for benchtable.
func childEnv() []string {
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "OOMWATCH_") {
			env = append(env, e)
		}
	}
	return env
}

// startAggregator runs bin (…/aggregator) over the database db (an SQLite
// file or a PostgreSQL URL), listening on a free loopback port, plaintext,
// with its metrics on another, logging to the file logPath; args are added
// to the command line. It returns once the aggregator accepts connections.
// A port found free can be taken by another socket before the aggregator
// binds it (the ingest hook's agents dial thousands of connections from
// the same range): an aggregator that exits for that is started again on
// new ports, up to 3 times.
func startAggregator(ctx context.Context, bin, db, logPath string, args ...string) (*aggregatorProc, error) {
	for try := 1; ; try++ {
		p, err := startAggregatorOnce(ctx, bin, db, logPath, args...)
		if err == nil || try == 3 || !errors.Is(err, errPortTaken) {
			return p, err
		}
	}
}

// errPortTaken is the error of an aggregator that exited at start because
// one of its ports was taken.
var errPortTaken = errors.New("a port was taken before the aggregator bound it")

func startAggregatorOnce(ctx context.Context, bin, db, logPath string, args ...string) (*aggregatorProc, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	maddr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(logPath), 0o750); err != nil {
		return nil, err
	}
	if !strings.Contains(db, "://") {
		if err := os.MkdirAll(filepath.Dir(db), 0o750); err != nil {
			return nil, err
		}
	}
	p := &aggregatorProc{addr: addr, metrics: maddr, log: logPath, done: make(chan struct{})}
	logFile, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	p.cmd = exec.Command(bin, append([]string{"--listen", addr, "--db", db, "--insecure", "--metrics-addr", maddr}, args...)...)
	// The Go memory limit deploy/aggregator.yaml sets (768 MiB under a
	// 1 GiB container limit), so that peak RSS is the deployed one.
	p.cmd.Env = append(childEnv(), "GOMEMLIMIT="+DeployedGOMEMLIMIT)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start aggregator: %w", err)
	}
	go func() {
		_ = p.cmd.Wait()
		close(p.done)
	}()
	for deadline := time.Now().Add(60 * time.Second); ; {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return p, nil
		}
		select {
		case <-p.done:
			tail := p.tail()
			if strings.Contains(tail, "address already in use") {
				return nil, fmt.Errorf("%w: %s", errPortTaken, tail)
			}
			return nil, fmt.Errorf("aggregator exited at start: %s", tail)
		case <-ctx.Done():
			p.stop()
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("aggregator did not listen on %s: %s", addr, p.tail())
		}
	}
}

// stop ends the aggregator with SIGTERM (a graceful shutdown), or SIGKILL
// after 30 s.
func (p *aggregatorProc) stop() {
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// tail returns the end of the aggregator's log, for errors.
func (p *aggregatorProc) tail() string {
	b, _ := os.ReadFile(p.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return strings.TrimSpace(string(b))
}

// cpu returns the aggregator's CPU time (user and system) so far.
func (p *aggregatorProc) cpu() (time.Duration, error) {
	_, c, _, err := procSample(p.cmd.Process.Pid)
	return c, err
}

// peakRSS returns the aggregator's peak resident memory (VmHWM), bytes.
func (p *aggregatorProc) peakRSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmHWM", p.cmd.Process.Pid)
}

// written returns the bytes the aggregator has passed to write(2) and
// its kin (files and sockets: wchar of /proc/PID/io).
func (p *aggregatorProc) written() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/io", p.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "wchar:"); ok {
			return strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/io: no wchar", p.cmd.Process.Pid)
}

// metric sums the samples of a metric the aggregator serves on /metrics.
func (p *aggregatorProc) metric(ctx context.Context, name string) (float64, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.metrics+"/metrics", nil)
	if err != nil {
		return 0, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, fmt.Errorf("aggregator metrics: %w", err)
	}
	defer resp.Body.Close()
	return sumMetric(resp.Body, name)
}

// sumMetric adds up every sample of a metric in Prometheus text format.
func sumMetric(r io.Reader, name string) (float64, error) {
	var sum float64
	found := false
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		f := strings.Fields(line)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, fmt.Errorf("metric %s: %w", name, err)
		}
		sum += v
		found = true
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	if !found {
		return 0, fmt.Errorf("metric %s not served", name)
	}
	return sum, nil
}

// quantile returns the q quantile (0..1) of sorted durations, by the
// nearest-rank method.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string {
	return strconv.FormatFloat(float64(d)/float64(time.Millisecond), 'f', 1, 64) + " ms"
}
