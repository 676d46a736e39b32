package bench

import (
	"bufio"
	"bytes"
	"regexp"
	"strconv"
	"strings"
)

var (
	truthSummary = regexp.MustCompile(`oom-kill:constraint=(\w+),.*task_memcg=([^,]*),task=(.*),pid=(\d+),uid=`)
	truthKill    = regexp.MustCompile(`^(.*): Killed process (\d+) \((.*?)\)`)
	truthGroup   = regexp.MustCompile(`Tasks in (\S+) are going to be killed due to memory\.oom\.group set`)
)

// KillsFromKmsg lists the kills in a raw /dev/kmsg dump by the kernel's
// own statements, the truth the real-kernel rows are scored against. It is
// deliberately plain, and independent of oomwatch's parser:
//   - every "<prefix>: Killed process N (comm)" line is a kill of N (a PID
//     printed twice, as memory.oom.group prints the first victim, counts once);
//   - the report's "oom-kill:" summary names its victim's cgroup
//     (task_memcg=) and kind (CONSTRAINT_MEMCG: limit, otherwise node);
//   - after "Tasks in X are going to be killed due to memory.oom.group set",
//     the kill lines that follow (oom_reaper lines aside) are X's members;
//   - a kill line with neither (a rate-limited header during a storm) has
//     no printed cgroup, and its kind is read from its prefix.
func KillsFromKmsg(dump []byte) []Kill {
	var (
		kills   []Kill
		seen    = map[int]bool{}
		sumPID  = -1
		sumCg   string
		sumKind string
		group   string
	)
	sc := bufio.NewScanner(bytes.NewReader(dump))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, " ") {
			continue // a dictionary line of the record before
		}
		_, msg, ok := strings.Cut(line, ";")
		if !ok {
			continue
		}
		switch {
		case strings.Contains(msg, "invoked oom-killer:"):
			sumPID, sumCg, sumKind, group = -1, "", "", ""
		case strings.HasPrefix(msg, "oom-kill:"):
			if m := truthSummary.FindStringSubmatch(msg); m != nil {
				sumPID, _ = strconv.Atoi(m[4])
				sumCg = m[2]
				sumKind = KindNode
				if m[1] == "CONSTRAINT_MEMCG" {
					sumKind = KindLimit
				}
			}
		case truthGroup.MatchString(msg):
			group = truthGroup.FindStringSubmatch(msg)[1]
		default:
			m := truthKill.FindStringSubmatch(msg)
			if m == nil {
				if !strings.HasPrefix(msg, "oom_reaper:") {
					// Group members are printed together, right after
					// the "Tasks in" line.
					group = ""
				}
				continue
			}
			pid, _ := strconv.Atoi(m[2])
			if seen[pid] {
				continue
			}
			seen[pid] = true
			k := Kill{PID: pid, Comm: m[3], Kind: KindNode}
			if strings.HasPrefix(m[1], "Memory cgroup") {
				k.Kind = KindLimit
			}
			switch {
			case pid == sumPID:
				k.Cgroup, k.Kind = sumCg, sumKind
			case group != "":
				k.Cgroup, k.GroupMember = group, true
				if sumKind != "" {
					k.Kind = sumKind
				}
			default:
				k.Storm = true
			}
			kills = append(kills, k)
		}
	}
	return kills
}
