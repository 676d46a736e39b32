package oom

import (
	"bytes"
	"strconv"
	"strings"
)

// lineKind classifies one message of an OOM report.
type lineKind uint8

const (
	lineOther           lineKind = iota
	lineInvoke                   // "X invoked oom-killer: gfp_mask=..., order=N, oom_score_adj=N"
	lineCPU                      // "CPU: N PID: P Comm: X ..."
	lineTaskIn                   // "Task in X killed as a result of limit of Y" (< 5.0)
	lineMemcgUsage               // "memory: usage NkB, limit NkB, failcnt N"
	lineMemswUsage               // cgroup v1: "memory+swap: usage NkB, limit NkB, failcnt N"
	lineMemcgStats               // "Memory cgroup stats for X:"
	lineMemInfo                  // "Mem-Info:"
	lineTasksState               // "Tasks state (memory values in pages):"
	lineDumpHeader               // "[ pid ]   uid  tgid total_vm      rss ..."
	lineDumpRow                  // "[ 1234]     0  1234 ..."
	lineDumpRowNameless          // a dump row whose name a paste wrapped onto the next line
	lineSummary                  // "oom-kill:constraint=..."
	lineSelect                   // "... Kill process N (x) score S or sacrifice child" (< 5.1)
	lineKilled                   // "...Killed process N (x) total-vm:..."
	lineSharing                  // "Kill process N (x) sharing same memory" (< 4.x)
	lineGroup                    // "Tasks in X are going to be killed due to memory.oom.group set"
	lineReaper                   // "oom_reaper: reaped process N (x), now ..."
	lineNoKillable               // "Out of memory and no killable processes..."
)

var (
	bInvoked  = []byte(" invoked oom-killer:")
	bOom      = []byte("oom")
	bKill     = []byte("Kill")
	bTask     = []byte("Task")
	bCPU      = []byte("CPU: ")
	bMemory   = []byte("memory: usage ")
	bMemsw    = []byte("memory+swap: usage ")
	bMemStats = []byte("Memory cgroup stats for ")
	bMaxWrite = []byte("memory_max_write+")
	// bSkipExiting ends "<message>: OOM victim N (x) is already exiting.
	// Skip killing the task" (5.x and later).
	bSkipExiting = []byte(" is already exiting. Skip killing the task")
	bOOMVictim   = []byte("OOM victim ")
	bMemInfo     = []byte("Mem-Info:")
	bTasksState  = []byte("Tasks state")
	bSummary     = []byte("oom-kill:")
	bKilledProc  = []byte("Killed process ")
	bAnonRSS     = []byte("anon-rss:")
	bKillProc    = []byte("Kill process ")
	// bOldSelect and bOldSelectMemcg begin the selection line of kernels
	// before 2.6.36, in lower case: "Out of memory: kill process N (x)
	// score S or a child".
	bOldSelect      = []byte("Out of memory: kill process ")
	bOldSelectMemcg = []byte("Memory cgroup out of memory: kill process ")
	bSharing        = []byte("sharing same memory")
	bTaskIn         = []byte("Task in ")
	bLimitOf        = []byte(" killed as a result of limit of ")
	bTasksIn        = []byte("Tasks in ")
	bGroupSet       = []byte(" are going to be killed due to memory.oom.group set")
	bReaper         = []byte("oom_reaper: reaped process ")
	bNoKillable     = []byte("no killable process")
)

// mayBeReport is the test run on every record outside a report: a line
// may start one only when it begins with '[' or mentions "oom", "Kill" or
// "Task". It does not allocate.
//
// Searching an ordinary message for "oom" is most of the cost of this test
// ('o' is frequent, so bytes.Index stops at every one), so a cheaper test
// that is true for every line startsReport accepts runs first, and the
// exact one only for the few lines it lets through.
func mayBeReport(msg []byte) bool {
	if len(msg) == 0 {
		return false
	}
	if msg[0] == '[' || (msg[0] == 'M' && bytes.HasPrefix(msg, bMemStats)) || (msg[0] == 'm' && bytes.HasPrefix(msg, bMemory)) {
		// A dump row or header, or a limit report's usage line or first
		// stats block (its path need not say "oom", "Kill" or "Task").
		return true
	}
	if (msg[0] == 'O' || msg[0] == 'M') && oldSelect(msg) {
		return true
	}
	return mayStart(msg) &&
		(bytes.Contains(msg, bOom) || bytes.Contains(msg, bKill) || bytes.Contains(msg, bTask))
}

