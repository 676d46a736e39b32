// Package containerd runs a real containerd (Debian's 1.6, with its CRI
// plugin, and runc) for oomwatch's tests: everything it needs lives in a
// temporary directory (root, state, sockets, config), its images are built
// locally as OCI archives (no registry is reachable) and imported with ctr,
// and it is stopped, with every shim and mount it left, when the test ends.
//
// Use from any test package:
//
//	func TestX(t *testing.T) {
//		containerd.SkipIfDisabled(t)
//		h := containerd.Start(t, containerd.Options{Images: []containerd.Image{containerd.HogImage(t)}})
//		rt := h.Runtime() // a k8s.io/cri-api RuntimeServiceClient on h.Endpoint
//		...
//	}
//
// It needs root (apt-get, mounts, cgroups). Setting
// OOMWATCH_SKIP_SYSTEM_TESTS=1 skips such tests for quick local runs; they
// are never skipped by default, so CI runs them.
package containerd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/oomwatch/oomwatch/test/apt"
)

// EnvSkip names the environment variable that, set to "1", skips the tests
// that need root, apt and a real containerd.
const EnvSkip = "OOMWATCH_SKIP_SYSTEM_TESTS"

// Image names the harness uses.
const (
	// SandboxImage is the configured sandbox ("pause") image: busybox's
	// sleep, built and imported by Start.
	SandboxImage = "oomwatch.test/pause:1"
	// HogRef is the name of the image HogImage builds.
	HogRef = "oomwatch.test/hog:1"
)

// Namespace is the containerd namespace of the CRI plugin.
const Namespace = "k8s.io"

// Debian packages the harness installs when missing.
var packages = []string{"containerd", "runc", "busybox-static"}

// SkipIfDisabled skips t when OOMWATCH_SKIP_SYSTEM_TESTS=1.
func SkipIfDisabled(t testing.TB) {
	t.Helper()
	if os.Getenv(EnvSkip) == "1" {
		t.Skipf("%s=1: skipping a test that needs root, apt and containerd", EnvSkip)
	}
}

// Options configure Start.
type Options struct {
	// Snapshotter is "overlayfs" or "native"; empty picks overlayfs when an
	// overlay mount works in the temporary directory, else native.
	Snapshotter string
	// Images are imported besides the sandbox image.
	Images []Image
	// StartTimeout bounds the wait for the CRI socket (30s when 0).
	StartTimeout time.Duration
}

// Timings say how long each setup step took.
type Timings struct {
	Install, BuildImages, Start, Import time.Duration
}

// Harness is a running containerd.
type Harness struct {
	// Dir holds everything: config.toml, root/, state/, the sockets and
	// containerd.log.
	Dir string
	// Socket is the path of the gRPC socket; Endpoint is "unix://" + Socket,
	// what a CRI client dials.
	Socket, Endpoint string
	// Snapshotter is the snapshotter in use.
	Snapshotter string
	// Timings of the setup steps.
	Timings Timings

	cmd     *exec.Cmd
	exited  chan struct{}
	conn    *grpc.ClientConn
	mu      sync.Mutex
	cgroups []string
}

// CleanupCgroup has path (a CRI cgroup_parent such as
// "/kubepods/burstable/pod<uid>") removed with RemoveCgroup when the test
// ends, after every sandbox is gone and containerd has stopped.
func (h *Harness) CleanupCgroup(path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.cgroups = append(h.cgroups, path)
}

var (
	installOnce sync.Once
	installErr  error
	installDur  time.Duration
)

// EnsureInstalled installs Debian's containerd, runc and busybox-static
// with apt-get (after one apt-get update) when any is missing. It runs once
// per process; it needs root.
func EnsureInstalled(ctx context.Context) (time.Duration, error) {
	installOnce.Do(func() {
		start := time.Now()
		installErr = install(ctx)
		installDur = time.Since(start)
	})
	return installDur, installErr
}

