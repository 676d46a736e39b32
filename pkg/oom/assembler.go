package oom

import (
	"bytes"
	"slices"
	"strings"
	"time"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// Options bound the Assembler. The zero value takes the defaults.
type Options struct {
	// MaxSpan is how long (kernel monotonic time) a report may stay open
	// before its kill line. A 10,000-task dump on a slow serial console
	// takes over a minute to print. Default 3 minutes.
	MaxSpan time.Duration
	// MaxLines bounds the records of one report. Default 200,000.
	MaxLines int
	// TailRecords is how many unrelated records may follow a kill line
	// before the report is closed; group kills and the oom_reaper line
	// come right after it. Default 32.
	TailRecords int
	// MaxRawLines bounds the raw lines kept per report. Default 400.
	// Kill, summary, group and invocation lines are kept past it, up to
	// twice it: an event never carries more than 2*MaxRawLines lines,
	// well inside what the aggregator accepts.
	MaxRawLines int
	// KillLineWait is how long Expire keeps a report whose oom-kill:
	// summary was read but not yet its kill line. Default 5 s.
	KillLineWait time.Duration
	// TaskSeen, when set, is told of every task the report names as it is
	// read: the trigger (rssPages -1) and each dump row. A live reader uses
	// it to look a task up while it still exists: the next kill may come
	// within milliseconds.
	TaskSeen func(pid int, rssPages int64)
	// KillSeen, when set, is told of every kill line as it is read, with
	// the victim's cgroup when the report named it (its oom-kill: summary,
	// or an old kernel's "Task in" line), else "": a rate-limited report
	// prints the kill line alone, and a live reader may still find out
	// where the victim ran from what the kernel keeps.
	KillSeen func(pid int, cgroup string)
	// Forged, when set, is told of every record that reads like part of
	// an OOM report but was written by userspace (facility not LOG_KERN).
	Forged func(rec *kernlog.Record)
	// Abandoned, when set, is told of every report closed without a kill
	// (Stats.Abandoned), before it is dropped: its trigger and time say
	// which. The report is the Assembler's: read it, do not keep it.
	Abandoned func(r *Report)
}

func (o Options) withDefaults() Options {
	if o.MaxSpan <= 0 {
		o.MaxSpan = 3 * time.Minute
	}
	if o.MaxLines <= 0 {
		o.MaxLines = 200000
	}
	if o.TailRecords <= 0 {
		o.TailRecords = 32
	}
	if o.MaxRawLines <= 0 {
		o.MaxRawLines = 400
	}
	if o.KillLineWait <= 0 {
		o.KillLineWait = 5 * time.Second
	}
	return o
}

// Stats counts what the Assembler saw.
type Stats struct {
	Records   int64 // records fed
	Reports   int64 // reports emitted
	Abandoned int64 // reports closed without any kill line (dropped)
	// Forged counts records written by userspace (a facility other than
	// the kernel's) that read like part of an OOM report: they are never
	// taken into one.
	Forged int64
}

// Assembler turns a stream of kernel records into Reports. It is a pure
// state machine: no clocks, no I/O. Feed it records in order; it calls
// Emit for each finished report. Call Flush at the end of the input, and
// Expire when the live source has been quiet for a while.
type Assembler struct {
	opts Options
	emit func(*Report)
	cur  *Report
	// state of the open report
	layout dumpLayout
	dump   taskDump
	raw    rawLines
	// row is the dump row classify read from the current record.
	row dumpRow
	// nameless holds a dump row whose name is not on its line, until the
	// next record (see named).
	nameless struct {
		msg     []byte
		pending bool
	}
	// verbatim is the current record's message as it came when Feed reads
	// it without a paste's indent (indented): the report keeps the line
	// as it was.
	verbatim []byte
	lines    int
	tail     int // unrelated records since the last kill line
	killed   bool
	// grouped is set when the report shows a memory.oom.group kill: the
	// "Tasks in" line, or the first victim printed a second time.
	grouped    bool
	stats      Stats
	lastMono   time.Duration
	lastMonoOK bool
	// victims holds the victims of the last reports emitted.
	victims  [16]int
	nvictims int
	// lastWall is the wall time of the last record taken, when it had one.
	lastWall time.Time
	// wrap holds a kill line cut short by a paste's line wrap, until the
	// next record tells whether it is its rest (see Feed).
	wrap struct {
		pending, refeeding bool
		rec                kernlog.Record
		buf                []byte
	}
}

// NewAssembler returns an Assembler that calls emit for every finished
// report. emit owns the report.
func NewAssembler(opts Options, emit func(*Report)) *Assembler {
	return &Assembler{opts: opts.withDefaults(), emit: emit}
}

// Stats returns the counters so far.
func (a *Assembler) Stats() Stats { return a.stats }

// Open reports whether a report is being assembled.
func (a *Assembler) Open() bool { return a.cur != nil }

// OpenSeq returns the sequence number of the open report's first record.
// A reader that checkpoints must not go past it: the report is not done.
func (a *Assembler) OpenSeq() (int64, bool) {
	if a.cur == nil {
		return 0, false
	}
	return a.cur.Seq, true
}

// Skip takes rec if it is an ordinary record, outside a report and unable
// to start one (mayBeReport's test, as Feed makes it), and reports whether
// it did: Feed would only have counted it. Otherwise it does nothing, and
// the caller feeds rec. A live reader calls it first, so that everything it
// does for a report's records (the Observer, the read time) costs an
// ordinary record nothing.
func (a *Assembler) Skip(rec *kernlog.Record) bool {
	if a.cur != nil || a.wrap.pending || mayBeReport(rec.Message) || indented(rec, false) {
		return false
	}
	a.stats.Records++
	return true
}

// unwrap handles a kill line that may have been wrapped (see Feed): it
// joins a waiting one with rec when rec is its rest, or feeds it as it
// is, and keeps rec waiting when rec is one. It tells whether it took rec.
func (a *Assembler) unwrap(rec *kernlog.Record) bool {
	if a.wrap.pending {
		a.wrap.pending = false
		bare := a.wrap.rec.Seq == kernlog.NoSeq && !a.wrap.rec.HasMono && a.wrap.rec.Wall.IsZero()
		if rec.Seq == kernlog.NoSeq && !rec.HasMono && rec.Wall.IsZero() && rec.Priority < 0 && len(rec.Message) > 0 &&
			(!bare || killRest(rec.Message)) {
			joined := a.wrap.rec
			joined.Message = joinWrapped(a.wrap.buf, rec.Message)
			a.refeed(&joined)
			return true
		}
		a.refeed(&a.wrap.rec)
	}
	if rec.Priority < 8 && mayBeReport(rec.Message) &&
		(bytes.Contains(rec.Message, bKilledProc) && !bytes.Contains(rec.Message, bAnonRSS) || killCut(rec.Message)) &&
		(rec.HasMono || !rec.Wall.IsZero() || bytes.HasSuffix(bytes.TrimRight(rec.Message, " "), []byte(","))) {
		a.wrap.pending = true
		a.wrap.buf = append(a.wrap.buf[:0], rec.Message...)
		a.wrap.rec = *rec
		a.wrap.rec.Message = a.wrap.buf
		return true
	}
	return false
}

// stageRow stages a dump row read as c numeric columns, with its name and,
// when adj, its oom_score_adj.
func (a *Assembler) stageRow(row *dumpRow, c int, name []byte, adj bool) {
	var anon int64
	if k := a.layout.anonColumn(c); k > 0 {
		anon = row.num(k)
	}
	score := noAdj
	if adj {
		score = int(row.num(c - 1))
	}
	rss := row.num(3)
	a.dump.add(row.pid, int(row.num(0)), int(row.num(1)), rss, anon, score, name)
	if a.opts.TaskSeen != nil {
		a.opts.TaskSeen(row.pid, rss)
	}
}

// named stages the dump row waiting for its name (a paste wrapped the
// row before it: "[  718]  0  718  40965  29598 ... -250" / "systemd-journal",
// or among its numbers: "[ 7899]  0  7899 ... 1039052" / " 0 python"), and
// tells whether rec was the rest of the row: a bare line that is nothing
// else, which read after the row makes a whole row of it. Any other record
// leaves the row without a name.
func (a *Assembler) named(rec *kernlog.Record) bool {
	rest := bytes.TrimSpace(rec.Message)
	if a.cur == nil || rec.Seq != kernlog.NoSeq || rec.HasMono || !rec.Wall.IsZero() || len(rest) == 0 || len(rest) > maxRowRest ||
		classify(rest, &a.row) != lineOther {
		a.flushNameless()
		return false
	}
	a.nameless.pending = false
	joined := append(append(a.nameless.msg, ' '), rest...)
	a.nameless.msg = joined
	a.row.scan(joined)
	c, ok := a.row.columns(joined, a.layout.numeric)
	var name []byte
	if ok && len(joined)-a.row.starts[c] <= maxCommBytes {
		name = a.row.name(joined, c)
	}
	a.stageRow(&a.row, c, name, true)
	a.dump.cut = true
	a.lines++
	line := rec.Message
	if a.verbatim != nil {
		line = a.verbatim
	}
	a.keepLine(line, lineDumpRow)
	return true
}

// maxRowRest bounds the line named takes as the rest of a row: a few
// numeric columns and a name.
const maxRowRest = 160

// flushNameless stages the row waiting for its name, if any, without one.
func (a *Assembler) flushNameless() {
	if !a.nameless.pending {
		return
	}
	a.nameless.pending = false
	a.row.scan(a.nameless.msg)
	c, _ := a.row.columns(a.nameless.msg, a.layout.numeric)
	a.stageRow(&a.row, c, nil, true)
	a.dump.cut = true
}

// maxCommBytes bounds the name named takes from a line: a task's name is
// at most 15 bytes, which a terminal may show escaped four times over.
const maxCommBytes = 64

// indented tells whether rec is a bare line (no time, no sequence
// number) indented by a paste ("  oom-kill:constraint=...", a block
// indented in a commit message or a document) that Feed reads without its
// indent: inside a report (open) any such line, outside one a line that
// may then start one. A record with a time keeps its message as the
// kernel wrote it, and so does the rest of a wrapped kill line.
func indented(rec *kernlog.Record, open bool) bool {
	m := rec.Message
	if len(m) < 2 || (m[0] != ' ' && m[0] != '\t') || rec.Seq != kernlog.NoSeq || rec.HasMono || !rec.Wall.IsZero() {
		return false
	}
	t := bytes.TrimLeft(m, " \t")
	return len(t) > 0 && (open || mayBeReport(t)) && !killRest(t)
}

// killRest tells whether a bare line is the rest of a kill line that a
// paste of bare messages wrapped after a comma ("Killed process 835214
// (mytask) total-vm:787716604kB," / "  anon-rss:787536152kB, ..."): it
// begins with one of the kill line's sizes.
func killRest(msg []byte) bool {
	msg = bytes.TrimLeft(msg, " \t")
	return bytes.HasPrefix(msg, bAnonRSS) || bytes.HasPrefix(msg, []byte("total-vm:")) ||
		bytes.HasPrefix(msg, []byte("file-rss:")) || bytes.HasPrefix(msg, []byte("shmem-rss:"))
}

// killCut tells whether a kill or selection line was wrapped before its
// PID: "Out of memory: Kill" / "process 19961 (python) score 17 or
// sacrifice child".
func killCut(msg []byte) bool {
	msg = bytes.TrimRight(msg, " ")
	if len(msg) == 0 || msg[len(msg)-1] != 'l' && msg[len(msg)-1] != 'd' && msg[len(msg)-1] != 's' {
		return false
	}
	for _, s := range [...]string{"of memory: Kill", "of memory: Killed", "of memory: Kill process", "of memory: Killed process"} {
		if len(msg) >= len(s) && string(msg[len(msg)-len(s):]) == s {
			return true
		}
	}
	return false
}

// refeed feeds a record unwrap held or joined, past unwrap.
func (a *Assembler) refeed(rec *kernlog.Record) {
	a.wrap.refeeding = true
	verbatim := a.verbatim
	a.Feed(rec)
	a.wrap.refeeding, a.verbatim = false, verbatim
}

// flushWrap feeds a kill line still waiting for its rest as it is.
func (a *Assembler) flushWrap() {
	if a.wrap.pending {
		a.wrap.pending = false
		a.refeed(&a.wrap.rec)
	}
}

// joinWrapped joins a line and its wrapped rest: without a space inside a
// number ("total-vm:22239" "788kB"), with one elsewhere, where the wrap
// took the place of a space ("Killed process 1887079" "(qemu-kata...)").
func joinWrapped(head, rest []byte) []byte {
	out := make([]byte, 0, len(head)+1+len(rest))
	out = append(out, head...)
	if h, r := head[len(head)-1], rest[0]; !(isDigitByte(h) && (isDigitByte(r) || r == 'k')) && h != ' ' && r != ' ' {
		out = append(out, ' ')
	}
	return append(out, rest...)
}

func isDigitByte(c byte) bool { return c >= '0' && c <= '9' }

// Feed takes one record. It does not allocate for records outside a report
// that cannot start one.
//
// A kill line of a text rendering (a timestamp, no kernel sequence number)
// that lacks its sizes was cut by a paste's line wrap, mostly: it waits for
// the next record, and when that one has no prefix at all (the wrapped
// rest), the two are read as one line. Raw /dev/kmsg records are whole.
func (a *Assembler) Feed(rec *kernlog.Record) {
	a.verbatim = nil
	if indented(rec, a.cur != nil) {
		r := *rec
		a.verbatim, r.Message = r.Message, bytes.TrimLeft(r.Message, " \t")
		rec = &r
	}
	if a.nameless.pending && a.named(rec) {
		a.stats.Records++
		return
	}
	if (a.wrap.pending || rec.Seq == kernlog.NoSeq) && !a.wrap.refeeding && a.unwrap(rec) {
		return
	}
	a.stats.Records++
	msg := rec.Message
	if rec.Priority >= 8 {
		// Root userspace may write to /dev/kmsg, and the kernel stores its
		// records with facility LOG_USER (or the one given, never
		// LOG_KERN): only facility 0 is the kernel's own. Such a record
		// neither starts, joins nor ends a report, nor counts as an
		// unrelated record that would close one early.
		if (a.cur != nil || mayBeReport(msg)) && classify(msg, &a.row) != lineOther {
			a.stats.Forged++
			if a.opts.Forged != nil {
				a.opts.Forged(rec)
			}
		}
		return
	}
	if a.cur == nil {
		if !mayBeReport(msg) {
			return
		}
		kind := classify(msg, &a.row)
		if !startsReport(kind) {
			return
		}
		a.start(rec, kind != lineInvoke)
		a.take(rec, kind)
		return
	}
	kind := classify(msg, &a.row)
	switch {
	case kind == lineInvoke:
		// A new report always starts here, whatever state the open one is in.
		a.finish()
		a.start(rec, false)
	case a.expired(rec):
		a.finish()
		if !startsReport(kind) {
			return
		}
		a.start(rec, true)
	case a.killed && isKillTail(kind):
		a.tail = 0
	case a.killed && kind == lineOther:
		a.tail++
		if a.tail > a.opts.TailRecords {
			a.finish()
			return
		}
	case kind == lineSummary && a.cur.Summary != nil,
		kind == lineSelect && a.cur.SelectedPID > 0 && a.apart(rec):
		// A second summary, or a selection a second or more after the
		// first: the first report's kill line was not seen. (Old kernels
		// select again at once when the chosen task has no memory left,
		// without a kill line for it.)
		a.finish()
		a.start(rec, true)
	case a.killed && startsReport(kind) && !(kind == lineSelect && a.cur.SelectedPID == 0 && len(a.cur.Victims) == 0):
		// A dump row, a summary or a selection after the kill: the start of
		// the next report was lost. (Red Hat's 3.10 kernels print the
		// backported summary before their selection line: that one is
		// the same report's.)
		a.finish()
		a.start(rec, true)
	}
	a.take(rec, kind)
}

// isKillTail tells whether a line may follow a kill line in one report.
func isKillTail(k lineKind) bool {
	return k == lineKilled || k == lineGroup || k == lineReaper || k == lineSharing
}

// lineless is the victim of a report whose kill line was not seen, known
// from its reaper or selection line (selected), located at the report's
// start, with the selection line's words for what ran out.
func lineless(r *Report, pid int, comm string, selected bool) Victim {
	v := Victim{Seq: r.Seq, Mono: r.Mono, HasMono: r.HasMono, Wall: r.Wall, Selected: selected}
	v.PID, v.Comm = pid, comm
	if r.SelectedMemcg {
		v.Message = "Memory cgroup out of memory"
	} else if r.SelectedGlobal {
		v.Message = "Out of memory"
	}
	return v
}

// killedBefore tells whether pid was a victim of one of the last reports.
func (a *Assembler) killedBefore(pid int) bool {
	for _, k := range a.victims[:min(a.nvictims, len(a.victims))] {
		if k == pid {
			return true
		}
	}
	return false
}

// apart tells whether rec came a second or more after the open report's
// last record, by the kernel's clock or else the wall clock.
func (a *Assembler) apart(rec *kernlog.Record) bool {
	switch {
	case rec.HasMono && a.lastMonoOK:
		return rec.Mono-a.lastMono >= time.Second
	case !rec.Wall.IsZero() && !a.lastWall.IsZero():
		return rec.Wall.Sub(a.lastWall) >= time.Second
	}
	return false
}

// expired tells whether the open report has run past its bounds.
func (a *Assembler) expired(rec *kernlog.Record) bool {
	if a.lines >= a.opts.MaxLines {
		return true
	}
	if rec.HasMono && a.cur.HasMono {
		if rec.Mono < a.cur.Mono {
			// Time went backwards: a reboot, or another log spliced in.
			return true
		}
		return rec.Mono-a.cur.Mono > a.opts.MaxSpan
	}
	return false
}

// Expire closes the open report if the kernel's clock, as last seen plus
// idle (how long the source has been quiet), has passed its bounds or its
// kill line has been seen. A live source calls it when no record came for
// a while.
func (a *Assembler) Expire(idle time.Duration) {
	a.flushWrap()
	if a.cur == nil {
		return
	}
	// After the oom-kill: summary the kernel prints the kill line at once,
	// but a reader starved of CPU (the node is out of memory, or emulated)
	// may take seconds to get it: the summary alone waits KillLineWait.
	pending := a.killed && len(a.cur.Victims) == 0 && a.cur.Summary != nil
	if pending && idle < a.opts.KillLineWait {
		return
	}
	if a.killed || !a.cur.HasMono || a.lastMono+idle-a.cur.Mono > a.opts.MaxSpan {
		a.finish()
	}
}

// Flush closes the open report, if any. Call it at the end of the input.
func (a *Assembler) Flush() {
	a.flushWrap()
	if a.cur != nil {
		a.finish()
	}
}

func (a *Assembler) start(rec *kernlog.Record, orphan bool) {
	a.cur = &Report{
		Seq:      rec.Seq,
		Mono:     rec.Mono,
		HasMono:  rec.HasMono,
		Wall:     rec.Wall,
		Complete: !orphan,
		PageSize: 4096,
	}
	a.layout = dumpLayout{}
	a.dump.reset()
	a.raw.reset()
	a.lines = 0
	a.tail = 0
	a.killed = false
	a.grouped = false
}

// take adds a record to the open report.
func (a *Assembler) take(rec *kernlog.Record, kind lineKind) {
	r := a.cur
	a.lines++
	r.EndSeq = rec.Seq
	if rec.HasMono {
		a.lastMono, a.lastMonoOK = rec.Mono, true
	}
	if !rec.Wall.IsZero() {
		a.lastWall = rec.Wall
	}
	if kind != lineDumpRow || a.raw.len() < a.opts.MaxRawLines/2 {
		line := rec.Message
		if a.verbatim != nil {
			line = a.verbatim
		}
		a.keepLine(line, kind)
	} else {
		r.LinesDropped++
	}
	switch kind {
	case lineOther:
		if r.buddyPageSize == 0 && bytes.HasPrefix(rec.Message, bNode) {
			r.buddyPageSize = parseBuddyPageSize(rec.Message)
		}
		if !a.killed && !r.LimitWritten && bytes.Contains(rec.Message, bMaxWrite) {
			r.LimitWritten = true
		}
		if r.Summary != nil && bytes.Contains(rec.Message, bSkipExiting) {
			r.skippedPID = parseSkipped(rec.Message)
		}
		if r.HasTaskDump && !a.killed && len(r.Victims) == 0 && isElision(rec.Message) {
			r.DumpCut = true
		}
		return
	case lineNoKillable:
		return
	case lineMemInfo:
		r.HasMemInfo = true
		return
	case lineTasksState:
		r.HasTaskDump = true
		return
	case lineDumpRow:
		// The bulk of a large report: staged without a string of its own.
		r.HasTaskDump = true
		if c, ok := a.row.columns(rec.Message, a.layout.numeric); ok {
			name := a.row.name(rec.Message, c)
			if cutRow(name) {
				// A row cut short by a paste ("...   180224        ..."):
				// its columns from the left hold, its oom_score_adj and
				// name are not there.
				a.stageRow(&a.row, c, nil, false)
			} else {
				a.stageRow(&a.row, c, name, true)
			}
		}
		return
	case lineDumpRowNameless:
		// Its name may be the next line (see Feed).
		r.HasTaskDump = true
		a.nameless.msg, a.nameless.pending = append(a.nameless.msg[:0], rec.Message...), true
		return
	}
	msg := string(rec.Message)
	switch kind {
	case lineInvoke:
		t := parseInvoke(msg)
		r.Trigger = &t
	case lineCPU:
		if r.KernelRelease == "" {
			r.KernelRelease = parseKernelVersion(msg)
		}
		if pid, comm, ok := parseCPU(msg); ok && r.Trigger != nil && r.Trigger.PID == 0 {
			if comm == "" || comm == r.Trigger.Comm || strings.HasPrefix(r.Trigger.Comm, comm) {
				r.Trigger.PID = pid
				if a.opts.TaskSeen != nil {
					a.opts.TaskSeen(pid, -1)
				}
			}
		}
	case lineTaskIn:
		r.LegacyTaskIn, r.LegacyLimitOf = parseTaskIn(msg)
	case lineMemcgUsage:
		if r.HasMemcgUsage {
			return
		}
		r.MemcgUsageKB, r.MemcgLimitKB, r.HasMemcgUsage = parseMemcgUsage(msg)
	case lineMemswUsage:
		if r.HasMemswUsage {
			return
		}
		r.MemswUsageKB, r.MemswLimitKB, r.HasMemswUsage = parseMemcgUsage(msg)
	case lineMemcgStats:
		if r.MemcgStatsFor == "" {
			r.MemcgStatsFor = parseMemcgStats(msg)
		}
	case lineDumpHeader:
		r.HasTaskDump = true
		a.layout = parseDumpHeader(msg)
	case lineSummary:
		s := ParseSummary(msg)
		r.Summary = &s
		// The kill line follows the summary at once; from here the
		// report ends like one whose kill line was seen.
		a.killed = true
		a.tail = 0
	case lineSelect:
		if pid, comm, score, memcg, global, ok := parseSelect(msg); ok {
			r.SelectedPID, r.SelectedComm, r.SelectedScore = pid, comm, score
			r.SelectedMemcg, r.SelectedGlobal = memcg, global
		}
	case lineKilled:
		if v, ok := parseKilled(msg); ok {
			a.addVictim(rec, v)
		}
	case lineSharing:
		if v, ok := parseSharing(msg); ok {
			v.SharedMemory = true
			a.addVictim(rec, v)
		}
	case lineGroup:
		r.GroupCgroup = parseGroup(msg)
		a.grouped = true
	case lineReaper:
		if pid, comm, ok := parseReaper(msg); ok {
			// Only a reaper line after the report's task dump or choice
			// (its selection or summary line) may be of its own victim,
			// and not one of a process an earlier report killed, reaped
			// late.
			if r.reapedPID == 0 && (r.SelectedPID > 0 || r.Summary != nil || r.HasTaskDump) && !a.killedBefore(pid) {
				r.reapedPID, r.reapedComm = pid, comm
			}
			r.Reaped = append(r.Reaped, pid)
			if left, ok := kbAfter(msg, "now anon-rss:"); ok && left >= 64<<10 {
				for i := range r.Victims {
					if v := &r.Victims[i]; v.PID == pid && left >= v.AnonKB/2 && !slices.Contains(r.Unreaped, pid) {
						r.Unreaped = append(r.Unreaped, pid)
					}
				}
			}
		}
	}
}

func (a *Assembler) addVictim(rec *kernlog.Record, v Victim) {
	r := a.cur
	v.Seq, v.Mono, v.HasMono, v.Wall = rec.Seq, rec.Mono, rec.HasMono, rec.Wall
	if !a.grouped {
		// Until the report is known to be a group kill, each later kill
		// line may become a report of its own (splitStorm).
		v.line = string(rec.Message)
	}
	for i := range r.Victims {
		if r.Victims[i].PID == v.PID {
			// memory.oom.group prints the first victim a second time.
			if i == 0 {
				a.grouped = true
			}
			return
		}
	}
	r.Victims = append(r.Victims, v)
	a.killed = true
	a.tail = 0
	if a.opts.KillSeen != nil {
		cg := ""
		if s := r.Summary; s != nil && s.TaskMemcg != "" && (s.PID == v.PID || (s.PID == 0 && len(r.Victims) == 1)) {
			cg = s.TaskMemcg
		} else if len(r.Victims) == 1 && r.LegacyTaskIn != "" {
			cg = r.LegacyTaskIn
		}
		a.opts.KillSeen(v.PID, cg)
	}
}

// keepLine stores a raw line, bounded; kill lines are kept past the bound
// up to twice it (an OOM storm or a memory.oom.group kill of thousands of
// tasks prints one kill line each).
func (a *Assembler) keepLine(msg []byte, kind lineKind) {
	r := a.cur
	n := a.raw.len()
	essential := kind == lineKilled || kind == lineSummary || kind == lineGroup || kind == lineInvoke
	if n >= 2*a.opts.MaxRawLines || n >= a.opts.MaxRawLines && !essential {
		r.LinesDropped++
		return
	}
	a.raw.add(msg)
}

// finish closes the open report and emits it, split where one block of
// kill lines holds several independent kills.
func (a *Assembler) finish() {
	a.flushNameless()
	r := a.cur
	a.cur = nil
	switch {
	case len(r.Victims) > 0:
	case r.skippedPID > 0:
		// The kernel chose a victim that was already exiting, and let it
		// exit: no kill.
	case r.Summary != nil && r.Summary.PID > 0:
		// The kill line was not seen (filtered, or cut off), but the
		// summary names the victim.
		v := Victim{Seq: r.Seq, Mono: r.Mono, HasMono: r.HasMono, Wall: r.Wall}
		v.PID, v.Comm = r.Summary.PID, r.Summary.Task
		r.Victims = append(r.Victims, v)
	case r.reapedPID > 0:
		// The kill line was filtered out, but the oom_reaper, which only
		// reaps what the OOM killer killed, names the victim.
		r.Victims = append(r.Victims, lineless(r, r.reapedPID, r.reapedComm, false))
	case r.SelectedPID > 0:
		// Only an old kernel's selection line: the log was filtered
		// ("grep 'Out of memory'" keeps it and drops the bare kill line
		// after it) or cut off. The chosen process is the likely victim.
		r.Victims = append(r.Victims, lineless(r, r.SelectedPID, r.SelectedComm, true))
	}
	if len(r.Victims) == 0 {
		a.dump.reset()
		a.raw.reset()
		a.stats.Abandoned++
		if a.opts.Abandoned != nil {
			a.opts.Abandoned(r)
		}
		return
	}
	r.Tasks, r.Lines = a.dump.tasks(), a.raw.strings()
	a.dump.byProcess(r)
	a.dump.victimAnon(r)
	a.dump.names(r)
	a.dump.reset()
	a.raw.reset()
	for i := range r.Victims {
		a.victims[a.nvictims%len(a.victims)] = r.Victims[i].PID
		a.nvictims++
	}
	for _, out := range splitStorm(r, a.grouped) {
		a.settle(out)
		a.stats.Reports++
		a.emit(out)
	}
}

// splitStorm separates kills that only look like one report. During an OOM
// storm the kernel rate-limits the report header and prints just the
// "Out of memory: Killed process" line of each kill, so consecutive kill
// lines with no memory.oom.group evidence (neither the "Tasks in ... are
// going to be killed" line nor the first victim printed again; the former
// is printed at info level and often filtered) are independent kills, each
// its own report without a header.
func splitStorm(r *Report, grouped bool) []*Report {
	if grouped {
		for i := 1; i < len(r.Victims); i++ {
			r.Victims[i].GroupMember = true
		}
		return []*Report{r}
	}
	if len(r.Victims) < 2 {
		return []*Report{r}
	}
	out := []*Report{r}
	// Processes killed for sharing the first victim's memory stay with it.
	var rest []Victim
	keep := r.Victims[:1]
	for _, v := range r.Victims[1:] {
		if v.SharedMemory {
			keep = append(keep, v)
		} else {
			rest = append(rest, v)
		}
	}
	r.Victims = keep
	if len(rest) == 0 {
		return out
	}
	r.Lines = withoutKillLines(r.Lines, rest)
	for _, v := range rest {
		out = append(out, &Report{
			Seq:      v.Seq,
			EndSeq:   v.Seq,
			Mono:     v.Mono,
			HasMono:  v.HasMono,
			Wall:     v.Wall,
			PageSize: r.PageSize,
			Victims:  []Victim{v},
			Lines:    []string{v.line},
		})
	}
	return out
}

// withoutKillLines returns lines less the kill lines of victims: each of
// those is its own report, which carries its line.
func withoutKillLines(lines []string, victims []Victim) []string {
	pids := make(map[string]bool, len(victims))
	for _, v := range victims {
		pids[itoa(v.PID)] = true
	}
	out := lines[:0:0]
	for _, l := range lines {
		if _, rest, ok := strings.Cut(l, "Killed process "); ok {
			if pid, _, ok := strings.Cut(rest, " "); ok && pids[pid] {
				continue
			}
		}
		out = append(out, l)
	}
	return out
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	neg := n < 0
	if neg {
		n = -n
	}
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	if neg {
		i--
		b[i] = '-'
	}
	return string(b[i:])
}

// settle derives what follows from the whole report: the page size of the
// dump (checked against the victim's kill line), the tasks' sizes in
// bytes, and the victims' cgroups where the kernel printed them.
func (a *Assembler) settle(r *Report) {
	v := r.Victim()
	if r.buddyPageSize > 0 {
		// The kernel's own page size, from the Mem-Info block.
		r.PageSize = r.buddyPageSize
	} else if row := r.TaskByPID(v.PID); row != nil && v.HasRSS && row.RSSPages > 0 {
		// The dump's rss is anon+file+shmem pages, the kill line's the same
		// in kB, read at nearly the same moment: their ratio is the page
		// size. File pages may come and go in between: a 6.x dump's
		// rss_anon against the kill line's anon-rss is steadier, and a
		// ratio that is exactly a page size wins.
		ps, exact := nearestPageSize(v.RSSBytes, row.RSSPages)
		if r.victimAnonPages > 0 && v.AnonKB > 0 && !exact {
			ps, _ = nearestPageSize(v.AnonKB*1024, r.victimAnonPages)
		}
		r.PageSize = ps
	}
	for i := range r.Tasks {
		t := &r.Tasks[i]
		t.RSSBytes = t.RSSPages * r.PageSize
		if t.HasShared {
			t.SharedBytes *= r.PageSize // staged in pages
		}
	}
	if s := r.Summary; s != nil && s.TaskMemcg != "" && (s.PID == v.PID || s.PID == 0 || threadOfVictim(r, s.PID)) {
		v.Cgroup = s.TaskMemcg
	} else if r.LegacyTaskIn != "" {
		v.Cgroup = r.LegacyTaskIn
	}
	// memory.oom.group: the group cgroup contains every member; the
	// victim's own path, when cut short, is a prefix of it.
	if g := r.GroupCgroup; g != "" {
		if v.Cgroup == "" || (len(v.Cgroup) < len(g) && strings.HasPrefix(g, v.Cgroup)) {
			v.Cgroup = g
		}
		for i := 1; i < len(r.Victims); i++ {
			if r.Victims[i].Cgroup == "" {
				r.Victims[i].Cgroup = g
			}
		}
	}
	for i := range r.Victims {
		vi := &r.Victims[i]
		if row := r.TaskByPID(vi.PID); row != nil {
			if !vi.HasAdj && row.HasAdj {
				vi.OOMScoreAdj, vi.HasAdj = row.OOMScoreAdj, true
			}
			if !vi.HasUID && row.HasUID {
				vi.UID, vi.HasUID = row.UID, true
			}
			if !vi.HasRSS {
				vi.RSSBytes, vi.HasRSS = row.RSSBytes, true
			}
		}
		if !vi.HasUID && i == 0 && r.Summary != nil && r.Summary.HasUID {
			vi.UID, vi.HasUID = r.Summary.UID, true
		}
	}
}

// bNode starts a Mem-Info line of a zone's free blocks.
var bNode = []byte("Node ")

// parseBuddyPageSize reads the page size from a node-wide report's free
// block counts of a zone, "Node 0 DMA32: 12*64kB (UM) 10*128kB ...": the
// first count is of order 0, blocks of one page. 0 when msg is not such a
// line or the size is not a power of two from 4 KiB to 256 KiB.
func parseBuddyPageSize(msg []byte) int64 {
	i := bytes.Index(msg, []byte(": "))
	if i < 0 {
		return 0
	}
	b := msg[i+2:]
	j := 0
	for j < len(b) && b[j] >= '0' && b[j] <= '9' {
		j++
	}
	if j == 0 || j >= len(b) || b[j] != '*' {
		return 0
	}
	kb, n := atoi(b, j+1)
	if n == 0 || !bytes.HasPrefix(b[j+1+n:], []byte("kB")) {
		return 0
	}
	if kb < 4 || kb > 256 || kb&(kb-1) != 0 {
		return 0
	}
	return int64(kb) * 1024
}

// threadOfVictim tells whether the summary's pid, another than the
// victim's, is a thread of the victim's process: the dump lists the victim
// and no process of that pid (the kernel chose a thread, then killed its
// process: "task=runc:[2:INIT],pid=12800" and "Killed process 12788"). A
// child killed instead of its parent has a row of its own, and so has the
// parent.
func threadOfVictim(r *Report, pid int) bool {
	v := r.Victim()
	return len(r.Victims) == 1 && len(r.Tasks) > 0 && r.TaskByPID(pid) == nil && r.TaskByPID(v.PID) != nil
}

// nearestPageSize rounds a measured bytes-per-page ratio to the page sizes
// Linux uses: 4 KiB, 8 KiB (sparc64, alpha), 16 KiB (arm64, loongarch,
// mips), 32 KiB (mips) or 64 KiB (arm64, ppc64).
func nearestPageSize(size, pages int64) (ps int64, exact bool) {
	ratio := size / pages
	best := int64(4096)
	for _, ps := range []int64{4096, 8192, 16384, 32768, 65536} {
		if abs(ratio-ps) < abs(ratio-best) {
			best = ps
		}
	}
	return best, size == best*pages
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
