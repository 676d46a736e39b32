package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"
)

// Down tears down the cluster whose state is in dir, in order: kubelet,
// every pod sandbox (through CRI, which stops the containers and their
// shims and releases the pods' network namespaces), containerd and
// whatever else still runs in the node's mount namespace, any process left
// in the pods' cgroups, the control plane; then the network namespace (and
// with it the veth pair, the bridge and the host's routes), the cgroups
// under CgroupRoot, the host directories Up created, and dir itself except
// dir/logs. It is safe to run when nothing or only part of a cluster runs.
func Down(ctx context.Context, dir string, log func(string, ...any)) error {
	if log == nil {
		log = func(string, ...any) {}
	}
	if dir == "" {
		dir = DefaultDir
	}
	var errs []error
	pids := filepath.Join(dir, "pids")
	nodeNS := mountNS(readPID(filepath.Join(pids, "node.pid"), dir))
	onlyShims := false
	if b, err := os.ReadFile(filepath.Join(dir, "node-mntns")); nodeNS == "" && err == nil {
		// The node's shell is gone: its namespace, as recorded, may live
		// on in shims only (and an inode number may have been reused, so
		// nothing else is killed by it).
		nodeNS, onlyShims = strings.TrimSpace(string(b)), true
	}

	stop(filepath.Join(pids, "kubelet.pid"), dir, 20*time.Second, log)
	removeSandboxes(ctx, filepath.Join(dir, "node", "run-containerd", "containerd.sock"), log)
	stop(filepath.Join(pids, "containerd.pid"), dir, 15*time.Second, log)
	if nodeNS != "" {
		killMountNS(nodeNS, onlyShims, log)
	}
	stop(filepath.Join(pids, "node.pid"), dir, 5*time.Second, log)
	if err := removeCgroupRoot(log); err != nil {
		errs = append(errs, err)
	}
	for _, d := range []string{"kube-proxy", "dns", "kube-scheduler", "kube-controller-manager", "kube-apiserver", "etcd"} {
		stop(filepath.Join(pids, d+".pid"), dir, 15*time.Second, log)
	}
	if _, err := os.Stat("/run/netns/" + NetNS); err == nil {
		if out, err := exec.CommandContext(ctx, "ip", "netns", "del", NetNS).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("ip netns del: %v: %s", err, out))
		}
	}
	// Normally gone with its peer; a half-made pair is removed here.
	if _, err := os.Stat("/sys/class/net/" + HostVeth); err == nil {
		_ = exec.CommandContext(ctx, "ip", "link", "del", HostVeth).Run()
	}
	removeCreated(filepath.Join(dir, "created"), log)

	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.Name() == "logs" {
			continue
		}
		p := filepath.Join(dir, e.Name())
		unmountUnder(p)
		if err := os.RemoveAll(p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// readPID reads a PID file and returns the PID when that process still runs
// and its command line names dir (so a recycled PID is never signalled);
// 0 otherwise.
func readPID(file, dir string) int {
	b, err := os.ReadFile(file)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil || !bytes.Contains(cmdline, []byte(dir)) {
		return 0
	}
	return pid
}

// stop sends SIGTERM to the process of a PID file, waits up to grace for
// it to exit, then kills it.
func stop(file, dir string, grace time.Duration, log func(string, ...any)) {
	pid := readPID(file, dir)
	defer os.Remove(file)
	if pid == 0 {
		return
	}
	log("stopping %s (pid %d)", strings.TrimSuffix(filepath.Base(file), ".pid"), pid)
	_ = syscall.Kill(pid, syscall.SIGTERM)
	if waitGone(pid, grace) {
		return
	}
	_ = syscall.Kill(pid, syscall.SIGKILL)
	waitGone(pid, 5*time.Second)
}

func waitGone(pid int, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		if !alive(pid) {
			return true
		}
		time.Sleep(50 * time.Millisecond)
	}
	return !alive(pid)
}

// alive reports whether pid exists and is not a zombie.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := bytes.LastIndexByte(b, ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

func mountNS(pid int) string {
	if pid == 0 {
		return ""
	}
	l, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid))
	if err != nil {
		return ""
	}
	return l
}

