// Package cluster runs a real single-node Kubernetes cluster on this host
// for oomwatch's tests and for `make kube-up`: etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, kube-proxy and kubelet at the
// version pinned in tools/kube (built once from the Go module proxy and
// cached, see tools/kube/build.sh), Debian's containerd, runc and CNI
// plugins, and a small DNS server for Services.
//
// The host is kept unchanged. Everything runs in its own network namespace
// (NetNS), joined to the host by one veth pair: kube-proxy's and kubelet's
// netfilter rules, ip_forward and the pod bridge live there and vanish
// with it. kubelet and containerd also share their own mount namespace,
// where the sysctls kubelet would rewrite (vm.overcommit_memory,
// kernel.panic, ...) are files holding the values it wants, and where
// /run/containerd, /run/netns, /var/lib/cni and /var/lib/oomwatch are the
// cluster's own directories. Pods' cgroups live under CgroupRoot, never
// under the host's /kubepods, which test/containerd uses. Down removes all
// of it: pods, kubelet, shims, containerd, the control plane, the
// namespaces, the routes and the cgroups.
//
// Only one cluster runs on a host at a time; its state is in Dir.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/oomwatch/oomwatch/test/e2e/vm"
)

// The cluster's fixed addresses and names. The ranges are private and
// unlikely to be routed on a test host; the host gets routes to the pod and
// service ranges through the veth pair while the cluster runs.
const (
	NetNS        = "oomwatch-kube"
	HostVeth     = "okube0"
	HostIP       = "10.213.0.1"
	NodeIP       = "10.213.0.2"
	LinkCIDR     = "/30"
	PodCIDR      = "10.214.0.0/24"
	BridgeIP     = "10.214.0.1"
	ServiceCIDR  = "10.215.0.0/24"
	APIServiceIP = "10.215.0.1"
	NodeName     = "oomwatch-node"
	// CgroupRoot is kubelet's cgroupRoot: pods' cgroups are
	// CgroupRoot/kubepods/..., apart from the host's /kubepods.
	CgroupRoot = "/oomwatch-kube"
	// DefaultDir holds the state of the cluster `make kube-up` starts.
	DefaultDir = "/var/lib/oomwatch-kube"
	// APIServer is the API server's URL, reachable from the host.
	APIServer = "https://" + NodeIP + ":6443"
)

// ErrNotRoot is returned by Up when not running as root.
var ErrNotRoot = errors.New("the local cluster needs root (namespaces, mounts, cgroups, apt)")

// Options configure Up.
type Options struct {
	// Dir holds the cluster's state (DefaultDir when empty).
	Dir string
	// RepoRoot is the oomwatch checkout (found with `go env GOMOD` when
	// empty).
	RepoRoot string
	// OomwatchBin is a directory with the static agent, aggregator and
	// oomctl binaries (`make build`); when empty they are built into
	// Dir/bin.
	OomwatchBin string
	// AllocatableMiB is the memory kubelet leaves to pods: it reserves the
	// rest of the host's memory for the system, so the kubepods cgroup
	// gets this limit (1024 when 0).
	AllocatableMiB int
	// Log receives progress lines (discarded when nil).
	Log func(format string, args ...any)
}

// Timings of Up's steps.
type Timings struct {
	Binaries, Images, ControlPlane, Node, Total time.Duration
}

// Cluster is a running cluster.
type Cluster struct {
	Dir     string
	BinDir  string // the Kubernetes binaries
	OwnBin  string // oomwatch's and the tests' binaries
	Repo    string
	Timings Timings
	opts    Options
}

// Kubeconfig is the admin kubeconfig's path.
func (c *Cluster) Kubeconfig() string { return filepath.Join(c.Dir, "admin.kubeconfig") }

// KubectlPath is the path of kubectl at the cluster's version.
func (c *Cluster) KubectlPath() string { return filepath.Join(c.BinDir, "kubectl") }

// Client returns a clientset with the admin's credentials.
func (c *Cluster) Client() (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig())
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// ContainerdSocket is the path, on the host, of the node's containerd
// socket (/run/containerd/containerd.sock inside the node).
func (c *Cluster) ContainerdSocket() string {
	return filepath.Join(c.Dir, "node", "run-containerd", "containerd.sock")
}

func (o *Options) logf(format string, args ...any) {
	if o.Log != nil {
		o.Log(format, args...)
	}
}

// repoRoot finds the oomwatch checkout from the working directory.
func repoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", errors.New("not inside the oomwatch module")
	}
	return filepath.Dir(mod), nil
}

