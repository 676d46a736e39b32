package aggregator

import (
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// BenchmarkValidateKill checks the real 6.1 container-limit kill (5.6 kB
// with its 60 kernel lines), as every event of an ingest is checked.
func BenchmarkValidateKill(b *testing.B) {
	f, err := os.Open("../analysis/testdata/debian-6.1-kmsg-v2-systemd-container-limit.kmsg")
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	var kill *pb.OOMKill
	if _, err := analysis.ReadLog(f, analysis.StreamOptions{}, func(e analysis.Event) {
		if kill == nil {
			kill = wire.OOMKill(e)
		}
	}); err != nil || kill == nil {
		b.Fatalf("no kill: %v", err)
	}
	now := time.Now()
	h := &pb.Hello{Node: "node-a", BootId: "boot-1"}
	e := &pb.Event{Node: "node-a", BootId: "boot-1", Seq: 7, Time: timestamppb.New(now), Payload: &pb.Event_Oom{Oom: kill}}
	if err := ValidateEventAt(e, h, now, time.Minute); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		_ = ValidateEventAt(e, h, now, time.Minute)
	}
}
