package nodemetrics

import "github.com/oomwatch/oomwatch/pkg/promtext"

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

// RegisterDurability adds the state directory's metrics to the agent's
// registry; durability is called at each scrape.
func (m *Agent) RegisterDurability(durability func() Durability) {
	one := func(name, help, typ string, v float64) promtext.Family {
		return promtext.Family{Name: name, Help: help, Type: typ, Samples: []promtext.Sample{{Value: v}}}
	}
	m.Registry.Register(func() []promtext.Family {
		d := durability()
		writable := 0.0
		if d.SpoolWritable {
			writable = 1
		}
		return []promtext.Family{
			one("oomwatch_spool_writable",
				"1 while the spool takes writes, 0 while the state directory refuses them (full, read-only, I/O errors).",
				promtext.TypeGauge, writable),
			{Name: "oomwatch_spool_write_errors_total", Type: promtext.TypeCounter,
				Help: "Writes the spool failed, by what was written: events (then kept in memory and sent directly) or acks (the event may be sent again after a restart).",
				Samples: []promtext.Sample{
					{Labels: []promtext.Label{{Name: "op", Value: "event"}}, Value: float64(d.SpoolWriteErrors)},
					{Labels: []promtext.Label{{Name: "op", Value: "ack"}}, Value: float64(d.AckWriteErrors)},
				}},
			one("oomwatch_checkpoint_write_errors_total",
				"Failed checkpoint saves (a restart then reads the kernel records since the last saved one again).",
				promtext.TypeCounter, float64(d.CheckpointWriteErrors)),
			one("oomwatch_memory_queue_events",
				"Events kept only in memory because the spool refused them, not acknowledged yet.",
				promtext.TypeGauge, float64(d.MemoryQueueEvents)),
			one("oomwatch_memory_queue_events_total", "Events kept in memory because the spool refused them.",
				promtext.TypeCounter, float64(d.MemoryQueued)),
			one("oomwatch_memory_queue_dropped_events_total",
				"Events dropped from the full in-memory queue while the spool refused writes (reported as a spool-unwritable loss).",
				promtext.TypeCounter, float64(d.MemoryDropped)),
		}
	})
}
