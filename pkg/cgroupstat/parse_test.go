package cgroupstat

import (
	"bytes"
	"errors"
	"testing"
)

func TestParsePSI(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  PSI
		errIs error
	}{
		{
			name: "node 6.1",
			in:   "some avg10=1.53 avg60=0.87 avg300=0.21 total=141506\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=34762\n",
			want: PSI{
				Some: PSILine{Avg10: 1.53, Avg60: 0.87, Avg300: 0.21, Total: 141506},
				Full: PSILine{Avg10: 0.50, Total: 34762},
			},
		},
		{
			name: "fields in another order, no final newline",
			in:   "full total=2 avg300=0.00 avg60=0.00 avg10=0.00\nsome avg10=99.99 avg60=0.00 avg300=0.00 total=5",
			want: PSI{Some: PSILine{Avg10: 99.99, Total: 5}, Full: PSILine{Total: 2}},
		},
		{name: "empty", in: "", errIs: ErrMalformed},
		{name: "no full line", in: "some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", errIs: ErrMalformed},
		{name: "missing total", in: "some avg10=0.00 avg60=0.00 avg300=0.00\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", errIs: ErrMalformed},
		{name: "bad float", in: "some avg10=x avg60=0.00 avg300=0.00 total=0\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n", errIs: ErrMalformed},
		{name: "unknown line", in: "most avg10=0.00\n", errIs: ErrMalformed},
		{name: "field without value", in: "some avg10\n", errIs: ErrMalformed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParsePSI([]byte(tc.in))
			if !errors.Is(err, tc.errIs) || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v, %v", got, err, tc.want, tc.errIs)
			}
		})
	}
}

func TestParseEventsBytesRepeatedKey(t *testing.T) {
	if _, err := ParseEventsBytes([]byte("oom 1\noom 2\n")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("error = %v, want ErrMalformed", err)
	}
	// Keys the parser ignores may repeat: new kernels' keys are not checked.
	if _, err := ParseEventsBytes([]byte("future 1\nfuture 2\noom 1\n")); err != nil {
		t.Fatal(err)
	}
}

// TestBytesParsersDoNotAllocate pins the promise the sampler's hot path
// relies on: parsing well-formed content allocates nothing.
func TestBytesParsersDoNotAllocate(t *testing.T) {
	value := []byte("9223372036854771712\n")
	events := []byte("low 0\nhigh 12\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n")
	oomControl := []byte("oom_kill_disable 0\nunder_oom 0\noom_kill 5\n")
	psi := []byte("some avg10=1.53 avg60=0.87 avg300=0.21 total=141506\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=34762\n")
	n := testing.AllocsPerRun(100, func() {
		if _, _, err := ParseValueBytes(value); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseEventsBytes(events); err != nil {
			t.Fatal(err)
		}
		if _, err := ParseOOMControlBytes(oomControl); err != nil {
			t.Fatal(err)
		}
		if _, err := ParsePSI(psi); err != nil {
			t.Fatal(err)
		}
		var inactive uint64
		if err := ScanKeyed(events, func(k []byte, v uint64) {
			if string(k) == "high" {
				inactive = v
			}
		}); err != nil || inactive != 12 {
			t.Fatal(err, inactive)
		}
	})
	if n != 0 {
		t.Errorf("%v allocations per run, want 0", n)
	}
}

func FuzzParsePSI(f *testing.F) {
	f.Add([]byte("some avg10=1.53 avg60=0.87 avg300=0.21 total=141506\nfull avg10=0.50 avg60=0.00 avg300=0.00 total=34762\n"))
	f.Add([]byte("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := ParsePSI(b); err != nil && !errors.Is(err, ErrMalformed) {
			t.Fatalf("error %v does not wrap ErrMalformed", err)
		}
	})
}

func FuzzParseEventsBytes(f *testing.F) {
	for _, b := range seeds(f, "memory.events", "memory.oom_control") {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEventsBytes(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		// Every key ParseEventsBytes reads, ParseKeyed reads the same.
		kv, err := ParseKeyed(bytes.NewReader(b))
		if err != nil {
			return // a repeated key ParseEventsBytes ignores
		}
		if kv["oom_kill"] != e.OOMKill || kv["max"] != e.Max {
			t.Fatalf("ParseEventsBytes %+v disagrees with ParseKeyed %v", e, kv)
		}
	})
}