// mayStart is true for every line that classify gives a kind startsReport
// accepts (a dump row or header aside): the summary, the "Task in", "Tasks
// in" and "Tasks state" lines, "Memory cgroup stats for" and "memory:
// usage" by their prefixes, the selection and kill lines by the 'K' of "Kill", the trigger
// line by " invoked oom-killer:". 'K' and 'k' are rare in kernel messages,
// so two IndexByte scans decide most lines.
func mayStart(msg []byte) bool {
	switch msg[0] {
	case 'o':
		if bytes.HasPrefix(msg, bSummary) {
			return true
		}
	case 'T':
		if bytes.HasPrefix(msg, bTask) {
			return true
		}
	case 'M':
		if bytes.HasPrefix(msg, bMemStats) || oldSelect(msg) {
			return true
		}
	case 'O':
		if oldSelect(msg) {
			return true
		}
	case 'm':
		if bytes.HasPrefix(msg, bMemory) {
			return true
		}
	}
	return bytes.IndexByte(msg, 'K') >= 0 || hasInvoked(msg)
}

// hasInvoked is bytes.Contains(msg, bInvoked), found from the 'k' of
// "invoked" (at offset invokedK of bInvoked).
func hasInvoked(msg []byte) bool {
	const invokedK = 5
	for i := 0; ; {
		k := bytes.IndexByte(msg[i:], 'k')
		if k < 0 {
			return false
		}
		at := i + k - invokedK
		// The 'k' of "invoked" follows an 'o': the other 'k's of ordinary
		// lines ("blocking", "link", "mask") mostly fail that before any
		// comparison.
		if at >= 0 && msg[at+invokedK-1] == 'o' && bytes.HasPrefix(msg[at:], bInvoked) {
			return true
		}
		i += k + 1
	}
}

// classify tells what an OOM report line is. A task dump row is read into
// row on the way, so that it is parsed once. It does not allocate.
func classify(msg []byte, row *dumpRow) lineKind {
	if len(msg) == 0 {
		return lineOther
	}
	switch {
	case msg[0] == '[':
		// A row starts with digits, a header with "pid": at most one holds.
		if row.scan(msg) {
			return lineDumpRow
		}
		if row.nameless(msg) {
			return lineDumpRowNameless
		}
		if isDumpHeader(msg) {
			return lineDumpHeader
		}
		return lineOther
	case bytes.Contains(msg, bInvoked):
		return lineInvoke
	case bytes.HasPrefix(msg, bSummary):
		return lineSummary
	case bytes.HasPrefix(msg, bCPU) && bytes.Contains(msg, []byte(" PID: ")):
		return lineCPU
	case bytes.HasPrefix(msg, bReaper):
		return lineReaper
	case bytes.Contains(msg, bKilledProc):
		return lineKilled
	case bytes.Contains(msg, bKillProc) || oldSelect(msg):
		if bytes.Contains(msg, bSharing) {
			return lineSharing
		}
		return lineSelect
	case bytes.HasPrefix(msg, bTasksIn) && bytes.Contains(msg, bGroupSet):
		return lineGroup
	case bytes.HasPrefix(msg, bTaskIn) && bytes.Contains(msg, bLimitOf):
		return lineTaskIn
	case bytes.HasPrefix(msg, bTasksState):
		return lineTasksState
	case bytes.HasPrefix(msg, bMemory):
		return lineMemcgUsage
	case bytes.HasPrefix(msg, bMemsw):
		return lineMemswUsage
	case bytes.HasPrefix(msg, bMemStats):
		return lineMemcgStats
	case bytes.HasPrefix(msg, bMemInfo):
		return lineMemInfo
	case bytes.Contains(msg, bNoKillable) && bytes.Contains(msg, []byte("ut of memory")):
		return lineNoKillable
	}
	return lineOther
}

