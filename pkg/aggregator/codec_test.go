package aggregator

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/oomwatch/oomwatch/pkg/eventid"
	"github.com/oomwatch/oomwatch/pkg/store"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

func marshal(t testing.TB, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestEventWire(t *testing.T) {
	ev := marshal(t, oom("node-a", 1, "shop", "cart"))
	one := marshal(t, &pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: oom("node-a", 1, "shop", "cart")}})
	hello := marshal(t, &pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: "node-a"}}})
	unknown := protowire.AppendString(protowire.AppendTag(append([]byte(nil), one...), 99, protowire.BytesType), "x")
	for _, c := range []struct {
		name  string
		frame []byte
		want  []byte
	}{
		{"one event", one, ev},
		{"and an unknown field", unknown, ev},
		{"hello", hello, nil},
		{"empty", nil, nil},
		{"two events, merged by decoding", append(append([]byte(nil), one...), one...), nil},
		{"truncated", one[:len(one)-1], nil},
		{"bad tag", []byte{0x80}, nil},
	} {
		if got := eventWire(c.frame); string(got) != string(c.want) || (got == nil) != (c.want == nil) {
			t.Errorf("%s: eventWire = %d bytes, want %d", c.name, len(got), len(c.want))
		}
	}
}

// rawMsg is a message sent as the bytes it holds (rawCodec).
type rawMsg struct{ b []byte }

// rawCodec lets a test agent send frames no protobuf library would write.
type rawCodec struct{ proto encoding.CodecV2 }

func (c rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	if m, ok := v.(*rawMsg); ok {
		return mem.BufferSlice{mem.SliceBuffer(m.b)}, nil
	}
	return c.proto.Marshal(v)
}

func (c rawCodec) Unmarshal(data mem.BufferSlice, v any) error { return c.proto.Unmarshal(data, v) }

func (rawCodec) Name() string { return "proto" }

// TestIngestStoresWhatItDecoded plays an agent that sends frames built to
// make the stored bytes differ from the event the aggregator checked: an
// event field sent twice (decoding merges them: the second's seq wins),
// and an event carrying its own id and received time (a Timestamp sent
// again is merged into the first, which would keep the forged
// nanoseconds). What is stored is the event as decoded and validated,
// under the aggregator's id and received time.
func TestIngestStoresWhatItDecoded(t *testing.T) {
	now := time.Date(2026, 3, 1, 13, 0, 0, 0, time.UTC) // no nanoseconds
	e := start(t, Config{Now: func() time.Time { return now }})
	conn := e.dial(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := pb.NewIngestServiceClient(conn).Stream(ctx, grpc.ForceCodecV2(rawCodec{proto: encoding.GetCodecV2("proto")}))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Send(&pb.StreamRequest{Msg: &pb.StreamRequest_Hello{Hello: &pb.Hello{Node: "node-a", BootId: boot, AgentVersion: "test"}}}); err != nil {
		t.Fatal(err)
	}
	first := marshal(t, &pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: oom("node-a", 1, "shop", "cart")}})
	second := marshal(t, &pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: &pb.Event{Seq: 2}}})
	forged := oom("node-a", 3, "shop", "cart")
	forged.Id = "node-a/" + boot + "/oom/999"
	forged.Received = timestamppb.New(time.Date(2001, 1, 1, 0, 0, 1, 5, time.UTC))
	for _, f := range [][]byte{append(first, second...), marshal(t, &pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: forged}})} {
		if err := st.SendMsg(&rawMsg{b: f}); err != nil {
			t.Fatal(err)
		}
	}
	for _, seq := range []int64{2, 3} {
		r, err := st.Recv()
		if err != nil {
			t.Fatal(err)
		}
		if r.GetSeq() != seq || r.GetDuplicate() {
			t.Fatalf("ack %v, want seq %d stored", r, seq)
		}
	}
	for _, seq := range []int64{2, 3} {
		want := oom("node-a", seq, "shop", "cart")
		id := eventid.String(want)
		got, err := e.st.Get(ctx, id)
		if err != nil {
			t.Fatalf("%s: %v", id, err)
		}
		if got.GetSeq() != seq || got.GetId() != id || !got.GetReceived().AsTime().Equal(now) || got.GetReceived().GetNanos() != 0 {
			t.Errorf("stored seq %d id %q received %v, want seq %d id %q received %v", got.GetSeq(), got.GetId(), got.GetReceived().AsTime(), seq, id, now)
		}
	}
	if ids := e.stored(t); len(ids) != 2 {
		t.Errorf("stored %v, want 2 events", ids)
	}
}

