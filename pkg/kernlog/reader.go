package kernlog

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"time"
)

// MaxLineBytes bounds one input line. The kernel's own records are at most
// about 1 KiB (PRINTK_MESSAGE_MAX); journal and syslog prefixes add little.
const MaxLineBytes = 64 << 10

// ErrLineTooLong reports a line longer than MaxLineBytes: the Reader skips
// it and goes on (see Reader.LongLine).
var ErrLineTooLong = errors.New("kmsg: line too long")

// Format names the rendering a line was recognised in.
type Format uint8

// The renderings a Reader recognises, line by line.
const (
	// FormatBare is a message body with no prefix.
	FormatBare Format = iota
	// FormatKmsg is a raw /dev/kmsg record: PRIO,SEQ,USEC,FLAGS;message.
	FormatKmsg
	// FormatDmesg is util-linux dmesg output ([ 123.456789] msg, -T,
	// --time-format iso, optionally with --decode's facility:level prefix)
	// or busybox dmesg -r (<4>[ 123.456789] msg).
	FormatDmesg
	// FormatSyslog is a syslog or journal line (Nov 27 05:12:01 host
	// kernel: msg, RFC 3339 prefixes), possibly with a dmesg timestamp inside.
	FormatSyslog
	// FormatSkipped is a line that carries no kernel message: a kmsg
	// dictionary continuation, a syslog line of another program, a blank line.
	FormatSkipped
)

var formatNames = [...]string{"bare", "kmsg", "dmesg", "syslog", "skipped"}

// String returns the format's short name.
func (f Format) String() string {
	if int(f) < len(formatNames) {
		return formatNames[f]
	}
	return fmt.Sprintf("format(%d)", f)
}

// Reader reads kernel records from any mix of the supported renderings,
// detecting the rendering of each line. It does not allocate per line: the
// Record it returns aliases its buffer until the next call to Next.
type Reader struct {
	br       *bufio.Reader
	rec      Record
	format   Format
	err      error
	lineNo   int64
	lastKmsg bool
	// Year completes syslog timestamps that carry no year. Zero means the
	// current year, or the one before for dates that would lie ahead.
	Year int
	now  time.Time
	// nowYear caches now.Year(), which costs a calendar computation.
	nowYear int
	// begins is when the journal said its entries begin ("-- Logs begin
	// at Sun 2021-05-30 20:43:48 CST, end at ... --"): when Year is zero,
	// the year of syslog dates after it, rather than the current one.
	begins time.Time
	// Location interprets timestamps that carry no zone (syslog, dmesg -T).
	Location *time.Location
	// long gathers a line longer than the read buffer.
	long []byte
	// boots counts the boot boundaries passed (see Boots).
	boots int
	// j is the journal export entry being read (see journal.go); pretty
	// tells that json-pretty's lines of one are being read; lastBoot is
	// the _BOOT_ID of the entry before.
	j           journalEntry
	pretty      bool
	lastBoot    [maxBootID]byte
	lastBootLen int
	// verbose tells that journalctl -o verbose's field lines of an entry
	// are being read; pend is a line read past its end, to read next.
	verbose bool
	pend    []byte
	hasPend bool
	// LongLine, when set, is told of each line longer than MaxLineBytes
	// (an error wrapping ErrLineTooLong that names the line): the Reader
	// skips such a line and reads on, so nothing after it is lost.
	LongLine func(err error)
}

// NewReader returns a Reader over r. Syslog timestamps without a year are
// placed in the current year and local time zone; set Year and Location to
// change that.
func NewReader(r io.Reader) *Reader {
	return &Reader{
		br:       bufio.NewReaderSize(r, 64<<10),
		Location: time.Local,
		now:      time.Now(),
	}
}

// Next advances to the next kernel record, skipping lines that carry none.
// It returns false at the end of the input or on a read error (see Err).
func (r *Reader) Next() bool {
	for r.err == nil {
		var line []byte
		if r.hasPend {
			line, r.hasPend = r.pend, false
		} else {
			var err error
			line, err = r.readLine()
			if err != nil {
				if !errors.Is(err, io.EOF) {
					r.err = err
				}
				if r.verbose && r.endVerbose() {
					return true
				}
				return false
			}
			r.lineNo++
		}
		if r.verbose {
			if r.j.verboseField(line) {
				continue
			}
			// The entry ends at the line after its fields, read next.
			r.pend, r.hasPend = append(r.pend[:0], line...), true
			if r.endVerbose() {
				return true
			}
			continue
		}
		if len(line) > 0 && line[0] >= 'A' && line[0] <= 'Z' && r.j.verboseHeader(line) {
			r.verbose = true
			continue
		}
		year := r.Year
		if year == 0 {
			if r.nowYear == 0 {
				r.nowYear = r.now.Year()
			}
			year = r.nowYear
			if !r.begins.IsZero() {
				year = r.begins.Year()
			}
		}
		journal := false
		if r.pretty || len(line) > 0 && (line[0] == '{' || line[0] == 0x1e || line[0] == 'd') {
			var f Format
			if f, journal = r.journal(line); journal {
				r.format = f
			}
		}
		if !journal {
			r.format = ParseLine(line, &r.rec, r.lastKmsg, year, r.Location)
		}
		if r.Year == 0 && r.format == FormatSyslog && r.rec.Wall.Year() == year {
			switch {
			case !r.begins.IsZero():
				// A date before the journal's first entry is the next year's.
				if r.rec.Wall.Before(r.begins.Add(-48 * time.Hour)) {
					r.rec.Wall = r.rec.Wall.AddDate(1, 0, 0)
				}
			case r.rec.Wall.After(r.now.Add(48 * time.Hour)):
				// A syslog date without a year that would lie ahead is last year's.
				r.rec.Wall = r.rec.Wall.AddDate(-1, 0, 0)
			}
		}
		r.lastKmsg = r.format == FormatKmsg || (r.lastKmsg && r.format == FormatSkipped && len(line) > 0)
		if r.format == FormatSkipped {
			// A journal's lines quoted in a mail or indented keep their meaning.
			line = bytes.TrimLeft(line, "> |\t")
			if sep, boot := journalSeparator(line); boot {
				r.boots++
			} else if sep {
				if t, ok := journalBegins(line, r.Location); ok {
					r.begins = t
				}
			}
			continue
		}
		r.countBootStart()
		return true
	}
	return false
}

