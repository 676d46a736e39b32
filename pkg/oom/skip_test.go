package oom

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/oomwatch/oomwatch/pkg/kernlog"
	"github.com/oomwatch/oomwatch/pkg/kernlog/kernlogtest"
)

// TestSkipKeepsEveryReportStart checks that Skip, the live reader's test of
// an ordinary record, never skips a line that starts a report: the first
// record of every report the fixture logs hold, every line of them that can
// start one, and trigger, kill and summary lines of every awkward task
// name, reach Feed.
func TestSkipKeepsEveryReportStart(t *testing.T) {
	starts := 0
	check := func(name string, rec *kernlog.Record) {
		t.Helper()
		var row dumpRow
		// "Memory cgroup stats for" aside: Feed, like Skip, starts no
		// report on it (mayBeReport wants "oom", "Kill" or "Task" as
		// well); printed inside a report, after its usage lines, it
		// says nothing of a kill alone.
		if k := classify(rec.Message, &row); !startsReport(k) || k == lineMemcgStats {
			return
		}
		starts++
		a := NewAssembler(Options{}, func(*Report) {})
		if a.Skip(rec) {
			t.Errorf("%s: Skip skipped a report's start: %q", name, rec.Message)
		}
	}
	firsts := 0
	for name, recs := range kernlogtest.Records(t) {
		for i := range recs {
			check(name, &recs[i])
		}
		// The records on which Feed alone opened a report while none was
		// open: the only state in which Skip skips anything.
		a := NewAssembler(Options{}, func(*Report) {})
		for i := range recs {
			open := a.Open()
			a.Feed(&recs[i])
			if open || !a.Open() {
				continue
			}
			firsts++
			if NewAssembler(Options{}, nil).Skip(&recs[i]) {
				t.Errorf("%s: Skip skipped the first record of a report: %q", name, recs[i].Message)
			}
		}
	}
	if firsts < 10 {
		t.Fatalf("only %d reports' first records checked", firsts)
	}
	for _, comm := range nastyComms {
		for _, line := range []string{
			fmt.Sprintf("%s invoked oom-killer: gfp_mask=0xcc0(GFP_KERNEL), order=0, oom_score_adj=0", comm),
			fmt.Sprintf("Out of memory: Killed process 4242 (%s) total-vm:1000kB, anon-rss:800kB, file-rss:4kB, shmem-rss:0kB, UID:0 pgtables:40kB oom_score_adj:0", comm),
			fmt.Sprintf("Memory cgroup out of memory: Kill process 4242 (%s) score 937 or sacrifice child", comm),
			fmt.Sprintf("oom-kill:constraint=CONSTRAINT_NONE,nodemask=(null),cpuset=/,mems_allowed=0,global_oom,task_memcg=/a,task=%s,pid=4242,uid=0", comm),
		} {
			check("comm "+comm, &kernlog.Record{Message: []byte(line)})
		}
	}
	if starts < 50 {
		t.Fatalf("only %d report starts checked", starts)
	}
}

// TestSkipThenFeedIsFeed runs every fixture log through Feed alone and
// through Skip then Feed, as the live pipeline does: the same reports and
// the same counts come out.
func TestSkipThenFeedIsFeed(t *testing.T) {
	reports := 0
	for name, recs := range kernlogtest.Records(t) {
		t.Run(name, func(t *testing.T) {
			var fed, skipped []*Report
			a := NewAssembler(Options{}, func(r *Report) { fed = append(fed, r) })
			b := NewAssembler(Options{}, func(r *Report) { skipped = append(skipped, r) })
			n := 0
			for i := range recs {
				a.Feed(&recs[i])
				if b.Skip(&recs[i]) {
					n++
					continue
				}
				b.Feed(&recs[i])
			}
			a.Flush()
			b.Flush()
			reports += len(fed)
			if n == 0 {
				t.Fatal("no record skipped")
			}
			if !reflect.DeepEqual(fed, skipped) {
				t.Errorf("reports differ with Skip")
			}
			if a.Stats() != b.Stats() {
				t.Errorf("stats %+v with Skip, %+v without", b.Stats(), a.Stats())
			}
		})
	}
	if reports < 10 {
		t.Fatalf("only %d reports in the fixtures", reports)
	}
}
