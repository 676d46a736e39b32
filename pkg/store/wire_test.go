package store

import (
	"math/rand/v2"
	"slices"
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

// TestEncodeWireRowsOwnTheirBytes: the encodings are made in buffers used
// again (packWire), so each record must keep bytes of its own. Events of
// every kind pack can give (small and kept, compressed, too random to
// shrink, larger than the buffers kept), encoded one after another and all
// kept, each read back as itself.
func TestEncodeWireRowsOwnTheirBytes(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	random := func(n int) string {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte('!' + rnd.IntN(94))
		}
		return string(b)
	}
	var events []*pb.Event
	for i := range 200 {
		var e *pb.Event
		switch i % 4 {
		case 0:
			e = killWithLines(1 + i%7)
		case 1:
			e = killWithLines(20 + i%50)
		case 2:
			e = killWithLines(2)
			e.GetOom().Lines = append(e.GetOom().Lines, random(1500+i*10))
		default:
			e = killWithLines(2)
			e.GetOom().Lines = append(e.GetOom().Lines, random(maxPooledRow+i))
		}
		e.Seq = int64(i + 1)
		events = append(events, e)
	}
	received := time.Date(2026, 12, 7, 13, 0, 0, 0, time.UTC)
	var recs []*Record
	var kinds [4]int // small, too random to shrink, compressed, beyond the pooled size
	for _, e := range events {
		wire, err := proto.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		r, err := EncodeWire(proto.Clone(e).(*pb.Event), wire, received)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case len(wire) > maxPooledRow:
			kinds[3]++
		case r.data[0] == 0:
			kinds[2]++
		case len(wire) > compressAbove:
			kinds[1]++
		default:
			kinds[0]++
		}
		recs = append(recs, r)
	}
	if slices.Min(kinds[:]) < 40 {
		t.Fatalf("small, random, compressed, large: %v; the test needs 40 of each", kinds)
	}
	for i, r := range recs {
		back, err := Decode(r.data)
		if err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
		back.Id, back.Received = "", nil
		if !proto.Equal(back, events[i]) {
			t.Fatalf("event %d reads back as another: seq %d, %d lines", i, back.GetSeq(), len(back.GetOom().GetLines()))
		}
	}
}