func install(ctx context.Context) error {
	missing := false
	for _, b := range []string{"containerd", "ctr", "runc"} {
		if _, err := exec.LookPath(b); err != nil {
			missing = true
		}
	}
	if checkStatic(busyboxPath()) != nil {
		missing = true
	}
	if !missing {
		return nil
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("containerd, runc or a static busybox is missing and installing them needs root (or set %s=1)", EnvSkip)
	}
	if err := apt.Install(ctx, packages...); err != nil {
		return err
	}
	if err := checkStatic(busyboxPath()); err != nil {
		return err
	}
	return nil
}

// busyboxPath is where Debian's busybox-static puts busybox.
func busyboxPath() string {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "/bin/busybox"
}

// PauseImage is the sandbox image: busybox sleeping for ever as PID 1.
func PauseImage() (Image, error) {
	files, err := BusyboxFiles(busyboxPath(), "sh", "sleep")
	if err != nil {
		return Image{}, err
	}
	return Image{Ref: SandboxImage, Files: files, Entrypoint: []string{"/bin/sleep", "2147483647"}}, nil
}

// HogImage builds test/e2e/hog (CGO_ENABLED=0) and returns an image with
// busybox and /hog, named HogRef. It installs the packages first when
// missing (busybox-static is one). It fails t on error.
func HogImage(t testing.TB) Image {
	t.Helper()
	if _, err := EnsureInstalled(context.Background()); err != nil {
		t.Fatalf("install containerd: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "hog")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/oomwatch/oomwatch/test/e2e/hog")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build hog: %v\n%s", err, out)
	}
	files, err := BusyboxFiles(busyboxPath(), "sh", "sleep", "cat")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, File{Path: "hog", Src: bin, Mode: 0o755})
	return Image{Ref: HogRef, Files: files, Entrypoint: []string{"/hog"}}
}

// Start installs what is missing, writes the config, starts containerd,
// waits for its CRI service, imports the sandbox image and opts.Images and
// returns. Everything is stopped and removed when t ends. It fails t on
// error; call SkipIfDisabled first.
func Start(t testing.TB, opts Options) *Harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	var h Harness
	var err error
	if h.Timings.Install, err = EnsureInstalled(ctx); err != nil {
		t.Fatalf("install containerd: %v", err)
	}
	// A short directory: unix socket paths are limited to 108 bytes.
	h.Dir, err = os.MkdirTemp("", "oomwatch-ctrd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.cleanup(t) })

	buildStart := time.Now()
	pause, err := PauseImage()
	if err != nil {
		t.Fatal(err)
	}
	var archives []string
	for i, img := range append([]Image{pause}, opts.Images...) {
		p := filepath.Join(h.Dir, fmt.Sprintf("image-%d.tar", i))
		if err := writeImageFile(p, img); err != nil {
			t.Fatalf("build image %s: %v", img.Ref, err)
		}
		archives = append(archives, p)
	}
	h.Timings.BuildImages = time.Since(buildStart)

	h.Snapshotter = opts.Snapshotter
	if h.Snapshotter == "" {
		h.Snapshotter = "native"
		if overlayWorks(h.Dir) {
			h.Snapshotter = "overlayfs"
		}
	}
	h.Socket = filepath.Join(h.Dir, "containerd.sock")
	h.Endpoint = "unix://" + h.Socket
	cfg := filepath.Join(h.Dir, "config.toml")
	if err := os.WriteFile(cfg, []byte(h.config()), 0o644); err != nil {
		t.Fatal(err)
	}

	startAt := time.Now()
	timeout := opts.StartTimeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	if err := h.start(ctx, cfg, timeout); err != nil {
		t.Fatalf("start containerd: %v\n%s", err, h.Log())
	}
	h.Timings.Start = time.Since(startAt)

	importAt := time.Now()
	for _, a := range archives {
		if err := h.ImportArchive(ctx, a); err != nil {
			t.Fatalf("%v\n%s", err, h.Log())
		}
	}
	for _, img := range append([]Image{pause}, opts.Images...) {
		if err := h.waitImage(ctx, img.Ref); err != nil {
			t.Fatalf("%v\n%s", err, h.Log())
		}
	}
	h.Timings.Import = time.Since(importAt)
	return &h
}

