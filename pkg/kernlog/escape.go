package kernlog

import "strings"

// EscapeLine returns line with every control byte (below 0x20, and DEL)
// written as \xNN, as the kernel itself writes them in /dev/kmsg: a line
// printed for a person (a terminal, a text page) stays one line, whatever
// an agent or a corrupted log put in it. Lines without control bytes are
// returned as they are, without allocating.
func EscapeLine(line string) string {
	i := 0
	for i < len(line) && !isControl(line[i]) {
		i++
	}
	if i == len(line) {
		return line
	}
	var b strings.Builder
	b.Grow(len(line) + 8)
	b.WriteString(line[:i])
	const hex = "0123456789abcdef"
	for ; i < len(line); i++ {
		c := line[i]
		if !isControl(c) {
			b.WriteByte(c)
			continue
		}
		b.WriteString(`\x`)
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&0xf])
	}
	return b.String()
}

// EscapeLines applies EscapeLine to each line, copying the slice only when
// a line changes.
func EscapeLines(lines []string) []string {
	out := lines
	for i, l := range lines {
		e := EscapeLine(l)
		if e == l {
			continue
		}
		if &out[0] == &lines[0] {
			out = append([]string(nil), lines...)
		}
		out[i] = e
	}
	return out
}

func isControl(c byte) bool { return c < 0x20 || c == 0x7f }
