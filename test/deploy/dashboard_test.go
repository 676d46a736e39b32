package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/metrics"
	"github.com/oomwatch/oomwatch/pkg/nodemetrics"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// dashboardFile is the Grafana dashboard, relative to deploy/.
const dashboardFile = "grafana/oomwatch-dashboard.json"

// dashboardMetrics are the metrics the dashboard may query: the names
// agreed for the agent and the aggregator, in kube-state-metrics and
// cAdvisor style.
var dashboardMetrics = []string{
	"oomwatch_oom_kills_total",
	"oomwatch_collateral_kills_total",
	"oomwatch_kernel_records_read_total",
	"oomwatch_kernel_records_lost_total",
	"oomwatch_spool_events",
	"oomwatch_send_errors_total",
	"oomwatch_stream_reconnects_total",
	"oomwatch_ingest_latency_seconds",
	"oomwatch_events_ingested_total",
	"oomwatch_events_duplicate_total",
}

// targetLabels are the labels Prometheus adds to every scraped series.
var targetLabels = []string{"job", "instance"}

var (
	metricRE  = regexp.MustCompile(`\boomwatch_[a-z0-9_]+`)
	byRE      = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	matcherRE = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	selectRE  = regexp.MustCompile(`\{([^}]*)\}`)
)

// exportedMetrics returns the oomwatch metrics pkg/nodemetrics (the agent) and pkg/metrics (the aggregator) register, by
// name, with their label names: the agent's and the aggregator's
// registries, each metric given a sample first (a vector without children
// is not gathered).
func exportedMetrics(t *testing.T) map[string][]string {
	t.Helper()
	zero := func() float64 { return 0 }
	oom := &pb.Event{Node: "node-a", Time: timestamppb.Now(), Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Collateral: true}}}
	gap := &pb.Event{Node: "node-a", Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "kernel-gap", Lost: 1}}}
	dropped := &pb.Event{Node: "node-a", Payload: &pb.Event_Loss{Loss: &pb.Loss{Cause: "spool-full", Lost: 1}}}

	a := nodemetrics.NewAgent("/proc", zero, zero, zero)
	a.RecordsRead.Inc()
	for _, ev := range []*pb.Event{oom, gap, dropped} {
		a.Observe(ev)
	}
	g := metrics.NewAggregator(zero, zero)
	g.Stored(oom, "oom", time.Now())
	g.Stored(gap, "loss", time.Now())
	g.Duplicates.Inc()
	g.Rejected.WithLabelValues("test").Inc()

	out := map[string][]string{}
	// The agent's registry is read as Prometheus reads it, from its text.
	agent := prometheus.GathererFunc(func() ([]*dto.MetricFamily, error) {
		var b bytes.Buffer
		if _, err := a.Registry.WriteTo(&b); err != nil {
			return nil, err
		}
		p := expfmt.NewTextParser(model.LegacyValidation)
		fams, err := p.TextToMetricFamilies(&b)
		out := make([]*dto.MetricFamily, 0, len(fams))
		for _, f := range fams {
			out = append(out, f)
		}
		return out, err
	})
	for _, reg := range []prometheus.Gatherer{agent, g.Registry} {
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if !strings.HasPrefix(f.GetName(), "oomwatch_") {
				continue
			}
			for _, m := range f.GetMetric() {
				for _, l := range m.GetLabel() {
					if !slices.Contains(out[f.GetName()], l.GetName()) {
						out[f.GetName()] = append(out[f.GetName()], l.GetName())
					}
				}
			}
			if _, ok := out[f.GetName()]; !ok {
				out[f.GetName()] = nil
			}
			if f.GetType().String() == "HISTOGRAM" {
				out[f.GetName()] = append(out[f.GetName()], "le")
			}
		}
	}
	return out
}

// queries returns every PromQL expression of the dashboard: the panels'
// targets and the template variables' queries.
func queries(t *testing.T, dash map[string]any) []string {
	t.Helper()
	var out []string
	var walk func(key string, v any)
	walk = func(key string, v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				walk(k, x)
			}
		case []any:
			for _, x := range v {
				walk(key, x)
			}
		case string:
			if key == "expr" || key == "query" || key == "definition" {
				out = append(out, v)
			} else if metricRE.MatchString(v) {
				t.Errorf("metric name in %q outside a query: %q", key, v)
			}
		}
	}
	walk("", dash)
	return out
}

// baseMetric maps a histogram's series to its name.
func baseMetric(name string) string {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if b, ok := strings.CutSuffix(name, suf); ok && slices.Contains(dashboardMetrics, b) {
			return b
		}
	}
	return name
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	var dash map[string]any
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if dash["uid"] == "" || dash["title"] == "" {
		t.Errorf("dashboard has no uid or title")
	}
	exported := exportedMetrics(t)
	for _, m := range dashboardMetrics {
		if _, ok := exported[m]; !ok {
			t.Errorf("%s is agreed but pkg/metrics does not register it", m)
		}
	}

	used := map[string]bool{}
	qs := queries(t, dash)
	if len(qs) == 0 {
		t.Fatal("no queries")
	}
	for _, q := range qs {
		names := metricRE.FindAllString(q, -1)
		if len(names) == 0 && !strings.Contains(q, "prometheus") {
			t.Errorf("query %q reads no oomwatch metric", q)
		}
		// Labels the query may name: those of its metrics and the
		// scrape's own.
		allowed := slices.Clone(targetLabels)
		for _, n := range names {
			base := baseMetric(n)
			if !slices.Contains(dashboardMetrics, base) {
				t.Errorf("query %q: %s is not one of the agreed metrics", q, n)
				continue
			}
			used[base] = true
			allowed = append(allowed, exported[base]...)
		}
		var named []string
		for _, m := range byRE.FindAllStringSubmatch(q, -1) {
			for _, l := range strings.Split(m[1], ",") {
				if l = strings.TrimSpace(l); l != "" {
					named = append(named, l)
				}
			}
		}
		for _, sel := range selectRE.FindAllStringSubmatch(q, -1) {
			for _, m := range matcherRE.FindAllStringSubmatch(sel[1], -1) {
				named = append(named, m[1])
			}
		}
		if strings.HasPrefix(q, "label_values(") {
			args := strings.TrimSuffix(strings.TrimPrefix(q, "label_values("), ")")
			if i := strings.LastIndexByte(args, ','); i > 0 {
				named = append(named, strings.TrimSpace(args[i+1:]))
			}
		}
		for _, l := range named {
			if !slices.Contains(allowed, l) {
				t.Errorf("query %q: label %q is not a label of %v", q, l, names)
			}
		}
	}
	for _, m := range dashboardMetrics {
		if !used[m] {
			t.Errorf("the dashboard shows nothing of %s", m)
		}
	}
}
