package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestDurabilityMetrics(t *testing.T) {
	m := NewAgent(func() float64 { return 0 }, func() float64 { return 0 }, func() float64 { return 0 })
	d := Durability{SpoolWritable: false, SpoolWriteErrors: 7, AckWriteErrors: 3, CheckpointWriteErrors: 2,
		MemoryQueueEvents: 5, MemoryQueued: 40, MemoryDropped: 1}
	m.RegisterDurability(func() Durability { return d })
	want := `
# HELP oomwatch_spool_writable 1 while the spool takes writes, 0 while the state directory refuses them (full, read-only, I/O errors).
# TYPE oomwatch_spool_writable gauge
oomwatch_spool_writable 0
# HELP oomwatch_spool_write_errors_total Writes the spool failed, by what was written: events (then kept in memory and sent directly) or acks (the event may be sent again after a restart).
# TYPE oomwatch_spool_write_errors_total counter
oomwatch_spool_write_errors_total{op="ack"} 3
oomwatch_spool_write_errors_total{op="event"} 7
# HELP oomwatch_checkpoint_write_errors_total Failed checkpoint saves (a restart then reads the kernel records since the last saved one again).
# TYPE oomwatch_checkpoint_write_errors_total counter
oomwatch_checkpoint_write_errors_total 2
# HELP oomwatch_memory_queue_dropped_events_total Events dropped from the full in-memory queue while the spool refused writes (reported as a spool-unwritable loss).
# TYPE oomwatch_memory_queue_dropped_events_total counter
oomwatch_memory_queue_dropped_events_total 1
`
	names := []string{"oomwatch_spool_writable", "oomwatch_spool_write_errors_total",
		"oomwatch_checkpoint_write_errors_total", "oomwatch_memory_queue_dropped_events_total"}
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
	// Read at each scrape.
	d.SpoolWritable = true
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(`
# HELP oomwatch_spool_writable 1 while the spool takes writes, 0 while the state directory refuses them (full, read-only, I/O errors).
# TYPE oomwatch_spool_writable gauge
oomwatch_spool_writable 1
`), "oomwatch_spool_writable"); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(m.Registry, "oomwatch_memory_queue_events", "oomwatch_memory_queue_events_total"); err != nil || n != 2 {
		t.Fatalf("memory queue series %d, %v", n, err)
	}
}
