package cgroupstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"testing"
	"time"

	"github.com/containerd/cgroups/v3"

	"github.com/oomwatch/oomwatch/pkg/workload"
)

// ownCgroup returns this process's memory cgroup path, as the kernel names
// it in OOM reports.
func ownCgroup(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	p, err := workload.ParseProcCgroup(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestRealHostMode checks DetectMode on this machine's /sys/fs/cgroup
// against the library's own view of the host.
func TestRealHostMode(t *testing.T) {
	mode, dir, err := DetectMode(DefaultRoot)
	switch cgroups.Mode() {
	case cgroups.Unavailable:
		t.Skip("no cgroup file system mounted")
	case cgroups.Unified:
		if err != nil || mode != ModeV2 || dir != DefaultRoot {
			t.Fatalf("unified host: DetectMode = %v, %q, %v", mode, dir, err)
		}
	case cgroups.Legacy, cgroups.Hybrid:
		// The memory controller stays on v1 on every hybrid host we know;
		// a hybrid host with memory on the unified tree is reported as v2.
		if isDir("/sys/fs/cgroup/memory") {
			if err != nil || mode != ModeV1 || dir != "/sys/fs/cgroup/memory" {
				t.Fatalf("hybrid host with v1 memory: DetectMode = %v, %q, %v", mode, dir, err)
			}
		} else if err != nil || mode != ModeV2 {
			t.Fatalf("hybrid host with v2 memory: DetectMode = %v, %q, %v", mode, dir, err)
		}
	}
}

// TestRealOwnCgroup reads this test process's own memory cgroup: it has
// tasks (us), so it has usage.
func TestRealOwnCgroup(t *testing.T) {
	if cgroups.Mode() == cgroups.Unavailable {
		t.Skip("no cgroup file system mounted")
	}
	p := ownCgroup(t)
	s, err := Read(DefaultRoot, p)
	if err != nil {
		t.Fatalf("Read(%q): %v", p, err)
	}
	if s.CurrentBytes <= 0 {
		t.Errorf("own cgroup %s: CurrentBytes = %d, want > 0", p, s.CurrentBytes)
	}
	if s.MaxBytes < 0 || (s.MaxBytes > 0 && s.MaxBytes < s.CurrentBytes/2) {
		t.Errorf("own cgroup %s: implausible MaxBytes %d with usage %d", p, s.MaxBytes, s.CurrentBytes)
	}
	t.Logf("own memory cgroup %s: %+v", p, s)
}

// TestRealLimitedChildOOM makes a child memory cgroup with a 16 MiB limit
// under this process's own, reads its limit, then runs `tail /dev/zero`
// (which buffers an endless line) INSIDE the group so the kernel's memcg OOM
// killer kills it, and checks that Read sees the kill. The process moves
// itself into the group before it allocates, so it never runs unlimited.
func TestRealLimitedChildOOM(t *testing.T) {
	if os.Getenv("OOMWATCH_SKIP_SYSTEM_TESTS") == "1" {
		t.Skip("OOMWATCH_SKIP_SYSTEM_TESTS=1")
	}
	mode, dir, err := DetectMode(DefaultRoot)
	if err != nil {
		t.Skipf("no memory controller here: %v", err)
	}
	const limit = 16 << 20
	rel := path.Join(ownCgroup(t), fmt.Sprintf("oomwatch-cgroupstat-%d", os.Getpid()))
	abs := filepath.Join(dir, rel)
	if err := os.Mkdir(abs, 0o755); err != nil {
		t.Fatalf("create test cgroup (CI runs as root): %v", err)
	}
	t.Cleanup(func() {
		// rmdir fails while a task is still being torn down; retry briefly.
		for i := 0; i < 50; i++ {
			if err := os.Remove(abs); err == nil || errors.Is(err, os.ErrNotExist) {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("could not remove %s", abs)
	})
	limitFile := "memory.max"
	if mode == ModeV1 {
		limitFile = "memory.limit_in_bytes"
	}
	if err := os.WriteFile(filepath.Join(abs, limitFile), []byte(fmt.Sprint(limit)), 0o644); err != nil {
		t.Skipf("cannot set a memory limit here (%v); refusing to run a hog without one", err)
	}
	s, err := Read(DefaultRoot, rel)
	if err != nil {
		t.Fatalf("Read(%q): %v", rel, err)
	}
	if s.MaxBytes != limit || s.V1 != (mode == ModeV1) || s.Events.OOMKill != 0 {
		t.Fatalf("fresh group: %+v, want MaxBytes %d and no kills", s, limit)
	}

	// The shell writes its own PID into the group and only then execs the
	// hog: if the write fails, && stops it before any allocation.
	procs := filepath.Join(abs, "cgroup.procs")
	cmd := exec.Command("/bin/sh", "-c", `echo $$ > "$1" && exec tail /dev/zero`, "sh", procs)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("hog: want it killed, got err=%v output=%s", err, out)
	}
	if st := ee.ProcessState.String(); st != "signal: killed" {
		t.Fatalf("hog ended with %q, want signal: killed; output=%s", st, out)
	}
	s, err = Read(DefaultRoot, rel)
	if err != nil {
		t.Fatalf("Read after OOM: %v", err)
	}
	if s.Events.OOMKill < 1 {
		t.Errorf("after a memcg OOM kill: Events.OOMKill = %d, want >= 1 (%+v)", s.Events.OOMKill, s)
	}
	if mode == ModeV1 && s.PeakBytes < limit*9/10 {
		t.Errorf("PeakBytes = %d, want close to the %d limit", s.PeakBytes, limit)
	}
	t.Logf("after OOM: %+v", s)
}
