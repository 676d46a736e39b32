package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// hogPkg is the memory hog the guests run.
const hogPkg = "github.com/oomwatch/oomwatch/test/e2e/hog"

// prepare returns the VM assets and a freshly built hog. EnsureAssets
// installs what this machine lacks, so on CI's first run this takes minutes;
// after that it is a cache lookup.
func prepare(t *testing.T) (Assets, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 8*time.Minute)
	defer cancel()
	assets, err := EnsureAssets(ctx, t.Logf)
	if err != nil {
		t.Fatal(err)
	}
	hog, err := BuildStatic(ctx, t.TempDir(), hogPkg)
	if err != nil {
		t.Fatal(err)
	}
	return assets, hog
}

// podCgroup is a kubelet-shaped (systemd driver) cgroup v2 container scope.
type podCgroup struct {
	qos       string // "burstable" or "besteffort"
	podUID    string // with dashes, as in the API
	container string // 64 hex digits
}

// path returns the scope's path below the cgroup2 mount.
func (p podCgroup) path() string {
	slice := "/kubepods.slice/kubepods-" + p.qos + ".slice"
	pod := slice + "/kubepods-" + p.qos + "-pod" + strings.ReplaceAll(p.podUID, "-", "_") + ".slice"
	return pod + "/cri-containerd-" + p.container + ".scope"
}

// script returns shell lines that create the scope and every level above
// it, enabling the memory controller for each level's children as kubelet
// does, and set scope=/sys/fs/cgroup<path>.
func (p podCgroup) script() string {
	var b strings.Builder
	b.WriteString("cg=/sys/fs/cgroup\n")
	dir := ""
	for _, part := range strings.Split(strings.TrimPrefix(p.path(), "/"), "/") {
		fmt.Fprintf(&b, "echo +memory > $cg%s/cgroup.subtree_control\n", dir)
		dir += "/" + part
		fmt.Fprintf(&b, "mkdir $cg%s\n", dir)
	}
	fmt.Fprintf(&b, "scope=$cg%s\n", dir)
	return b.String()
}

