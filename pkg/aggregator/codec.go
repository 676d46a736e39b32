package aggregator

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// gRPC answers a message it cannot decode with codes.Internal, which
// tells a client the server failed. For the streams (the agents' Ingest
// stream above all) the server decodes messages itself instead: the codec
// hands a rawFrame its bytes as they came, and the stream interceptor
// decodes them, answering codes.InvalidArgument when they are not
// protobuf. (A unary request is decoded before any interceptor runs and
// still gets Internal; the readers' queries are unary and come from
// oomctl.)

// rawFrame receives a message's bytes undecoded: b, which stays valid
// until free. They are gRPC's own buffer when the message came in one (no
// copy), else one from gRPC's buffer pool: a stream's event is ~6 kB that
// would otherwise be copied into new memory for each message.
type rawFrame struct {
	b   []byte
	buf mem.Buffer
}

// free gives the frame's buffer back; b must not be used after.
func (f *rawFrame) free() {
	if f.buf != nil {
		f.buf.Free()
	}
	f.b, f.buf = nil, nil
}

// frameCodec is the protobuf codec, but for rawFrame.
type frameCodec struct{ proto encoding.CodecV2 }

// Marshal implements encoding.CodecV2.
func (c frameCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

// Unmarshal implements encoding.CodecV2.
func (c frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*rawFrame); ok {
		f.buf = data.MaterializeToBuffer(mem.DefaultBufferPool())
		f.b = f.buf.ReadOnlyData()
		return nil
	}
	return c.proto.Unmarshal(data, v)
}

// Name implements encoding.CodecV2.
func (frameCodec) Name() string { return "proto" }

// decodingStream decodes its messages itself (see rawFrame).
type decodingStream struct{ grpc.ServerStream }

// RecvMsg implements grpc.ServerStream.
func (s decodingStream) RecvMsg(m any) error {
	msg, ok := m.(proto.Message)
	if !ok {
		return s.ServerStream.RecvMsg(m)
	}
	var f rawFrame
	defer f.free()
	if err := s.ServerStream.RecvMsg(&f); err != nil {
		return err
	}
	return decodeFrame(f.b, msg)
}

func decodeFrame(b []byte, msg proto.Message) error {
	if err := (proto.UnmarshalOptions{}).Unmarshal(b, msg); err != nil {
		return status.Errorf(codes.InvalidArgument, "malformed message: %v", err)
	}
	return nil
}

// recvRequest receives an ingest stream's next message and its frame,
// whose bytes hold, when the message holds an event, that event's
// encoding as received (see eventWire), which the store keeps instead of
// encoding the event again. The caller frees the frame. It needs the
// server's decodeOptions.
func recvRequest(st grpc.ServerStream) (*pb.StreamRequest, rawFrame, error) {
	var f rawFrame
	if err := st.RecvMsg(&f); err != nil {
		f.free()
		return nil, rawFrame{}, err
	}
	req := &pb.StreamRequest{}
	if err := decodeFrame(f.b, req); err != nil {
		f.free()
		return nil, rawFrame{}, err
	}
	return req, f, nil
}

// requestEvent is the number of StreamRequest's event field.
var requestEvent = (&pb.StreamRequest{}).ProtoReflect().Descriptor().Fields().ByName("event").Number()

// eventWire returns the bytes of a StreamRequest's event field when the
// message holds exactly one: the decoded event is then exactly their
// decoding. Several (merged by decoding) or none give nil.
func eventWire(b []byte) []byte {
	var ev []byte
	n := 0
	ok := wire.Fields(b, func(num protowire.Number, typ protowire.Type, v []byte) {
		if num == requestEvent && typ == protowire.BytesType {
			ev, n = v, n+1
		}
	})
	if !ok || n != 1 {
		return nil
	}
	return ev
}

// decodeOptions are the server options that make streams answer
// malformed messages with codes.InvalidArgument.
func decodeOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.ForceServerCodecV2(frameCodec{proto: encoding.GetCodecV2("proto")}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
			return h(srv, decodingStream{ss})
		}),
	}
}
