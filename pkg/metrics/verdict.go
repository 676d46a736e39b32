package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// newVerdicts registers oomwatch_collateral_verdicts_total{verdict}: OOM
// kills by collateral verdict (yes, no, unknown: a fixed set, so the
// labels stay bounded whatever an agent sends).
func newVerdicts(reg *prometheus.Registry) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "oomwatch_collateral_verdicts_total",
		Help: "OOM kills by collateral verdict: yes (another workload held the memory), no, unknown (not enough known to say).",
	}, []string{"verdict"})
	reg.MustRegister(c)
	return c
}
