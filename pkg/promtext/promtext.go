// Package promtext writes metrics in Prometheus's text exposition format
// (version 0.0.4): counters, gauges, histograms and their label vectors,
// and the Go runtime's and the process's standard metrics (go_*,
// process_*) under the names, help and types client_golang gives them.
//
// It exists for the node agent, which runs on every node under a tight
// memory limit: client_golang, with its protobuf exposition, procfs and
// expvar, made 0.6 MB of the agent's 14.5 MB binary, all of it mapped and
// counted in its memory. The aggregator keeps client_golang.
package promtext

import (
	"bufio"
	"io"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
)

// Metric types, as the TYPE line writes them.
const (
	TypeCounter   = "counter"
	TypeGauge     = "gauge"
	TypeHistogram = "histogram"
	TypeSummary   = "summary"
)

// Family is one metric family as it is written: its samples' names are
// Name and Name plus a suffix (_bucket, _sum, _count).
type Family struct {
	Name, Help, Type string
	Samples          []Sample
}

// Sample is one line of a family.
type Sample struct {
	// Suffix follows the family's name: "", "_bucket", "_sum", "_count".
	Suffix string
	// Labels are name and value pairs, in any order (they are written
	// sorted by name).
	Labels []Label
	Value  float64
}

// Label is one label of a sample.
type Label struct{ Name, Value string }

// Collector produces families at each scrape.
type Collector func() []Family

// Registry holds what a scrape writes.
type Registry struct {
	mu         sync.Mutex
	collectors []Collector
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry { return &Registry{} }

// Register adds a collector.
func (r *Registry) Register(c Collector) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.collectors = append(r.collectors, c)
}

// Gather returns every family, sorted by name, each family's samples
// sorted by their labels; families without samples are left out, as
// client_golang leaves them.
func (r *Registry) Gather() []Family {
	r.mu.Lock()
	cs := slices.Clone(r.collectors)
	r.mu.Unlock()
	var out []Family
	for _, c := range cs {
		for _, f := range c() {
			if len(f.Samples) > 0 {
				out = append(out, f)
			}
		}
	}
	for i := range out {
		for j := range out[i].Samples {
			slices.SortFunc(out[i].Samples[j].Labels, func(a, b Label) int { return strings.Compare(a.Name, b.Name) })
		}
		// Histogram and summary lines keep their order (buckets by le,
		// then _sum and _count); series of other types sort by labels.
		if t := out[i].Type; t == TypeCounter || t == TypeGauge {
			slices.SortStableFunc(out[i].Samples, func(a, b Sample) int { return compareLabels(a.Labels, b.Labels) })
		}
	}
	slices.SortStableFunc(out, func(a, b Family) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func compareLabels(a, b []Label) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if c := strings.Compare(a[i].Name, b[i].Name); c != 0 {
			return c
		}
		if c := strings.Compare(a[i].Value, b[i].Value); c != 0 {
			return c
		}
	}
	return len(a) - len(b)
}

// WriteTo writes every family in the text format.
func (r *Registry) WriteTo(w io.Writer) (int64, error) {
	cw := &countingWriter{w: w}
	bw := bufio.NewWriter(cw)
	for _, f := range r.Gather() {
		writeFamily(bw, f)
	}
	err := bw.Flush()
	return cw.n, err
}

type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

func writeFamily(w *bufio.Writer, f Family) {
	w.WriteString("# HELP ")
	w.WriteString(f.Name)
	w.WriteByte(' ')
	w.WriteString(escapeHelp(f.Help))
	w.WriteString("\n# TYPE ")
	w.WriteString(f.Name)
	w.WriteByte(' ')
	w.WriteString(f.Type)
	w.WriteByte('\n')
	for _, s := range f.Samples {
		w.WriteString(f.Name)
		w.WriteString(s.Suffix)
		if len(s.Labels) > 0 {
			w.WriteByte('{')
			for i, l := range s.Labels {
				if i > 0 {
					w.WriteByte(',')
				}
				w.WriteString(l.Name)
				w.WriteString(`="`)
				w.WriteString(escapeLabel(l.Value))
				w.WriteByte('"')
			}
			w.WriteByte('}')
		}
		w.WriteByte(' ')
		w.WriteString(FormatFloat(s.Value))
		w.WriteByte('\n')
	}
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	labelEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeLabel(s string) string { return labelEscaper.Replace(s) }

// FormatFloat writes a value as the text format does: the shortest form
// that reads back exactly, +Inf, -Inf or NaN.
func FormatFloat(v float64) string {
	switch {
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}

// ContentType is the text format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Handler serves the registry at each request (call it once), with the
// promhttp_metric_handler_errors_total counter client_golang's handler
// adds (its writes' errors count as encoding errors).
func (r *Registry) Handler() http.Handler {
	var encoding atomic.Int64
	r.Register(func() []Family {
		return []Family{{Name: "promhttp_metric_handler_errors_total", Type: TypeCounter,
			Help: "Total number of internal errors encountered by the promhttp metric handler.",
			Samples: []Sample{
				{Labels: []Label{{"cause", "encoding"}}, Value: float64(encoding.Load())},
				{Labels: []Label{{"cause", "gathering"}}, Value: 0},
			}}}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", ContentType)
		if _, err := r.WriteTo(w); err != nil {
			encoding.Add(1)
		}
	})
}
