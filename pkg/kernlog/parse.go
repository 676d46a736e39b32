package kernlog

import (
	"bytes"
	"math"
	"time"
	"unicode"
)

// ParseLine recognises the rendering of one line and fills rec from it. The
// record's Message aliases line. afterKmsg tells whether the previous line
// was a raw /dev/kmsg record, whose dictionary continuation lines (" KEY=value")
// carry no message. Timestamps without a year take year, and those without
// a zone take loc. ParseLine never allocates.
func ParseLine(line []byte, rec *Record, afterKmsg bool, year int, loc *time.Location) Format {
	*rec = Record{Seq: NoSeq, Priority: -1}
	if len(line) == 0 || (!isGraphicASCII(line[0]) && len(bytes.TrimSpace(line)) == 0) {
		return FormatSkipped
	}
	if line[0] == '-' {
		if sep, _ := journalSeparator(line); sep {
			return FormatSkipped
		}
	}
	if afterKmsg && line[0] == ' ' {
		// A dictionary line (" KEY=value"), unless a record of a raw
		// dump pasted indented.
		if _, ok := ParseHeader(bytes.TrimLeft(line, " \t")); !ok {
			return FormatSkipped
		}
	}
	if f, ok := parseKmsg(line, rec); ok {
		return f
	}
	if line[0] == ' ' || line[0] == '\t' {
		// A log pasted indented as a whole ("  [ 12.3] msg", a mail's or a
		// document's quoting): the rendering after the indent, when it has
		// a timestamp. A bare message keeps its leading spaces (the kernel
		// indents Mem-Info and call trace lines).
		if t := bytes.TrimLeft(line, " \t"); len(t) > 0 {
			// Skipped: another program's syslog line.
			if f := ParseLine(t, rec, false, year, loc); f != FormatBare {
				return f
			}
			*rec = Record{Seq: NoSeq, Priority: -1}
		}
	}
	if line[0] == '>' || line[0] == '|' {
		// A log quoted in a mail ("> ", "> > ", "| "): the line after the
		// quote marks.
		if t := bytes.TrimLeft(line, "> |\t"); len(t) > 0 {
			return ParseLine(t, rec, false, year, loc)
		}
	}
	if line[0] == '`' {
		// A line pasted as inline code ("`Dec 15 16:21:04 vps kernel:
		// msg`"): what lies between the backticks. A fence ("```", "```
		// text") is nothing.
		t := bytes.Trim(line, "`")
		if w := bytes.TrimSpace(t); len(w) == 0 || bytes.HasPrefix(line, []byte("```")) && bytes.IndexByte(w, ' ') < 0 {
			return FormatSkipped
		}
		return ParseLine(t, rec, false, year, loc)
	}
	format := FormatBare
	rest := line
	// busybox dmesg -r and journal exports: <prio> before the rest.
	if p, n := parsePrioTag(rest); n > 0 {
		rec.Priority = p
		rest = rest[n:]
		format = FormatDmesg
	}
	// dmesg --decode: "kern  :warn  : ".
	if p, n := parseDecode(rest); n > 0 {
		rec.Priority = p
		rest = rest[n:]
		format = FormatDmesg
	}
	switch {
	case len(rest) > 0 && rest[0] == '[':
		if mono, n := parseMonoStamp(rest); n > 0 {
			rec.Mono, rec.HasMono = mono, true
			rest = rest[n:]
			// journalctl -o short-monotonic: "[ 1.2] host kernel: msg".
			if msg, kernel, ok := splitSyslogTag(rest); ok {
				if !kernel {
					return skip(rec)
				}
				rec.Message = msg
				return FormatSyslog
			}
			rec.Message = rest
			return FormatDmesg
		}
		if wall, n := parseCtimeStamp(rest, loc); n > 0 {
			rec.Wall = wall
			rest = rest[n:]
			rec.Message = rest[skipCaller(rest):]
			return FormatDmesg
		}
		// journalctl -o short-delta: "[ 1.2 < 0.000012>] host kernel: msg".
		if mono, n := parseDeltaStamp(rest); n > 0 {
			if msg, kernel, ok := splitSyslogTag(rest[n:]); ok {
				if !kernel {
					return skip(rec)
				}
				rec.Mono, rec.HasMono = mono, true
				rec.Message = msg
				return FormatSyslog
			}
		}
	case len(rest) > 0 && isDigit(rest[0]):
		if wall, comma, n := parseISOStamp(rest, loc); n > 0 {
			rec.Wall = wall
			after := rest[n:]
			if !comma {
				if f, ok := syslogAfter(rec, after, wall); ok {
					return f
				}
			}
			rec.Message = after
			return FormatDmesg
		}
		// journalctl -o short-unix: "1765003457.652054 host kernel: msg".
		if wall, n := parseUnixStamp(rest); n > 0 {
			if f, ok := syslogAfter(rec, rest[n:], wall); ok {
				return f
			}
		}
		// A time of day alone, before a syslog line's host or a message:
		// "12:00:52 msg" (its date is not known: no time is kept).
		if _, _, _, _, n, ok := parseClock(rest); ok && (n == 8 || n >= 12) && n < len(rest)-1 && rest[n] == ' ' && rest[n+1] != ' ' {
			// (A fraction has 3 digits or more: "00:02:00.0" is a PCI
			// address.)
			if f, ok := syslogAfter(rec, rest[n+1:], time.Time{}); ok {
				return f
			}
			rec.Message = rest[n+1:]
			return FormatDmesg
		}
	case len(rest) > 0 && rest[0] >= 'A' && rest[0] <= 'Z':
		// journalctl -o short-full: "Sat 2025-12-06 06:44:17 UTC host
		// kernel: msg".
		if wall, n := parseFullStamp(rest, loc); n > 0 {
			if f, ok := syslogAfter(rec, rest[n:], wall); ok {
				return f
			}
		}
		if wall, n := parseBSDStamp(rest, year, loc); n > 0 {
			if f, ok := syslogAfter(rec, rest[n:], wall); ok {
				return f
			}
			// A syslog template without the host name: "Sep  8 06:22:08
			// kernel: msg" (an empty host leaves two spaces).
			if msg, ok := bytes.CutPrefix(bytes.TrimLeft(rest[n:], " "), []byte("kernel: ")); ok {
				rec.Wall = wall
				return finishSyslog(rec, msg)
			}
		}
	}
	if format == FormatBare {
		if f, ok := parseLoose(rest, rec, year, loc); ok {
			return f
		}
	}
	rec.Message = rest
	return format
}

