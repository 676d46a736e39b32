package devkmsg

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"strconv"
	"strings"
	"testing"
)

// seedRecords reads the raw records in testdata/*.records (one Go-quoted
// record per line, captured from /dev/kmsg).
func seedRecords(t testing.TB) [][]byte {
	t.Helper()
	f, err := os.Open("testdata/6.18-firecracker-boot.records")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var recs [][]byte
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		s, err := strconv.Unquote(sc.Text())
		if err != nil {
			t.Fatalf("testdata line %q: %v", sc.Text(), err)
		}
		recs = append(recs, []byte(s))
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// TestParseHeaderError checks the malformed prefixes kernlog.ParseHeader
// rejects come back as errMalformed (the cases themselves are kmsg's).
func TestParseHeaderError(t *testing.T) {
	for _, in := range []string{"", ";", "3,4;too few", "6,1,2,-", "6,99999999999999999999,2,-;overflow"} {
		if _, err := parseHeader([]byte(in)); !errors.Is(err, errMalformed) {
			t.Errorf("parseHeader(%q) error = %v, want errMalformed", in, err)
		}
	}
	h, err := parseHeader([]byte("6,2565,102258085667,-;docker0: port 2 entered blocking state\n"))
	if err != nil || h.Seq != 2565 || h.Usec != 102258085667 {
		t.Errorf("parseHeader = %+v, %v", h, err)
	}
}

// FuzzBody checks body's invariants on raw records: no newline, a
// prefix of the message.
func FuzzBody(f *testing.F) {
	for _, r := range seedRecords(f) {
		f.Add(string(r[bytes.IndexByte(r, ';')+1:]))
	}
	f.Add("plain")
	f.Add("\n SUBSYSTEM=x\n")
	f.Fuzz(func(t *testing.T, msg string) {
		bd := body(msg)
		if bytes.IndexByte(bd, '\n') >= 0 || !strings.HasPrefix(msg, string(bd)) {
			t.Fatalf("body(%q) = %q", msg, bd)
		}
		if len(bd) < len(msg) && msg[len(bd)] != '\n' {
			t.Fatalf("body(%q) = %q: cut before a newline", msg, bd)
		}
	})
}
