package store

import (
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// TestEncodeWire: an event stored from the bytes it came in reads back as
// the same event, with the same Id and Received, as one encoded anew; an
// encoding that already holds an id or a received field (an agent's
// forgery: a second Timestamp would be merged into the first, keeping its
// nanoseconds) or that cannot be walked is encoded anew.
func TestEncodeWire(t *testing.T) {
	received := time.Date(2026, 12, 6, 3, 0, 0, 0, time.UTC) // no nanoseconds: a merge would keep the forged ones
	forged := func(e *pb.Event) *pb.Event {
		e.Id = "node-a/forged"
		e.Received = timestamppb.New(time.Date(2001, 1, 1, 0, 0, 1, 5, time.UTC))
		return e
	}
	for _, c := range []struct {
		name string
		e    *pb.Event
		wire func(*pb.Event) []byte // nil: proto.Marshal
		kept bool                   // the wire bytes are what is stored
	}{
		{name: "kill", e: killWithLines(60), kept: true},
		{name: "small kill", e: killWithLines(1), kept: true},
		{name: "loss", e: loss("node-a", 3, time.Second), kept: true},
		{name: "exit", e: exit("node-a", 4, time.Second, "oom-limit", "shop", "cart", "api", true), kept: true},
		{name: "oom before 1970", e: func() *pb.Event {
			e := oom("node-a", 5, 0, "limit", "shop", "cart", "api")
			e.Time = timestamppb.New(time.Unix(-5, 0))
			return e
		}(), kept: true},
		{name: "forged id and received", e: forged(killWithLines(3))},
		{name: "forged id", e: func() *pb.Event { e := killWithLines(3); e.Id = "x"; return e }()},
		{name: "forged received", e: func() *pb.Event { e := killWithLines(3); e.Received = timestamppb.New(received); return e }()},
		{name: "truncated", e: killWithLines(3), wire: func(e *pb.Event) []byte {
			b, _ := proto.Marshal(e)
			return b[:len(b)-1]
		}},
		{name: "unknown field", e: killWithLines(3), kept: true, wire: func(e *pb.Event) []byte {
			b, _ := proto.Marshal(e)
			b = protowire.AppendTag(b, 999, protowire.BytesType)
			return protowire.AppendString(b, "from a newer agent")
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var wire []byte
			if c.wire != nil {
				wire = c.wire(c.e)
			} else {
				var err error
				if wire, err = proto.Marshal(c.e); err != nil {
					t.Fatal(err)
				}
			}
			// What the aggregator holds: the event decoded from wire
			// (a truncated encoding decodes from what the frame holds).
			got := &pb.Event{}
			if err := (proto.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(wire, got); err != nil {
				got = proto.Clone(c.e).(*pb.Event)
			}
			want := proto.Clone(got).(*pb.Event)
			r, err := EncodeWire(got, wire, received)
			if err != nil {
				t.Fatal(err)
			}
			anew, err := Encode(want, received)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Decode(r.data)
			if err != nil {
				t.Fatal(err)
			}
			if !proto.Equal(back, anew.Event()) {
				t.Fatalf("stored %v\nwant %v", back, anew.Event())
			}
			if back.GetId() != anew.id || !back.GetReceived().AsTime().Equal(received) || back.GetReceived().GetNanos() != 0 {
				t.Fatalf("stored id %q received %v, want %q %v", back.GetId(), back.GetReceived().AsTime(), anew.id, received)
			}
			raw, err := unpack(r.data)
			if err != nil {
				t.Fatal(err)
			}
			if kept := len(raw) > len(wire) && string(raw[:len(wire)]) == string(wire); kept != c.kept {
				t.Fatalf("wire bytes kept = %v, want %v", kept, c.kept)
			}
		})
	}
}
