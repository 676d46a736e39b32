package nodemetrics

import (
	"time"

	"github.com/oomwatch/oomwatch/pkg/promtext"
)

// WarningKinds are the values of the open-warnings gauge's kind label: the
// warn engine's kinds as issue #17 names them.
var WarningKinds = []string{"near-limit", "limit-reclaim", "pressure", "node-low", "forecast"}

// Sampling is the agent's metrics of its memory sampling and warnings.
type Sampling struct {
	Rounds        *promtext.Counter
	RoundDuration *promtext.Histogram
	Cgroups       *promtext.Gauge
	Errors        *promtext.Counter
	Open          *promtext.GaugeVec
}

// RegisterSampling adds the sampling metrics to the agent's registry.
func (m *Agent) RegisterSampling() *Sampling {
	reg := m.Registry
	s := &Sampling{
		Rounds: reg.NewCounter("oomwatch_sample_rounds_total", "Rounds of sampling the node's pod and container cgroups' memory."),
		RoundDuration: reg.NewHistogram("oomwatch_sample_round_duration_seconds",
			"How long one round of sampling took, the warnings' judgement included.",
			[]float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}),
		Cgroups: reg.NewGauge("oomwatch_sampled_cgroups",
			"Pod and container cgroups sampled in the last round (the kubepods group included when it has a limit)."),
		Errors: reg.NewCounter("oomwatch_sample_errors_total",
			"Figures left unknown because their cgroup or /proc file could not be read or parsed, and rounds that read nothing."),
		Open: reg.NewGaugeVec("oomwatch_warnings_open", "Memory warnings open now on this node, by kind.", "kind"),
	}
	for _, k := range WarningKinds {
		s.Open.WithLabelValues(k)
	}
	return s
}

// Round records one sampling round: how long it took, the cgroups it
// sampled, its errors and the warnings open after it by kind. Kinds
// outside WarningKinds are left out: the label stays bounded.
func (s *Sampling) Round(took time.Duration, cgroups, errors int, open map[string]int) {
	s.Rounds.Inc()
	s.RoundDuration.Observe(took.Seconds())
	s.Cgroups.Set(float64(cgroups))
	s.Errors.Add(float64(errors))
	for _, k := range WarningKinds {
		s.Open.WithLabelValues(k).Set(float64(open[k]))
	}
}
