package promtext

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func TestWriteTo(t *testing.T) {
	r := NewRegistry()
	v := r.NewCounterVec("b_total", "Help with a \\ and a\nnewline.", "z", "a")
	v.WithLabelValues("2", `quote " and \ and`+"\n").Inc()
	v.WithLabelValues("1", "x").Add(2.5)
	v.WithLabelValues("1", "x").Add(-1) // ignored: counters only go up
	r.NewGaugeFunc("a_gauge", "A gauge.", func() float64 { return math.Inf(1) })
	r.NewCounterVec("c_total", "Never used: not written.", "l")
	h := r.NewHistogram("d_seconds", "A histogram.", []float64{1, 0.5})
	h.Observe(0.5)
	h.Observe(3)
	var b bytes.Buffer
	if _, err := r.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	want := `# HELP a_gauge A gauge.
# TYPE a_gauge gauge
a_gauge +Inf
# HELP b_total Help with a \\ and a\nnewline.
# TYPE b_total counter
b_total{a="quote \" and \\ and\n",z="2"} 1
b_total{a="x",z="1"} 2.5
# HELP d_seconds A histogram.
# TYPE d_seconds histogram
d_seconds_bucket{le="0.5"} 1
d_seconds_bucket{le="1"} 1
d_seconds_bucket{le="+Inf"} 2
d_seconds_sum 3.5
d_seconds_count 2
`
	if got := b.String(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}

func TestFormatFloat(t *testing.T) {
	for _, tc := range []struct {
		in   float64
		want string
	}{
		{0, "0"}, {1, "1"}, {0.0005, "0.0005"}, {2.5, "2.5"}, {1.8446744073709552e+19, "1.8446744073709552e+19"},
		{12345678, "1.2345678e+07"}, {math.Inf(-1), "-Inf"}, {math.NaN(), "NaN"},
	} {
		if got := FormatFloat(tc.in); got != tc.want {
			t.Errorf("FormatFloat(%v) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestProcessCollectorParsers(t *testing.T) {
	st, err := parseStat([]byte("42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 9 0 12345 1304178688 4200 18446744073709551615\n"))
	if err != nil {
		t.Fatal(err)
	}
	if st.utime != 150 || st.stime != 50 || st.start != 12345 || st.vsize != 1304178688 || st.rss != 4200 {
		t.Errorf("stat %+v", st)
	}
	limits := "Limit                     Soft Limit           Hard Limit           Units     \nMax open files            20000                20000                files     \nMax address space         unlimited            unlimited            bytes     \n"
	if v, ok := limit([]byte(limits), "Max open files"); !ok || v != 20000 {
		t.Errorf("open files %v %v", v, ok)
	}
	if v, ok := limit([]byte(limits), "Max address space"); !ok || v != 1.8446744073709552e+19 {
		t.Errorf("address space %v %v", v, ok)
	}
	netstat := "TcpExt: SyncookiesSent\nTcpExt: 0\nIpExt: InNoRoutes InOctets OutOctets\nIpExt: 0 1000 2000\n"
	if in, out, ok := ipOctets([]byte(netstat)); !ok || in != 1000 || out != 2000 {
		t.Errorf("octets %v %v %v", in, out, ok)
	}
	if _, _, ok := ipOctets([]byte(strings.ReplaceAll(netstat, "OutOctets", "Other"))); ok {
		t.Error("octets without OutOctets")
	}
}
