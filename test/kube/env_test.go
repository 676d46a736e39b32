package kube_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
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

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/oomwatch/oomwatch/pkg/cli/clitest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
	"github.com/oomwatch/oomwatch/test/kube/cluster"
)

// env is what every scenario uses: the cluster, an admin client, and
// oomctl reaching the aggregator through `kubectl port-forward` as
// deploy/README.md says.
type env struct {
	c    *cluster.Cluster
	cs   *kubernetes.Clientset
	port int
}

// startPortForward runs `kubectl -n oomwatch port-forward
// svc/oomwatch-aggregator PORT:7443` until the test ends. kubectl binds
// the Service's current pod and exits when that pod's container goes (the
// aggregator restarting, or the kernel's OOM killer taking it in a
// node-allocatable scenario: it is a Burstable pod), so a supervisor starts
// it again on the same port, as a user would rerun it.
func (e *env) startPortForward(t *testing.T) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	logf, err := os.Create(filepath.Join(t.TempDir(), "port-forward.log"))
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu      sync.Mutex
		cur     *exec.Cmd
		stopped bool
	)
	run := func() (*exec.Cmd, error) {
		mu.Lock()
		defer mu.Unlock()
		if stopped {
			return nil, errors.New("stopped")
		}
		cmd := exec.Command(e.c.KubectlPath(), "-n", "oomwatch", "port-forward", "svc/oomwatch-aggregator", fmt.Sprintf("%d:7443", e.port))
		cmd.Env = e.c.Env()
		cmd.Stdout, cmd.Stderr = logf, logf
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		cur = cmd
		return cmd, nil
	}
	first, err := run()
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for cmd := first; ; {
			_ = cmd.Wait()
			time.Sleep(time.Second)
			next, err := run()
			if err != nil {
				return
			}
			fmt.Fprintf(logf, "oomwatch test: port-forward exited; started again\n")
			cmd = next
		}
	}()
	t.Cleanup(func() {
		mu.Lock()
		stopped = true
		_ = cur.Process.Kill()
		mu.Unlock()
		<-done
		logf.Close()
	})
	waitUntil(t, "port-forward listening", 30*time.Second, func() (bool, string) {
		conn, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", e.port), time.Second)
		if err != nil {
			return false, err.Error()
		}
		conn.Close()
		return true, ""
	})
}

// oomctl runs oomctl against the aggregator with oomctl's certificate
// from deploy/gen-certs.sh.
func (e *env) oomctl(args ...string) (string, error) {
	p := filepath.Join(e.c.PKI(), "oomctl")
	cmd := args[0]
	full := append([]string{cmd, fmt.Sprintf("--server=localhost:%d", e.port),
		"--tls-ca=" + filepath.Join(p, "ca.crt"), "--tls-cert=" + filepath.Join(p, "tls.crt"), "--tls-key=" + filepath.Join(p, "tls.key")}, args[1:]...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, filepath.Join(e.c.OwnBin, "oomctl"), full...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("oomctl %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// oomEvent is one line of `oomctl events -o json` for an OOM kill, in
// the engine's words (kind "limit", scope "container").
type oomEvent = clitest.Event

// oomEvents lists the OOM kills the aggregator holds for a pod (UID).
func (e *env) oomEvents(podUID string) ([]oomEvent, error) {
	out, err := e.oomctl("events", "-o", "json", "--type=oom", "--limit=0", "--pod="+podUID)
	if err != nil {
		return nil, err
	}
	evs, err := clitest.ReadEvents(jsonLines(out))
	if err != nil {
		return nil, err
	}
	kills := make([]oomEvent, len(evs))
	for i, ev := range evs {
		kills[i] = clitest.Flatten(ev)
	}
	return kills, nil
}

// explain returns the entries of `oomctl explain -o json`, newest first:
// each an exit (verdict, explanation, the kill it was joined with) or an
// OOM kill with no exit record.
func (e *env) explain(namespace, pod string) ([]*pb.Event, error) {
	out, err := e.oomctl("explain", "-o", "json", "--namespace="+namespace, "--limit=0", pod)
	if err != nil {
		return nil, err
	}
	entries, err := clitest.ReadEvents(jsonLines(out))
	if err != nil {
		return nil, fmt.Errorf("decode explain output: %w\n%s", err, out)
	}
	return entries, nil
}

// jsonLines keeps the lines of oomctl's output that are JSON objects:
// e.oomctl returns stderr with stdout.
func jsonLines(out string) io.Reader {
	var b strings.Builder
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), "{") {
			b.WriteString(l + "\n")
		}
	}
	return strings.NewReader(b.String())
}

// namespace creates a namespace for one scenario and deletes it when the
// test ends.
func (e *env) namespace(t *testing.T, name string) {
	t.Helper()
	ctx := context.Background()
	_, err := e.cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		zero := int64(0)
		_ = e.cs.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{GracePeriodSeconds: &zero})
	})
}

