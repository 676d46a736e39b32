package oom

import (
	"strings"
	"testing"
	"time"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
)

// A live reader starved of CPU may get the kill line seconds after the
// oom-kill: summary: Expire keeps the report for KillLineWait, then the
// kill line completes it.
func TestExpireWaitsForTheKillLineAfterTheSummary(t *testing.T) {
	lines := nodeReport(100, 5000000, 3, 1002)
	var out []*Report
	a := NewAssembler(Options{}, func(r *Report) { out = append(out, r) })
	rd := kernlog.NewReader(strings.NewReader(strings.Join(lines, "\n")))
	var recs []kernlog.Record
	for rd.Next() {
		r := *rd.Record()
		r.Message = append([]byte(nil), r.Message...)
		recs = append(recs, r)
	}
	last := len(recs) - 1
	for i := range recs[:last] {
		a.Feed(&recs[i])
	}
	a.Expire(2 * time.Second)
	if len(out) != 0 {
		t.Fatal("the report was closed 2 s after its summary, before its kill line")
	}
	a.Feed(&recs[last])
	a.Expire(300 * time.Millisecond)
	if len(out) != 1 || len(out[0].Victims) != 1 || out[0].Victims[0].PID != 1002 || !out[0].Complete {
		t.Fatalf("reports %+v", out)
	}

	// A kill line that never comes: the report is closed after the wait.
	out = nil
	for i := range recs[:last] {
		r := recs[i]
		r.Seq += 1000
		a.Feed(&r)
	}
	a.Expire(time.Second)
	if len(out) != 0 {
		t.Fatal("closed before KillLineWait")
	}
	a.Expire(6 * time.Second)
	if len(out) != 1 || out[0].Seq != 1100 {
		t.Fatalf("reports %+v", out)
	}
}
