package promtext

import (
	"math"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// value is a float64 updated atomically.
type value struct{ bits atomic.Uint64 }

func (v *value) add(d float64) {
	for {
		old := v.bits.Load()
		if v.bits.CompareAndSwap(old, math.Float64bits(math.Float64frombits(old)+d)) {
			return
		}
	}
}

func (v *value) load() float64 { return math.Float64frombits(v.bits.Load()) }

// Counter only goes up.
type Counter struct{ v value }

// Inc adds one.
func (c *Counter) Inc() { c.v.add(1) }

// Add adds d, which must not be negative (a negative d is ignored).
func (c *Counter) Add(d float64) {
	if d >= 0 {
		c.v.add(d)
	}
}

// Value returns the count.
func (c *Counter) Value() float64 { return c.v.load() }

// Gauge goes up and down.
type Gauge struct{ v value }

// Set sets the gauge.
func (g *Gauge) Set(x float64) { g.v.bits.Store(math.Float64bits(x)) }

// Add adds d.
func (g *Gauge) Add(d float64) { g.v.add(d) }

// Value returns the gauge's value.
func (g *Gauge) Value() float64 { return g.v.load() }

// NewCounter registers a counter without labels.
func (r *Registry) NewCounter(name, help string) *Counter {
	c := &Counter{}
	r.Register(func() []Family {
		return []Family{{Name: name, Help: help, Type: TypeCounter, Samples: []Sample{{Value: c.Value()}}}}
	})
	return c
}

// NewGauge registers a gauge without labels.
func (r *Registry) NewGauge(name, help string) *Gauge {
	g := &Gauge{}
	r.Register(func() []Family {
		return []Family{{Name: name, Help: help, Type: TypeGauge, Samples: []Sample{{Value: g.Value()}}}}
	})
	return g
}

// NewCounterFunc registers a counter read from f at each scrape.
func (r *Registry) NewCounterFunc(name, help string, f func() float64) {
	r.Register(func() []Family {
		return []Family{{Name: name, Help: help, Type: TypeCounter, Samples: []Sample{{Value: f()}}}}
	})
}

// NewGaugeFunc registers a gauge read from f at each scrape.
func (r *Registry) NewGaugeFunc(name, help string, f func() float64) {
	r.Register(func() []Family {
		return []Family{{Name: name, Help: help, Type: TypeGauge, Samples: []Sample{{Value: f()}}}}
	})
}

// vec holds one metric per combination of label values.
type vec[M any] struct {
	labels []string
	mu     sync.Mutex
	kids   map[string]*kid[M]
}

type kid[M any] struct {
	values []string
	m      *M
}

// with returns the metric of these label values, made on first use.
// Missing values are empty, extra ones ignored.
func (v *vec[M]) with(values []string) *M {
	vals := make([]string, len(v.labels))
	copy(vals, values)
	key := strings.Join(vals, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	k, ok := v.kids[key]
	if !ok {
		k = &kid[M]{values: vals, m: new(M)}
		v.kids[key] = k
	}
	return k.m
}

func (v *vec[M]) samples(val func(*M) float64) []Sample {
	v.mu.Lock()
	defer v.mu.Unlock()
	keys := make([]string, 0, len(v.kids))
	for k := range v.kids {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]Sample, 0, len(keys))
	for _, key := range keys {
		k := v.kids[key]
		ls := make([]Label, len(v.labels))
		for i, n := range v.labels {
			ls[i] = Label{n, k.values[i]}
		}
		out = append(out, Sample{Labels: ls, Value: val(k.m)})
	}
	return out
}

// CounterVec is a counter per combination of label values.
type CounterVec struct{ v vec[Counter] }

// WithLabelValues returns the counter of these values, in the order of the
// labels the vector was made with.
func (c *CounterVec) WithLabelValues(values ...string) *Counter { return c.v.with(values) }

// NewCounterVec registers a counter vector. A combination of values is
// written once it has been used.
func (r *Registry) NewCounterVec(name, help string, labels ...string) *CounterVec {
	c := &CounterVec{v: vec[Counter]{labels: labels, kids: map[string]*kid[Counter]{}}}
	r.Register(func() []Family {
		return []Family{{Name: name, Help: help, Type: TypeCounter, Samples: c.v.samples((*Counter).Value)}}
	})
	return c
}

// GaugeVec is a gauge per combination of label values.
type GaugeVec struct{ v vec[Gauge] }

// WithLabelValues returns the gauge of these values, in the order of the
// labels the vector was made with.
func (g *GaugeVec) WithLabelValues(values ...string) *Gauge { return g.v.with(values) }

// NewGaugeVec registers a gauge vector. A combination of values is written
// once it has been used.
func (r *Registry) NewGaugeVec(name, help string, labels ...string) *GaugeVec {
	g := &GaugeVec{v: vec[Gauge]{labels: labels, kids: map[string]*kid[Gauge]{}}}
	r.Register(func() []Family {
		return []Family{{Name: name, Help: help, Type: TypeGauge, Samples: g.v.samples((*Gauge).Value)}}
	})
	return g
}

// Histogram counts observations in buckets.
type Histogram struct {
	upper  []float64 // sorted bucket bounds, without +Inf
	mu     sync.Mutex
	counts []uint64 // per bucket, not cumulative; the last is +Inf's
	sum    float64
	n      uint64
}

// Observe adds one observation.
func (h *Histogram) Observe(x float64) {
	i := sort.SearchFloat64s(h.upper, x) // the first bound >= x
	h.mu.Lock()
	h.counts[i]++
	h.sum += x
	h.n++
	h.mu.Unlock()
}

// Count returns the number of observations.
func (h *Histogram) Count() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n
}

// NewHistogram registers a histogram with these bucket upper bounds (+Inf
// is added).
func (r *Registry) NewHistogram(name, help string, buckets []float64) *Histogram {
	up := append([]float64(nil), buckets...)
	sort.Float64s(up)
	h := &Histogram{upper: up, counts: make([]uint64, len(up)+1)}
	r.Register(func() []Family {
		h.mu.Lock()
		defer h.mu.Unlock()
		s := make([]Sample, 0, len(up)+3)
		var cum uint64
		for i, b := range up {
			cum += h.counts[i]
			s = append(s, Sample{Suffix: "_bucket", Labels: []Label{{"le", FormatFloat(b)}}, Value: float64(cum)})
		}
		s = append(s, Sample{Suffix: "_bucket", Labels: []Label{{"le", "+Inf"}}, Value: float64(h.n)},
			Sample{Suffix: "_sum", Value: h.sum}, Sample{Suffix: "_count", Value: float64(h.n)})
		return []Family{{Name: name, Help: help, Type: TypeHistogram, Samples: s}}
	})
	return h
}
