package kube_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/test/kube/cluster"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
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
// the Service's current pod: restart it after the aggregator pod changes.
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
	cmd := exec.Command(e.c.KubectlPath(), "-n", "oomwatch", "port-forward", "svc/oomwatch-aggregator", fmt.Sprintf("%d:7443", e.port))
	cmd.Env = e.c.Env()
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait(); logf.Close() })
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

// oomEvent is one line of `oomctl events -o json` for an OOM kill.
type oomEvent struct {
	ID   string `json:"id"`
	Node string `json:"node"`
	Type string `json:"type"`
	analysis.Event
}

// oomEvents lists the OOM kills the aggregator holds for a pod (UID).
func (e *env) oomEvents(podUID string) ([]oomEvent, error) {
	out, err := e.oomctl("events", "-o", "json", "--type=oom", "--limit=0", "--pod="+podUID)
	if err != nil {
		return nil, err
	}
	var evs []oomEvent
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 || line[0] != '{' {
			continue
		}
		var ev oomEvent
		if err := json.Unmarshal(line, &ev); err != nil {
			return nil, fmt.Errorf("decode %q: %w", line, err)
		}
		evs = append(evs, ev)
	}
	return evs, sc.Err()
}

// explainEntry is one line of `oomctl explain -o json`.
type explainEntry struct {
	Type        string `json:"type"`
	Pod         string `json:"pod"`
	PodUID      string `json:"pod_uid"`
	Container   string `json:"container"`
	ContainerID string `json:"container_id"`
	ExitCode    *int32 `json:"exit_code"`
	Verdict     string `json:"verdict"`
	Explanation string `json:"explanation"`
	OOMEventID  string `json:"oom_event_id"`
	Collateral  bool   `json:"collateral"`
	Culprit     *struct {
		Pod       string `json:"pod"`
		Container string `json:"container"`
	} `json:"culprit"`
}

func (e *env) explain(namespace, pod string) ([]explainEntry, error) {
	out, err := e.oomctl("explain", "-o", "json", "--namespace="+namespace, "--limit=0", pod)
	if err != nil {
		return nil, err
	}
	var entries []explainEntry
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var en explainEntry
		if err := dec.Decode(&en); err != nil {
			return nil, fmt.Errorf("decode explain output: %w\n%s", err, out)
		}
		entries = append(entries, en)
	}
	return entries, nil
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
// the whole host's, so a test counts only its own kills. It reads on as
// records arrive until stopped, so a ring buffer that wraps meanwhile
// loses nothing already read.
type kmsgWatch struct {
	fd     int
	marker string
	kills  map[int]bool
}

func newKmsgWatch(t *testing.T, marker string) *kmsgWatch {
	t.Helper()
	// Raw syscalls: an *os.File would park a non-blocking read in Go's
	// poller instead of returning EAGAIN at the end of the log.
	fd, err := unix.Open("/dev/kmsg", unix.O_RDONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return &kmsgWatch{fd: fd, marker: marker, kills: map[int]bool{}}
}

// poll reads every record logged since the last call and returns the
// kills seen so far.
func (w *kmsgWatch) poll() map[int]bool {
	buf := make([]byte, 8192)
	for {
		n, err := unix.Read(w.fd, buf)
		if errors.Is(err, unix.EPIPE) || errors.Is(err, unix.EINTR) {
			continue // records overwritten before we read them: read on
		}
		if err != nil || n <= 0 {
			return w.kills // EAGAIN: nothing more for now
		}
		rec := string(buf[:n])
		i := strings.IndexByte(rec, ';')
		if i < 0 {
			continue
		}
		msg := strings.TrimSpace(rec[i+1:])
		if !strings.HasPrefix(msg, "oom-kill:") || !strings.Contains(msg, w.marker) {
			continue
		}
		for _, field := range strings.Split(msg, ",") {
			if v, ok := strings.CutPrefix(field, "pid="); ok {
				if pid, err := strconv.Atoi(v); err == nil {
					w.kills[pid] = true
				}
			}
		}
	}
}
