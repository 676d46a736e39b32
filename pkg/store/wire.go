package store

import (
	"bytes"
	"encoding/binary"
	"sync"
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
	var tsBuf [2 * binary.MaxVarintLen64]byte
	ts := tsBuf[:0]
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

// packWire is pack of appendIDReceived(wire, id, received). The encoding
// of an event that pack compresses is made in a buffer used again for
// the next one (the row keeps the compressed copy): at the aggregator's
// ingest rate the encodings alone were ~70 MB/s of garbage.
func packWire(wire []byte, id string, received time.Time) []byte {
	n := len(wire) + len(id) + 32
	if n <= compressAbove || n > maxPooledRow {
		return pack(appendIDReceived(make([]byte, 0, n), wire, id, received))
	}
	bp := rowBuffers.Get().(*[]byte)
	raw := appendIDReceived((*bp)[:0], wire, id, received)
	data := pack(raw)
	if len(data) == len(raw) && &data[0] == &raw[0] {
		// Kept as it is (S2 did not shrink it): the row gets its own copy.
		data = bytes.Clone(raw)
	}
	*bp = raw[:0]
	rowBuffers.Put(bp)
	return data
}

// maxPooledRow bounds the encodings made in rowBuffers: a buffer that one
// large event grew is not kept for the small ones after it.
const maxPooledRow = 64 << 10

// rowBuffers holds packWire's buffers.
var rowBuffers = sync.Pool{New: func() any { return new([]byte) }}
