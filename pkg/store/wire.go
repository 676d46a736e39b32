package store

import (
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/oomwatch/oomwatch/pkg/wire"
	pb "github.com/oomwatch/oomwatch/proto/oomwatch/v1"
)

// The numbers of the Event fields that the store sets.
var (
	fieldID       = eventField("id")
	fieldReceived = eventField("received")
)

func eventField(name protoreflect.Name) protowire.Number {
	return (&pb.Event{}).ProtoReflect().Descriptor().Fields().ByName(name).Number()
}

// hasIDOrReceived reports whether an Event's encoding holds an id or a
// received field at its top level, or cannot be walked (then it is
// encoded anew, as if it held them).
func hasIDOrReceived(b []byte) bool {
	has := false
	ok := wire.Fields(b, func(num protowire.Number, _ protowire.Type, _ []byte) {
		has = has || num == fieldID || num == fieldReceived
	})
	return !ok || has
}

// appendIDReceived appends to dst the Event encoding wire followed by its
// id and received fields, received as a google.protobuf.Timestamp
// (seconds 1, nanos 2; zero values left out, as proto.Marshal does).
func appendIDReceived(dst, wire []byte, id string, received time.Time) []byte {
	dst = append(dst, wire...)
	dst = protowire.AppendTag(dst, fieldID, protowire.BytesType)
	dst = protowire.AppendString(dst, id)
	var ts []byte
	if s := received.Unix(); s != 0 {
		ts = protowire.AppendTag(ts, 1, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(s))
	}
	if ns := received.Nanosecond(); ns != 0 {
		ts = protowire.AppendTag(ts, 2, protowire.VarintType)
		ts = protowire.AppendVarint(ts, uint64(ns))
	}
	dst = protowire.AppendTag(dst, fieldReceived, protowire.BytesType)
	return protowire.AppendBytes(dst, ts)
}
