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
			pid, score, memcg, _, ok := parseSelect(sel)
			if !ok || pid != 4242 || score != 937 || !memcg {
				t.Fatalf("parseSelect = %d %d %v %v", pid, score, memcg, ok)
			}
			if pid, ok := parseReaper(fmt.Sprintf("oom_reaper: reaped process 4242 (%s), now anon-rss:0kB, file-rss:0kB, shmem-rss:0kB", comm)); !ok || pid != 4242 {
				t.Fatalf("parseReaper = %d %v", pid, ok)
			}
		})
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