// syslogAfter reads what follows a syslog or journal stamp dated wall:
// "host kernel: msg" is the kernel's record, another program's tag a line
// to skip. ok is false, and rec untouched, when no "host tag:" follows.
func syslogAfter(rec *Record, after []byte, wall time.Time) (Format, bool) {
	msg, kernel, ok := splitSyslogTag(after)
	switch {
	case !ok:
		return 0, false
	case !kernel:
		return skip(rec), true
	}
	rec.Wall = wall
	return finishSyslog(rec, msg), true
}

// journalSeparator tells whether line is one of the lines journalctl
// prints between records, "-- Boot 5b8e0c1e9d2a4c1f8e0a1b2c3d4e5f60 --",
// "-- Reboot --" (before systemd 240), "-- Logs begin at ... --", "--
// No entries --", and whether it is a boot's.
func journalSeparator(line []byte) (sep, boot bool) {
	if len(line) < 8 || line[0] != '-' || !bytes.HasPrefix(line, []byte("-- ")) ||
		!bytes.HasSuffix(line, []byte(" --")) {
		return false, false
	}
	return true, bytes.HasPrefix(line, []byte("-- Boot ")) || string(line) == "-- Reboot --"
}

// journalBegins reads when journalctl's banner says its entries begin:
// "-- Logs begin at Sun 2021-05-30 20:43:48 CST, end at Mon 2021-05-31
// 10:01:02 CST. --" (systemd before 246), "-- Journal begins at ...,
// ends at ... --" (246 to 249). The zone's abbreviation is not read (CST
// names three zones): the date is taken in loc.
func journalBegins(line []byte, loc *time.Location) (time.Time, bool) {
	var rest []byte
	for _, p := range [...]string{"-- Logs begin at ", "-- Journal begins at "} {
		if r, ok := bytes.CutPrefix(line, []byte(p)); ok {
			rest = r
			break
		}
	}
	// A weekday, then "2021-05-30 20:43:48".
	_, rest, ok := bytes.Cut(rest, []byte(" "))
	const layout = "2006-01-02 15:04:05"
	if !ok || len(rest) < len(layout) {
		return time.Time{}, false
	}
	t, err := time.ParseInLocation(layout, string(rest[:len(layout)]), loc)
	return t, err == nil
}

// IsBootStart tells whether a record's message is the first a kernel
// prints as it boots ("Linux version 6.1.0-41-amd64 (...)").
func IsBootStart(msg []byte) bool { return bytes.HasPrefix(msg, []byte("Linux version ")) }

// parseLoose recognises, in a line no rendering above matched, the prefixes
// of renderings whose timestamps it cannot read: talosctl dmesg's
// "[node: ]kern: info: [2025-06-04T04:51:57.5Z]: msg" (its wall time is
// kept), and a syslog or dmesg -T line whose date is in another language or
// behind other text ("дек 06 14:58:14 host kernel: msg", "- Jan 14 18:01:55
// host kernel: msg", "[四 4月 17 22:43:41 2025] msg"): the clock (hh:mm:ss)
// before " kernel: " or before the "] " that ends the stamp tells them from
// a message body, and their time is not kept. ok is false for anything else.
func parseLoose(b []byte, rec *Record, year int, loc *time.Location) (Format, bool) {
	if f, ok := parseTalos(b, rec, loc); ok {
		return f, true
	}
	// A syslog template of the tag alone: "kernel: [ 1.5] msg".
	if msg, ok := bytes.CutPrefix(b, []byte("kernel: ")); ok {
		return finishSyslog(rec, msg), true
	}
	if msg, ok := afterPipedKernel(b); ok {
		return finishSyslog(rec, msg), true
	}
	if f, ok := behindWords(b, rec); ok {
		return f, true
	}
	c := clockEnd(b[:min(len(b), 48)])
	if c < 0 {
		return 0, false
	}
	rest := b[c:]
	wall := localDate(b, c, year, loc)
	// dmesg -T: "...hh:mm:ss yyyy] msg".
	if y := skipSpaces(rest, 0); y < len(rest) {
		if _, n := parseUint(rest[y:]); n == 4 && y+n+1 < len(rest) && rest[y+n] == ']' && rest[y+n+1] == ' ' {
			msg := rest[y+n+2:]
			rec.Message = msg[skipCaller(msg):]
			rec.Wall = wall
			return FormatDmesg, true
		}
	}
	// syslog: "...hh:mm:ss[.frac] [yyyy] [host] [facility.level] tag: msg"
	// (OpenWrt's logread has the year and facility.level); only the
	// kernel's tag.
	if len(rest) > 0 && rest[0] == '.' {
		_, n := parseUint(rest[1:])
		rest = rest[1+n:]
	}
	for k := range 4 {
		if len(rest) == 0 || rest[0] != ' ' {
			return 0, false
		}
		rest = rest[skipSpaces(rest, 0):]
		end := bytes.IndexByte(rest, ' ')
		if end < 0 {
			return 0, false
		}
		word := rest[:end]
		if word[len(word)-1] == ':' {
			switch {
			case string(word) == "kernel:":
				rec.Wall = wall
				return finishSyslog(rec, rest[end+1:]), true
			case k > 0 || bytes.IndexByte(word, '[') > 0:
				// Another program's tag, after the host name or with
				// its PID.
				return skip(rec), true
			}
			return 0, false
		}
		rest = rest[end:]
	}
	return 0, false
}

