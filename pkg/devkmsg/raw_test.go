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

func TestParseHeader(t *testing.T) {
	tests := []struct {
		in      string
		want    header
		wantErr bool
	}{
		{in: "6,2565,102258085667,-;docker0: port 2 entered blocking state\n", want: header{6, 2565, 102258085667}},
		{in: "5,0,0,-;Linux version 6.18.44\n", want: header{5, 0, 0}},
		{in: "6,191,182883,-;acpi: services disabled; not requesting\n SUBSYSTEM=acpi\n", want: header{6, 191, 182883}},
		{in: "12,7,9,c,caller=T1;continued", want: header{12, 7, 9}},
		{in: "3,4,5;no flags", want: header{3, 4, 5}},
		{in: "3,4;too few", wantErr: true},
		{in: ";", wantErr: true},
		{in: "", wantErr: true},
		{in: "6,1,2,-", wantErr: true},
		{in: "-6,1,2,-;negative", wantErr: true},
		{in: "6, 1,2,-;space", wantErr: true},
		{in: "6,,2,-;empty", wantErr: true},
		{in: "6,99999999999999999999,2,-;overflow", wantErr: true},
		{in: "99999999999,1,2,-;priority overflow", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := parseHeader([]byte(tt.in))
			if tt.wantErr {
				if !errors.Is(err, errMalformed) {
					t.Errorf("parseHeader(%q) = %+v, %v; want errMalformed", tt.in, got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("parseHeader(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestParseHeaderDoesNotAllocate(t *testing.T) {
	rec := []byte("6,191,182883,-;acpi PNP0A08:00: PCIe port services disabled\n SUBSYSTEM=acpi\n")
	if n := testing.AllocsPerRun(100, func() { _, _ = parseHeader(rec) }); n != 0 {
		t.Errorf("parseHeader allocates %v times per record", n)
	}
}

// FuzzParseHeader checks parseHeader against a strings/strconv reference and
// body's invariants.
func FuzzParseHeader(f *testing.F) {
	for _, r := range seedRecords(f) {
		f.Add(r)
	}
	f.Add([]byte("6,1,2;"))
	f.Add([]byte("6,1,9223372036854775807,-;max"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := parseHeader(b)
		want, ok := referenceHeader(string(b))
		if (err == nil) != ok {
			t.Fatalf("parseHeader(%q) err = %v, reference ok = %v", b, err, ok)
		}
		if ok && got != want {
			t.Fatalf("parseHeader(%q) = %+v, reference %+v", b, got, want)
		}
		if err != nil && !errors.Is(err, errMalformed) {
			t.Fatalf("parseHeader(%q) error %v is not errMalformed", b, err)
		}
		bd := body(string(b))
		if bytes.IndexByte(bd, '\n') >= 0 || !bytes.HasPrefix(b, bd) {
			t.Fatalf("body(%q) = %q", b, bd)
		}
	})
}

// referenceHeader is parseHeader written the obvious, allocating way.
func referenceHeader(s string) (header, bool) {
	meta, _, ok := strings.Cut(s, ";")
	if !ok {
		return header{}, false
	}
	parts := strings.Split(meta, ",")
	if len(parts) < 3 {
		return header{}, false
	}
	var v [3]int64
	for i := range v {
		p := parts[i]
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return header{}, false
		}
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return header{}, false
		}
		v[i] = n
	}
	if v[0] > 1<<31-1 {
		return header{}, false
	}
	return header{prio: int(v[0]), seq: v[1], usec: v[2]}, true
}
