package oom

import "strings"

// The Assembler stages the bulk of the open report, its task dump and raw
// lines, in buffers of its own, and turns them into the Report's slices
// and strings once the report is finished: a few allocations per report
// rather than one or two per record.

// dumpBlock is how many rows one block of a taskDump holds.
const dumpBlock = 256

// commChunkMax is the largest chunk of comms a taskDump fills: its chunks
// start at 256 bytes and grow fourfold up to this size.
const commChunkMax = 16 << 10

// taskRow is a task dump row as the Assembler stages it while the report is
// open: its numeric columns, and where its comm is in the comm chunks of
// taskDump: in chunk chunk, ending at commEnd, starting where the previous
// row's ends when that is in the same chunk, else at 0. (A chunk holds
// at most commChunkMax bytes or one comm, a part of one record: int32
// is ample.)
type taskRow struct {
	rssPages  int64
	anonPages int64 // the rss_anon column, 0 when there is none
	// pid, uid and adj fit 32 bits as the kernel prints them (%d).
	pid, uid, adj  int32
	chunk, commEnd int32
}

// taskDump stages the task dump of the open report. A dump can have tens
// of thousands of rows, so they are kept compact until the report is
// finished, without an allocation per row: the rows go to fixed-size
// blocks, never copied as the dump grows, and the comms back to back into
// strings filled through a strings.Builder (which turns its buffer into the
// string without a copy), each four times the size of the one before up
// to commChunkMax. tasks then builds the Report's Tasks with one allocation
// for the rows, their comms substrings of those chunks: no comm is copied
// after it is staged (a buffer grown by doubling and copied into one
// string at the end allocated about three times the comms' bytes, in
// large allocations the garbage collector then had to return). The first
// block is kept for the next report.
//
// Rows are written by index into memory allocated at full length: they
// hold no pointers, so staging a row costs no write barrier while the
// garbage collector runs.
type taskDump struct {
	blocks [][]taskRow
	n      int             // rows staged
	comm   strings.Builder // the comm chunk being filled
	chunks []string        // the comm chunks filled
	// threads are the rows, rare, that the kernel printed for a thread
	// other than the process's leader (pid and tgid differ), by index.
	threads []threadRow
	// hasAnon tells that some row had an rss_anon column; cut that some
	// row was cut short (cutRow) or wrapped (Assembler.named), its name
	// missing or only begun.
	hasAnon, cut bool
}

// threadRow is a dump row whose pid is not its process's (tgid).
type threadRow struct{ row, tgid int }

// add stages one row of the process tgid.
func (d *taskDump) add(pid, uid, tgid int, rssPages, anonPages int64, adj int, comm []byte) {
	if tgid != pid && tgid > 0 && len(d.threads) < maxThreadRows {
		d.threads = append(d.threads, threadRow{row: d.n, tgid: tgid})
	}
	b, i := d.n/dumpBlock, d.n%dumpBlock
	if b == len(d.blocks) {
		d.blocks = append(d.blocks, make([]taskRow, dumpBlock))
	}
	if d.comm.Cap() == 0 || d.comm.Len()+len(comm) > d.comm.Cap() {
		d.nextChunk(len(comm))
	}
	d.comm.Write(comm)
	if anonPages > 0 {
		d.hasAnon = true
	}
	if adj == noAdj {
		d.cut = true
	}
	d.blocks[b][i] = taskRow{pid: int32(pid), uid: int32(uid), adj: int32(adj), rssPages: rssPages, anonPages: anonPages,
		chunk: int32(len(d.chunks)), commEnd: int32(d.comm.Len())}
	d.n++
}

// nextChunk ends the comm chunk being filled, if one was started, and
// starts one that holds at least need bytes.
func (d *taskDump) nextChunk(need int) {
	size := 256
	if c := d.comm.Cap(); c > 0 {
		if d.chunks == nil {
			// Room for the chunks of a dump of ~10,000 rows.
			d.chunks = make([]string, 0, 8)
		}
		d.chunks = append(d.chunks, d.comm.String())
		size = min(4*c, commChunkMax)
	}
	d.comm = strings.Builder{}
	d.comm.Grow(max(size, need))
}