// waitUntil polls cond every 500ms until it holds or timeout passes, then
// fails the test with cond's last words.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, msg := cond()
		if ok {
			return
		}
		if msg != "" {
			last = msg
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %v; last: %s", what, timeout, last)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// lastTerminated returns a container's lastState (or current state) of
// termination, when it has one.
func lastTerminated(pod *corev1.Pod, container string) *corev1.ContainerStateTerminated {
	for _, st := range pod.Status.ContainerStatuses {
		if st.Name != container {
			continue
		}
		if st.LastTerminationState.Terminated != nil {
			return st.LastTerminationState.Terminated
		}
		return st.State.Terminated
	}
	return nil
}

// kmsgWatch collects, from the host's kernel log, the PIDs the OOM killer
// killed in cgroups whose path contains a marker (a pod UID): the log is
// the whole host's, so a test counts only its own kills. A goroutine reads
// records as they arrive, as the agent does, so the ring buffer wrapping
// under other tests' output loses as little as possible; if records were
// overwritten before it read them, lost says so.
type kmsgWatch struct {
	marker string
	mu     sync.Mutex
	kills  map[int]bool
	lost   bool
	stop   chan struct{}
	done   chan struct{}
}

func newKmsgWatch(t *testing.T, marker string) *kmsgWatch {
	t.Helper()
	// Raw syscalls: an *os.File would park a non-blocking read in Go's
	// poller instead of returning EAGAIN at the end of the log.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	w := &kmsgWatch{marker: marker, kills: map[int]bool{}, stop: make(chan struct{}), done: make(chan struct{})}
	go w.run(fd)
	t.Cleanup(func() { close(w.stop); <-w.done; unix.Close(fd) })
	return w
}

func (w *kmsgWatch) run(fd int) {
	defer close(w.done)
	buf := make([]byte, 8192)
	for {
		select {
		case <-w.stop:
			return
		default:
		}
		_, _ = unix.Poll([]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}, 100)
		for {
			n, err := unix.Read(fd, buf)
			if errors.Is(err, unix.EPIPE) {
				w.mu.Lock()
				w.lost = true
				w.mu.Unlock()
				continue
			}
			if errors.Is(err, unix.EINTR) {
				continue
			}
			if err != nil || n <= 0 {
				break // EAGAIN: wait for more
			}
			w.record(string(buf[:n]))
		}
	}
}

func (w *kmsgWatch) record(rec string) {
	i := strings.IndexByte(rec, ';')
	if i < 0 {
		return
	}
	msg := strings.TrimSpace(rec[i+1:])
	if !strings.HasPrefix(msg, "oom-kill:") || !strings.Contains(msg, w.marker) {
		return
	}
	for _, field := range strings.Split(msg, ",") {
		if v, ok := strings.CutPrefix(field, "pid="); ok {
			if pid, err := strconv.Atoi(v); err == nil {
				w.mu.Lock()
				w.kills[pid] = true
				w.mu.Unlock()
			}
		}
	}
}

// poll returns the kills seen so far, and whether records were lost.
func (w *kmsgWatch) poll() (map[int]bool, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make(map[int]bool, len(w.kills))
	for k := range w.kills {
		out[k] = true
	}
	return out, w.lost
}

// hostState is what the cluster must leave as it found it on the host:
// the sysctls kubelet and kube-proxy would set, the host's netfilter
// rules, routes and links, and the paths Kubernetes components write to
// by default. Other tests may run meanwhile, so only these are compared.
func hostState(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, f := range []string{"vm/overcommit_memory", "vm/panic_on_oom", "kernel/panic", "kernel/panic_on_oops",
		"kernel/keys/root_maxkeys", "kernel/keys/root_maxbytes", "net/ipv4/ip_forward",
		"net/bridge/bridge-nf-call-iptables", "net/ipv4/conf/all/route_localnet"} {
		v, err := os.ReadFile("/proc/sys/" + f)
		fmt.Fprintf(&b, "sysctl %s=%s (%v)\n", f, strings.TrimSpace(string(v)), err)
	}
	for _, p := range []string{"/var/lib/kubelet", "/var/lib/cni", "/var/lib/oomwatch", "/var/log/containers",
		"/var/log/pods", "/etc/kubernetes", "/etc/cni", "/opt/cni", "/usr/libexec/kubernetes", "/run/netns",
		"/var/run/kubernetes", "/sys/fs/cgroup/memory" + cluster.CgroupRoot, "/sys/fs/cgroup/memory/kubepods"} {
		_, err := os.Stat(p)
		fmt.Fprintf(&b, "path %s exists=%v\n", p, err == nil)
	}
	for _, cmd := range [][]string{{"iptables-save"}, {"ip", "route"}, {"ip", "-br", "link"}} {
		out, err := exec.Command(cmd[0], cmd[1:]...).Output()
		if err != nil {
			fmt.Fprintf(&b, "%s: %v\n", cmd[0], err)
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(line, "#") { // iptables-save's dated comments
				continue
			}
			fmt.Fprintf(&b, "%s: %s\n", cmd[0], line)
		}
	}
	return b.String()
}

// diffLines returns the lines of a and b that the other lacks.
func diffLines(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for l := range ma {
		if !mb[l] {
			out = append(out, "- "+l)
		}
	}
	for l := range mb {
		if !ma[l] {
			out = append(out, "+ "+l)
		}
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}