// startsReport tells whether a line of this kind, met outside a report,
// shows that a report is (or was) under way.
func startsReport(k lineKind) bool {
	switch k {
	case lineInvoke, lineDumpHeader, lineDumpRow, lineDumpRowNameless, lineSummary, lineSelect, lineKilled,
		lineTaskIn, lineTasksState, lineGroup, lineMemcgStats, lineMemcgUsage:
		return true
	}
	return false
}

// parseInvoke reads "X invoked oom-killer: gfp_mask=0x..(...), order=N, oom_score_adj=N".
func parseInvoke(msg string) Trigger {
	t := Trigger{}
	i := strings.Index(msg, string(bInvoked))
	t.Comm = msg[:i]
	rest := msg[i+len(bInvoked):]
	if v, ok := field(rest, "gfp_mask="); ok {
		t.GFPMask = v
	}
	if v, ok := field(rest, "order="); ok {
		t.Order, _ = strconv.Atoi(v)
	}
	if v, ok := field(rest, "oom_score_adj="); ok {
		if n, err := strconv.Atoi(v); err == nil {
			t.OOMScoreAdj, t.HasAdj = n, true
		}
	}
	return t
}

// field returns the value after key up to the next ", " (or end).
func field(s, key string) (string, bool) {
	i := strings.Index(s, key)
	if i < 0 {
		return "", false
	}
	v := s[i+len(key):]
	if j := strings.Index(v, ", "); j >= 0 {
		v = v[:j]
	}
	return strings.TrimSpace(v), true
}

// parseCPU reads the PID and Comm of "CPU: 0 PID: 96 Comm: hog Not tainted ..."
// (6.10+ add "UID: N" before PID).
func parseCPU(msg string) (pid int, comm string, ok bool) {
	i := strings.Index(msg, " PID: ")
	if i < 0 {
		return 0, "", false
	}
	rest := msg[i+6:]
	j := strings.IndexByte(rest, ' ')
	if j < 0 {
		j = len(rest)
	}
	pid, err := strconv.Atoi(rest[:j])
	if err != nil {
		return 0, "", false
	}
	if k := strings.Index(rest, "Comm: "); k >= 0 {
		comm = rest[k+6:]
		// The comm is at most 15 bytes and is followed by the taint text,
		// and before it by "Kdump: loaded" when a crash kernel is loaded
		// (RHEL and its kin load one by default).
		for _, sep := range []string{" Kdump: loaded", " Tainted:", " Not tainted"} {
			if e := strings.Index(comm, sep); e >= 0 {
				comm = comm[:e]
			}
		}
		comm = strings.TrimSpace(comm)
	}
	return pid, comm, true
}

// parseSkipped reads the pid of "...: OOM victim N (x) is already
// exiting. Skip killing the task", 0 when there is none.
func parseSkipped(msg []byte) int {
	i := bytes.Index(msg, bOOMVictim)
	if i < 0 {
		return 0
	}
	pid, _ := atoi(msg, i+len(bOOMVictim))
	return pid
}

// parseKernelVersion reads the kernel's release from the "CPU:" line:
// the word before " #" after the taint text ("... Not tainted
// 6.1.0-41-amd64 #1 Debian ..."), "" when there is none.
func parseKernelVersion(msg string) string {
	e := strings.Index(msg, " #")
	if e < 0 {
		return ""
	}
	s := strings.TrimRight(msg[:e], " ")
	v := s[strings.LastIndexByte(s, ' ')+1:]
	if len(v) < 3 || v[0] < '0' || v[0] > '9' || !strings.Contains(v, ".") {
		return ""
	}
	return v
}

