package warn

import (
	"math"
	"testing"
	"time"
)

func samples(interval time.Duration, vals ...float64) *series {
	s := &series{}
	for i, v := range vals {
		s.add(t0.Add(time.Duration(i)*interval), int64(v), time.Hour, 1000)
	}
	return s
}

func TestFit(t *testing.T) {
	cases := []struct {
		name   string
		s      *series
		ok     bool
		rate   float64 // bytes/s, when ok
		minR2  float64
		maxR2  float64
		points int
	}{
		{"a line", samples(2*time.Second, 0, 2*MiB, 4*MiB, 6*MiB, 8*MiB, 10*MiB, 12*MiB, 14*MiB, 16*MiB, 18*MiB, 20*MiB), true, MiB, 0.999, 1, 11},
		{"falling", samples(10*time.Second, 50*MiB, 40*MiB, 30*MiB), true, -MiB, 0.999, 1, 3},
		{"flat", samples(2*time.Second, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5), false, 0, 0, 0, 11},
		{"too few points", samples(20*time.Second, 1, 2), false, 0, 0, 0, 2},
		{"too short a span", samples(time.Second, 1, 2, 3, 4, 5, 6), false, 0, 0, 0, 6},
		{"sawtooth over several cycles", samples(2*time.Second, 60, 65, 70, 75, 60, 65, 70, 75, 60, 65, 70, 75, 60, 65, 70, 75), true, 0, 0, 0.2, 16},
		{"GiB values keep their precision", samples(10*time.Second, 1<<40, 1<<40+10*MiB, 1<<40+20*MiB, 1<<40+30*MiB), true, MiB, 0.999, 1, 4},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.s.fit(3, 20*time.Second)
			if f.ok != tc.ok || f.points != tc.points {
				t.Fatalf("fit %+v, want ok %v over %d points", f, tc.ok, tc.points)
			}
			if !f.ok {
				return
			}
			if tc.rate != 0 && math.Abs(f.rate-tc.rate) > 1e-6*math.Abs(tc.rate) {
				t.Errorf("rate %v, want %v", f.rate, tc.rate)
			}
			if f.r2 < tc.minR2 || f.r2 > tc.maxR2 {
				t.Errorf("R2 %v, want %v..%v", f.r2, tc.minR2, tc.maxR2)
			}
		})
	}
}

func TestSeriesBounded(t *testing.T) {
	s := &series{}
	for i := range 1000 {
		s.add(t0.Add(time.Duration(i)*time.Second), int64(i), 2*time.Minute, 50)
		if len(s.pts) > 50 {
			t.Fatalf("%d points after %d samples", len(s.pts), i+1)
		}
	}
	s = &series{}
	for i := range 100 {
		s.add(t0.Add(time.Duration(i)*10*time.Second), int64(i), 2*time.Minute, 1000)
	}
	if n := len(s.pts); n != 13 {
		t.Errorf("%d points in 2 min at 10 s, want 13", n)
	}
}

func TestTimeLeft(t *testing.T) {
	f := fit{ok: true, rate: MiB}
	if d, ok := f.timeLeft(60*MiB, 64*MiB); !ok || d != 4*time.Second {
		t.Errorf("%v %v", d, ok)
	}
	if d, ok := f.timeLeft(65*MiB, 64*MiB); !ok || d != 0 {
		t.Errorf("past the limit: %v %v", d, ok)
	}
	if _, ok := (fit{ok: true, rate: -1}).timeLeft(1, 2); ok {
		t.Error("falling: time left")
	}
	if d, ok := (fit{ok: true, rate: 1e-12}).timeLeft(0, 1<<62); !ok || d <= 0 {
		t.Errorf("overflow: %v %v", d, ok)
	}
}
