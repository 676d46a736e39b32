package cli

import (
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// Every event type prints its sequence number and time: with node, boot
// and type they are its identity, and what the web UI's tests read back.
func TestEventJSONCarriesSeqAndTime(t *testing.T) {
	at := time.Date(2026, 11, 27, 9, 42, 46, 0, time.UTC)
	for _, e := range []*pb.Event{
		{Id: "n/b/exit/77", Node: "n", BootId: "b", Seq: 77, Time: timestamppb.New(at),
			Payload: &pb.Event_Exit{Exit: &pb.ContainerExit{ExitCode: 137, Verdict: "oom-limit"}}},
		{Id: "n/b/oom/12", Node: "n", BootId: "b", Seq: 12, Time: timestamppb.New(at),
			Payload: &pb.Event_Oom{Oom: &pb.OOMKill{Kind: "node", Victims: []*pb.Process{{Pid: 3, Comm: "x"}}}}},
	} {
		b, err := json.Marshal(toJSON(e))
		if err != nil {
			t.Fatal(err)
		}
		var got struct {
			Seq  int64     `json:"seq"`
			Time time.Time `json:"time"`
			Type string    `json:"type"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		if got.Seq != e.Seq || !got.Time.Equal(at) {
			t.Errorf("%s: seq %d time %v in %s", e.Id, got.Seq, got.Time, b)
		}
	}
}
