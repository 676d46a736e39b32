package kernlog

import (
	"bufio"
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
		in   string
		want Header
		ok   bool
	}{
		{in: "6,2565,102258085667,-;docker0: port 2 entered blocking state\n", want: Header{6, 2565, 102258085667, 22}, ok: true},
		{in: "5,0,0,-;Linux version 6.18.44\n", want: Header{5, 0, 0, 8}, ok: true},
		{in: "6,191,182883,-;acpi: services disabled; not requesting\n SUBSYSTEM=acpi\n", want: Header{6, 191, 182883, 15}, ok: true},
		{in: "12,7,9,c,caller=T1;continued", want: Header{12, 7, 9, 19}, ok: true},
		{in: "3,4,5;no flags", want: Header{3, 4, 5, 6}, ok: true},
		{in: "6,1,9223372036854775807,-;max", want: Header{6, 1, 9223372036854775807, 26}, ok: true},
		{in: "2147483647,1,2,-;max priority", want: Header{2147483647, 1, 2, 17}, ok: true},
		{in: "3,4;too few"},
		{in: ";"},
		{in: ""},
		{in: "6,1,2,-"},
		{in: "-6,1,2,-;negative"},
		{in: "6, 1,2,-;space"},
		{in: "6,,2,-;empty"},
		{in: "6,1,2x,-;junk"},
		{in: "6,99999999999999999999,2,-;overflow"},
		{in: "6,9999999999999999999,2,-;19 digits, overflow"},
		{in: "6,1,9223372036854775808,-;just over"},
		{in: "99999999999,1,2,-;priority overflow"},
		{in: "2147483648,1,2,-;priority just over"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, ok := ParseHeader([]byte(tt.in))
			if ok != tt.ok || got != tt.want {
				t.Errorf("ParseHeader(%q) = %+v, %v; want %+v, %v", tt.in, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestParseHeaderDoesNotAllocate(t *testing.T) {
	rec := []byte("6,191,182883,-;acpi PNP0A08:00: PCIe port services disabled\n SUBSYSTEM=acpi\n")
	if n := testing.AllocsPerRun(100, func() { _, _ = ParseHeader(rec) }); n != 0 {
		t.Errorf("ParseHeader allocates %v times per record", n)
	}
}

// FuzzParseHeader checks ParseHeader against a strings/strconv reference,
// and ParseLine's raw records against it.
func FuzzParseHeader(f *testing.F) {
	for _, r := range seedRecords(f) {
		f.Add(r)
	}
	f.Add([]byte("6,1,2;"))
	f.Add([]byte("6,1,9223372036854775807,-;max"))
	f.Add([]byte("6,1,9999999999999999999,-;over"))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, ok := ParseHeader(b)
		want, wantOK := referenceHeader(string(b))
		if ok != wantOK || got != want {
			t.Fatalf("ParseHeader(%q) = %+v, %v; reference %+v, %v", b, got, ok, want, wantOK)
		}
		var rec Record
		if ok && got.Usec <= maxUsec && ParseLine(b, &rec, false, 2026, nil) != FormatKmsg {
			t.Fatalf("ParseLine(%q) is not a raw record", b)
		}
	})
}

// referenceHeader is ParseHeader written the obvious, allocating way.
func referenceHeader(s string) (Header, bool) {
	meta, _, ok := strings.Cut(s, ";")
	if !ok {
		return Header{}, false
	}
	parts := strings.Split(meta, ",")
	if len(parts) < 3 {
		return Header{}, false
	}
	var v [3]int64
	for i := range v {
		p := parts[i]
		if p == "" || strings.TrimLeft(p, "0123456789") != "" {
			return Header{}, false
		}
		n, err := strconv.ParseInt(p, 10, 64)
		if err != nil {
			return Header{}, false
		}
		v[i] = n
	}
	if v[0] > 1<<31-1 {
		return Header{}, false
	}
	return Header{Priority: int(v[0]), Seq: v[1], Usec: v[2], Len: len(meta) + 1}, true
}

// BenchmarkParseHeader reads the headers of a real boot's records.
func BenchmarkParseHeader(b *testing.B) {
	recs := seedRecords(b)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, ok := ParseHeader(recs[i%len(recs)]); !ok {
			b.Fatalf("%q", recs[i%len(recs)])
		}
	}
}
