// Package oom assembles the kernel's multi-line OOM-killer reports from a
// stream of kernel records. The Assembler is a pure state machine: it is fed
// records and emits Reports holding what the kernel said, with no
// interpretation beyond parsing. Package analysis turns Reports into verdicts.
package oom

import "time"

// Task is one process named by an OOM report: a row of the task dump, the
// trigger, or a killed process.
//
// A dump holds a Task per row, up to tens of thousands, so a Task is kept
// small (72 bytes): the flags together at the end, and the cgroup, which
// the kernel prints for killed processes only, in Victim.
type Task struct {
	PID  int
	Comm string
	// UID is the task's user ID; valid when HasUID.
	UID int
	// RSSPages is the dump's rss column (pages); RSSBytes is the resident
	// size in bytes when known (from a Killed line, or pages times the
	// report's page size); both valid when HasRSS.
	RSSPages int64
	RSSBytes int64
	// OOMScoreAdj is the task's oom_score_adj; valid when HasAdj.
	OOMScoreAdj int
	// SharedBytes is the part of RSSBytes in file and shmem pages, which
	// other processes may map too (the dump's rss_file and rss_shmem on
	// 6.x kernels, a kill line's file-rss and shmem-rss); valid when
	// HasShared.
	SharedBytes int64
	// HasUID, HasRSS and HasAdj tell which of UID, RSSPages and RSSBytes,
	// and OOMScoreAdj are known.
	HasUID, HasRSS, HasAdj, HasShared bool
}

// Victim is a process the kernel killed.
type Victim struct {
	Task
	// Cgroup is the task's memory cgroup path when the kernel printed it.
	Cgroup string
	// Message is the prefix of the kill line: "Out of memory",
	// "Memory cgroup out of memory", or "" on old kernels that print a
	// bare "Killed process" line.
	Message string
	// AnonKB, FileKB and ShmemKB are the resident sizes in the kill line.
	AnonKB, FileKB, ShmemKB int64
	// TotalVMKB is the virtual size in the kill line.
	TotalVMKB int64
	// Seq and Mono locate the kill line.
	Seq     int64
	Mono    time.Duration
	HasMono bool
	Wall    time.Time
	// GroupMember reports a task killed because memory.oom.group was set
	// on an ancestor cgroup, rather than chosen by the OOM killer.
	GroupMember bool
	// Selected reports a victim known only from an old kernel's selection
	// line ("Kill process N (x) score S or sacrifice child"): its kill line
	// was not in the log. The kernel then kills a child of N instead when
	// one scores higher, and none when N was already exiting.
	Selected bool
	// SharedMemory reports a process killed with the first victim because
	// it shared its memory (kernels before 4.x: "Kill process N (x)
	// sharing same memory"): the same kill, not another report.
	SharedMemory bool
	// line is the raw kill line, kept for the report a storm split gives
	// this victim even when the report's raw lines were full.
	line string
}

// Trigger is the task that invoked the OOM killer.
type Trigger struct {
	Comm string
	// PID comes from the "CPU: N PID: P Comm: X" line; 0 when not seen.
	PID         int
	OOMScoreAdj int
	HasAdj      bool
	GFPMask     string
	Order       int
}

// Summary is the one-line "oom-kill:" summary that kernels since 4.19 print.
type Summary struct {
	Constraint  string
	Nodemask    string
	Cpuset      string
	MemsAllowed string
	GlobalOOM   bool
	OOMMemcg    string
	TaskMemcg   string
	Task        string
	PID         int
	UID         int
	HasUID      bool
	// Truncated reports a line cut short (a terminal or log shipper cut it).
	Truncated bool
}

