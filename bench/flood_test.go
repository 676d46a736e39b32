package bench

import (
	"strings"
	"testing"
	"time"
)

// TestFloodMeasurements: the guest flood's lines take each reader's median
// pass, judge the live path against cAdvisor, and say where both stand
// over kmsgparser alone when the guest ran it (older results did not).
func TestFloodMeasurements(t *testing.T) {
	pass := func(cpuNs ...int) []FloodRun {
		var runs []FloodRun
		for _, c := range cpuNs {
			runs = append(runs, FloodRun{Records: 1000, Wall: time.Duration(c) * time.Millisecond, CPU: time.Duration(c) * time.Millisecond})
		}
		return runs
	}
	fr := &FloodResult{Written: 1000, Runs: map[string][]FloodRun{
		FloodRaw:      pass(5, 4, 6),
		FloodOomwatch: pass(20, 90, 18), // median 20 ms: 20,000 ns/record
		FloodCAdvisor: pass(25, 24, 99), // median 25 ms
		FloodFrontEnd: pass(16, 15, 17), // median 16 ms
	}}
	ms, err := FloodMeasurements(fr, "linux-image-test")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 2 {
		t.Fatalf("%d lines", len(ms))
	}
	want := "0.80x (20000 vs 25000 CPU ns/record); the front end alone (floor) 16000 ns = 0.64x of cAdvisor's, so after the channel " +
		"oomwatch takes 4000 ns, cAdvisor 9000 ns, and the target leaves 4000 ns (kmsgparser alone, drained: 62.5k records/s, 16000 CPU ns/record)"
	if !strings.HasPrefix(ms[1].Value, want) || ms[1].Verdict != VerdictMet {
		t.Errorf("CPU line:\n got %s [%s]\nwant %s...", ms[1].Value, ms[1].Verdict, want)
	}
	if !strings.Contains(ms[0].Value, "(0.25 of the floor's records/s)") {
		t.Errorf("floor line: %s", ms[0].Value)
	}
	delete(fr.Runs, FloodFrontEnd)
	ms, err = FloodMeasurements(fr, "linux-image-test")
	if err != nil {
		t.Fatal(err)
	}
	if ms[1].Value != "0.80x (20000 vs 25000 CPU ns/record)" {
		t.Errorf("without the front end's passes: %s", ms[1].Value)
	}
	delete(fr.Runs, FloodCAdvisor)
	if _, err := FloodMeasurements(fr, "linux-image-test"); err == nil {
		t.Error("no error without cAdvisor's passes")
	}
}