// behindWords reads a dmesg line behind a syslog template's or a log
// shipper's prefix of one to three words without brackets or colons
// ("1720128512 node-7 [42201.484624] msg": a Unix time and a host). The
// stamp must follow the words at once and a message follow it.
func behindWords(b []byte, rec *Record) (Format, bool) {
	i := 0
	for range 3 {
		j := i
		for j < len(b) && b[j] != ' ' && b[j] != '\t' {
			if c := b[j]; c == '[' || c == ']' || c == ':' || c == '(' || c == ')' || !isGraphicASCII(c) {
				return 0, false
			}
			j++
		}
		if j == i || j-i > 64 || j == len(b) {
			return 0, false
		}
		i = j
		for i < len(b) && (b[i] == ' ' || b[i] == '\t') {
			i++
		}
		if i < len(b) && b[i] == '[' {
			mono, n := parseMonoStamp(b[i:])
			if n == 0 || i+n >= len(b) {
				return 0, false
			}
			rec.Mono, rec.HasMono = mono, true
			rec.Message = b[i+n:]
			return FormatDmesg, true
		}
	}
	return 0, false
}

// afterPipedKernel finds, in a line of fields separated by '|' (a log
// shipper's table: "Jun 25, 2021 @ 12:42:13.029 | kernel | msg", a syslog
// template "warning|kernel[-]|msg"), the kernel's tag among the first
// fields, and returns the message after it.
func afterPipedKernel(b []byte) ([]byte, bool) {
	rest := b
	for range 6 {
		bar := bytes.IndexByte(rest[:min(len(rest), 96)], '|')
		if bar < 0 {
			return nil, false
		}
		field := bytes.TrimSpace(rest[:bar])
		rest = rest[bar+1:]
		if string(field) == "kernel" || (bytes.HasPrefix(field, []byte("kernel[")) && field[len(field)-1] == ']') {
			// The field before the message, unless it was the last.
			if bytes.IndexByte(rest, '|') == 0 {
				return nil, false
			}
			msg := bytes.TrimLeft(rest, " ")
			return msg, len(msg) > 0
		}
	}
	return nil, false
}

// localMonths are the months' abbreviations in the locales journalctl,
// syslog daemons and dmesg -T print them in besides English (glibc's %b):
// Russian, Ukrainian, German, French, Spanish, Italian, Portuguese, Dutch,
// Polish, Czech, Turkish, Swedish. Where two languages share one, it is the
// same month.
var localMonths = [...][]string{
	{"янв", "січ", "jan", "janv", "ene", "gen", "sty", "led", "oca"},
	{"фев", "лют", "feb", "févr", "fev", "lut", "úno", "şub"},
	{"мар", "бер", "mär", "mars", "mar", "mrt", "bře"},
	{"апр", "кві", "apr", "avr", "abr", "kwi", "dub", "nis"},
	{"мая", "май", "тра", "mai", "may", "mag", "mei", "maj", "kvě"},
	{"июн", "чер", "jun", "juin", "giu", "cze", "čvn", "haz"},
	{"июл", "лип", "jul", "juil", "lug", "lip", "čvc", "tem"},
	{"авг", "сер", "aug", "août", "ago", "sie", "srp", "ağu"},
	{"сен", "вер", "sep", "sept", "set", "wrz", "zář", "eyl"},
	{"окт", "жов", "okt", "oct", "ott", "out", "paź", "říj", "eki"},
	{"ноя", "лис", "nov", "lis", "kas"},
	{"дек", "гру", "dez", "déc", "dic", "dec", "gru", "pro", "ara"},
}

