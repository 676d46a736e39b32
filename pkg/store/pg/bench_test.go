package pg_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/store/pg"
	"github.com/oomwatch/oomwatch/pkg/store/pg/pgtest"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// BenchmarkPut stores batches of 1,000 small limit kills, as the server's
// group commit does under load (package store's BenchmarkPut/small, on
// PostgreSQL). events/s counts the commits' wall time; the server's CPU is
// not this process's.
func BenchmarkPut(b *testing.B) {
	s, err := pg.Open(context.Background(), pgtest.DB(b), quietLog())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	r := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	var n int64
	for b.Loop() {
		b.StopTimer()
		evs := make([]*pb.Event, 1000)
		for i := range evs {
			pod := strconv.Itoa(r.IntN(5000))
			evs[i] = &pb.Event{Node: "node-" + strconv.Itoa(r.IntN(100)), BootId: "boot-1", Seq: n,
				Time: timestamppb.New(t0.Add(time.Duration(n) * time.Millisecond)),
				Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "limit", Complete: true, Lines: []string{"worker invoked oom-killer"},
					Victims: []*pb.Process{{Pid: int32(n), Comm: "worker",
						Workload: &pb.Workload{Namespace: "ns-" + pod[:1], PodName: "pod-" + pod, PodUid: "uid-" + pod, ContainerName: "api"}}}}}}
			n++
		}
		b.StartTimer()
		if _, err := s.Put(context.Background(), evs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}
