package aggregator

import (
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// gRPC answers a message it cannot decode with codes.Internal, which
// tells a client the server failed. For the streams (the agents' Ingest
// stream above all) the server decodes messages itself instead: the codec
// hands a rawFrame its bytes as they came, and the stream interceptor
// decodes them, answering codes.InvalidArgument when they are not
// protobuf. (A unary request is decoded before any interceptor runs and
// still gets Internal; the readers' queries are unary and come from
// oomctl.)

// rawFrame receives a message's bytes undecoded.
type rawFrame struct{ b []byte }

// frameCodec is the protobuf codec, but for rawFrame.
type frameCodec struct{ proto encoding.CodecV2 }

// Marshal implements encoding.CodecV2.
func (c frameCodec) Marshal(v any) (mem.BufferSlice, error) { return c.proto.Marshal(v) }

// Unmarshal implements encoding.CodecV2.
func (c frameCodec) Unmarshal(data mem.BufferSlice, v any) error {
	if f, ok := v.(*rawFrame); ok {
		f.b = data.Materialize()
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
	if err := s.ServerStream.RecvMsg(&f); err != nil {
		return err
	}
	if err := (proto.UnmarshalOptions{}).Unmarshal(f.b, msg); err != nil {
		return status.Errorf(codes.InvalidArgument, "malformed message: %v", err)
	}
	return nil
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