// localMonth reads a month's abbreviation in any of localMonths' locales
// (any case, a trailing '.' ignored) or its full name, or "4月" and "4월".
func localMonth(w []byte) (time.Month, bool) {
	w = bytes.TrimSuffix(w, []byte("."))
	for _, suffix := range [][]byte{[]byte("月"), []byte("월")} {
		if d, ok := bytes.CutSuffix(w, suffix); ok {
			if n, used := parseUint(d); used == len(d) && used > 0 && n >= 1 && n <= 12 {
				return time.Month(n), true
			}
			return 0, false
		}
	}
	for m, names := range localMonths {
		for _, name := range names {
			if bytes.EqualFold(w, []byte(name)) {
				return time.Month(m + 1), true
			}
		}
	}
	// A month's full name (glibc's %B, and what dmesg -T prints in some
	// locales: "avril", "septembre", "Oktober", "апреля") begins with its
	// abbreviation.
	if len(w) > 12 || bytes.ContainsFunc(w, func(r rune) bool { return !unicode.IsLetter(r) }) {
		return 0, false
	}
	for m, names := range localMonths {
		for _, name := range names {
			if len(w) > len(name) && bytes.EqualFold(w[:len(name)], []byte(name)) {
				return time.Month(m + 1), true
			}
		}
	}
	return 0, false
}

// localDate reads the date of a stamp whose clock ends at c in b, its
// month in another language ("дек 06 14:58:14", "[四 4月 17 22:43:41
// 2025]", "[dim. 19 avril 18:03:30 2026]"): the month's word and the day
// before the clock, in either order, the year after it when there is one
// (dmesg -T, OpenWrt), else year. The zero time when the month's word is
// not one localMonth knows.
func localDate(b []byte, c, year int, loc *time.Location) time.Time {
	start := c - 8
	h, m, sec, nsec, n, ok := parseClock(b[start:])
	if !ok || start < 4 || b[start-1] != ' ' {
		return time.Time{}
	}
	mon, day, ok := monthDay(b[:start-1])
	if !ok {
		mon, day, ok = dayMonth(b[:start-1])
	}
	if !ok {
		return time.Time{}
	}
	after := b[start+n:]
	if y, used := parseUint(after[skipSpaces(after, 0):]); used == 4 && len(after) > 0 && after[0] == ' ' {
		year = int(y)
	}
	return time.Date(year, mon, day, h, m, sec, nsec, loc)
}

// monthDay reads the month's word and the day that end b ("дек 06",
// "4月 17", two spaces before a day of one digit: "9月  3").
func monthDay(b []byte) (time.Month, int, bool) {
	d := len(b)
	for d > 0 && isDigit(b[d-1]) {
		d--
	}
	day, used := parseUint(b[d:])
	if used == 0 || day < 1 || day > 31 || d < 2 || b[d-1] != ' ' {
		return 0, 0, false
	}
	e := d - 1
	for e > 0 && b[e-1] == ' ' {
		e--
	}
	mon, _, ok := monthWordEnding(b[:e])
	return mon, int(day), ok
}

// dayMonth reads the day and the month's word that end b ("dim. 19 avril",
// "So 4. Oktober").
func dayMonth(b []byte) (time.Month, int, bool) {
	mon, e, ok := monthWordEnding(b)
	if !ok {
		return 0, 0, false
	}
	for e > 0 && b[e-1] == ' ' {
		e--
	}
	if e > 0 && b[e-1] == '.' {
		e-- // German: "4. Oktober"
	}
	d := e
	for d > 0 && isDigit(b[d-1]) {
		d--
	}
	day, used := parseUint(b[d:e])
	if used == 0 || used > 2 || day < 1 || day > 31 || d > 0 && b[d-1] != ' ' && b[d-1] != '[' {
		return 0, 0, false
	}
	return mon, int(day), true
}

// monthWordEnding reads the month's word that ends b, after a space or a
// '[', and returns where the word starts.
func monthWordEnding(b []byte) (time.Month, int, bool) {
	w := len(b)
	for w > 0 && b[w-1] != ' ' && b[w-1] != '[' {
		w--
	}
	if w == len(b) {
		return 0, w, false
	}
	mon, ok := localMonth(b[w:])
	return mon, w, ok
}

// clockEnd returns where the first hh:mm:ss time in b that follows a day
// of the month ("17 22:43:41") ends, -1 when there is none.
func clockEnd(b []byte) int {
	for i := 2; i+8 <= len(b); i++ {
		if b[i-1] == ' ' && b[i+2] == ':' && b[i+5] == ':' && isDigit(b[i]) && isDigit(b[i+1]) &&
			isDigit(b[i+3]) && isDigit(b[i+4]) && isDigit(b[i+6]) && isDigit(b[i+7]) {
			if isDigit(b[i-2]) && (i == 2 || b[i-3] == ' ' || isDigit(b[i-3]) && (i == 3 || b[i-4] == ' ')) {
				return i + 8
			}
			// A day before the month's word: "dim. 19 avril 18:03:30".
			if _, _, ok := dayMonth(b[:i-1]); ok {
				return i + 8
			}
		}
	}
	return -1
}

// talosLevels are the level names talosctl dmesg prints: dmesg --decode's
// (levels), with "warning" for "warn".
var talosLevels = []string{"emerg", "alert", "crit", "err", "warning", "warn", "notice", "info", "debug"}

