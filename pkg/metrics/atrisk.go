package metrics

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/oomwatch/oomwatch/pkg/vocab"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Bounds of the at-risk gauges.
const (
	// MaxAtRiskSeries bounds oomwatch_at_risk: the most urgent open
	// warnings get a series, the rest are counted in
	// oomwatch_at_risk_overflow.
	MaxAtRiskSeries = 100
	// AtRiskScan bounds the open warnings read per scrape to rank.
	AtRiskScan = 5000
	// AtRiskCache is how long a scrape's figures are served again.
	AtRiskCache = 5 * time.Second
	// atRiskTimeout bounds the store query of a scrape.
	atRiskTimeout = 5 * time.Second
)

// OpenWarnings is what the at-risk gauges read at scrape time: the open
// warnings' counts by kind word, and up to max of the open warnings
// (store.Store.OpenWarnings).
type OpenWarnings func(ctx context.Context, now time.Time, max int) (map[string]int64, []*pb.Event, error)

// AtRisk is the collector of the open-warning gauges:
// oomwatch_warnings_open{kind}, oomwatch_at_risk{node, namespace, pod,
// container, kind} (1 per open warning, at most MaxAtRiskSeries, most
// urgent first, see Rank) and oomwatch_at_risk_overflow. Figures are computed at scrape
// time and cached AtRiskCache; a failed query serves the last figures and
// counts oomwatch_at_risk_errors_total.
type AtRisk struct {
	src                    OpenWarnings
	now                    func() time.Time
	open, atRisk, overflow *prometheus.Desc
	errors                 prometheus.Counter

	mu   sync.Mutex
	at   time.Time
	last []prometheus.Metric
}

// NewAtRisk builds the collector over src.
func NewAtRisk(src OpenWarnings) *AtRisk {
	return &AtRisk{
		src: src, now: time.Now,
		open: prometheus.NewDesc("oomwatch_warnings_open", "Warnings open now (not resolved, refreshed by their agent within 15 minutes), by kind.",
			[]string{"kind"}, nil),
		atRisk: prometheus.NewDesc("oomwatch_at_risk", "1 per open warning of the most urgent 100 (forecasts by time left, then near-limit and limit-reclaim by ratio of the limit, then the rest).",
			[]string{"node", "namespace", "pod", "container", "kind"}, nil),
		overflow: prometheus.NewDesc("oomwatch_at_risk_overflow", "Open warnings past the 100 series of oomwatch_at_risk.", nil, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: "oomwatch_at_risk_errors_total",
			Help: "Scrapes whose query of open warnings failed (the figures before were served)."}),
	}
}

// Describe implements prometheus.Collector.
func (a *AtRisk) Describe(ch chan<- *prometheus.Desc) {
	ch <- a.open
	ch <- a.atRisk
	ch <- a.overflow
	a.errors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (a *AtRisk) Collect(ch chan<- prometheus.Metric) {
	for _, m := range a.metrics() {
		ch <- m
	}
	a.errors.Collect(ch)
}

func (a *AtRisk) metrics() []prometheus.Metric {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now()
	if a.last != nil && now.Sub(a.at) < AtRiskCache {
		return a.last
	}
	ctx, cancel := context.WithTimeout(context.Background(), atRiskTimeout)
	defer cancel()
	counts, open, err := a.src(ctx, now, AtRiskScan)
	if err != nil {
		a.errors.Inc()
		return a.last
	}
	a.at, a.last = now, a.compute(counts, open)
	return a.last
}

// warningKinds are the kinds' words, each with a series even at 0.
var warningKinds = func() []string {
	var out []string
	for k := range pb.WarningKind_name {
		if k != 0 {
			out = append(out, vocab.WarningKind(pb.WarningKind(k)))
		}
	}
	slices.Sort(out)
	return out
}()

func (a *AtRisk) compute(counts map[string]int64, open []*pb.Event) []prometheus.Metric {
	var out []prometheus.Metric
	var total int64
	for _, k := range warningKinds {
		out = append(out, prometheus.MustNewConstMetric(a.open, prometheus.GaugeValue, float64(counts[k]), k))
		total += counts[k]
	}
	ranked := Rank(open)
	seen := map[[5]string]bool{}
	// shown counts the warnings with a series, two of one label set
	// included: the overflow is the warnings without one.
	series, shown := 0, 0
	for _, e := range ranked {
		if series == MaxAtRiskSeries {
			break
		}
		w := e.GetWarning()
		wl := w.GetWorkload()
		l := [5]string{e.GetNode(), wl.GetNamespace(), wl.GetPodName(), wl.GetContainerName(), vocab.WarningKind(w.GetWarningKind())}
		if l[2] == "" {
			l[2] = wl.GetPodUid()
		}
		// Two warnings with one label set (a pod's cgroup and an unnamed
		// container's, say) are one series: a collector may not send a
		// series twice.
		shown++
		if seen[l] {
			continue
		}
		seen[l] = true
		series++
		out = append(out, prometheus.MustNewConstMetric(a.atRisk, prometheus.GaugeValue, 1, l[:]...))
	}
	out = append(out, prometheus.MustNewConstMetric(a.overflow, prometheus.GaugeValue, float64(max(total-int64(shown), 0))))
	return out
}

// Rank orders open warnings most urgent first: forecasts by time left
// (shortest first); then near-limit and limit-reclaim by their ratio of
// the limit, highest first; then the rest (pressure by PSI full avg10 /
// 100, node-low by the share of the node's memory in use), highest first;
// ties by opening time (oldest first), then ID.
func Rank(evs []*pb.Event) []*pb.Event {
	out := slices.Clone(evs)
	slices.SortStableFunc(out, func(x, y *pb.Event) int {
		tx, ty := tier(x), tier(y)
		if c := cmp.Compare(tx, ty); c != 0 {
			return c
		}
		if tx == tierForecast {
			if c := cmp.Compare(timeLeft(x), timeLeft(y)); c != 0 {
				return c
			}
		} else if c := cmp.Compare(ratio(y), ratio(x)); c != 0 {
			return c
		}
		if c := x.GetWarning().GetSince().AsTime().Compare(y.GetWarning().GetSince().AsTime()); c != 0 {
			return c
		}
		return cmp.Compare(x.GetId(), y.GetId())
	})
	return out
}

// Urgency tiers of Rank.
const (
	tierForecast = iota
	tierLimit
	tierOther
)

func tier(e *pb.Event) int {
	switch e.GetWarning().GetWarningKind() {
	case pb.WarningKind_WARNING_KIND_FORECAST:
		return tierForecast
	case pb.WarningKind_WARNING_KIND_NEAR_LIMIT, pb.WarningKind_WARNING_KIND_LIMIT_RECLAIM:
		return tierLimit
	}
	return tierOther
}

func timeLeft(e *pb.Event) time.Duration {
	if d := e.GetWarning().GetFigures().GetTimeLeft(); d != nil {
		return d.AsDuration()
	}
	return time.Duration(1<<63 - 1)
}

// ratio is how close a warning is to running out, 0 to about 1.
func ratio(e *pb.Event) float64 {
	f := e.GetWarning().GetFigures()
	switch e.GetWarning().GetWarningKind() {
	case pb.WarningKind_WARNING_KIND_NODE_LOW:
		if t := f.GetMemTotalBytes(); t > 0 {
			return float64(t-f.GetMemAvailableBytes()) / float64(t)
		}
		return 0
	case pb.WarningKind_WARNING_KIND_PRESSURE:
		return f.GetPsiFullAvg10() / 100
	}
	return f.GetRatio()
}
