package kernlog

import (
	"strings"
	"testing"
)

func TestEscapeLine(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"plain line", "plain line"},
		{"a\nb", `a\x0ab`},
		{"tab\there\r\x1b[31mred\x7f", `tab\x09here\x0d\x1b[31mred\x7f`},
		{"ünïcode stays", "ünïcode stays"},
		{"", ""},
	} {
		if got := EscapeLine(tc.in); got != tc.want {
			t.Errorf("EscapeLine(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
	in := []string{"ok", "two\nlines"}
	out := EscapeLines(in)
	if in[1] != "two\nlines" || out[1] != `two\x0alines` || out[0] != "ok" {
		t.Fatalf("EscapeLines changed its input or missed a line: %q %q", in, out)
	}
	if got := EscapeLines([]string{"a", "b"}); strings.Join(got, "") != "ab" {
		t.Fatal(got)
	}
}

func FuzzEscapeLine(f *testing.F) {
	f.Add("a\nb\x00c")
	f.Fuzz(func(t *testing.T, s string) {
		e := EscapeLine(s)
		for i := 0; i < len(e); i++ {
			if isControl(e[i]) {
				t.Fatalf("%q escaped to %q keeps a control byte", s, e)
			}
		}
	})
}