// parseTalos reads talosctl dmesg's "[node: ]facility: level: [RFC 3339]:
// msg". A record of a facility other than kern was written by userspace:
// skipped.
func parseTalos(b []byte, rec *Record, loc *time.Location) (Format, bool) {
	i := bytes.Index(b[:min(len(b), 80)], []byte(": ["))
	if i < 0 {
		return 0, false
	}
	stamp := b[i+3:]
	e := bytes.IndexByte(stamp[:min(len(stamp), 48)], ']')
	if e < 0 || e+1 >= len(stamp) || stamp[e+1] != ':' {
		return 0, false
	}
	wall, _, n := parseISOStamp(stamp[:e], loc)
	if n != e {
		return 0, false
	}
	// Before the stamp: "[node: ]facility:  level".
	pre := bytes.TrimRight(b[:i], " ")
	sp := bytes.LastIndexByte(pre, ' ')
	level := pre[sp+1:]
	if _, n := matchWord(level, talosLevels); n != len(level) || sp < 0 {
		return 0, false
	}
	fac := bytes.TrimRight(pre[:sp], " ")
	if len(fac) == 0 || fac[len(fac)-1] != ':' {
		return 0, false
	}
	fac = fac[:len(fac)-1]
	if j := bytes.LastIndexByte(fac, ' '); j >= 0 {
		if j == 0 || fac[j-1] != ':' {
			return 0, false // not "node: facility"
		}
		fac = fac[j+1:]
	}
	if string(fac) != "kern" {
		return skip(rec), true
	}
	rec.Wall = wall
	msg := stamp[e+2:]
	if len(msg) > 0 && msg[0] == ' ' {
		msg = msg[1:]
	}
	rec.Message = msg
	return FormatSyslog, true
}

// skip clears rec for a line that carries no kernel record.
func skip(rec *Record) Format {
	*rec = Record{Seq: NoSeq, Priority: -1}
	return FormatSkipped
}

// finishSyslog takes the dmesg timestamp that syslog daemons often keep
// inside the message ("kernel: [ 123.456789] msg").
func finishSyslog(rec *Record, msg []byte) Format {
	if len(msg) > 0 && msg[0] == '[' {
		if mono, n := parseMonoStamp(msg); n > 0 {
			rec.Mono, rec.HasMono = mono, true
			msg = msg[n:]
		}
	}
	rec.Message = msg
	return FormatSyslog
}

// Header is the prefix of a raw /dev/kmsg record,
// "PRIO,SEQ,USEC,FLAGS[,more];" (Documentation/ABI/testing/dev-kmsg).
type Header struct {
	// Priority is the syslog priority, facility<<3|level.
	Priority int
	// Seq is the kernel's sequence number.
	Seq int64
	// Usec is the kernel's timestamp in microseconds since boot.
	Usec int64
	// Len is the length of the prefix, its ';' included: the message
	// starts at Len.
	Len int
}

// ParseHeader reads the prefix of a raw /dev/kmsg record. At least the
// first three fields and the ';' are required, as kmsgparser requires;
// the flags and any later fields are not interpreted. ok is false when b
// does not start with such a prefix: a field empty, not decimal, beyond
// int64 (a priority beyond int32), or no ';'. It does not allocate.
func ParseHeader(b []byte) (h Header, ok bool) {
	// The three numbers are read in place: they end at a non-digit, so
	// they never run past the ';' that ends the prefix.
	var vals [3]int64
	i := 0
	for f := range vals {
		v, n := parseUint(b[i:])
		if n == 0 {
			return Header{}, false
		}
		vals[f] = v
		i += n
		if i >= len(b) || (b[i] != ',' && (f < 2 || b[i] != ';')) {
			return Header{}, false
		}
		if f < 2 {
			i++
		}
	}
	if vals[0] > math.MaxInt32 {
		return Header{}, false
	}
	// FLAGS follow, usually one byte ("-", "c"), then maybe more fields:
	// the ';' is a few bytes away.
	semi := i
	for semi < len(b) && b[semi] != ';' {
		semi++
	}
	if semi == len(b) {
		return Header{}, false
	}
	return Header{Priority: int(vals[0]), Seq: vals[1], Usec: vals[2], Len: semi + 1}, true
}

// maxUsec is the largest timestamp a Record's Mono holds (292 years).
const maxUsec = math.MaxInt64 / int64(time.Microsecond)

// parseKmsg reads "PRIO,SEQ,USEC,FLAGS[,more];message".
func parseKmsg(line []byte, rec *Record) (Format, bool) {
	h, ok := ParseHeader(line)
	if !ok || h.Usec > maxUsec {
		return 0, false
	}
	rec.Priority = h.Priority
	rec.Seq = h.Seq
	rec.Mono = time.Duration(h.Usec) * time.Microsecond
	rec.HasMono = true
	rec.Message = line[h.Len:]
	return FormatKmsg, true
}

// parsePrioTag reads "<N>" and returns N and the bytes used.
func parsePrioTag(b []byte) (int, int) {
	if len(b) < 3 || b[0] != '<' {
		return 0, 0
	}
	v, n := parseUint(b[1:])
	if n == 0 || n > 4 || len(b) <= 1+n || b[1+n] != '>' {
		return 0, 0
	}
	return int(v), n + 2
}

var facilities = [...]string{"kern", "user", "mail", "daemon", "auth", "syslog", "lpr", "news",
	"uucp", "cron", "authpriv", "ftp", "res0", "res1", "res2", "res3",
	"local0", "local1", "local2", "local3", "local4", "local5", "local6", "local7"}

