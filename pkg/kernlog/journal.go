package kernlog

import (
	"bytes"
	"time"
	"unicode/utf8"
)

// The journal's JSON exports (journalctl -o json, json-seq, json-sse, one
// entry per line, and json-pretty, one field per line): an entry is a
// kernel record when journald read it from the kernel (_TRANSPORT=kernel).
// Its MESSAGE, the kernel's timestamp (_SOURCE_MONOTONIC_TIMESTAMP, µs), the
// wall clock (__REALTIME_TIMESTAMP, µs) and the syslog facility and level
// become the Record; _BOOT_ID tells the boots apart. A record that a process
// wrote to /dev/kmsg is a kernel-transport entry too, but keeps its
// userspace facility, which the Assembler refuses as a report line.

// maxBootID bounds the _BOOT_ID kept (journald's are 32 hex digits).
const maxBootID = 64

// journalEntry gathers the fields of one entry as they are read.
type journalEntry struct {
	msg      []byte // MESSAGE, unescaped
	hasMsg   bool
	mono     int64 // µs
	hasMono  bool
	real     int64 // µs since the epoch
	hasReal  bool
	level    int
	hasLevel bool
	facility int
	hasFac   bool
	// transport and ident: _TRANSPORT and SYSLOG_IDENTIFIER, 0 unset, 1
	// the kernel's, 2 another.
	transport, ident uint8
	// journal: a field only the journal writes was seen, so that any
	// other JSON object is not taken for an entry.
	journal bool
	boot    [maxBootID]byte
	bootLen int
}

func (e *journalEntry) reset() {
	msg := e.msg[:0]
	*e = journalEntry{msg: msg}
}

// member reads one "KEY": value member at b[i:] into e and returns where
// it ends; ok is false when b[i:] is not one.
func (e *journalEntry) member(b []byte, i int) (int, bool) {
	key, i, ok := jsonString(b, i)
	if !ok {
		return 0, false
	}
	i = jsonSpace(b, i)
	if i >= len(b) || b[i] != ':' {
		return 0, false
	}
	i = jsonSpace(b, i+1)
	if i >= len(b) {
		return 0, false
	}
	if string(key) == "MESSAGE" {
		e.msg = e.msg[:0]
		end, ok := e.message(b, i)
		e.hasMsg = ok
		return end, ok
	}
	switch {
	case b[i] == '"':
		// The journal's values are strings, its numbers too; a field's
		// escapes, if any, are kept (no field read here has any).
		v, end, ok := jsonString(b, i)
		if ok {
			e.field(key, v)
		}
		return end, ok
	case isDigit(b[i]):
		end, ok := skipJSON(b, i)
		if ok {
			e.field(key, b[i:end])
		}
		return end, ok
	}
	return skipJSON(b, i)
}

// field takes one field of an entry, as JSON's string or journalctl -o
// verbose's "KEY=value" gives it.
func (e *journalEntry) field(key, v []byte) {
	switch string(key) {
	case "MESSAGE":
		e.msg, e.hasMsg = append(e.msg[:0], v...), true
	case "_SOURCE_MONOTONIC_TIMESTAMP":
		e.mono, e.hasMono = decimal(v, maxUsec)
	case "__REALTIME_TIMESTAMP":
		e.real, e.hasReal = decimal(v, maxUsec)
		e.journal = true
	case "PRIORITY":
		l, ok := decimal(v, 7)
		e.level, e.hasLevel = int(l), ok
	case "SYSLOG_FACILITY":
		f, ok := decimal(v, 23)
		e.facility, e.hasFac = int(f), ok
	case "_TRANSPORT", "SYSLOG_IDENTIFIER":
		which := uint8(2)
		if string(v) == "kernel" {
			which = 1
		}
		if key[0] == '_' {
			e.transport, e.journal = which, true
		} else {
			e.ident = which
		}
	case "_BOOT_ID":
		e.bootLen = copy(e.boot[:], v)
		e.journal = true
	case "__CURSOR", "__MONOTONIC_TIMESTAMP":
		e.journal = true
	}
}

// decimal reads v, all decimal digits, up to most.
func decimal(v []byte, most int64) (int64, bool) {
	n, used := parseUint(v)
	if used == 0 || used != len(v) || n > most {
		return 0, false
	}
	return n, true
}

