package spool

import (
	"fmt"
	"strings"
	"testing"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// BenchmarkPut puts 10,000 events in batches of 100 (an OOM storm) into a
// fresh spool per iteration, and reports events/s and the time per storm.
// The goal: well under 10 s per storm.
func BenchmarkPut(b *testing.B) {
	for _, lines := range []int{0, 40} {
		b.Run(fmt.Sprintf("lines=%d", lines), func(b *testing.B) {
			const total, batch = 10000, 100
			evs := make([]*pb.Event, total)
			for i := range evs {
				evs[i] = oomEvent("b1", i)
				for range lines {
					evs[i].GetOom().Lines = append(evs[i].GetOom().Lines, strings.Repeat("k", 80))
				}
			}
			var events int
			b.ResetTimer()
			for b.Loop() {
				b.StopTimer()
				s, _ := mustOpen(b, b.TempDir(), Options{})
				b.StartTimer()
				for i := 0; i < total; i += batch {
					if err := s.Put(ctx, evs[i:i+batch]...); err != nil {
						b.Fatal(err)
					}
				}
				events += total
				b.StopTimer()
				s.Close()
				b.StartTimer()
			}
			sec := b.Elapsed().Seconds()
			b.ReportMetric(float64(events)/sec, "events/s")
			b.ReportMetric(sec/float64(events)*total, "s/10k-events")
		})
	}
}

// BenchmarkNextAck hands out and acknowledges 10,000 spooled events.
func BenchmarkNextAck(b *testing.B) {
	const total = 10000
	for b.Loop() {
		b.StopTimer()
		s, _ := mustOpen(b, b.TempDir(), Options{})
		for i := 0; i < total; i += 100 {
			if err := s.Put(ctx, oomEvents("b1", i, i+100)...); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
		for {
			evs := s.Next(256)
			if len(evs) == 0 {
				break
			}
			for _, e := range evs {
				if err := s.Ack(e.GetBootId(), "oom", e.GetSeq()); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StopTimer()
		s.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(b.N*total)/b.Elapsed().Seconds(), "events/s")
}