// Report is one OOM-killer report as the kernel printed it.
type Report struct {
	// Seq, Mono and Wall locate the report's first record.
	Seq     int64
	Mono    time.Duration
	HasMono bool
	Wall    time.Time
	// EndSeq is the sequence number of the last record taken.
	EndSeq int64
	// Complete is false when the report's start was not seen: lost in a
	// log overflow, or rate-limited by the kernel during an OOM storm.
	Complete bool
	// Trigger is nil when the "invoked oom-killer" line was not seen.
	Trigger *Trigger
	// Summary is nil when no "oom-kill:" line was seen.
	Summary *Summary
	// Memcg facts, from the memcg part of the header.
	LegacyTaskIn  string // "Task in X killed as a result of limit of Y": X
	LegacyLimitOf string // ... Y
	MemcgStatsFor string // "Memory cgroup stats for X:"
	MemcgUsageKB  int64
	MemcgLimitKB  int64
	HasMemcgUsage bool
	MemswUsageKB  int64 // cgroup v1's "memory+swap: usage NkB, limit NkB"
	MemswLimitKB  int64
	HasMemswUsage bool
	HasMemInfo    bool // a node-wide "Mem-Info:" block was printed
	HasTaskDump   bool
	// DumpCut: a line of the task dump is a paste's elision ("...",
	// "[...]", "<snip>"): rows were left out of this copy of the log.
	// The kernel prints no such line; its records always reach the end.
	DumpCut bool
	// KernelRelease is the kernel's release from the trigger's "CPU:"
	// line ("6.1.0-41-amd64"), "" when not seen.
	KernelRelease string
	// LimitWritten: the call trace shows the OOM came from a write to the
	// cgroup's memory.max (cgroup v2's memory_max_write) below its usage,
	// not from an allocation: the trigger is the writer, which may run in
	// any cgroup.
	LimitWritten   bool
	PageSize       int64
	Tasks          []Task
	Victims        []Victim
	GroupCgroup    string // "Tasks in X are going to be killed due to memory.oom.group set"
	SelectedPID    int    // old kernels' "Kill process N (x) score S or sacrifice child"
	SelectedComm   string // ... x
	SelectedScore  int
	SelectedMemcg  bool // the selection line said "Memory cgroup out of memory"
	SelectedGlobal bool // the selection line said "Out of memory"
	// Reaped lists PIDs the oom_reaper reported while the report was open.
	Reaped []int
	// Unreaped lists the victims whose oom_reaper line said they still
	// held most of their anonymous memory, at least 64 MiB ("now
	// anon-rss:5647452kB" of 5647168: mlocked memory, which the reaper
	// skips): they hold it until they exit.
	Unreaped []int
	// victimAnonPages is the rss_anon column of the victim's dump row (6.x
	// kernels), 0 when unknown: with the kill line's anon-rss, it gives
	// the page size even when file pages came and went between the two.
	victimAnonPages int64
	// buddyPageSize is the page size a Mem-Info line of free blocks
	// printed (0: none).
	buddyPageSize int64
	// skippedPID is the victim the kernel chose but did not kill, as it
	// was already exiting ("OOM victim N (x) is already exiting. Skip
	// killing the task").
	skippedPID int
	// reapedPID and reapedComm name the first process reaped after the
	// report's selection or summary line: its victim.
	reapedPID  int
	reapedComm string
	// Lines are the report's raw kernel lines, bounded by the assembler's
	// MaxRawLines; LinesDropped counts those left out.
	Lines        []string
	LinesDropped int
}

// Victim returns the kernel's chosen victim (the first killed process), or
// nil when no kill line was seen.
func (r *Report) Victim() *Victim {
	if len(r.Victims) == 0 {
		return nil
	}
	return &r.Victims[0]
}

// TaskByPID returns the task dump row of pid, or nil.
func (r *Report) TaskByPID(pid int) *Task {
	if i := r.taskIndex(pid); i >= 0 {
		return &r.Tasks[i]
	}
	return nil
}

// taskIndex returns the index of pid's task dump row, or -1.
func (r *Report) taskIndex(pid int) int {
	for i := range r.Tasks {
		if r.Tasks[i].PID == pid {
			return i
		}
	}
	return -1
}
