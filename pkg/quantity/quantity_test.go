package quantity

import (
	"errors"
	"math"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
)

func TestParse(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr error
	}{
		{in: "128Mi", want: 128 << 20},
		{in: "1Gi", want: 1 << 30},
		{in: "1.5Gi", want: 3 << 29},
		{in: "1G", want: 1e9},
		{in: "500M", want: 5e8},
		{in: "1e9", want: 1e9},
		{in: "1E3", want: 1000},
		{in: "2.5e-1", want: 1},
		{in: "100m", want: 1},
		{in: "0", want: 0},
		{in: "+7Ki", want: 7 << 10},
		{in: "-1.5", want: -2},
		{in: "8Ei", wantErr: ErrRange},
		{in: "", wantErr: ErrSyntax},
		{in: "1Gb", wantErr: ErrSyntax},
		{in: "Gi", wantErr: ErrSyntax},
		{in: "-.", wantErr: ErrSyntax},
		{in: "1.", want: 1},
		{in: ".5Ki", want: 512},
		{in: "1..5", wantErr: ErrSyntax},
		{in: " 1Gi", wantErr: ErrSyntax},
		{in: "1e", wantErr: ErrSyntax},
		{in: "1e999999999", wantErr: ErrRange},
		{in: "1e-999", want: 1},
		{in: "-1e-999", want: -1},
		{in: "5n", want: 1},
		{in: "1e99999999999999999999", wantErr: ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := Parse(tt.in)
			if !errors.Is(err, tt.wantErr) || (err == nil && got != tt.want) {
				t.Fatalf("Parse(%q) = %d, %v; want %d, %v", tt.in, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

// FuzzParse checks Parse against apimachinery's parser, which the agent
// no longer links: what it accepts within an int64 Parse accepts with the
// same value; what it refuses Parse refuses. Numbers without a digit
// ("+", "Gi"), which it takes as zero or refuses by no rule, and those
// over maxLen characters, Parse refuses.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"128Mi", "1.5Gi", "1G", "1e9", "100m", "-1.5", "0.001k", "7E-2", ".5", "5.", "+1Ki", "1e40", "9223372036854775807", "9223372036854775808"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s)
		if num, _ := split(s); len(s) > maxLen || !strings.ContainsAny(num, "0123456789") {
			if err == nil {
				t.Fatalf("Parse(%q) = %d: too long, or a number without a digit", s, got)
			}
			return
		}
		if _, suffix := split(s); len(suffix) > 4 && (suffix[0] == 'e' || suffix[0] == 'E') {
			// apimachinery computes 10^exponent: a large one takes it
			// minutes; Parse's own handling is in TestParse.
			return
		}
		q, kerr := resource.ParseQuantity(s)
		if kerr != nil {
			if err == nil {
				t.Fatalf("Parse(%q) = %d, apimachinery refuses it: %v", s, got, kerr)
			}
			return
		}
		if f := q.AsApproximateFloat64(); math.Abs(f) > 9e18 {
			return // beyond an int64: apimachinery's Value saturates
		}
		if err != nil {
			t.Fatalf("Parse(%q): %v; apimachinery reads %s", s, err, q.String())
		}
		if q.Sign() < 0 {
			// apimachinery rounds negative ones either way ("-1.5" is -2,
			// "-1e-10" is 1); memory sizes are never negative.
			return
		}
		if want := q.Value(); got != want {
			t.Fatalf("Parse(%q) = %d, apimachinery %d", s, got, want)
		}
	})
}
