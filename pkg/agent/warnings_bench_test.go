package agent

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/oomwatch/oomwatch/pkg/cgroupstat"
	"github.com/oomwatch/oomwatch/pkg/sample"
	"github.com/oomwatch/oomwatch/pkg/sample/sampletest"
	"github.com/oomwatch/oomwatch/pkg/warn"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// discardSink drops what it is given.
type discardSink struct{ n int }

func (s *discardSink) Put(_ context.Context, evs ...*pb.Event) error { s.n += len(evs); return nil }

// BenchmarkWarningsRound300 is the agent's whole sampling round (issue #17
// item 5): read 300 cgroups (100 burstable pods of 2 containers), judge
// them and send what changed, every 10 s of a fake clock. "quiet" has every
// container at half its limit; "warned" at 95%, so that every container
// and pod holds an open near-limit warning (the engine's largest state). It
// reports CPU per round (user + system, getrusage), the share of a core
// that is at the default 10 s interval, and the heap the Warnings retain
// after warm-up.
func BenchmarkWarningsRound300(b *testing.B) {
	for _, mode := range []cgroupstat.Mode{cgroupstat.ModeV2, cgroupstat.ModeV1} {
		for _, level := range []struct {
			name  string
			ratio float64
		}{{"quiet", 0.5}, {"warned", 0.95}} {
			b.Run(fmt.Sprintf("%s/%s", mode, level.name), func(b *testing.B) {
				tr := sampletest.New(b, mode)
				const limit = 256 << 20
				ws := int64(level.ratio * limit)
				for p := range 100 {
					uid := fmt.Sprintf("0f1e2d3c-4b5a-4968-a7b6-%012d", p)
					pod, _ := sampletest.CgroupfsPaths("burstable", uid, "")
					tr.Group(pod, sampletest.Mem{Usage: 2*ws + 20<<20, Inactive: 20 << 20, Limit: fmt.Sprint(2 * limit)})
					for c := range 2 {
						_, ctr := sampletest.CgroupfsPaths("burstable", uid, fmt.Sprintf("%064x", p*2+c+1))
						tr.Group(ctr, sampletest.Mem{Usage: ws + 10<<20, Inactive: 10 << 20, Limit: fmt.Sprint(limit)})
					}
				}
				sink := &discardSink{}
				c := &fakeClock{t: time.Unix(1700000000, 0)}
				runtime.GC()
				var before runtime.MemStats
				runtime.ReadMemStats(&before)
				w, err := NewWarnings(WarningsConfig{Node: "node-a", BootID: "boot-1",
					Sample: sample.Config{CgroupRoot: tr.Root, ProcRoot: tr.Proc}, Warn: warn.DefaultConfig(),
					Eviction: EvictionThreshold{Bytes: 100 << 20}, Sink: sink, Namer: fakeNamer{}, Now: c.now},
					logrus.NewEntry(logrus.New()))
				if err != nil {
					b.Fatal(err)
				}
				var st SampleRound
				w.cfg.Round = func(r SampleRound) { st = r }
				roundAt := func() {
					if err := w.Round(context.Background()); err != nil {
						b.Fatal(err)
					}
					c.t = c.t.Add(DefaultSampleInterval)
				}
				for range 12 { // two minutes: every warning that will open has
					roundAt()
				}
				if st.Cgroups != 300 || st.Errors != 0 {
					b.Fatalf("round: %+v", st)
				}
				if level.ratio > 0.9 && st.Open["near-limit"] != 300 || level.ratio < 0.9 && len(st.Open) != 0 {
					b.Fatalf("open warnings %v", st.Open)
				}
				runtime.GC()
				var after runtime.MemStats
				runtime.ReadMemStats(&after)
				var ru0, ru1 unix.Rusage
				b.ReportAllocs()
				b.ResetTimer()
				_ = unix.Getrusage(unix.RUSAGE_SELF, &ru0)
				for range b.N {
					roundAt()
				}
				_ = unix.Getrusage(unix.RUSAGE_SELF, &ru1)
				b.StopTimer()
				cpu := float64(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / float64(b.N)
				b.ReportMetric(cpu, "cpu-ns/round")
				b.ReportMetric(100*cpu/float64(DefaultSampleInterval), "core-%@10s")
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)), "retained-B")
				runtime.KeepAlive(w)
			})
		}
	}
}