var levels = [...]string{"emerg", "alert", "crit", "err", "warn", "notice", "info", "debug"}

// parseDecode reads dmesg --decode's "kern  :warn  : " prefix.
func parseDecode(b []byte) (int, int) {
	fac, n1 := matchWord(b, facilities[:])
	if n1 == 0 {
		return 0, 0
	}
	i := skipSpaces(b, n1)
	if i >= len(b) || b[i] != ':' {
		return 0, 0
	}
	lvl, n2 := matchWord(b[i+1:], levels[:])
	if n2 == 0 {
		return 0, 0
	}
	j := skipSpaces(b, i+1+n2)
	if j >= len(b) || b[j] != ':' {
		return 0, 0
	}
	j++
	if j < len(b) && b[j] == ' ' {
		j++
	}
	return fac<<3 | lvl, j
}

func matchWord(b []byte, words []string) (int, int) {
	for i, w := range words {
		if len(b) >= len(w) && string(b[:len(w)]) == w {
			if len(b) == len(w) || b[len(w)] == ' ' || b[len(w)] == ':' {
				return i, len(w)
			}
		}
	}
	return 0, 0
}

// parseMonoStamp reads "[  123.456789]" and one following space, and the
// printk caller ID a kernel built with CONFIG_PRINTK_CALLER prints after
// it (see skipCaller).
func parseMonoStamp(b []byte) (time.Duration, int) {
	mono, i := parseSecondsFrac(b, skipSpaces(b, 1))
	if i == 0 || i >= len(b) || b[i] != ']' {
		return 0, 0
	}
	i++
	if i < len(b) && b[i] == ' ' {
		i++
	}
	i += skipCaller(b[i:])
	return mono, i
}

// skipCaller returns the length of the printk caller ID at the start of b,
// and of one following space: "[ T9185]" (a task) or "[    C1]" (a CPU
// in interrupt context), right-aligned in six columns by the kernel's
// console and syslog output and by dmesg, 0 when there is none.
func skipCaller(b []byte) int {
	if len(b) < 4 || b[0] != '[' {
		return 0
	}
	i := skipSpaces(b, 1)
	if i >= len(b) || (b[i] != 'T' && b[i] != 'C') {
		return 0
	}
	i++
	_, n := parseUint(b[i:])
	if n == 0 || n > 10 {
		return 0
	}
	i += n
	if i >= len(b) || b[i] != ']' {
		return 0
	}
	i++
	if i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}

var months = [...]string{"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"}

func parseMonth(b []byte) (time.Month, bool) {
	if len(b) < 3 {
		return 0, false
	}
	for i, m := range months {
		if string(b[:3]) == m {
			return time.Month(i + 1), true
		}
	}
	return 0, false
}

// parseClock reads "hh:mm:ss" and an optional fraction ".ffffff".
func parseClock(b []byte) (h, m, s, nsec, n int, ok bool) {
	if len(b) < 8 || b[2] != ':' || b[5] != ':' {
		return 0, 0, 0, 0, 0, false
	}
	h, ok1 := twoDigits(b[0:])
	m, ok2 := twoDigits(b[3:])
	s, ok3 := twoDigits(b[6:])
	if !ok1 || !ok2 || !ok3 || h > 23 || m > 59 || s > 60 {
		return 0, 0, 0, 0, 0, false
	}
	n = 8
	if n < len(b) && (b[n] == '.' || b[n] == ',') {
		frac, fn := parseUint(b[n+1:])
		if fn > 0 && fn <= 9 {
			for k := fn; k < 9; k++ {
				frac *= 10
			}
			nsec = int(frac)
			n += 1 + fn
		}
	}
	return h, m, s, nsec, n, true
}

// monthDayClock is the "Mmm dd hh:mm:ss[.frac] " that syslog and dmesg -T
// stamps share.
type monthDayClock struct {
	mon           time.Month
	day           int
	h, m, s, nsec int
}

// parseMonthDayClock reads "Mmm dd hh:mm:ss[.frac]" and the space after
// it, returning the bytes used.
func parseMonthDayClock(b []byte) (monthDayClock, int) {
	var t monthDayClock
	mon, ok := parseMonth(b)
	if !ok || len(b) < 16 || b[3] != ' ' {
		return t, 0
	}
	i := 4
	if b[i] == ' ' {
		i++
	}
	day, n := parseUint(b[i:])
	if n == 0 || n > 2 {
		return t, 0
	}
	i += n
	if i >= len(b) || b[i] != ' ' {
		return t, 0
	}
	h, m, sec, nsec, cn, ok := parseClock(b[i+1:])
	if !ok {
		return t, 0
	}
	i += 1 + cn
	if i >= len(b) || b[i] != ' ' {
		return t, 0
	}
	return monthDayClock{mon: mon, day: int(day), h: h, m: m, s: sec, nsec: nsec}, i + 1
}

func (t monthDayClock) in(year int, loc *time.Location) time.Time {
	return time.Date(year, t.mon, t.day, t.h, t.m, t.s, t.nsec, loc)
}