// tasks returns the staged rows as Tasks, their comms substrings of the
// comm chunks.
func (d *taskDump) tasks() []Task {
	if d.n == 0 {
		return nil
	}
	// The chunk being filled ends here, as a string of what it holds.
	d.chunks = append(d.chunks, d.comm.String())
	d.comm = strings.Builder{}
	chunks := d.chunks
	out := make([]Task, d.n)
	chunk, start := int32(0), int32(0)
	for i := range out {
		row := &d.blocks[i/dumpBlock][i%dumpBlock]
		if row.chunk != chunk {
			chunk, start = row.chunk, 0
		}
		t := &out[i]
		t.PID, t.Comm = int(row.pid), chunks[chunk][start:row.commEnd]
		t.UID, t.RSSPages, t.OOMScoreAdj = int(row.uid), row.rssPages, int(row.adj)
		t.HasUID, t.HasRSS, t.HasAdj = true, true, row.adj != noAdj
		if !t.HasAdj {
			t.OOMScoreAdj = 0
		}
		if d.hasAnon && row.anonPages <= row.rssPages {
			// rss is rss_anon + rss_file + rss_shmem: the rest is
			// shared (in pages until the page size is known).
			t.SharedBytes, t.HasShared = row.rssPages-row.anonPages, true
		}
		start = row.commEnd
	}
	return out
}

// victimAnon keeps, for the page size, the rss_anon pages of the first
// victim's row, when the dump has the column.
func (d *taskDump) victimAnon(r *Report) {
	v := r.Victim()
	if v == nil || !d.hasAnon {
		return
	}
	if i := r.taskIndex(v.PID); i >= 0 {
		r.victimAnonPages = d.blocks[i/dumpBlock][i%dumpBlock].anonPages
	}
}

// maxThreadRows bounds the thread rows kept for a report.
const maxThreadRows = 1024

// byProcess gives each victim of r that no row names by its pid the row
// printed for another thread of its process: the kernel reads a process's
// task dump row and its kill line from whichever of its threads still holds
// its memory, at two moments (a 3.10 kernel printed "[ 7747] 0 7748 ...
// python" and "Killed process 7748 (python)"). The row then takes the
// victim's pid, which names the process as the kill line does.
func (d *taskDump) byProcess(r *Report) {
	for i := range r.Victims {
		pid := r.Victims[i].PID
		if len(d.threads) == 0 || pid <= 0 || r.TaskByPID(pid) != nil {
			continue
		}
		for _, t := range d.threads {
			if t.tgid == pid && t.row < len(r.Tasks) {
				r.Tasks[t.row].PID = pid
				break
			}
		}
	}
}

// reset empties the dump for the next report, keeping the first block.
func (d *taskDump) reset() {
	if len(d.blocks) > 1 {
		clear(d.blocks[1:])
		d.blocks = d.blocks[:1]
	}
	clear(d.chunks)
	d.comm, d.chunks, d.n = strings.Builder{}, d.chunks[:0], 0
	d.threads = d.threads[:0]
	d.hasAnon, d.cut = false, false
}

// names gives the rows cut short (cutRow) or wrapped (Assembler.named)
// the names the report's kill lines give their pids.
func (d *taskDump) names(r *Report) {
	if !d.cut {
		return
	}
	for _, v := range r.Victims {
		// A name a paste wrapped may be only its start ("stre" / "ss").
		if i := r.taskIndex(v.PID); i >= 0 && strings.HasPrefix(v.Comm, r.Tasks[i].Comm) {
			r.Tasks[i].Comm = v.Comm
		}
	}
}

// lineChunk is the size of the strings a rawLines fills with lines.
const lineChunk = 4 << 10

// rawLines stages the raw lines of the open report: their bytes go into
// strings of lineChunk bytes, filled through a strings.Builder (which
// turns its buffer into the string without a copy), and each line becomes
// a substring of one. A report's hundreds of lines take a few allocations.
type rawLines struct {
	b      strings.Builder // the chunk being filled
	chunks []string        // the chunks filled
	spans  []lineSpan
}

// lineSpan locates a line in the chunks of a rawLines.
type lineSpan struct{ chunk, start, end int }

// add stages a copy of line.
func (l *rawLines) add(line []byte) {
	if l.b.Cap() == 0 || l.b.Len()+len(line) > l.b.Cap() {
		l.seal()
		l.b.Grow(max(lineChunk, len(line)))
	}
	start := l.b.Len()
	l.b.Write(line)
	l.spans = append(l.spans, lineSpan{chunk: len(l.chunks), start: start, end: l.b.Len()})
}

// seal ends the chunk being filled, if one was started.
func (l *rawLines) seal() {
	if l.b.Cap() > 0 {
		l.chunks = append(l.chunks, l.b.String())
		l.b = strings.Builder{}
	}
}

// len returns the number of lines staged.
func (l *rawLines) len() int { return len(l.spans) }

// strings returns the staged lines.
func (l *rawLines) strings() []string {
	if len(l.spans) == 0 {
		return nil
	}
	l.seal()
	out := make([]string, len(l.spans))
	for i, sp := range l.spans {
		out[i] = l.chunks[sp.chunk][sp.start:sp.end]
	}
	return out
}

// reset empties the stage for the next report.
func (l *rawLines) reset() {
	clear(l.chunks)
	l.b, l.chunks, l.spans = strings.Builder{}, l.chunks[:0], l.spans[:0]
}
