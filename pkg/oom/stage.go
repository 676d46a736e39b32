package oom

import "strings"

// The Assembler stages the bulk of the open report, its task dump and raw
// lines, in buffers of its own, and turns them into the Report's slices
// and strings once the report is finished: a few allocations per report
// rather than one or two per record.

// dumpBlock is how many rows one block of a taskDump holds.
const dumpBlock = 256

// keepComms is the largest comm buffer a taskDump keeps for the next report.
const keepComms = 4 << 10

// taskRow is a task dump row as the Assembler stages it while the report is
// open: its numeric columns, and where its comm ends in taskDump.comms (it
// starts where the previous row's ends).
type taskRow struct {
	pid, uid, adj int
	rssPages      int64
	commEnd       int
}

// taskDump stages the task dump of the open report. A dump can have tens
// of thousands of rows, so they are kept compact until the report is
// finished, without an allocation per row: the rows go to fixed-size
// blocks, never copied as the dump grows, and the comms back to back into
// one buffer. tasks then builds the Report's Tasks with one allocation for
// the rows and one string for all the comms, which the Tasks' Comm fields
// share. The first block and a small comm buffer are kept for the next
// report.
//
// Rows and comms are written by index into memory allocated at full
// length: they hold no pointers, so staging a row costs no write barrier
// while the garbage collector runs.
type taskDump struct {
	blocks [][]taskRow
	n      int // rows staged
	comms  []byte
	nComms int // bytes of comms used
}

// add stages one row.
func (d *taskDump) add(pid, uid int, rssPages int64, adj int, comm []byte) {
	b, i := d.n/dumpBlock, d.n%dumpBlock
	if b == len(d.blocks) {
		d.blocks = append(d.blocks, make([]taskRow, dumpBlock))
	}
	if d.nComms+len(comm) > len(d.comms) {
		// Double the buffer rather than let append grow it by a quarter
		// at a time: a 10,000-row dump would copy it a dozen times.
		grown := make([]byte, max(2*len(d.comms), d.nComms+len(comm), 256))
		copy(grown, d.comms[:d.nComms])
		d.comms = grown
	}
	d.nComms += copy(d.comms[d.nComms:], comm)
	d.blocks[b][i] = taskRow{pid: pid, uid: uid, adj: adj, rssPages: rssPages, commEnd: d.nComms}
	d.n++
}

// tasks returns the staged rows as Tasks, their comms substrings of one
// string.
func (d *taskDump) tasks() []Task {
	if d.n == 0 {
		return nil
	}
	out := make([]Task, d.n)
	comms := string(d.comms[:d.nComms])
	start := 0
	for i := range out {
		row := &d.blocks[i/dumpBlock][i%dumpBlock]
		t := &out[i]
		t.PID, t.Comm = row.pid, comms[start:row.commEnd]
		t.UID, t.RSSPages, t.OOMScoreAdj = row.uid, row.rssPages, row.adj
		t.HasUID, t.HasRSS, t.HasAdj = true, true, true
		start = row.commEnd
	}
	return out
}

// reset empties the dump for the next report, keeping the first block and
// a small comm buffer.
func (d *taskDump) reset() {
	if len(d.blocks) > 1 {
		clear(d.blocks[1:])
		d.blocks = d.blocks[:1]
	}
	if len(d.comms) > keepComms {
		d.comms = nil
	}
	d.n, d.nComms = 0, 0
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
