package aggregator

import (
	"os"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/analysis"
	"github.com/oomwatch/oomwatch/pkg/store"
	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// BenchmarkValidateKill checks the real 6.1 container-limit kill (5.6 kB
// with its 60 kernel lines), as every event of an ingest is checked.
func BenchmarkValidateKill(b *testing.B) {
	e, h, now := realKill(b)
	b.ReportAllocs()
	for b.Loop() {
		_ = ValidateEventAt(e, h, now, time.Minute)
	}
}

// BenchmarkReceiveKill is a stream's work on each event before the
// commit, on the same kill: decoding the frame, checking the event and
// encoding it for the store, from the bytes received (wire) and, as
// before, encoded again with proto.Size for its size (anew).
func BenchmarkReceiveKill(b *testing.B) {
	e, h, now := realKill(b)
	frame, err := proto.Marshal(&pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: e}})
	if err != nil {
		b.Fatal(err)
	}
	for _, useWire := range []bool{false, true} {
		name := "anew"
		if useWire {
			name = "wire"
		}
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				req := &pb.StreamRequest{}
				if err := decodeFrame(frame, req); err != nil {
					b.Fatal(err)
				}
				var w []byte
				if useWire {
					w = eventWire(frame)
				}
				if err := validateEvent(req.GetEvent(), eventSize(req.GetEvent(), w), h, now, time.Minute); err != nil {
					b.Fatal(err)
				}
				if _, err := store.EncodeWire(req.GetEvent(), w, now); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func realKill(b testing.TB) (*pb.Event, *pb.Hello, time.Time) {
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
	return e, h, now
}