// poisonPool is a mem.BufferPool that overwrites what is given back to it.
type poisonPool struct{ puts int }

func (p *poisonPool) Get(n int) *[]byte {
	b := make([]byte, n)
	return &b
}

func (p *poisonPool) Put(b *[]byte) {
	p.puts++
	for i := range *b {
		(*b)[i] = 0xAA
	}
}

// TestFrameHeldUntilFree: gRPC frees a message's buffers when the codec's
// Unmarshal returns; a stream's frame keeps its bytes (those of gRPC's
// buffer when the message came in one, a copy when in several) until the
// stream frees it, after the event is encoded for the store.
func TestFrameHeldUntilFree(t *testing.T) {
	kill := oom("node-a", 1, "shop", "cart")
	kill.GetOom().Lines = []string{strings.Repeat("a kernel line ", 280)} // 4 kB: each of 3 parts is pooled
	frame := marshal(t, &pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: kill}})
	codec := frameCodec{proto: encoding.GetCodecV2("proto")}
	for _, parts := range []int{1, 2, 3} {
		pool := &poisonPool{}
		var data mem.BufferSlice
		for i := range parts {
			b := append([]byte(nil), frame[i*len(frame)/parts:(i+1)*len(frame)/parts]...)
			data = append(data, mem.NewBuffer(&b, pool))
		}
		var f rawFrame
		if err := codec.Unmarshal(data, &f); err != nil {
			t.Fatal(err)
		}
		data.Free() // as gRPC does when Unmarshal returns
		if !bytes.Equal(f.b, frame) {
			t.Fatalf("%d buffers: the frame changed when gRPC freed its buffers", parts)
		}
		wantPuts := parts // copied: gRPC's buffers went back at once
		if parts == 1 {
			wantPuts = 0 // held
		}
		if pool.puts != wantPuts {
			t.Fatalf("%d buffers: %d given back before free, want %d", parts, pool.puts, wantPuts)
		}
		f.free()
		if pool.puts != parts || f.b != nil {
			t.Fatalf("%d buffers: %d given back after free, want %d", parts, pool.puts, parts)
		}
		f.free() // twice is harmless
	}
}

// FuzzIngestStoredReadable plays an agent that sends any frame: whatever a
// stream accepts (decoded as recvRequest does, checked as accept does,
// encoded by store.EncodeWire from the bytes received) is stored in a form
// the readers decode, and read back as the event that was checked. A
// frame the readers could not decode would be an event acknowledged and
// then lost to every query, and one read back differently an event
// checked in one form and served in another.
func FuzzIngestStoredReadable(f *testing.F) {
	for _, e := range seeds() {
		one := marshal(f, &pb.StreamRequest{Msg: &pb.StreamRequest_Event{Event: e}})
		f.Add(one)
		// The event twice, which decoding merges, and a field of the
		// frame this aggregator does not know.
		f.Add(append(append([]byte(nil), one...), one...))
		f.Add(protowire.AppendString(protowire.AppendTag(append([]byte(nil), one...), 99, protowire.BytesType), "x"))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		req := &pb.StreamRequest{}
		if decodeFrame(frame, req) != nil || req.GetEvent() == nil {
			return
		}
		ev, wire := req.GetEvent(), eventWire(frame)
		now := time.Now()
		if validateEvent(ev, eventSize(ev, wire), testHello, now, DefaultMaxClockSkew) != nil {
			return
		}
		rec, err := store.EncodeWire(ev, wire, now)
		if err != nil {
			return
		}
		got, err := store.Decode(rec.Row().Data)
		if err != nil {
			t.Fatalf("accepted %s, stored it unreadable: %v", rec.Row().ID, err)
		}
		if !proto.Equal(got, rec.Event()) {
			t.Fatalf("accepted\n%v\nread back\n%v", rec.Event(), got)
		}
	})
}