// KernelAtLeast tells whether release (as the CPU line prints it,
// "6.1.0-41-amd64") is major.minor or later; false when it is not known.
func KernelAtLeast(release string, major, minor int) bool {
	maj, rest, ok := strings.Cut(release, ".")
	if !ok {
		return false
	}
	n := 0
	for n < len(rest) && rest[n] >= '0' && rest[n] <= '9' {
		n++
	}
	ma, err1 := strconv.Atoi(maj)
	mi, err2 := strconv.Atoi(rest[:n])
	if err1 != nil || err2 != nil {
		return false
	}
	return ma > major || ma == major && mi >= minor
}

// parseTaskIn reads "Task in X killed as a result of limit of Y".
func parseTaskIn(msg string) (task, limit string) {
	rest := strings.TrimPrefix(msg, string(bTaskIn))
	i := strings.Index(rest, string(bLimitOf))
	if i < 0 {
		// X is empty: the phrase begins at the space that ends the prefix.
		return "", strings.TrimSpace(msg[len(bTaskIn)-1+len(bLimitOf):])
	}
	return rest[:i], strings.TrimSpace(rest[i+len(bLimitOf):])
}

// parseMemcgUsage reads "memory: usage 24576kB, limit 24576kB, failcnt 45".
func parseMemcgUsage(msg string) (usage, limit int64, ok bool) {
	u, ok1 := kbAfter(msg, "usage ")
	l, ok2 := kbAfter(msg, "limit ")
	return u, l, ok1 && ok2
}

func kbAfter(s, key string) (int64, bool) {
	i := strings.Index(s, key)
	if i < 0 {
		return 0, false
	}
	v := s[i+len(key):]
	j := 0
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	n, err := strconv.ParseInt(v[:j], 10, 64)
	return n, err == nil
}

// parseMemcgStats reads "Memory cgroup stats for X:" (the path ends at the
// colon; cgroup v2 kernels continue the record with the stats after it).
func parseMemcgStats(msg string) string {
	rest := strings.TrimPrefix(msg, string(bMemStats))
	if i := strings.Index(rest, ":"); i >= 0 {
		// The colon that ends the path is followed by the stats or the
		// end of the line; paths themselves rarely contain ": ".
		if j := strings.Index(rest, ": "); j >= 0 {
			i = j
		} else if strings.HasSuffix(rest, ":") {
			i = len(rest) - 1
		}
		rest = rest[:i]
	}
	return strings.TrimSpace(rest)
}

// summaryKeys are the keys of the "oom-kill:" line, in the kernel's order.
var summaryKeys = []string{"constraint", "nodemask", "cpuset", "mems_allowed", "global_oom",
	"oom_memcg", "task_memcg", "task", "pid", "uid"}