// killMountNS kills every process in the mount namespace ns (the node's):
// containerd's shims, which outlive containerd; with onlyShims, only
// processes named containerd-shim*.
func killMountNS(ns string, onlyShims bool, log func(string, ...any)) {
	if self, _ := os.Readlink("/proc/self/ns/mnt"); self == ns {
		return // never the host's own namespace
	}
	for round := 0; round < 50; round++ {
		found := false
		ents, _ := os.ReadDir("/proc")
		for _, e := range ents {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			if l, _ := os.Readlink(fmt.Sprintf("/proc/%d/ns/mnt", pid)); l == ns && alive(pid) {
				b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
				comm := strings.TrimSpace(string(b))
				if onlyShims && !strings.HasPrefix(comm, "containerd-shim") {
					continue
				}
				if round == 0 {
					log("killing %s (pid %d) left in the node's mount namespace", comm, pid)
				}
				_ = syscall.Kill(pid, syscall.SIGKILL)
				found = true
			}
		}
		if !found {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// removeSandboxes stops and removes every pod sandbox through CRI.
func removeSandboxes(ctx context.Context, sock string, log func(string, ...any)) {
	if _, err := os.Stat(sock); err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	conn, err := grpc.NewClient("unix://"+sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return
	}
	defer conn.Close()
	rt := runtimeapi.NewRuntimeServiceClient(conn)
	resp, err := rt.ListPodSandbox(ctx, &runtimeapi.ListPodSandboxRequest{})
	if err != nil {
		log("list sandboxes: %v", err)
		return
	}
	for _, sb := range resp.Items {
		_, _ = rt.StopPodSandbox(ctx, &runtimeapi.StopPodSandboxRequest{PodSandboxId: sb.Id})
		if _, err := rt.RemovePodSandbox(ctx, &runtimeapi.RemovePodSandboxRequest{PodSandboxId: sb.Id}); err != nil {
			log("remove sandbox %s: %v", sb.Id, err)
		}
	}
	if len(resp.Items) > 0 {
		log("removed %d pod sandboxes", len(resp.Items))
	}
}

// removeCgroupRoot kills what is left in CgroupRoot's cgroups and removes
// them, deepest first, in every hierarchy.
func removeCgroupRoot(log func(string, ...any)) error {
	var errs []error
	for _, h := range cgroupHierarchies() {
		root := filepath.Join(h, CgroupRoot)
		if _, err := os.Stat(root); err != nil {
			continue
		}
		var dirs []string
		_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
		sort.Sort(sort.Reverse(sort.StringSlice(dirs))) // children before parents
		for _, d := range dirs {
			for i := 0; i < 50; i++ {
				b, _ := os.ReadFile(filepath.Join(d, "cgroup.procs"))
				procs := strings.Fields(string(b))
				if len(procs) == 0 {
					break
				}
				for _, p := range procs {
					if pid, err := strconv.Atoi(p); err == nil && pid > 1 {
						if i == 0 {
							log("killing pid %d left in %s", pid, d)
						}
						_ = syscall.Kill(pid, syscall.SIGKILL)
					}
				}
				time.Sleep(100 * time.Millisecond)
			}
			if err := os.Remove(d); err != nil && !os.IsNotExist(err) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// removeCreated removes the host directories Up created, newest first, if
// they are empty (and unmounted: `ip netns add` turns /run/netns into a
// mount point).
func removeCreated(file string, log func(string, ...any)) {
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	lines := strings.Fields(string(b))
	for i := len(lines) - 1; i >= 0; i-- {
		p := lines[i]
		if ents, err := os.ReadDir(p); err != nil || len(ents) > 0 {
			continue
		}
		_ = unix.Unmount(p, unix.MNT_DETACH)
		if err := os.Remove(p); err == nil {
			log("removed %s", p)
		}
	}
}

// unmountUnder lazily unmounts every mount point at or below dir in the
// host's mount namespace, deepest first.
func unmountUnder(dir string) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return
	}
	var points []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			points = append(points, f[4])
		}
	}
	sort.Sort(sort.Reverse(sort.StringSlice(points)))
	for _, p := range points {
		_ = unix.Unmount(p, unix.MNT_DETACH)
	}
}