func writeImageFile(p string, img Image) error {
	f, err := os.Create(p)
	if err != nil {
		return err
	}
	if err := WriteImage(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// config returns containerd's config.toml (version 2): every path under
// h.Dir, the CRI plugin with restrict_oom_score_adj (root here lacks
// CAP_SYS_RESOURCE, and runc fails to lower oom_score_adj without it), the
// cgroupfs driver, and CNI pointed at empty directories (host-network
// sandboxes need none).
func (h *Harness) config() string {
	q := func(s string) string { return fmt.Sprintf("%q", s) }
	return strings.Join([]string{
		`version = 2`,
		`root = ` + q(filepath.Join(h.Dir, "root")),
		`state = ` + q(filepath.Join(h.Dir, "state")),
		`disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs"]`,
		``,
		`[grpc]`,
		`  address = ` + q(h.Socket),
		`[ttrpc]`,
		`  address = ` + q(h.Socket+".ttrpc"),
		`[metrics]`,
		`  address = ""`,
		``,
		`[plugins."io.containerd.grpc.v1.cri"]`,
		`  sandbox_image = ` + q(SandboxImage),
		`  restrict_oom_score_adj = true`,
		`  systemd_cgroup = false`,
		`  disable_apparmor = true`,
		`  enable_selinux = false`,
		`  disable_proc_mount = false`,
		`  [plugins."io.containerd.grpc.v1.cri".containerd]`,
		`    snapshotter = ` + q(h.Snapshotter),
		`    default_runtime_name = "runc"`,
		`    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]`,
		`      runtime_type = "io.containerd.runc.v2"`,
		`      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]`,
		`        SystemdCgroup = false`,
		`  [plugins."io.containerd.grpc.v1.cri".cni]`,
		`    bin_dir = ` + q(filepath.Join(h.Dir, "cni", "bin")),
		`    conf_dir = ` + q(filepath.Join(h.Dir, "cni", "conf")),
		``,
	}, "\n")
}

// overlayWorks tries an overlay mount under dir, as the overlayfs
// snapshotter would make.
func overlayWorks(dir string) bool {
	base, err := os.MkdirTemp(dir, "overlay-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(base)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o755); err != nil {
			return false
		}
	}
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", filepath.Join(base, "lower"), filepath.Join(base, "upper"), filepath.Join(base, "work"))
	merged := filepath.Join(base, "merged")
	if err := unix.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return false
	}
	_ = unix.Unmount(merged, 0)
	return true
}

