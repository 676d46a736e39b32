package metrics

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestSamplingMetrics(t *testing.T) {
	m := NewAgent(func() float64 { return 0 }, func() float64 { return 0 }, func() float64 { return 0 })
	s := m.RegisterSampling()
	s.Round(3*time.Millisecond, 300, 2, map[string]int{"near-limit": 2, "forecast": 1, "bogus": 7})
	s.Round(time.Millisecond, 298, 0, map[string]int{"forecast": 1})
	if v := testutil.ToFloat64(s.Rounds); v != 2 {
		t.Errorf("rounds %v", v)
	}
	if v := testutil.ToFloat64(s.Cgroups); v != 298 {
		t.Errorf("cgroups %v, want the last round's", v)
	}
	if v := testutil.ToFloat64(s.Errors); v != 2 {
		t.Errorf("errors %v", v)
	}
	if v := testutil.ToFloat64(s.Open.WithLabelValues("near-limit")); v != 0 {
		t.Errorf("near-limit open %v after it closed", v)
	}
	if v := testutil.ToFloat64(s.Open.WithLabelValues("forecast")); v != 1 {
		t.Errorf("forecast open %v", v)
	}
	// Only the engine's kinds are labels: the gauge stays bounded.
	if n := testutil.CollectAndCount(s.Open); n != len(WarningKinds) {
		t.Errorf("%d open-warning series, want %d", n, len(WarningKinds))
	}
	if n := testutil.CollectAndCount(s.RoundDuration); n != 1 {
		t.Errorf("round duration: %d series", n)
	}
}