// journal reads line as part of a journal JSON export, if it is one: a
// whole entry (json, json-seq, json-sse), or a line of json-pretty's,
// skipped until the entry's last. ok is false for any other line, which
// is read as other renderings are. Next calls it for lines that start
// as an export's do ('{', json-seq's RS, json-sse's "data: "), and inside
// a json-pretty entry.
func (r *Reader) journal(line []byte) (Format, bool) {
	if r.pretty {
		if t := bytes.TrimSpace(line); len(t) == 1 && t[0] == '}' {
			r.pretty = false
			if f, ok := r.journalRecord(); ok {
				return f, true
			}
			return FormatSkipped, true
		}
		if r.j.prettyMember(line) {
			return FormatSkipped, true
		}
		// Not json-pretty after all: the line is read as any other.
		r.pretty = false
		return 0, false
	}
	t := journalLine(line)
	if len(t) == 0 || t[0] != '{' {
		return 0, false
	}
	if len(t) == 1 {
		r.pretty = true
		r.j.reset()
		return FormatSkipped, true
	}
	if t[len(t)-1] != '}' || !r.j.parseObject(t) {
		return 0, false
	}
	return r.journalRecord()
}

// endVerbose ends the journalctl -o verbose entry being read and tells
// whether it is a kernel record, now the current one.
func (r *Reader) endVerbose() bool {
	r.verbose = false
	f, ok := r.journalRecord()
	if !ok || f == FormatSkipped {
		return false
	}
	r.format, r.lastKmsg = f, false
	r.countBootStart()
	return true
}

// countBootStart counts a boot's first record as a boundary (see Boots).
func (r *Reader) countBootStart() {
	if m := r.rec.Message; len(m) > 0 && m[0] == 'L' && IsBootStart(m) {
		r.boots++
	}
}

// journalRecord makes the record of the entry read, and counts a boot
// when its _BOOT_ID differs from the entry's before.
func (r *Reader) journalRecord() (Format, bool) {
	f, ok := r.j.record(&r.rec)
	if !ok {
		return 0, false
	}
	if b := r.j.boot[:r.j.bootLen]; len(b) > 0 {
		if r.lastBootLen > 0 && !bytes.Equal(b, r.lastBoot[:r.lastBootLen]) {
			r.boots++
		}
		r.lastBootLen = copy(r.lastBoot[:], b)
	}
	return f, true
}

// readLine returns the next line without its line ending. A final line
// without a newline is returned too.
func (r *Reader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if err == nil {
		return trimEOL(line), nil
	}
	if errors.Is(err, bufio.ErrBufferFull) {
		// Lines longer than the buffer are rare (a corrupted file, a
		// binary): gather them once, bounded.
		r.long = append(r.long[:0], line...)
		size := len(line)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = r.br.ReadSlice('\n')
			size += len(line)
			if size > MaxLineBytes {
				// Skip the rest of the line and give back an empty one:
				// the caller counts it and reads on.
				for errors.Is(err, bufio.ErrBufferFull) {
					line, err = r.br.ReadSlice('\n')
					size += len(line)
				}
				if err != nil && !errors.Is(err, io.EOF) {
					return nil, fmt.Errorf("read kernel log: %w", err)
				}
				if err == nil {
					size-- // the newline
				}
				if r.LongLine != nil {
					r.LongLine(fmt.Errorf("line %d (%d bytes, more than %d) skipped: %w",
						r.lineNo+1, size, MaxLineBytes, ErrLineTooLong))
				}
				return nil, nil
			}
			r.long = append(r.long, line...)
		}
		line = r.long
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read kernel log: %w", err)
	}
	if len(line) == 0 && err != nil {
		return nil, err
	}
	return trimEOL(line), nil
}

// trimEOL drops the trailing CR and LF bytes of line.
func trimEOL(line []byte) []byte {
	n := len(line)
	for n > 0 && (line[n-1] == '\n' || line[n-1] == '\r') {
		n--
	}
	return line[:n]
}

// Record returns the current record. It is valid until the next call to Next.
func (r *Reader) Record() *Record { return &r.rec }

// Format returns the rendering the current record was read in.
func (r *Reader) Format() Format { return r.format }

// Boots returns how many boot boundaries the records so far have passed:
// journalctl's "-- Boot ID --" lines, and a boot's first kernel record
// ("Linux version ..."). The records after a boundary
// come from another boot of the kernel, where PIDs name other processes.
func (r *Reader) Boots() int { return r.boots }

// Line returns the number of the current line, counting from 1.
func (r *Reader) Line() int64 { return r.lineNo }

// Err returns the first error other than io.EOF met by Next.
func (r *Reader) Err() error { return r.err }