// message reads MESSAGE's value: a string, or, for a message that is not
// valid UTF-8, the array of its bytes. (A field given more than once is an
// array of strings: the first is kept.)
func (e *journalEntry) message(b []byte, i int) (int, bool) {
	if b[i] == '"' {
		var ok bool
		e.msg, i, ok = jsonUnquote(e.msg, b, i)
		return i, ok
	}
	if b[i] != '[' {
		return skipJSON(b, i)
	}
	end, ok := skipJSON(b, i)
	if !ok {
		return 0, false
	}
	i = jsonSpace(b, i+1)
	if i < end && b[i] == '"' {
		e.msg, _, ok = jsonUnquote(e.msg, b, i)
		return end, ok
	}
	for i < end-1 {
		v, n := parseUint(b[i:])
		if n == 0 || v > 255 {
			return 0, false
		}
		e.msg = append(e.msg, byte(v))
		i = jsonSpace(b, i+n)
		if i < end-1 && b[i] == ',' {
			i = jsonSpace(b, i+1)
		}
	}
	return end, true
}

// record fills rec from a finished entry and returns its format: a kernel
// record, skipped (another transport's entry), or ok false when the
// object was not a journal entry at all.
func (e *journalEntry) record(rec *Record) (Format, bool) {
	*rec = Record{Seq: NoSeq, Priority: -1}
	if !e.journal || !e.hasMsg {
		return 0, false
	}
	// Another transport's entry is skipped; one that does not say (an
	// export cut down with --output-fields, most likely of journalctl -k)
	// is read as the kernel's, as a bare line is.
	if e.transport == 2 || (e.transport == 0 && e.ident == 2) {
		return FormatSkipped, true
	}
	if e.hasLevel {
		rec.Priority = e.level
		if e.hasFac {
			rec.Priority |= e.facility << 3
		}
	}
	if e.hasMono && e.mono <= maxUsec {
		rec.Mono, rec.HasMono = time.Duration(e.mono)*time.Microsecond, true
	}
	if e.hasReal {
		rec.Wall = time.UnixMicro(e.real)
	}
	msg := e.msg
	// journald keeps a record's trailing newline, if any.
	for len(msg) > 0 && (msg[len(msg)-1] == '\n' || msg[len(msg)-1] == '\r') {
		msg = msg[:len(msg)-1]
	}
	rec.Message = msg
	return FormatSyslog, true
}

// verboseHeader reads the first line of a journalctl -o verbose entry,
// "Thu 2023-02-02 11:49:13.015489 CET [s=...;i=...;b=BOOT;m=...;t=USEC;x=...]",
// into e, which it resets: the boot ID and the wall clock (t=, hexadecimal
// microseconds since the epoch: the zone's abbreviation says less).
func (e *journalEntry) verboseHeader(line []byte) bool {
	if len(line) == 0 || line[0] < 'A' || line[0] > 'Z' {
		return false
	}
	_, n := parseFullStamp(line, time.UTC)
	if n == 0 {
		return false
	}
	rest := bytes.TrimRight(line[n:], " ")
	if len(rest) < 5 || !bytes.HasPrefix(rest, []byte("[s=")) || rest[len(rest)-1] != ']' {
		return false
	}
	e.reset()
	e.journal = true
	for f := range bytes.SplitSeq(rest[1:len(rest)-1], []byte{';'}) {
		switch {
		case bytes.HasPrefix(f, []byte("b=")):
			e.bootLen = copy(e.boot[:], f[2:])
		case bytes.HasPrefix(f, []byte("t=")):
			e.real, e.hasReal = hexUsec(f[2:])
		}
	}
	return true
}

// hexUsec reads journalctl's hexadecimal microseconds.
func hexUsec(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 15 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		d, ok := hexDigit(c)
		if !ok {
			return 0, false
		}
		v = v<<4 | int64(d)
	}
	return v, true
}

// verboseField reads one "    KEY=value" line of a journalctl -o verbose
// entry into e.
func (e *journalEntry) verboseField(line []byte) bool {
	kv, ok := bytes.CutPrefix(line, []byte("    "))
	if !ok {
		return false
	}
	eq := bytes.IndexByte(kv, '=')
	if eq <= 0 {
		return false
	}
	for _, c := range kv[:eq] {
		if (c < 'A' || c > 'Z') && !isDigit(c) && c != '_' {
			return false
		}
	}
	e.field(kv[:eq], kv[eq+1:])
	return true
}