// parseCtimeStamp reads dmesg -T's "[Fri Nov 27 05:12:01 2026] ".
func parseCtimeStamp(b []byte, loc *time.Location) (time.Time, int) {
	// [Www Mmm dd hh:mm:ss yyyy]
	if len(b) < 26 || b[4] != ' ' {
		return time.Time{}, 0
	}
	t, n := parseMonthDayClock(b[5:])
	if n == 0 {
		return time.Time{}, 0
	}
	i := 5 + n
	yr, yn := parseUint(b[i:])
	if yn != 4 {
		return time.Time{}, 0
	}
	i += yn
	if i >= len(b) || b[i] != ']' {
		return time.Time{}, 0
	}
	i++
	if i < len(b) && b[i] == ' ' {
		i++
	}
	return t.in(int(yr), loc), i
}

// parseDeltaStamp reads journalctl -o short-delta's "[  123.456789 <
// 0.000012>] ": the monotonic time and the time since the record before.
func parseDeltaStamp(b []byte) (time.Duration, int) {
	mono, n := parseSecondsFrac(b, skipSpaces(b, 1))
	if n == 0 {
		return 0, 0
	}
	i := skipSpaces(b, n)
	if i == n || i >= len(b) || b[i] != '<' {
		return 0, 0
	}
	_, m := parseSecondsFrac(b, skipSpaces(b, i+1))
	if m == 0 || m+2 >= len(b) || b[m] != '>' || b[m+1] != ']' || b[m+2] != ' ' {
		return 0, 0
	}
	return mono, m + 3
}

// parseSecondsFrac reads "123.456789" at b[i:] and returns it and where
// it ends.
func parseSecondsFrac(b []byte, i int) (time.Duration, int) {
	sec, n := parseUint(b[i:])
	if n == 0 || n > 12 || sec > math.MaxInt64/int64(time.Second)-1 {
		return 0, 0
	}
	i += n
	if i >= len(b) || b[i] != '.' {
		return 0, 0
	}
	i++
	frac, fn := parseUint(b[i:])
	if fn == 0 || fn > 9 {
		return 0, 0
	}
	for k := fn; k < 9; k++ {
		frac *= 10
	}
	return time.Duration(sec)*time.Second + time.Duration(frac), i + fn
}

// parseUnixStamp reads journalctl -o short-unix's "1765003457.652054 ":
// seconds since the epoch (9 to 11 digits, 2001 to 5138) and microseconds.
func parseUnixStamp(b []byte) (time.Time, int) {
	sec, n := parseUint(b)
	if n < 9 || n > 11 || n >= len(b) || b[n] != '.' {
		return time.Time{}, 0
	}
	usec, un := parseUint(b[n+1:])
	i := n + 1 + un
	if un != 6 || i >= len(b) || b[i] != ' ' {
		return time.Time{}, 0
	}
	return time.Unix(sec, usec*int64(time.Microsecond/time.Nanosecond)), i + 1
}

var weekdays = [...]string{"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"}

// parseFullStamp reads journalctl -o short-full's "Sat 2025-12-06
// 06:44:17 UTC ": the weekday, the date and time, and the zone's
// abbreviation. An abbreviation names no offset (CST is three zones):
// UTC and GMT are read as such, a numeric one ("+03", "-0430") as its
// offset, and any other as loc, where journalctl most likely ran.
func parseFullStamp(b []byte, loc *time.Location) (time.Time, int) {
	if len(b) < 4 || b[3] != ' ' {
		return time.Time{}, 0
	}
	if _, n := matchWord(b[:3], weekdays[:]); n != 3 {
		return time.Time{}, 0
	}
	rest := b[4:]
	if len(rest) < 20 || rest[10] != ' ' {
		return time.Time{}, 0
	}
	wall, _, n := parseISOStamp(rest, loc)
	if n == 0 || rest[n-1] != ' ' || wall.Location() != loc {
		// A zone of its own ("...17Z") is not short-full's.
		return time.Time{}, 0
	}
	zone := rest[n:]
	end := bytes.IndexByte(zone, ' ')
	if end <= 0 {
		return time.Time{}, 0
	}
	word := zone[:end]
	switch {
	case string(word) == "UTC" || string(word) == "GMT":
		wall = sameClock(wall, time.UTC)
	case word[0] == '+' || word[0] == '-':
		off, ok := parseOffset(word)
		if !ok {
			return time.Time{}, 0
		}
		wall = sameClock(wall, fixedZone(off))
	default:
		for _, c := range word {
			if (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
				return time.Time{}, 0
			}
		}
	}
	return wall, 4 + n + end + 1
}

// sameClock returns the time that reads as t's date and clock in loc.
func sameClock(t time.Time, loc *time.Location) time.Time {
	y, mo, d := t.Date()
	h, m, s := t.Clock()
	return time.Date(y, mo, d, h, m, s, t.Nanosecond(), loc)
}

// parseOffset reads a numeric zone, "+03", "-0430" or "+05:30", as seconds
// east of UTC.
func parseOffset(b []byte) (int, bool) {
	sign := 1
	if b[0] == '-' {
		sign = -1
	}
	h, ok := twoDigits(b[1:])
	if !ok {
		return 0, false
	}
	m := 0
	switch rest := b[3:]; {
	case len(rest) == 0:
	case len(rest) == 2 || (len(rest) == 3 && rest[0] == ':'):
		if m, ok = twoDigits(rest[len(rest)-2:]); !ok {
			return 0, false
		}
	default:
		return 0, false
	}
	if h > 23 || m > 59 {
		return 0, false
	}
	return sign * (h*3600 + m*60), true
}

