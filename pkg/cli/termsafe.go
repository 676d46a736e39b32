package cli

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf8"
)

// termSafe returns s as a terminal shows text only: the C0 control bytes
// but tab and newline, DEL and the C1 controls (U+0080 to U+009F) are
// written as \xNN, as the kernel escapes its records in /dev/kmsg. A name
// in a kernel log (a task's comm, which any process may set, or a
// cgroup's) then cannot move the cursor, recolour or retitle the terminal
// of whoever reads `oomctl analyze`'s table; the aggregator refuses C0
// controls in what agents send, not C1. JSON output needs none of this:
// its encoder escapes them.
func termSafe(s string) string {
	clean := true
	for _, r := range s {
		if unsafeRune(r) {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		if unsafeRune(r) && !(r == utf8.RuneError && n == 1) {
			for _, c := range []byte(s[i : i+n]) {
				fmt.Fprintf(&b, `\x%02x`, c)
			}
		} else {
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

func unsafeRune(r rune) bool {
	return r < 0x20 && r != '\n' && r != '\t' || r >= 0x7f && r <= 0x9f
}

// termLine writes a line through termSafe.
func termLine(w io.Writer, format string, args ...any) {
	fmt.Fprint(w, termSafe(fmt.Sprintf(format, args...)))
}

// termWriter applies termSafe to each write: for prose that fmt writes a
// whole line or phrase at a time (a rune is never split across writes).
type termWriter struct{ w io.Writer }

func (t termWriter) Write(p []byte) (int, error) {
	if _, err := io.WriteString(t.w, termSafe(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
