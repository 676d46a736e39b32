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
	switch string(key) {
	case "MESSAGE":
		e.msg = e.msg[:0]
		end, ok := e.message(b, i)
		e.hasMsg = ok
		return end, ok
	case "_SOURCE_MONOTONIC_TIMESTAMP":
		e.mono, e.hasMono, i, ok = jsonNumberString(b, i)
		return i, ok
	case "__REALTIME_TIMESTAMP":
		e.real, e.hasReal, i, ok = jsonNumberString(b, i)
		e.journal = true
		return i, ok
	case "PRIORITY":
		e.level, e.hasLevel, i, ok = jsonSmall(b, i, 7)
		return i, ok
	case "SYSLOG_FACILITY":
		e.facility, e.hasFac, i, ok = jsonSmall(b, i, 23)
		return i, ok
	case "_TRANSPORT", "SYSLOG_IDENTIFIER":
		v, end, ok := jsonString(b, i)
		if !ok {
			return skipJSON(b, i)
		}
		which := uint8(2)
		if string(v) == "kernel" {
			which = 1
		}
		if key[0] == '_' {
			e.transport, e.journal = which, true
		} else {
			e.ident = which
		}
		return end, true
	case "_BOOT_ID":
		v, end, ok := jsonString(b, i)
		if !ok {
			return skipJSON(b, i)
		}
		e.bootLen = copy(e.boot[:], v)
		e.journal = true
		return end, true
	case "__CURSOR", "__MONOTONIC_TIMESTAMP":
		e.journal = true
	}
	return skipJSON(b, i)
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
	if e.transport == 2 || (e.transport == 0 && e.ident != 1) {
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

// jsonNumberString reads a string of decimal digits ("1765003457652054"),
// as the journal writes its numbers, or a bare number.
func jsonNumberString(b []byte, i int) (v int64, has bool, end int, ok bool) {
	if b[i] != '"' {
		v, n := parseUint(b[i:])
		if n == 0 {
			end, ok = skipJSON(b, i)
			return 0, false, end, ok
		}
		return v, true, i + n, true
	}
	raw, end, ok := jsonString(b, i)
	if !ok {
		return 0, false, 0, false
	}
	v, n := parseUint(raw)
	return v, n > 0 && n == len(raw), end, true
}

// jsonSmall reads a number as jsonNumberString does; has is false above
// most.
func jsonSmall(b []byte, i int, most int64) (v int, has bool, end int, ok bool) {
	n, has, end, ok := jsonNumberString(b, i)
	if !has || n > most {
		return 0, false, end, ok
	}
	return int(n), true, end, ok
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
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
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