// parseBSDStamp reads syslog's "Nov 27 05:12:01[.123456] ".
func parseBSDStamp(b []byte, year int, loc *time.Location) (time.Time, int) {
	t, n := parseMonthDayClock(b)
	if n == 0 {
		return time.Time{}, 0
	}
	return t.in(year, loc), n
}

// parseISOStamp reads "2026-09-02T09:08:50[.,]880492(Z|+00:00|+0000) ".
// comma reports util-linux dmesg's "," before the fraction, which tells its
// --time-format iso apart from RFC 3339 syslog prefixes.
func parseISOStamp(b []byte, loc *time.Location) (t time.Time, comma bool, n int) {
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != ' ') {
		return time.Time{}, false, 0
	}
	yr, yn := parseUint(b)
	mo, ok1 := twoDigits(b[5:])
	day, ok2 := twoDigits(b[8:])
	if yn != 4 || !ok1 || !ok2 || mo < 1 || mo > 12 {
		return time.Time{}, false, 0
	}
	h, m, s, nsec, cn, ok := parseClock(b[11:])
	if !ok {
		return time.Time{}, false, 0
	}
	comma = b[19] == ','
	i := 11 + cn
	zone := loc
	if i < len(b) {
		switch b[i] {
		case 'Z':
			zone = time.UTC
			i++
		case '+', '-':
			sign := 1
			if b[i] == '-' {
				sign = -1
			}
			zh, okh := twoDigits(b[i+1:])
			if !okh {
				// Also keeps b[j:] below in bounds ("+0" at the end).
				return time.Time{}, false, 0
			}
			j := i + 3
			if j < len(b) && b[j] == ':' {
				j++
			}
			zm, okm := twoDigits(b[j:])
			if !okm {
				return time.Time{}, false, 0
			}
			zone = fixedZone(sign * (zh*3600 + zm*60))
			i = j + 2
		}
	}
	if i < len(b) && b[i] != ' ' {
		return time.Time{}, false, 0
	}
	if i < len(b) {
		i++
	}
	return time.Date(int(yr), time.Month(mo), day, h, m, s, nsec, zone), comma, i
}

// zoneCache caches the zones of the offsets seen, so that a log does not
// allocate a zone per line.
var zoneCache [96]*time.Location

func fixedZone(offset int) *time.Location {
	if offset == 0 {
		return time.UTC
	}
	// Offsets are whole quarter hours in practice; cache those.
	if offset%900 == 0 && offset > -24*3600 && offset < 24*3600 {
		idx := offset/900 + 48
		if idx >= 0 && idx < len(zoneCache) {
			if z := zoneCache[idx]; z != nil {
				return z
			}
			z := time.FixedZone("", offset)
			zoneCache[idx] = z
			return z
		}
	}
	return time.FixedZone("", offset)
}

// splitSyslogTag splits "host tag: message". ok is false when the text
// does not have that shape; kernel tells whether the tag is the kernel's.
func splitSyslogTag(b []byte) (msg []byte, kernel, ok bool) {
	sp := bytes.IndexByte(b, ' ')
	if sp <= 0 {
		return nil, false, false
	}
	// A host name never ends in ':'; a message's first word often does
	// ("oom_reaper: reaped ...").
	if b[sp-1] == ':' {
		return nil, false, false
	}
	rest := b[sp+1:]
	end := bytes.IndexByte(rest, ' ')
	if end < 0 {
		end = len(rest)
	}
	tag := rest[:end]
	if len(tag) < 2 || tag[len(tag)-1] != ':' {
		return nil, false, false
	}
	name := tag[:len(tag)-1]
	if br := bytes.IndexByte(name, '['); br >= 0 {
		name = name[:br]
	}
	if len(name) == 0 {
		return nil, false, false
	}
	msg = rest[end:]
	if len(msg) > 0 && msg[0] == ' ' {
		msg = msg[1:]
	}
	return msg, string(name) == "kernel", true
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// isGraphicASCII tells whether c is a printable ASCII character other than
// a space: a line starting with one is not blank.
func isGraphicASCII(c byte) bool { return c > ' ' && c < 0x7f }

// parseUint reads the decimal digits at the start of b and returns their
// value and how many there were; none (0, 0) when the value does not fit in
// an int64.
func parseUint(b []byte) (int64, int) {
	var v int64
	i := 0
	for ; i < len(b) && isDigit(b[i]); i++ {
		d := int64(b[i] - '0')
		// The exact test only near the limit: one comparison per digit.
		if v > (math.MaxInt64-9)/10 && v > (math.MaxInt64-d)/10 {
			return 0, 0
		}
		v = v*10 + d
	}
	return v, i
}

func twoDigits(b []byte) (int, bool) {
	if len(b) < 2 || !isDigit(b[0]) || !isDigit(b[1]) {
		return 0, false
	}
	return int(b[0]-'0')*10 + int(b[1]-'0'), true
}

func skipSpaces(b []byte, i int) int {
	for i < len(b) && b[i] == ' ' {
		i++
	}
	return i
}