// ParseSummary reads the kernel's "oom-kill:" line (4.19 and later):
// "oom-kill:constraint=...,nodemask=...,cpuset=...,mems_allowed=...,
// global_oom|oom_memcg=...,task_memcg=...,task=...,pid=...,uid=...". A comma
// inside a value (a cgroup name) stays with that value; the victim's comm,
// any 15 bytes but NUL, is read from the line's fixed end, so not even a
// comm like "x,pid=1" misleads it. It is the one parser of this line: the
// assembler and the agent's enricher both use it.
func ParseSummary(msg string) Summary {
	var s Summary
	rest := strings.TrimPrefix(msg, string(bSummary))
	// A terminal that cut the line shows '>' at the cut.
	if strings.HasSuffix(rest, ">") {
		rest = strings.TrimSuffix(rest, ">")
		s.Truncated = true
	}
	head := rest
	tail := false
	if task, pid, uid, cut, ok := summaryTail(rest); ok {
		s.Task, s.PID, s.UID, s.HasUID = task, pid, uid, true
		head, tail = rest[:cut], true
	}
	vals := map[string]string{}
	key := ""
	for _, part := range strings.Split(head, ",") {
		k, v, hasEq := strings.Cut(part, "=")
		if (hasEq && isSummaryKey(k)) || part == "global_oom" {
			key = k
			vals[key] = v
			continue
		}
		if key != "" {
			vals[key] += "," + part
		}
	}
	// The kernel's constraint is a CONSTRAINT_* word: a paste's elision
	// ("CONSTRAINT_NONE... task=x") ends it.
	c := vals["constraint"]
	if i := strings.IndexFunc(c, func(r rune) bool { return (r < 'A' || r > 'Z') && r != '_' }); i >= 0 {
		c = c[:i]
	}
	s.Constraint = c
	s.Nodemask = vals["nodemask"]
	s.Cpuset = vals["cpuset"]
	s.MemsAllowed = vals["mems_allowed"]
	_, s.GlobalOOM = vals["global_oom"]
	s.OOMMemcg = vals["oom_memcg"]
	s.TaskMemcg = vals["task_memcg"]
	if tail {
		return s
	}
	// A line cut short: take what is there.
	s.Task = vals["task"]
	if v, ok := vals["pid"]; ok {
		s.PID, _ = strconv.Atoi(v)
	}
	if v, ok := vals["uid"]; ok {
		if n, err := strconv.Atoi(v); err == nil {
			s.UID, s.HasUID = n, true
		}
	}
	if _, ok := vals["pid"]; !ok {
		s.Truncated = true
	}
	return s
}

// summaryTail reads ",task=COMM,pid=N,uid=N" at the end of an oom-kill:
// line, returning where it starts. The comm is the first candidate of at
// most 15 bytes (the kernel's TASK_COMM_LEN less its NUL, a control byte
// counting once in its \xNN escape).
func summaryTail(rest string) (task string, pid, uid, cut int, ok bool) {
	u := strings.LastIndex(rest, ",uid=")
	if u < 0 {
		return "", 0, 0, 0, false
	}
	uid, err := strconv.Atoi(rest[u+len(",uid="):])
	if err != nil || uid < 0 {
		return "", 0, 0, 0, false
	}
	p := strings.LastIndex(rest[:u], ",pid=")
	if p < 0 {
		return "", 0, 0, 0, false
	}
	pid, err = strconv.Atoi(rest[p+len(",pid=") : u])
	if err != nil || pid <= 0 {
		return "", 0, 0, 0, false
	}
	for from := 0; ; {
		t := strings.Index(rest[from:p], ",task=")
		if t < 0 {
			return "", 0, 0, 0, false
		}
		t += from
		if comm := rest[t+len(",task=") : p]; commBytes(comm) <= 15 {
			return comm, pid, uid, t, true
		}
		from = t + 1
	}
}

// commBytes counts the bytes of a comm as the kernel printed it, where
// /dev/kmsg wrote each control byte as \xNN.
func commBytes(s string) int {
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			i += 3
		}
		n++
	}
	return n
}

func isSummaryKey(k string) bool {
	for _, key := range summaryKeys {
		if k == key {
			return true
		}
	}
	return false
}

// parseProcRef reads "N (comm)" at the start of s, returning the rest.
// N is a PID, never 0 or negative.
func parseProcRef(s string) (pid int, comm, rest string, ok bool) {
	n := 0
	for n < len(s) && n < 10 && s[n] >= '0' && s[n] <= '9' {
		n++
	}
	pid, err := strconv.Atoi(s[:n])
	if err != nil || pid <= 0 {
		return 0, "", "", false
	}
	// "N (x)", or "N(x)" as some patched kernels print it.
	s = strings.TrimPrefix(s[n:], " ")
	if !strings.HasPrefix(s, "(") {
		return 0, "", "", false
	}
	// The comm is any 15 bytes but NUL, so it may itself hold ") total-vm:",
	// "), " or "(": what the kernel prints after it (", now anon-rss:...",
	// " score N or sacrifice child", " sharing same memory", " total-vm:...")
	// never holds a ')', so the comm ends at the last of those separators.
	end := -1
	for _, sep := range []string{"), ", ") score", ") sharing", ") total-vm"} {
		if i := strings.LastIndex(s, sep); i > end {
			end = i
		}
	}
	if end < 0 {
		end = strings.LastIndexByte(s, ')')
	}
	if end < 0 {
		return 0, "", "", false
	}
	return pid, s[1:end], s[end+1:], true
}