// journalLine strips the framing of journalctl's json-seq (an RS byte) and
// json-sse ("data: ") from line.
func journalLine(line []byte) []byte {
	line = bytes.TrimPrefix(line, []byte{0x1e})
	line = bytes.TrimPrefix(line, []byte("data: "))
	return bytes.TrimRight(line, " \t")
}

// parseObject reads a whole one-line object into e; ok is false when line
// is not one.
func (e *journalEntry) parseObject(line []byte) bool {
	e.reset()
	i := jsonSpace(line, 1)
	if i < len(line) && line[i] == '}' {
		return jsonSpace(line, i+1) == len(line)
	}
	for {
		end, ok := e.member(line, i)
		if !ok {
			return false
		}
		i = jsonSpace(line, end)
		if i >= len(line) {
			return false
		}
		switch line[i] {
		case ',':
			i = jsonSpace(line, i+1)
		case '}':
			return jsonSpace(line, i+1) == len(line)
		default:
			return false
		}
	}
}

// prettyMember reads one line of json-pretty's object body ("\t\"KEY\" :
// value," ); ok is false when it is not one.
func (e *journalEntry) prettyMember(line []byte) bool {
	i := jsonSpace(line, 0)
	end, ok := e.member(line, i)
	if !ok {
		return false
	}
	i = jsonSpace(line, end)
	if i < len(line) && line[i] == ',' {
		i = jsonSpace(line, i+1)
	}
	return i == len(line)
}

func jsonSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// jsonString returns the raw bytes of the string at b[i:] (escapes left
// as they are) and where it ends.
func jsonString(b []byte, i int) (raw []byte, end int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch b[j] {
		case '\\':
			j++
		case '"':
			return b[i+1 : j], j + 1, true
		}
	}
	return nil, 0, false
}

// jsonUnquote appends the unescaped string at b[i:] to dst.
func jsonUnquote(dst, b []byte, i int) ([]byte, int, bool) {
	for j := i + 1; j < len(b); j++ {
		c := b[j]
		switch {
		case c == '"':
			return dst, j + 1, true
		case c != '\\':
			dst = append(dst, c)
			continue
		}
		j++
		if j >= len(b) {
			return dst, 0, false
		}
		switch b[j] {
		case '"', '\\', '/':
			dst = append(dst, b[j])
		case 'b':
			dst = append(dst, '\b')
		case 'f':
			dst = append(dst, '\f')
		case 'n':
			dst = append(dst, '\n')
		case 'r':
			dst = append(dst, '\r')
		case 't':
			dst = append(dst, '\t')
		case 'u':
			r, ok := hex4(b, j+1)
			if !ok {
				return dst, 0, false
			}
			j += 4
			if r >= 0xd800 && r < 0xdc00 && j+6 < len(b) && b[j+1] == '\\' && b[j+2] == 'u' {
				if lo, ok := hex4(b, j+3); ok && lo >= 0xdc00 && lo < 0xe000 {
					r = 0x10000 + (r-0xd800)<<10 + (lo - 0xdc00)
					j += 6
				}
			}
			dst = utf8.AppendRune(dst, r)
		default:
			return dst, 0, false
		}
	}
	return dst, 0, false
}

func hex4(b []byte, i int) (rune, bool) {
	if i+4 > len(b) {
		return 0, false
	}
	var r rune
	for _, c := range b[i : i+4] {
		d, ok := hexDigit(c)
		if !ok {
			return 0, false
		}
		r = r<<4 | rune(d)
	}
	return r, true
}

func hexDigit(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

// skipJSON returns where the value at b[i:] ends: a string, an array or
// object (nested to any depth), or a number or literal.
func skipJSON(b []byte, i int) (int, bool) {
	if i >= len(b) {
		return 0, false
	}
	switch b[i] {
	case '"':
		_, end, ok := jsonString(b, i)
		return end, ok
	case '[', '{':
		depth := 0
		for j := i; j < len(b); j++ {
			switch b[j] {
			case '"':
				_, end, ok := jsonString(b, j)
				if !ok {
					return 0, false
				}
				j = end - 1
			case '[', '{':
				depth++
			case ']', '}':
				depth--
				if depth == 0 {
					return j + 1, true
				}
			}
		}
		return 0, false
	}
	j := i
	for j < len(b) && b[j] != ',' && b[j] != '}' && b[j] != ']' && b[j] != ' ' && b[j] != '\t' {
		j++
	}
	return j, j > i
}