// start runs containerd and waits until its CRI runtime service answers.
func (h *Harness) start(ctx context.Context, cfg string, timeout time.Duration) error {
	logf, err := os.Create(filepath.Join(h.Dir, "containerd.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	h.cmd = exec.Command("containerd", "--config", cfg, "--log-level", "info")
	h.cmd.Stdout, h.cmd.Stderr = logf, logf
	// If the test binary dies, containerd goes too.
	h.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := h.cmd.Start(); err != nil {
		return err
	}
	h.exited = make(chan struct{})
	go func() { _ = h.cmd.Wait(); close(h.exited) }()

	h.conn, err = grpc.NewClient("unix://"+h.Socket, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	rt := runtimeapi.NewRuntimeServiceClient(h.conn)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-h.exited:
			return errors.New("containerd exited during start")
		default:
		}
		if _, err := os.Stat(h.Socket); err == nil {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			_, err = rt.Version(cctx, &runtimeapi.VersionRequest{})
			cancel()
			if err == nil {
				return nil
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRI not answering after %v: %w", timeout, err)
			}
		} else if time.Now().After(deadline) {
			return fmt.Errorf("no socket %s after %v", h.Socket, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ImportArchive imports an OCI archive into the CRI plugin's namespace
// with `ctr images import`.
func (h *Harness) ImportArchive(ctx context.Context, archive string) error {
	cmd := exec.CommandContext(ctx, "ctr", "-a", h.Socket, "-n", Namespace, "images", "import",
		"--snapshotter", h.Snapshotter, archive)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ctr images import %s: %w\n%s", archive, err, out)
	}
	return nil
}

// waitImage waits until the CRI image service sees ref: it learns of
// imports from containerd's event stream, a moment after ctr returns.
func (h *Harness) waitImage(ctx context.Context, ref string) error {
	is := runtimeapi.NewImageServiceClient(h.conn)
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := is.ImageStatus(ctx, &runtimeapi.ImageStatusRequest{Image: &runtimeapi.ImageSpec{Image: ref}})
		if err == nil && resp.GetImage() != nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("CRI does not see image %s after import (last error %v)", ref, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Runtime returns a CRI runtime service client on the harness's socket.
func (h *Harness) Runtime() runtimeapi.RuntimeServiceClient {
	return runtimeapi.NewRuntimeServiceClient(h.conn)
}

// Images returns a CRI image service client on the harness's socket.
func (h *Harness) Images() runtimeapi.ImageServiceClient {
	return runtimeapi.NewImageServiceClient(h.conn)
}

// Log returns the end of containerd's log.
func (h *Harness) Log() string {
	b, _ := os.ReadFile(filepath.Join(h.Dir, "containerd.log"))
	return string(tail(b, 6000))
}

// cleanup removes every sandbox through CRI (which stops their shims and
// unmounts their root file systems), stops containerd, kills shims it left
// and unmounts what is still mounted under h.Dir, then removes h.Dir.
func (h *Harness) cleanup(t testing.TB) {
	if h.conn != nil && h.cmd != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		rt := runtimeapi.NewRuntimeServiceClient(h.conn)
		if resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{}); err == nil {
			for _, sb := range resp.Items {
				_, _ = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
				if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
					t.Logf("cleanup: remove sandbox %s: %v", sb.Id, err)
				}
			}
		}
		cancel()
		h.conn.Close()
	}
	if h.cmd != nil && h.cmd.Process != nil {
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-h.exited:
		case <-time.After(15 * time.Second):
			_ = h.cmd.Process.Kill()
			<-h.exited
		}
	}
	if h.Socket != "" {
		h.killShims(t)
	}
	h.mu.Lock()
	for _, p := range h.cgroups {
		RemoveCgroup("", p)
	}
	h.mu.Unlock()
	if h.Dir != "" {
		unmountUnder(h.Dir)
		if err := os.RemoveAll(h.Dir); err != nil {
			t.Logf("cleanup: %v", err)
		}
	}
}

// killShims kills containerd-shim processes started for this harness:
// those whose command line names its socket.
func (h *Harness) killShims(t testing.TB) {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		var pid int
		if _, err := fmt.Sscanf(e.Name(), "%d", &pid); err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !bytes.Contains(b, []byte("containerd-shim")) || !bytes.Contains(b, []byte(h.Socket)) {
			continue
		}
		t.Logf("cleanup: killing leftover shim %d", pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// unmountUnder lazily unmounts every mount point below dir, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			points = append(points, f[4])
		}
	}
	for i := len(points) - 1; i >= 0; i-- {
		_ = unix.Unmount(points[i], unix.MNT_DETACH)
	}
}

// RemoveCgroup removes the cgroup at path (as in a CRI cgroup_parent,
// "/kubepods/burstable/pod<uid>") from every v1 controller hierarchy and
// the unified one under root (/sys/fs/cgroup when empty), then its parents
// up to the hierarchy root while they are empty. runc removes a
// container's own group but never the parents it created.
func RemoveCgroup(root, path string) {
	if root == "" {
		root = "/sys/fs/cgroup"
	}
	hier := []string{root}
	if ents, err := os.ReadDir(root); err == nil {
		for _, e := range ents {
			if e.IsDir() {
				hier = append(hier, filepath.Join(root, e.Name()))
			}
		}
	}
	for _, hdir := range hier {
		for p := filepath.Clean("/" + path); p != "/"; p = filepath.Dir(p) {
			if err := os.Remove(filepath.Join(hdir, p)); err != nil {
				break // not there, or not empty: parents are not empty either
			}
		}
	}
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