// parseKilled reads "[Memory cgroup out of memory|Out of memory]: Killed
// process N (x) total-vm:NkB, anon-rss:NkB, file-rss:NkB[, shmem-rss:NkB]
// [, UID:N pgtables:NkB oom_score_adj:N]", and the forms of Red Hat's
// kernels: "Killed process N, UID U, (x) total-vm:..." (2.6.32) and
// "Killed process N (x), UID U, total-vm:..." (3.10).
func parseKilled(msg string) (Victim, bool) {
	var v Victim
	i := strings.Index(msg, string(bKilledProc))
	if i > 0 {
		v.Message = strings.TrimSuffix(strings.TrimSpace(msg[:i]), ":")
	}
	ref := msg[i+len(bKilledProc):]
	uid, hasUID := 0, false
	if s, u, ok := cutUIDBeforeComm(ref); ok {
		ref, uid, hasUID = s, u, true
	}
	pid, comm, rest, ok := parseProcRef(ref)
	if !ok {
		return v, false
	}
	v.PID, v.Comm = pid, comm
	v.UID, v.HasUID = uid, hasUID
	v.TotalVMKB, _ = kbAfter(rest, "total-vm:")
	v.AnonKB, _ = kbAfter(rest, "anon-rss:")
	v.FileKB, _ = kbAfter(rest, "file-rss:")
	v.ShmemKB, _ = kbAfter(rest, "shmem-rss:")
	if strings.Contains(rest, "anon-rss:") {
		v.RSSBytes = (v.AnonKB + v.FileKB + v.ShmemKB) * 1024
		v.HasRSS = true
		if strings.Contains(rest, "file-rss:") {
			v.SharedBytes, v.HasShared = (v.FileKB+v.ShmemKB)*1024, true
		}
	}
	if uid, ok := intAfter(rest, "UID:"); ok {
		v.UID, v.HasUID = uid, true
	} else if uid, ok := intAfter(rest, ", UID "); ok {
		v.UID, v.HasUID = uid, true
	}
	if adj, ok := intAfter(rest, "oom_score_adj:"); ok {
		v.OOMScoreAdj, v.HasAdj = adj, true
	}
	return v, true
}

// cutUIDBeforeComm reads 2.6.32's "N, UID U, (x) ..." (after "Killed
// process "), and returns it as "N (x) ..." with U.
func cutUIDBeforeComm(s string) (string, int, bool) {
	const uidSep = ", UID "
	i := strings.Index(s, uidSep)
	if i <= 0 || strings.IndexByte(s[:i], ' ') >= 0 {
		return s, 0, false
	}
	rest := s[i+len(uidSep):]
	j := strings.Index(rest, ", (")
	if j <= 0 {
		return s, 0, false
	}
	uid, err := strconv.Atoi(rest[:j])
	if err != nil || uid < 0 {
		return s, 0, false
	}
	return s[:i] + " " + rest[j+2:], uid, true
}

func intAfter(s, key string) (int, bool) {
	i := strings.Index(s, key)
	if i < 0 {
		return 0, false
	}
	v := s[i+len(key):]
	j := 0
	if j < len(v) && v[j] == '-' {
		j++
	}
	for j < len(v) && v[j] >= '0' && v[j] <= '9' {
		j++
	}
	n, err := strconv.Atoi(v[:j])
	return n, err == nil
}

