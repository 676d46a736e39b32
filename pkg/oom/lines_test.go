package oom

import (
	"fmt"
	"strings"
	"testing"
)

// nastyComms are task names a process can give itself (prctl PR_SET_NAME:
// any 15 bytes but NUL) that imitate what the kernel prints around them.
var nastyComms = []string{
	"hog", "", ") total-vm:", "a) total-vm:9kB", "x), now", "(", ")", "((", "))", "a b c",
	"x, y", ") score 9 or s", ") sharing same", "kworker/0:1H", `\x0a`, "a\\x0ab", "(sd-pam)",
}

func TestKillLineAnyComm(t *testing.T) {
	for _, comm := range nastyComms {
		t.Run(fmt.Sprintf("%q", comm), func(t *testing.T) {
			line := fmt.Sprintf("Memory cgroup out of memory: Killed process 4242 (%s) total-vm:1000kB, anon-rss:800kB, file-rss:4kB, shmem-rss:0kB, UID:7 pgtables:40kB oom_score_adj:937", comm)
			v, ok := parseKilled(line)
			if !ok || v.PID != 4242 || v.Comm != comm || v.AnonKB != 800 || v.TotalVMKB != 1000 ||
				v.UID != 7 || v.OOMScoreAdj != 937 || v.Message != "Memory cgroup out of memory" {
				t.Fatalf("parseKilled = %+v, %v", v, ok)
			}
			sel := fmt.Sprintf("Memory cgroup out of memory: Kill process 4242 (%s) score 937 or sacrifice child", comm)
			pid, c, score, memcg, _, ok := parseSelect(sel)
			if !ok || pid != 4242 || c != comm || score != 937 || !memcg {
				t.Fatalf("parseSelect = %d %q %d %v %v", pid, c, score, memcg, ok)
			}
			if pid, c, ok := parseReaper(fmt.Sprintf("oom_reaper: reaped process 4242 (%s), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", comm)); !ok || pid != 4242 || c != comm {
				t.Fatalf("parseReaper = %d %q %v", pid, c, ok)
			}
		})
	}
}

// TestKillLineRedHat reads the kill lines of Red Hat's 2.6.32 (RHEL 6:
// the UID before the comm) and 3.10 (RHEL 7: the UID after it, with a
// space) kernels, whatever the comm.
func TestKillLineRedHat(t *testing.T) {
	for _, comm := range nastyComms {
		for _, form := range []string{
			"Killed process 4242, UID 498, (%s) total-vm:1000kB, anon-rss:800kB, file-rss:4kB",
			"Memory cgroup out of memory: Killed process 4242 (%s), UID 498, total-vm:1000kB, anon-rss:800kB, file-rss:4kB, shmem-rss:0kB",
		} {
			line := fmt.Sprintf(form, comm)
			v, ok := parseKilled(line)
			if !ok || v.PID != 4242 || v.Comm != comm || v.AnonKB != 800 || v.FileKB != 4 || v.TotalVMKB != 1000 ||
				!v.HasUID || v.UID != 498 || !v.HasRSS || v.RSSBytes != 804*1024 {
				t.Errorf("parseKilled(%q) = %+v, %v", line, v, ok)
			}
		}
	}
	// Not the 2.6.32 form: nothing made up.
	for _, line := range []string{
		"Killed process 4242, UID x, (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB",
		"Killed process 4242, UID 3 (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB",
		"Killed process 42 42, UID 3, (a) total-vm:1kB, anon-rss:1kB, file-rss:0kB",
	} {
		if v, ok := parseKilled(line); ok {
			t.Errorf("parseKilled(%q) = %+v, want no kill", line, v)
		}
	}
}