// runOOM boots a guest that runs hog with hogArgs in the container scope
// of pod (after setup, which may use $scope), then exports the raw kernel
// log as "kmsg". It returns the result and that log.
func runOOM(t *testing.T, pod podCgroup, setup, hogArgs string) (*Result, string) {
	t.Helper()
	assets, hog := prepare(t)
	script := "set -e\n" + pod.script() + setup + `
set +e
hog ` + hogArgs + ` -cgroup "$scope"
rc=$?
echo "hog exited with status $rc"
hog -dump-kmsg /tmp/kmsg
export_file kmsg /tmp/kmsg
exit $rc
`
	var console bytes.Buffer
	res, err := Run(t.Context(), Config{
		Assets:  assets,
		Files:   map[string]File{"/bin/hog": {HostPath: hog}},
		Script:  script,
		Cmdline: []string{"log_buf_len=1M"},
		Timeout: 4 * time.Minute,
		Console: &console,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot %s, run %s, kernel %s, busybox %s, %s=%s",
		res.Boot.Round(time.Millisecond), res.Duration.Round(time.Millisecond),
		assets.KernelPackage, assets.BusyboxPackage, QEMUPackage, assets.QEMUVersion)
	kmsg, err := res.File("kmsg")
	if err != nil {
		t.Fatalf("%v\nconsole:\n%s", err, console.String())
	}
	if res.ExitCode != 128+9 {
		t.Errorf("hog exit status = %d, want 137 (SIGKILL by the OOM killer)\nconsole:\n%s", res.ExitCode, console.String())
	}
	return res, string(kmsg)
}

// wantLines fails t for every substring of want that kmsg lacks.
func wantLines(t *testing.T, kmsg string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(kmsg, w) {
			t.Errorf("kernel log lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("kernel log:\n%s", kmsg)
	}
}

// TestBootAndMemcgOOM makes a container's memory.max kill the hog, as a
// Kubernetes container limit would.
func TestBootAndMemcgOOM(t *testing.T) {
	t.Parallel()
	pod := podCgroup{
		qos:       "burstable",
		podUID:    "6f1c2a4e-1b2c-4d5e-8f90-123456789abc",
		container: strings.Repeat("0123456789abcdef", 4),
	}
	_, kmsg := runOOM(t, pod, `echo 32M > "$scope/memory.max"`+"\n", "-mb 64")
	wantLines(t, kmsg,
		"invoked oom-killer",
		"Memory cgroup out of memory: Killed process",
		"oom-kill:constraint=CONSTRAINT_MEMCG",
		",oom_memcg="+pod.path()+",task_memcg="+pod.path()+",task=hog,",
		// The Linux version line proves the dump starts at boot.
		"Linux version ",
	)
	if strings.Contains(kmsg, "global_oom") {
		t.Errorf("a container limit kill was reported as global_oom")
	}
}

// TestNodeOOM fills the whole guest from a BestEffort pod with no limit, so
// the node-level OOM killer picks the hog (oom_score_adj 1000).
func TestNodeOOM(t *testing.T) {
	t.Parallel()
	pod := podCgroup{
		qos:       "besteffort",
		podUID:    "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d",
		container: strings.Repeat("fedcba9876543210", 4),
	}
	_, kmsg := runOOM(t, pod, "", "-mb 0 -oom-score-adj 1000")
	wantLines(t, kmsg,
		"invoked oom-killer",
		"Out of memory: Killed process",
		"oom-kill:constraint=CONSTRAINT_NONE",
		",global_oom,task_memcg="+pod.path()+",task=hog,",
		"oom_score_adj:1000",
	)
	if strings.Contains(kmsg, "oom_memcg=") {
		t.Errorf("a node-level kill names an oom_memcg")
	}
}

// TestRunExitAndExports checks the harness itself: the script's exit
// status, a binary export arriving byte for byte, the console, and the
// preamble's mounts.
func TestRunExitAndExports(t *testing.T) {
	t.Parallel()
	assets, _ := prepare(t)
	all := make([]byte, 256*64)
	for i := range all {
		all[i] = byte(i * 7)
	}
	res, err := Run(t.Context(), Config{
		Assets: assets,
		Files:  map[string]File{"/data/all.bin": {Data: all}},
		Script: `
grep -q ' /sys/fs/cgroup cgroup2 ' /proc/mounts || exit 10
grep -q ' /tmp tmpfs ' /proc/mounts || exit 11
ip link show lo | grep -q UP || exit 12
cp /data/all.bin /tmp/copy
export_file all.bin /tmp/copy
echo hello from the guest
exit 7
`,
		Timeout: 2 * time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("boot %s, run %s", res.Boot.Round(time.Millisecond), res.Duration.Round(time.Millisecond))
	if res.ExitCode != 7 {
		t.Errorf("ExitCode = %d, want 7\nconsole:\n%s", res.ExitCode, res.Console)
	}
	if got, err := res.File("all.bin"); err != nil || !bytes.Equal(got, all) {
		t.Errorf("File(all.bin) = %d bytes, %v; want the %d bytes sent", len(got), err, len(all))
	}
	if _, err := res.File("missing"); !errors.Is(err, ErrNoFile) {
		t.Errorf("File(missing) error = %v, want ErrNoFile", err)
	}
	if !bytes.Contains(res.Console, []byte("hello from the guest")) {
		t.Errorf("console lacks the script's output:\n%s", res.Console)
	}
	if res.Boot <= 0 || res.Boot > res.Duration {
		t.Errorf("Boot = %s, Duration = %s", res.Boot, res.Duration)
	}
}

// TestRunPowerOffHung plays a guest whose script is over (its exit status
// and exports sent) but which does not power off, as a 6.1 guest under TCG
// once did: qemu is stopped after the grace, and the run is complete.
func TestRunPowerOffHung(t *testing.T) {
	t.Parallel()
	assets, _ := prepare(t)
	start := time.Now()
	res, err := Run(t.Context(), Config{
		Assets: assets,
		Script: `
echo done > /tmp/out
export_file out /tmp/out
echo "=====EXIT 5=====" > /dev/ttyS1
sleep 600
`,
		Timeout:       2 * time.Minute,
		PowerOffGrace: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.PowerOffHung || res.ExitCode != 5 {
		t.Errorf("PowerOffHung %v, ExitCode %d; want true, 5", res.PowerOffHung, res.ExitCode)
	}
	if got, err := res.File("out"); err != nil || string(got) != "done\n" {
		t.Errorf("File(out) = %q, %v", got, err)
	}
	if d := time.Since(start); d > time.Minute {
		t.Errorf("Run returned after %s", d)
	}
}

// TestRunTimeout checks that a guest that does not finish is stopped and
// reported as a deadline error.
func TestRunTimeout(t *testing.T) {
	t.Parallel()
	assets, _ := prepare(t)
	start := time.Now()
	res, err := Run(t.Context(), Config{Assets: assets, Script: "sleep 600", Timeout: 3 * time.Second})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error = %v, want DeadlineExceeded", err)
	}
	if res == nil || res.ExitCode != -1 {
		t.Errorf("result = %+v, want ExitCode -1", res)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("Run returned after %s; qemu was not stopped at the timeout", d)
	}
}