// oldSelect tells whether msg is the selection line of a kernel before
// 2.6.36 ("Out of memory: kill process N (x) score S or a child", and
// its memory cgroup's).
func oldSelect(msg []byte) bool {
	return bytes.HasPrefix(msg, bOldSelect) || bytes.HasPrefix(msg, bOldSelectMemcg)
}

// killProcess returns where the process reference of a selection line
// begins ("Kill process ", or an old kernel's "kill process "), -1 when
// there is none.
func killProcess(msg string) int {
	i := strings.Index(msg, string(bKillProc))
	if i < 0 {
		if i = strings.Index(msg, ": kill process "); i < 0 {
			return -1
		}
		i += len(": ")
	}
	return i + len(bKillProc)
}

// parseSelect reads "[Memory cgroup out of memory|Out of memory]: Kill
// process N (x) score S or sacrifice child" (before 2.6.36: "...: kill
// process N (x) score S or a child").
func parseSelect(msg string) (pid int, comm string, score int, memcg, global, ok bool) {
	i := killProcess(msg)
	if i < 0 {
		return 0, "", 0, false, false, false
	}
	prefix := msg[:i]
	memcg = strings.Contains(prefix, "Memory cgroup out of memory")
	global = !memcg && strings.Contains(prefix, "Out of memory")
	p, comm, rest, ok := parseProcRef(msg[i:])
	if !ok {
		return 0, "", 0, false, false, false
	}
	score, _ = intAfter(rest, "score ")
	return p, comm, score, memcg, global, true
}

// parseSharing reads "Kill process N (x) sharing same memory".
func parseSharing(msg string) (Victim, bool) {
	i := killProcess(msg)
	if i < 0 {
		return Victim{}, false
	}
	pid, comm, _, ok := parseProcRef(msg[i:])
	if !ok {
		return Victim{}, false
	}
	v := Victim{}
	v.PID, v.Comm = pid, comm
	return v, true
}

// parseGroup reads "Tasks in X are going to be killed due to memory.oom.group set".
func parseGroup(msg string) string {
	rest := strings.TrimPrefix(msg, string(bTasksIn))
	// X is empty when the phrase begins at the space that ends the prefix.
	return rest[:max(strings.Index(rest, string(bGroupSet)), 0)]
}

// parseReaper reads "oom_reaper: reaped process N (x), now ...".
func parseReaper(msg string) (int, string, bool) {
	pid, comm, _, ok := parseProcRef(strings.TrimPrefix(msg, string(bReaper)))
	return pid, comm, ok
}

// isElision tells whether a line is a paste's elision, where its author
// left lines out: dots or an ellipsis alone ("...", ". . .", "…"), in
// brackets or not ("[...]", "(…)"), a "snip" mark ("<snip>", "--snip--"),
// or a note between dots ("... 9,000 more rows ...").
func isElision(msg []byte) bool {
	s := strings.TrimSpace(string(msg))
	if len(s) < 2 || len(s) > 80 {
		return false
	}
	if open, close := s[0], s[len(s)-1]; open == '[' && close == ']' || open == '(' && close == ')' || open == '<' && close == '>' {
		s = strings.TrimSpace(s[1 : len(s)-1])
	}
	if strings.Trim(s, ".… -=") == "" {
		return strings.Contains(s, "..") || strings.Contains(s, ". .") || strings.Contains(s, "…")
	}
	// A word of cutting, bare ("snip") or marked as the author's
	// ("[ cut ]", "-- omitted --").
	word := strings.ToLower(strings.Trim(s, ".… -=~*_8<>✂"))
	marked := len(word) < len(strings.TrimSpace(string(msg)))
	switch word {
	case "snip", "snipped":
		return true
	case "cut", "omitted", "elided", "truncated", "trimmed", "skipped", "removed":
		return marked
	}
	dots := func(t string) bool { return strings.HasPrefix(t, "...") || strings.HasPrefix(t, "…") }
	rev := func(t string) bool { return strings.HasSuffix(t, "...") || strings.HasSuffix(t, "…") }
	return dots(s) && rev(s) && len(s) > 6
}
