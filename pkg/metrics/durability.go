package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
)

// Durability is how the agent's state directory is doing, read at each
// scrape.
type Durability struct {
	// SpoolWritable is false while the spool refuses writes.
	SpoolWritable bool
	// SpoolWriteErrors counts event writes the spool failed, AckWriteErrors
	// acknowledgements it could not write, CheckpointWriteErrors failed
	// checkpoint saves.
	SpoolWriteErrors, AckWriteErrors, CheckpointWriteErrors int64
	// MemoryQueueEvents is the events kept only in memory now;
	// MemoryQueued counts those that went there, MemoryDropped those
	// dropped from it (reported as a loss).
	MemoryQueueEvents           int
	MemoryQueued, MemoryDropped int64
}

var (
	descSpoolWritable = prometheus.NewDesc("oomwatch_spool_writable",
		"1 while the spool takes writes, 0 while the state directory refuses them (full, read-only, I/O errors).", nil, nil)
	descWriteErrors = prometheus.NewDesc("oomwatch_spool_write_errors_total",
		"Writes the spool failed, by what was written: events (then kept in memory and sent directly) or acks (the event may be sent again after a restart).",
		[]string{"op"}, nil)
	descCheckpointErrors = prometheus.NewDesc("oomwatch_checkpoint_write_errors_total",
		"Failed checkpoint saves (a restart then reads the kernel records since the last saved one again).", nil, nil)
	descMemoryEvents = prometheus.NewDesc("oomwatch_memory_queue_events",
		"Events kept only in memory because the spool refused them, not acknowledged yet.", nil, nil)
	descMemoryQueued = prometheus.NewDesc("oomwatch_memory_queue_events_total",
		"Events kept in memory because the spool refused them.", nil, nil)
	descMemoryDropped = prometheus.NewDesc("oomwatch_memory_queue_dropped_events_total",
		"Events dropped from the full in-memory queue while the spool refused writes (reported as a spool-unwritable loss).", nil, nil)
)

type durabilityCollector func() Durability

func (c durabilityCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSpoolWritable, descWriteErrors, descCheckpointErrors,
		descMemoryEvents, descMemoryQueued, descMemoryDropped} {
		ch <- d
	}
}

func (c durabilityCollector) Collect(ch chan<- prometheus.Metric) {
	d := c()
	writable := 0.0
	if d.SpoolWritable {
		writable = 1
	}
	ch <- prometheus.MustNewConstMetric(descSpoolWritable, prometheus.GaugeValue, writable)
	ch <- prometheus.MustNewConstMetric(descWriteErrors, prometheus.CounterValue, float64(d.SpoolWriteErrors), "event")
	ch <- prometheus.MustNewConstMetric(descWriteErrors, prometheus.CounterValue, float64(d.AckWriteErrors), "ack")
	ch <- prometheus.MustNewConstMetric(descCheckpointErrors, prometheus.CounterValue, float64(d.CheckpointWriteErrors))
	ch <- prometheus.MustNewConstMetric(descMemoryEvents, prometheus.GaugeValue, float64(d.MemoryQueueEvents))
	ch <- prometheus.MustNewConstMetric(descMemoryQueued, prometheus.CounterValue, float64(d.MemoryQueued))
	ch <- prometheus.MustNewConstMetric(descMemoryDropped, prometheus.CounterValue, float64(d.MemoryDropped))
}

// RegisterDurability adds the state directory's metrics to the agent's
// registry; durability is called at each scrape.
func (m *Agent) RegisterDurability(durability func() Durability) {
	m.Registry.MustRegister(durabilityCollector(durability))
}