// Up starts the cluster (after removing whatever a previous one left in
// opts.Dir), waits for the node to be Ready with the oomwatch images
// imported, and returns it. On error everything started is torn down.
func Up(ctx context.Context, opts Options) (*Cluster, error) {
	if os.Geteuid() != 0 {
		return nil, ErrNotRoot
	}
	if opts.Dir == "" {
		opts.Dir = DefaultDir
	}
	if opts.AllocatableMiB == 0 {
		opts.AllocatableMiB = 1024
	}
	if opts.RepoRoot == "" {
		r, err := repoRoot()
		if err != nil {
			return nil, err
		}
		opts.RepoRoot = r
	}
	start := time.Now()
	c := &Cluster{Dir: opts.Dir, Repo: opts.RepoRoot, OwnBin: filepath.Join(opts.Dir, "bin"), opts: opts}
	if err := Down(ctx, opts.Dir, opts.Log); err != nil {
		return nil, fmt.Errorf("remove the previous cluster: %w", err)
	}
	if err := c.up(ctx); err != nil {
		if derr := Down(context.Background(), opts.Dir, opts.Log); derr != nil {
			opts.logf("teardown after the failed start: %v", derr)
		}
		return nil, err
	}
	c.Timings.Total = time.Since(start)
	return c, nil
}

func (c *Cluster) up(ctx context.Context) error {
	for _, d := range []string{"logs", "pids", "bin", "node"} {
		if err := os.MkdirAll(filepath.Join(c.Dir, d), 0o755); err != nil {
			return err
		}
	}
	t := time.Now()
	if err := InstallPackages(ctx); err != nil {
		return err
	}
	c.opts.logf("building or finding the Kubernetes binaries (first run: ~15 min)")
	out, err := exec.CommandContext(ctx, filepath.Join(c.Repo, "tools", "kube", "build.sh")).Output()
	if err != nil {
		return fmt.Errorf("tools/kube/build.sh: %w", exitDetail(err))
	}
	c.BinDir = strings.TrimSpace(string(out))
	if err := c.buildOwn(ctx); err != nil {
		return err
	}
	c.Timings.Binaries = time.Since(t)

	t = time.Now()
	if err := c.writeConfig(); err != nil {
		return err
	}
	if err := c.setupNetwork(ctx); err != nil {
		return err
	}
	if err := c.startControlPlane(ctx); err != nil {
		return err
	}
	c.Timings.ControlPlane = time.Since(t)

	t = time.Now()
	if err := c.startNode(ctx); err != nil {
		return err
	}
	it := time.Now()
	if err := c.importImages(ctx); err != nil {
		return err
	}
	c.Timings.Images = time.Since(it)
	if err := c.waitNodeReady(ctx, 2*time.Minute); err != nil {
		return err
	}
	if err := c.createStorage(ctx); err != nil {
		return err
	}
	c.Timings.Node = time.Since(t)
	return nil
}

// buildOwn builds the static binaries the images and the tests need.
func (c *Cluster) buildOwn(ctx context.Context) error {
	build := func(out string, pkgs ...string) error {
		args := append([]string{"build", "-tags", vm.BuildTags, "-trimpath", "-ldflags=-s -w", "-o", out}, pkgs...)
		cmd := exec.CommandContext(ctx, "go", args...)
		cmd.Dir = c.Repo
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build %s: %w\n%s", strings.Join(pkgs, " "), err, b)
		}
		return nil
	}
	if c.opts.OomwatchBin == "" {
		if err := build(c.OwnBin+"/", "./agent", "./aggregator", "./oomctl"); err != nil {
			return err
		}
		c.opts.OomwatchBin = c.OwnBin
	}
	return build(c.OwnBin+"/", "./test/e2e/hog", "./test/kube/cmd/oomwatch-kube")
}

// daemon starts a long-running process of the cluster inside its network
// namespace, in its own session, logging to logs/<name>.log, and records
// its PID in pids/<name>.pid.
func (c *Cluster) daemon(name string, argv ...string) error {
	logf, err := os.OpenFile(filepath.Join(c.Dir, "logs", name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer logf.Close()
	args := append([]string{"--net=/run/netns/" + NetNS, "--"}, argv...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	pid := cmd.Process.Pid
	go func() { _ = cmd.Wait() }() // reap it if it exits while we run
	return os.WriteFile(filepath.Join(c.Dir, "pids", name+".pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644)
}

// Log returns the last n bytes of logs/<name>.log.
func (c *Cluster) Log(name string, n int) string {
	b, _ := os.ReadFile(filepath.Join(c.Dir, "logs", name+".log"))
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// run runs a command and returns its combined output, with the output in
// the error.
func run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

func exitDetail(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		s := ee.Stderr
		if len(s) > 4000 {
			s = s[len(s)-4000:]
		}
		return fmt.Errorf("%w\n%s", err, s)
	}
	return err
}

// waitFor polls cond every interval until it returns true or the timeout
// passes; the error names what was awaited and cond's last error.
func waitFor(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error)) error {
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: not after %v (last error: %v)", what, timeout, last)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// LockFile serializes users of the one cluster a host can run: a test
// holds it from bring-up to teardown, `oomwatch-kube up` and `down` while
// they run, so two `go test` runs wait for each other instead of tearing
// down each other's cluster.
const LockFile = "/run/oomwatch-kube.lock"

// Lock takes LockFile, waiting up to timeout; call the returned function
// to release it.
func Lock(ctx context.Context, timeout time.Duration) (func(), error) {
	f, err := os.OpenFile(LockFile, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	err = waitFor(ctx, "the cluster lock "+LockFile, timeout, func() (bool, error) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		return err == nil, err
	})
	if err != nil {
		f.Close()
		return nil, err
	}
	return func() { f.Close() }, nil
}