// FuzzKillLine: whatever the comm, the kill line gives back the PID, the
// comm and the figures printed after it.
func FuzzKillLine(f *testing.F) {
	for _, c := range nastyComms {
		f.Add(c, 4242, int64(800))
	}
	f.Fuzz(func(t *testing.T, comm string, pid int, anon int64) {
		if len(comm) > 15 || strings.IndexByte(comm, 0) >= 0 || pid <= 0 || anon < 0 {
			return
		}
		line := fmt.Sprintf("Out of memory: Killed process %d (%s) total-vm:1kB, anon-rss:%dkB, file-rss:0kB, shmem-rss:0kB, UID:0 pgtables:4kB oom_score_adj:0", pid, comm, anon)
		v, ok := parseKilled(line)
		if !ok || v.PID != pid || v.Comm != comm || v.AnonKB != anon {
			t.Fatalf("%q: got pid %d comm %q anon %d ok %v", line, v.PID, v.Comm, v.AnonKB, ok)
		}
	})
}

func TestSummaryAnyComm(t *testing.T) {
	const pod = "/kubepods/burstable/pod3902af1e-8ce1-42e1-a2a5-dc04f4240c4f"
	const ctr = pod + "/ed9dcd836d0c7e3e379b2387ef5e15e70f1c932dbce0fce685606bb2f4d62036"
	comms := append([]string{"x,pid=1", "a,task=b", "y,uid=0", ",", "task=", `a\x0ab,c`}, nastyComms...)
	for _, comm := range comms {
		t.Run(fmt.Sprintf("%q", comm), func(t *testing.T) {
			line := "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=cri,containerd,mems_allowed=0,oom_memcg=" + pod +
				",task_memcg=" + ctr + ",task=" + comm + ",pid=4242,uid=1000"
			s := ParseSummary(line)
			if s.Task != comm || s.PID != 4242 || s.UID != 1000 || !s.HasUID || s.OOMMemcg != pod || s.TaskMemcg != ctr ||
				s.Cpuset != "cri,containerd" || s.Constraint != "CONSTRAINT_MEMCG" || s.Truncated {
				t.Fatalf("ParseSummary = %+v", s)
			}
		})
	}
}

func TestSummaryGlobalAndTruncated(t *testing.T) {
	s := ParseSummary("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/system.slice/x.service,task=stress,pid=3053,uid=0")
	if !s.GlobalOOM || s.OOMMemcg != "" || s.TaskMemcg != "/system.slice/x.service" || s.Task != "stress" || s.PID != 3053 {
		t.Fatalf("global: %+v", s)
	}
	s = ParseSummary("oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=/kubepods/pod1,task_memcg=/kubepods/po>")
	if !s.Truncated || s.OOMMemcg != "/kubepods/pod1" || s.PID != 0 {
		t.Fatalf("truncated: %+v", s)
	}
	// A paste's elision inside the line.
	s = ParseSummary("oom-kill:constraint=CONSTRAINT_NONE... task=postgres,pid=3154,uid=999")
	if s.Constraint != "CONSTRAINT_NONE" || s.PID != 3154 {
		t.Fatalf("elided: %+v", s)
	}
}

func FuzzSummary(f *testing.F) {
	f.Add("x,pid=1", "/kubepods/pod1", "/kubepods/pod1/c1", 42)
	f.Fuzz(func(t *testing.T, comm, memcg, taskMemcg string, pid int) {
		if commBytes(comm) > 15 || pid <= 0 || strings.ContainsAny(comm+memcg+taskMemcg, "\x00\n") ||
			strings.Contains(memcg+taskMemcg, "=") || strings.HasSuffix(comm, ">") {
			return
		}
		line := "oom-kill:constraint=CONSTRAINT_MEMCG,nodemask=(null),cpuset=/,mems_allowed=0,oom_memcg=" + memcg +
			",task_memcg=" + taskMemcg + ",task=" + comm + ",pid=" + fmt.Sprint(pid) + ",uid=0"
		s := ParseSummary(line)
		if s.Task != comm || s.PID != pid || s.OOMMemcg != memcg || s.TaskMemcg != taskMemcg {
			t.Fatalf("%q: %+v", line, s)
		}
	})
}
